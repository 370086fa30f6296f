//! Issue 19, acceptance 8: docker save-style and OCI archives import and run. An OCI image
//! layout directory and an OCI archive (a tar of it) written here, a docker save archive
//! (manifest.json, `<id>.json` config, `<id>/layer.tar` layers) built here, and (when skopeo
//! is installed) the docker-archive and oci-archive skopeo writes, are imported with
//! `podrun image import` / `podrun image load` into an image store of the test's own, and a pod
//! with `imagePullPolicy: Never` runs from each and sees its files (a whiteout in an upper
//! layer hides a lower file). A tampered layer is refused naming its digest and leaves nothing
//! in the store. No registry, no network: everything is files.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::Node;
use common::registry::{Entry, Layer, TestImage, debug_rootfs, oci_layout, sha256, tar_of};

/// A node and an image store of its own (not the shared test images).
struct Setup {
    node: Node,
    images: tempfile::TempDir,
    work: tempfile::TempDir,
    /// The debug image's root filesystem as a plain tar (a base layer).
    base: Vec<u8>,
}

impl Setup {
    fn new() -> Setup {
        let node = Node::new();
        let base = tar_of(Some(&debug_rootfs(&node)), &[]);
        Setup {
            node,
            images: tempfile::tempdir().unwrap(),
            work: tempfile::tempdir().unwrap(),
            base,
        }
    }

    fn podrun(&self, args: &[&str]) -> common::Run {
        self.node.podrun_env(
            args,
            &[("PODRUN_IMAGE_ROOT", self.images.path().to_str().unwrap())],
        )
    }

    /// `podrun <args>` with `stdin` piped in.
    fn podrun_stdin(&self, args: &[&str], stdin: &[u8]) -> common::Run {
        let mut child = self
            .node
            .podrun_command(args)
            .env("PODRUN_IMAGE_ROOT", self.images.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let bytes = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&bytes);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        common::Run::from(out)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.work.path().join(rel)
    }

    fn write(&self, rel: &str, bytes: &[u8]) -> String {
        let p = self.path(rel);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_owned()
    }

    /// Run a pod of `image` (never pulled) and return what `script` prints in it.
    fn run_and_exec(&self, pod: &str, image: &str, script: &str) -> String {
        let manifest = format!(
            "{{apiVersion: v1, kind: Pod, metadata: {{name: {pod}}}, spec: {{terminationGracePeriodSeconds: 1, containers: [{{name: c, image: '{image}', imagePullPolicy: Never, command: [sleep, '600']}}]}}}}"
        );
        let file = self.path(&format!("{pod}.yaml"));
        std::fs::write(&file, manifest).unwrap();
        self.podrun(&["apply", "-f", file.to_str().unwrap()]).ok();
        let mut last = None;
        for _ in 0..200 {
            let out = self.podrun(&["exec", pod, "--", "sh", "-c", script]);
            if out.code == 0 {
                return out.stdout;
            }
            last = Some(out);
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{pod} never ran {script:?}: {last:?}\n{:?}",
            self.podrun(&["describe", "pod", pod])
        );
    }

    fn delete(&self, pod: &str) {
        self.podrun(&["delete", "pod", pod, "--now"]).ok();
    }

    /// The store's layer directories, image directories and work directories on disk.
    fn on_disk(&self) -> (usize, usize, usize) {
        let count = |p: PathBuf| std::fs::read_dir(p).map(|d| d.count()).unwrap_or(0);
        let root = self.images.path();
        let images = std::fs::read_dir(root)
            .map(|d| d.flatten().filter(|e| e.file_name().len() == 64).count())
            .unwrap_or(0);
        (count(root.join("layers")), images, count(root.join("tmp")))
    }

    fn finish(self) {
        self.node.assert_clean();
    }
}

/// The layers of the test image: the debug rootfs, a layer with files, and an upper one that
/// whites one of them out and adds another (zstd, or gzip as docker archives need).
/// An OCI layout `layout` of one image made of [`layers`], tagged `v1`.
fn layout(s: &Setup, zstd: bool) -> (Vec<Layer>, std::path::PathBuf) {
    let layers = layers(s, zstd);
    let layout = s.path("layout");
    oci_layout(
        &layout,
        "v1",
        &[TestImage {
            arch: "amd64",
            layers: &layers,
            cmd: &["sleep", "600"],
        }],
    );
    (layers, layout)
}

