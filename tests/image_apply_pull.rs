//! Issue 19: `podrun apply` pulls what its pods' images need, by imagePullPolicy, against a
//! real registry (Debian's docker-registry in the node's namespace, fed by skopeo from OCI
//! layouts written here) standing in for docker.io through a mirror entry:
//! pulled once and found present after (no registry needed), `Always` asks again; layers with
//! whiteouts, an opaque directory, a hard link across layers, a symlink and a zstd layer
//! unpack as a reference extraction says; an index runs its amd64 image; a changed blob is
//! refused by digest and leaves nothing; shared layers are stored once and freed with the last
//! image; ten concurrent applies pull one image once.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use common::Node;
use common::registry::{Entry, Layer, Registry, TestImage, debug_rootfs, oci_layout, tar_of};

/// A node, its own image store (the debug image imported into it) and a registry mirroring
/// docker.io.
struct Setup {
    node: Node,
    images: tempfile::TempDir,
    work: tempfile::TempDir,
    registry: Registry,
    conf: PathBuf,
    base: Vec<u8>,
}

impl Setup {
    fn new() -> Option<Setup> {
        let node = Node::new();
        let registry = Registry::start(&node)?;
        let work = tempfile::tempdir().unwrap();
        let conf = registry.docker_io_mirror_conf(work.path());
        let base = tar_of(Some(&debug_rootfs(&node)), &[]);
        Some(Setup {
            node,
            images: tempfile::tempdir().unwrap(),
            work,
            registry,
            conf,
            base,
        })
    }

    fn env(&self) -> [(&str, &str); 2] {
        [
            ("PODRUN_IMAGE_ROOT", self.images.path().to_str().unwrap()),
            ("PODRUN_REGISTRIES_CONF", self.conf.to_str().unwrap()),
        ]
    }

    fn podrun(&self, args: &[&str]) -> common::Run {
        self.node.podrun_env(args, &self.env())
    }

    /// Push `images` as `docker.io/<repository>:<tag>` (through the mirror).
    fn push(&self, repository: &str, tag: &str, images: &[TestImage]) {
        let layout = self
            .work
            .path()
            .join(format!("{}-{tag}", repository.replace('/', "_")));
        oci_layout(&layout, tag, images);
        self.registry.push(&self.node, &layout, tag, repository);
    }

    fn apply(&self, name: &str, pod: &str) -> common::Run {
        let file = self.work.path().join(format!("{name}.yaml"));
        std::fs::write(&file, pod).unwrap();
        self.podrun(&["apply", "-f", file.to_str().unwrap()])
    }

    fn wait_running(&self, pod: &str) {
        for _ in 0..200 {
            let out = self.podrun(&["get", "pod", pod]).stdout;
            if out.contains("Running") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{pod} never ran: {:?}",
            self.podrun(&["describe", "pod", pod])
        );
    }