fn layers(s: &Setup, zstd: bool) -> Vec<Layer> {
    let lower = tar_of(
        None,
        &[
            Entry::Dir("data"),
            Entry::File("data/gone", "removed above"),
            Entry::File("data/keep", "kept"),
        ],
    );
    let upper = tar_of(
        None,
        &[
            Entry::File("data/.wh.gone", ""),
            Entry::File("data/new", "from the upper layer"),
        ],
    );
    vec![
        Layer::gzip(&s.base),
        Layer::gzip(&lower),
        if zstd {
            Layer::zstd(&upper)
        } else {
            Layer::gzip(&upper)
        },
    ]
}

const SEE: &str = "ls /data; cat /data/keep /data/new; echo; test ! -e /data/gone && echo no-gone";
const SEEN: &str = "keep\nnew\nkeptfrom the upper layer\nno-gone\n";

#[test]
fn an_oci_layout_and_an_oci_archive_import_and_run() {
    require_root!();
    let s = Setup::new();
    let (_, layout) = layout(&s, true);
    let id = s
        .podrun(&[
            "image",
            "import",
            layout.to_str().unwrap(),
            "--ref",
            "podrun.local/layout:v1",
        ])
        .ok()
        .stdout;
    assert_eq!(id.trim().len(), 64, "{id}");
    assert_eq!(s.on_disk(), (3, 1, 0));
    assert_eq!(
        s.run_and_exec("layout", "podrun.local/layout:v1", SEE),
        SEEN
    );

    // The same layout as a tar (an OCI archive), named by NAME: the same image (its config),
    // no layer unpacked again.
    let archive = s.write("layout.tar", &tar_of(Some(&layout), &[]));
    let again = s
        .podrun(&["image", "import", &archive, "podrun.local/archive:v1"])
        .ok()
        .stdout;
    assert_eq!(again, id);
    assert_eq!(s.on_disk(), (3, 1, 0));
    let listed = s.podrun(&["images"]).ok().stdout;
    assert!(
        listed.contains("podrun.local/layout") && listed.contains("podrun.local/archive"),
        "{listed}"
    );
    assert_eq!(
        s.run_and_exec("archive", "podrun.local/archive:v1", SEE),
        SEEN
    );
    // --change is for a root filesystem.
    let refused = s.podrun(&["image", "import", &archive, "-c", "CMD [\"sh\"]"]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("--change"), "{refused:?}");
    s.delete("layout");
    s.delete("archive");
    s.finish();
}

/// A docker save archive of `layers` (plain tars) tagged `tags`: `<config id>.json`,
/// `<n>/layer.tar` and manifest.json last, as `docker save` writes them.
fn docker_save(tags: &[&str], layers: &[&[u8]], cmd: &[&str]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha256(l)))
        .collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2026-02-03T04:05:06Z",
        "config": {"Cmd": cmd, "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_name = format!("{}.json", sha256(&config));
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, bytes: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(bytes.len() as u64);
        tar.append_data(&mut h, path, bytes).unwrap();
    };
    add(&config_name, &config);
    let mut paths = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let path = format!("{}/layer.tar", sha256(format!("layer {i}").as_bytes()));
        add(&path, layer);
        paths.push(path);
    }
    let manifest = serde_json::json!([{"Config": config_name, "RepoTags": tags, "Layers": paths}]);
    add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    tar.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

#[test]
fn a_docker_save_archive_imports_and_runs_and_loads_from_stdin() {
    require_root!();
    let s = Setup::new();
    let upper = tar_of(
        None,
        &[
            Entry::Dir("data"),
            Entry::File("data/keep", "kept"),
            Entry::File("data/new", "from the upper layer"),
        ],
    );
    let save = docker_save(&["podrun.local/saved:1"], &[&s.base, &upper], &["sh"]);
    // gzip'd, as `docker save | gzip` makes it.
    let file = s.write("saved.tar.gz", &gzip(&save));
    let id = s.podrun(&["image", "import", &file]).ok().stdout;
    assert_eq!(id.trim().len(), 64, "{id}");
    assert_eq!(s.on_disk(), (2, 1, 0));
    let inspect: serde_json::Value =
        serde_json::from_str(&s.podrun(&["image", "inspect", "saved:1"]).ok().stdout).unwrap();
    assert_eq!(inspect[0]["Created"], "2026-02-03T04:05:06Z", "{inspect}");
    assert_eq!(
        s.run_and_exec(
            "saved",
            "podrun.local/saved:1",
            "ls /data; cat /data/keep /data/new; echo"
        ),
        "keep\nnew\nkeptfrom the upper layer\n"
    );
    s.delete("saved");

    // `image load` from stdin (plain, another name): the layers are there already.
    let again = docker_save(&["loaded:2"], &[&s.base, &upper], &["sleep", "600"]);
    let run = s.podrun_stdin(&["image", "load"], &again).ok();
    assert_eq!(run.stdout, "Loaded image: docker.io/library/loaded:2\n");
    assert_eq!(
        run.stderr.matches("skipped: already exists").count(),
        2,
        "{run:?}"
    );
    assert_eq!(s.on_disk(), (2, 2, 0));
    let quiet = s.podrun_stdin(&["load", "-q"], &again).ok();
    assert_eq!(quiet.stdout, "Loaded image: docker.io/library/loaded:2\n");
    assert_eq!(quiet.stderr, "");
    // A root filesystem tar is not an archive to load.
    let refused = s.podrun_stdin(&["image", "load"], &upper);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("neither oci-layout"), "{refused:?}");
    assert_eq!(s.on_disk(), (2, 2, 0));
    s.finish();
}