    fn layer_dirs(&self) -> usize {
        std::fs::read_dir(self.images.path().join("layers"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Stop the registry (a process of the test's), then check the node is clean.
    fn finish(mut self) {
        self.registry.stop();
        self.node.assert_clean();
    }

    fn tmp_is_empty(&self) -> bool {
        std::fs::read_dir(self.images.path().join("tmp"))
            .map(|mut d| d.next().is_none())
            .unwrap_or(true)
    }
}

fn pod(name: &str, image: &str, policy: Option<&str>) -> String {
    let policy = policy
        .map(|p| format!(", imagePullPolicy: {p}"))
        .unwrap_or_default();
    format!(
        "{{apiVersion: v1, kind: Pod, metadata: {{name: {name}}}, spec: {{terminationGracePeriodSeconds: 1, containers: [{{name: c, image: '{image}', command: [sleep, '600']{policy}}}]}}}}"
    )
}

#[test]
fn apply_pulls_through_a_docker_io_mirror_once_and_always_asks_again() {
    require_root!();
    let Some(mut s) = Setup::new() else { return };
    let image = [Layer::gzip(&s.base)];
    s.push(
        "library/pulltest",
        "1",
        &[TestImage {
            arch: "amd64",
            layers: &image,
            cmd: &["sh"],
        }],
    );
    // python:3.9-slim style: a short name, tagged: IfNotPresent.
    s.apply("first", &pod("first", "pulltest:1", None)).ok();
    s.wait_running("first");
    let described = s.podrun(&["describe", "pod", "first"]).ok().stdout;
    assert!(
        described.contains("Pulling image \"pulltest:1\"")
            && described.contains("Successfully pulled image \"pulltest:1\""),
        "{described}"
    );
    let listed = s.podrun(&["images", "--digests"]).ok().stdout;
    assert!(
        listed.contains("docker.io/library/pulltest") && listed.contains("sha256:"),
        "{listed}"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&s.podrun(&["image", "inspect", "pulltest:1"]).ok().stdout).unwrap();
    assert!(
        inspect[0]["RepoDigests"][0]
            .as_str()
            .unwrap()
            .starts_with("docker.io/library/pulltest@sha256:"),
        "{inspect}"
    );

    // Present: the second pod needs no registry at all.
    s.registry.stop();
    s.apply("second", &pod("second", "pulltest:1", None)).ok();
    s.wait_running("second");
    let described = s.podrun(&["describe", "pod", "second"]).ok().stdout;
    assert!(
        described.contains("Container image \"pulltest:1\" already present on machine"),
        "{described}"
    );
    // Always asks the registry, which is down: the apply fails, naming image and registry,
    // and creates nothing.
    let always = s.apply("third", &pod("third", "pulltest:1", Some("Always")));
    assert_ne!(always.code, 0);
    assert!(
        always
            .stderr
            .contains("failed to pull image \"docker.io/library/pulltest:1\"")
            && always.stderr.contains(&s.registry.host()),
        "{always:?}"
    );
    assert_ne!(s.podrun(&["get", "pod", "third"]).code, 0);
    // Up again, Always pulls (nothing new to fetch) and runs.
    s.registry.resume(&s.node);
    s.apply("third", &pod("third", "pulltest:1", Some("Always")))
        .ok();
    s.wait_running("third");
    for p in ["first", "second", "third"] {
        s.podrun(&["delete", "pod", p, "--now"]).ok();
    }
    assert!(s.tmp_is_empty());
    s.finish();
}

/// What a root filesystem made of `layers` (plain tars, bottom first) holds under `under`, as
/// an extraction one layer after another with OCI whiteouts applied: path -> what it is.
fn reference_extraction(layers: &[&[u8]], under: &str) -> BTreeMap<String, String> {
    let mut tree: BTreeMap<String, String> = BTreeMap::new();
    for layer in layers {
        let mut archive = tar::Archive::new(*layer);
        let mut written = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches("./")
                .to_owned();
            if !path.starts_with(under) {
                continue;
            }
            let (dir, name) = path.rsplit_once('/').unwrap_or(("", &path));
            if name == ".wh..wh..opq" {
                let prefix = format!("{dir}/");
                tree.retain(|p, _| !p.starts_with(&prefix) || written.contains(p));
                continue;
            }
            if let Some(hidden) = name.strip_prefix(".wh.") {
                let gone = format!("{dir}/{hidden}");
                tree.retain(|p, _| *p != gone && !p.starts_with(&format!("{gone}/")));
                continue;
            }
            let what = match entry.header().entry_type() {
                tar::EntryType::Directory => "dir".to_owned(),
                tar::EntryType::Symlink => format!(
                    "link {}",
                    entry.link_name().unwrap().unwrap().to_string_lossy()
                ),
                tar::EntryType::Link => {
                    let target = entry
                        .link_name()
                        .unwrap()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    tree[target.trim_start_matches("./")].clone()
                }
                _ => {
                    let mut content = Vec::new();
                    std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
                    format!("file {}", String::from_utf8_lossy(&content))
                }
            };
            let path = path.trim_end_matches('/').to_owned();
            written.push(path.clone());
            tree.insert(path, what);
        }
    }
    tree.into_iter()
        .filter(|(p, _)| p.starts_with(under))
        .collect()
}

#[test]
fn layers_unpack_as_a_reference_extraction_and_an_index_runs_its_amd64_image() {
    require_root!();
    let Some(s) = Setup::new() else { return };
    let lower = tar_of(
        None,
        &[
            Entry::Dir("data"),
            Entry::File("data/gone", "gone"),
            Entry::Dir("data/opaque"),
            Entry::File("data/opaque/old", "old"),
            Entry::File("data/target", "shared inode"),
            Entry::Dir("data/keep"),
            Entry::File("data/keep/f", "kept"),
        ],
    );
    let middle = tar_of(
        None,
        &[
            Entry::File("data/.wh.gone", ""),
            Entry::Dir("data/opaque"),
            Entry::File("data/opaque/.wh..wh..opq", ""),
            Entry::File("data/opaque/new", "new"),
            Entry::HardLink("data/hardlink", "data/target"),
            Entry::Symlink("data/symlink", "target"),
        ],
    );
    let upper = tar_of(None, &[Entry::File("data/zstd", "from a zstd layer")]);
    let amd64 = [
        Layer::gzip(&s.base),
        Layer::gzip(&lower),
        Layer::gzip(&middle),
        Layer::zstd(&upper),
    ];
    let wrong = tar_of(None, &[Entry::File("data/arch", "arm64")]);
    let arm64 = [Layer::gzip(&s.base), Layer::gzip(&wrong)];
    s.push(
        "team/layers",
        "v1",
        &[
            TestImage {
                arch: "arm64",
                layers: &arm64,
                cmd: &["sleep", "600"],
            },
            TestImage {
                arch: "amd64",
                layers: &amd64,
                cmd: &["sleep", "600"],
            },
        ],
    );
    s.apply("layers", &pod("layers", "team/layers:v1", None))
        .ok();
    s.wait_running("layers");
    let listing = s
        .node
        .podrun(&[
            "exec",
            "layers",
            "--",
            "sh",
            "-c",
            "cd / && find data | sort | while read p; do if [ -L $p ]; then echo \"$p link $(readlink $p)\"; elif [ -d $p ]; then echo \"$p dir\"; else echo \"$p file $(cat $p)\"; fi; done; echo ARCH=$ARCH",
        ])
        .ok()
        .stdout;
    let mut expected: Vec<String> =
        reference_extraction(&[&s.base, &lower, &middle, &upper], "data")
            .into_iter()
            .map(|(p, what)| format!("{p} {what}"))
            .collect();
    expected.push("ARCH=amd64".into());
    assert_eq!(listing.lines().collect::<Vec<_>>(), expected);
    // The hard link across layers is one file with its target, as in an extracted tree.
    let inodes = s
        .node
        .podrun(&[
            "exec",
            "layers",
            "--",
            "stat",
            "-c",
            "%i %h",
            "/data/target",
            "/data/hardlink",
        ])
        .ok()
        .stdout;
    let lines: Vec<&str> = inodes.lines().collect();
    assert_eq!(lines[0], lines[1], "{inodes}");
    s.podrun(&["delete", "pod", "layers", "--now"]).ok();
    s.finish();
}

#[test]
fn a_changed_blob_is_refused_by_digest_and_a_missing_tag_creates_nothing() {
    require_root!();
    let Some(s) = Setup::new() else { return };
    let extra = Layer::gzip(&tar_of(None, &[Entry::File("tampered", "original bytes")]));
    let layers = [Layer::gzip(&s.base), extra.clone()];
    s.push(
        "team/tampered",
        "v1",
        &[TestImage {
            arch: "amd64",
            layers: &layers,
            cmd: &["sleep", "600"],
        }],
    );
    let blob = s.registry.blob_file(&extra.digest());
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let run = s.apply("tampered", &pod("tampered", "team/tampered:v1", None));
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains(&extra.digest()), "{run:?}");
    assert!(
        !s.podrun(&["images"]).ok().stdout.contains("team/tampered"),
        "nothing of the image is listed"
    );
    assert_eq!(s.layer_dirs(), 0, "no layer of it stays");
    assert!(s.tmp_is_empty());
    assert_ne!(s.podrun(&["get", "pod", "tampered"]).code, 0);

    let missing = s.apply("missing", &pod("missing", "team/tampered:nope", None));
    assert_ne!(missing.code, 0);
    assert!(
        missing.stderr.contains("docker.io/team/tampered:nope")
            && missing.stderr.contains("spec.containers[0].image"),
        "{missing:?}"
    );
    assert!(s.podrun(&["get", "pods"]).stdout.lines().count() <= 1);
    s.finish();
}

#[test]
fn shared_layers_are_stored_once_and_freed_with_the_last_image() {
    require_root!();
    let Some(s) = Setup::new() else { return };
    let base = Layer::gzip(&s.base);
    for name in ["one", "two"] {
        let own = Layer::gzip(&tar_of(None, &[Entry::File("own", name)]));
        s.push(
            &format!("team/{name}"),
            "v1",
            &[TestImage {
                arch: "amd64",
                layers: &[base.clone(), own],
                cmd: &["sleep", "600"],
            }],
        );
    }
    s.apply("one", &pod("one", "team/one:v1", None)).ok();
    s.apply("two", &pod("two", "team/two:v1", None)).ok();
    s.wait_running("one");
    assert_eq!(s.layer_dirs(), 3, "the base once, and one layer each");
    let refused = s.podrun(&["image", "rm", "team/one:v1"]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("default/one"), "{refused:?}");
    for p in ["one", "two"] {
        s.podrun(&["delete", "pod", p, "--now"]).ok();
    }
    s.podrun(&["image", "rm", "team/one:v1"]).ok();
    assert_eq!(s.layer_dirs(), 2, "the shared base stays with team/two");
    s.podrun(&["image", "rm", "team/two:v1"]).ok();
    assert_eq!(s.layer_dirs(), 0);
    let left: Vec<PathBuf> = std::fs::read_dir(s.images.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.len() == 64))
        .collect();
    assert!(left.is_empty(), "image directories left: {left:?}");
    s.finish();
}

#[test]
fn ten_concurrent_applies_pull_one_new_image_once() {
    require_root!();
    let Some(s) = Setup::new() else { return };
    let own = Layer::gzip(&tar_of(None, &[Entry::File("crowd", "one pull")]));
    let layers = [Layer::gzip(&s.base), own.clone()];
    s.push(
        "team/crowd",
        "v1",
        &[TestImage {
            arch: "amd64",
            layers: &layers,
            cmd: &["sleep", "600"],
        }],
    );
    let pushed = s.registry.log().matches(&own.digest()).count();
    let names: Vec<String> = (0..10).map(|i| format!("crowd{i}")).collect();
    std::thread::scope(|scope| {
        let runs: Vec<_> = names
            .iter()
            .map(|n| {
                let s = &s;
                scope.spawn(move || s.apply(n, &pod(n, "team/crowd:v1", None)))
            })
            .collect();
        for r in runs {
            let run = r.join().unwrap();
            assert_eq!(run.code, 0, "{run:?}");
        }
    });
    for n in &names {
        s.wait_running(n);
    }
    let fetches = s
        .registry
        .log()
        .lines()
        .filter(|l| l.contains(&own.digest()) && l.contains("GET"))
        .count();
    assert_eq!(
        fetches,
        1,
        "pushed lines {pushed}; log:\n{}",
        s.registry.log()
    );
    for n in &names {
        s.podrun(&["delete", "pod", n, "--now"]).ok();
    }
    s.finish();
}

/// The supervisor pulls at a restart under `Always` (the kubelet's EnsureImageExists): with
/// the registry gone the container waits in `ErrImagePull`, then `ImagePullBackOff` with the
/// kubelet's events; once the registry is back the next try pulls and the container runs.
#[test]
fn a_restart_that_cannot_pull_waits_in_image_pull_back_off_until_the_registry_is_back() {
    require_root!();
    let Some(mut s) = Setup::new() else { return };
    let image = [Layer::gzip(&s.base)];
    s.push(
        "library/repull",
        "latest",
        &[TestImage {
            arch: "amd64",
            layers: &image,
            cmd: &["sh"],
        }],
    );
    let file = s.work.path().join("repull.yaml");
    std::fs::write(
        &file,
        "{apiVersion: v1, kind: Pod, metadata: {name: repull}, spec: {terminationGracePeriodSeconds: 1, containers: [{name: c, image: 'repull', command: [sh, -c, 'sleep 1; exit 3']}]}}",
    )
    .unwrap();
    let [root, conf] = s.env();
    let env = [root, conf, ("PODRUN_BACKOFF_BASE_MS", "300")];
    s.node
        .podrun_env(&["apply", "-f", file.to_str().unwrap()], &env)
        .ok();
    s.wait_running("repull");
    s.registry.stop();
    let status = |s: &Setup| s.podrun(&["get", "pod", "repull"]).stdout;
    let mut seen = Vec::new();
    for _ in 0..300 {
        let out = status(&s);
        for reason in ["ErrImagePull", "ImagePullBackOff"] {
            if out.contains(reason) && !seen.contains(&reason) {
                seen.push(reason);
            }
        }
        if seen.len() == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let described = s.podrun(&["describe", "pod", "repull"]).ok().stdout;
    // Both show (the poll may catch the back-off before the error: the first sync is quick).
    seen.sort();
    assert_eq!(seen, ["ErrImagePull", "ImagePullBackOff"], "{described}");
    for event in [
        "Pulling image \"repull\"",
        "Failed to pull image \"repull\"",
        "Error: ErrImagePull",
        "Back-off pulling image \"repull\"",
        "Error: ImagePullBackOff",
    ] {
        assert!(described.contains(event), "no {event:?} in {described}");
    }
    let asked = s
        .registry
        .log()
        .matches("/v2/library/repull/manifests/latest")
        .count();

    s.registry.resume(&s.node);
    let mut ran = false;
    for _ in 0..400 {
        let out = s.podrun(&["get", "pod", "repull", "-o", "json"]).stdout;
        if out.contains("\"running\"") {
            ran = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let described = s.podrun(&["describe", "pod", "repull"]).ok().stdout;
    assert!(ran, "never ran again: {described}");
    assert!(
        s.registry
            .log()
            .matches("/v2/library/repull/manifests/latest")
            .count()
            > asked,
        "the registry was not asked again"
    );
    s.podrun(&["delete", "pod", "repull"]).ok();
    s.podrun(&["image", "rm", "repull"]).ok();
    assert!(s.tmp_is_empty());
    s.finish();
}

/// A pull killed while its layers stream leaves no image and no layer behind (its work
/// directory, of a dead process, goes with the store's next change), and the next pull of the
/// same image succeeds.
#[test]
fn a_pull_killed_midway_leaves_nothing_and_the_next_pull_succeeds() {
    require_root!();
    let Some(s) = Setup::new() else { return };
    // An uncompressed layer of 160 MiB of noise: long enough to stream to be caught midway.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..160 << 17)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect();
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(noise.len() as u64);
    tar.append_data(&mut h, "big.bin", &noise[..]).unwrap();
    let plain = tar.into_inner().unwrap();
    let big = Layer {
        diff_id: format!("sha256:{}", common::registry::sha256(&plain)),
        blob: plain,
        media_type: "application/vnd.oci.image.layer.v1.tar",
    };
    let layers = [Layer::gzip(&s.base), big];
    s.push(
        "library/killed",
        "1",
        &[TestImage {
            arch: "amd64",
            layers: &layers,
            cmd: &["sh"],
        }],
    );
    let mut child = s.node.podrun_command(&["pull", "-q", "killed:1"]);
    for (k, v) in s.env() {
        child.env(k, v);
    }
    let mut child = child
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let tmp = s.images.path().join("tmp");
    let busy = |tmp: &std::path::Path| {
        std::fs::read_dir(tmp)
            .map(|d| d.count() > 0)
            .unwrap_or(false)
    };
    let mut caught = false;
    for _ in 0..2000 {
        if busy(&tmp) {
            caught = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill(); // SIGKILL: no chance to clean up
    let status = child.wait().unwrap();
    assert!(
        caught && !status.success(),
        "the pull ended before it could be killed: {status}"
    );
    let listed = s.podrun(&["images"]).ok().stdout;
    assert!(!listed.contains("killed"), "{listed}");
    assert_eq!(s.layer_dirs(), 0, "a layer of the killed pull stayed");
    assert!(
        busy(&tmp),
        "the killed pull's work directory is what it left"
    );

    s.podrun(&["pull", "-q", "killed:1"]).ok();
    assert!(s.podrun(&["images"]).ok().stdout.contains("killed"));
    assert_eq!(s.layer_dirs(), 2);
    assert!(
        s.tmp_is_empty(),
        "the dead pull's work directory was not swept"
    );
    s.podrun(&["image", "rm", "killed:1"]).ok();
    assert_eq!(s.layer_dirs(), 0);
    s.finish();
}