#[test]
fn a_tampered_layer_is_refused_naming_its_digest_and_leaves_nothing() {
    require_root!();
    let s = Setup::new();
    let (layers, layout) = layout(&s, true);
    let tampered = &layers[1];
    let blob = layout
        .join("blobs/sha256")
        .join(&tampered.digest()["sha256:".len()..]);
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let run = s.podrun(&["image", "import", layout.to_str().unwrap(), "--ref", "t:1"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains(&tampered.digest()), "{run:?}");
    assert_eq!(s.on_disk(), (0, 0, 0), "no layer, image or work directory");
    let archive = tar_of(Some(&layout), &[]);
    let run = s.podrun_stdin(&["image", "load", "--ref", "t:1"], &archive);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains(&tampered.digest()), "{run:?}");
    assert_eq!(s.on_disk(), (0, 0, 0));
    assert_eq!(s.podrun(&["images", "-q"]).ok().stdout, "");

    // A docker save layer whose content is not the config's diff ID.
    let upper = tar_of(None, &[Entry::File("evil", "original-3f9c")]);
    let mut save = docker_save(&["bad:1"], &[&s.base, &upper], &["sh"]);
    let at = save
        .windows(13)
        .rposition(|w| w == b"original-3f9c")
        .unwrap();
    save[at..at + 13].copy_from_slice(b"changed!-3f9c");
    let file = s.write("bad.tar", &save);
    let run = s.podrun(&["image", "import", &file]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains(&format!("the image config says sha256:{}", sha256(&upper))),
        "{run:?}"
    );
    assert_eq!(s.on_disk(), (0, 0, 0));
    s.finish();
}

/// What skopeo (containers/image, as podman uses it) writes: a docker-archive and an
/// oci-archive of an OCI layout. Skipped when skopeo is not installed.
#[test]
fn skopeos_docker_and_oci_archives_import_and_run() {
    require_root!();
    if std::process::Command::new("skopeo")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: skopeo is not installed");
        return;
    }
    let s = Setup::new();
    // skopeo cannot write a zstd layer into a docker archive.
    let (_, layout) = layout(&s, false);
    let copy = |dest: String| {
        common::Run::from(
            std::process::Command::new("skopeo")
                .args(["--insecure-policy", "copy", "-q"])
                .arg(format!("oci:{}:v1", layout.display()))
                .arg(dest)
                .output()
                .unwrap(),
        )
        .ok();
    };
    let docker = s.path("skopeo-docker.tar");
    copy(format!(
        "docker-archive:{}:podrun.local/skopeo-docker:1",
        docker.display()
    ));
    let oci = s.path("skopeo-oci.tar");
    copy(format!(
        "oci-archive:{}:podrun.local/skopeo-oci:1",
        oci.display()
    ));
    let loaded = s
        .podrun(&["image", "load", "-i", docker.to_str().unwrap()])
        .ok();
    assert_eq!(
        loaded.stdout, "Loaded image: podrun.local/skopeo-docker:1\n",
        "{loaded:?}"
    );
    let loaded = s
        .podrun(&["image", "load", "-i", oci.to_str().unwrap()])
        .ok();
    assert_eq!(
        loaded.stdout, "Loaded image: podrun.local/skopeo-oci:1\n",
        "{loaded:?}"
    );
    assert_eq!(
        s.run_and_exec("docker", "podrun.local/skopeo-docker:1", SEE),
        SEEN
    );
    assert_eq!(
        s.run_and_exec("oci", "podrun.local/skopeo-oci:1", SEE),
        SEEN
    );
    s.delete("docker");
    s.delete("oci");
    assert!(Path::new(&oci).exists());
    s.finish();
}
