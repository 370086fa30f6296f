//! Issue 19 (first part): `podrun pull` from a real registry (Debian's docker-registry on a
//! loopback port of the test's own, with its own config and storage), the image pushed by skopeo
//! from an OCI layout this test writes: two gzip layers, the second with a whiteout and an
//! opaque directory. The pulled image runs in a pod, and shows the layers applied; a mirror
//! stands in for docker.io under the book's image name (the upstream is a closed loopback
//! port: no traffic leaves the machine); a missing image fails naming it and leaves nothing.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Node;
use sha2::{Digest, Sha256};

/// A registry on 127.0.0.1, ended (by pid) when dropped.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

/// The port the registry listens on, in the node's own network namespace.
const PORT: u16 = 5000;

impl Registry {
    /// A registry in `node`'s network namespace, on its loopback.
    fn start(node: &Node) -> Option<Registry> {
        if Command::new("docker-registry")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("skipped: docker-registry is not installed (scripts/install-deps.sh)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{PORT}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = node
            .command("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let registry = Registry {
            child,
            port: PORT,
            _dir: dir,
        };
        let probe = format!(
            "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {PORT}), 1)' 2>/dev/null"
        );
        let up = node.eventually(&probe, Duration::from_secs(10));
        assert_eq!(up.code, 0, "the registry never listened");
        Some(registry)
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Push OCI layout `layout` (tag `tag`) as `repository:tag`.
    fn push(&self, node: &Node, layout: &Path, tag: &str, repository: &str) {
        let out = node
            .command("skopeo")
            .args(["--insecure-policy", "copy", "--dest-tls-verify=false", "-q"])
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{repository}:{tag}", self.host()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A gzip tar layer: the tree at `dir` (if any) and then `extra` (path, content) files.
fn layer(dir: Option<&Path>, extra: &[(&str, &str)]) -> (Vec<u8>, String) {
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    if let Some(dir) = dir {
        tar.append_dir_all(".", dir).unwrap();
    }
    for (path, content) in extra {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        tar.append(&h, content.as_bytes()).unwrap();
    }
    let plain = tar.into_inner().unwrap();
    let diff_id = format!("sha256:{}", sha256(&plain));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    (gz.finish().unwrap(), diff_id)
}

/// An OCI image layout at `dir` with one image tagged `tag`: `layers` in order, and a config
/// running `cmd`.
fn oci_layout(dir: &Path, tag: &str, layers: &[(Vec<u8>, String)], cmd: &[&str]) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let blob = |bytes: &[u8]| {
        let hex = sha256(bytes);
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": cmd, "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "STAND_IN=1"]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|(_, d)| d).collect::<Vec<_>>()},
    });
    let (config_digest, config_size) = blob(&serde_json::to_vec(&config).unwrap());
    let layer_descriptors: Vec<serde_json::Value> = layers
        .iter()
        .map(|(bytes, _)| {
            let (digest, size) = blob(bytes);
            serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size})
        })
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": layer_descriptors,
    });
    let (manifest_digest, manifest_size) = blob(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion": "1.0.0"}"#).unwrap();
}

/// The debug image's root filesystem (busybox), as the first layer's tree.
fn debug_rootfs(node: &Node) -> PathBuf {
    let info = node
        .podrun(&["image", "inspect", "podrun.local/debug:1"])
        .ok()
        .stdout;
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    let rootfs = v[0]["GraphDriver"]["Data"]["LowerDir"]
        .as_str()
        .expect("image inspect names the layer (an imported image has one)");
    PathBuf::from(rootfs)
}

/// A node whose image store is its own (pulls must not land in the shared test store), with
/// the debug image imported from the shared one.
fn node_with_own_store() -> (Node, tempfile::TempDir) {
    let node = Node::new();
    let images = tempfile::tempdir().unwrap();
    (node, images)
}

fn pull(node: &Node, images: &Path, conf: &Path, reference: &str) -> common::Run {
    node.podrun_env(
        &["pull", reference],
        &[
            ("PODRUN_IMAGE_ROOT", images.to_str().unwrap()),
            ("PODRUN_REGISTRIES_CONF", conf.to_str().unwrap()),
        ],
    )
}

#[test]
fn a_pulled_image_runs_with_its_layers_applied() {
    require_root!();
    let (node, images) = node_with_own_store();
    let Some(registry) = Registry::start(&node) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let base = layer(
        Some(&debug_rootfs(&node)),
        &[("opt/gone.txt", "gone\n"), ("opt/old/a.txt", "a\n")],
    );
    let change = layer(
        None,
        &[
            ("opt/.wh.gone.txt", ""),
            ("opt/old/.wh..wh..opq", ""),
            ("opt/old/b.txt", "b\n"),
        ],
    );
    let layout = work.path().join("layout");
    oci_layout(
        &layout,
        "v1",
        &[base, change],
        &[
            "sh",
            "-c",
            "echo STAND_IN=$STAND_IN; find /opt | sort; sleep 600",
        ],
    );
    registry.push(&node, &layout, "v1", "team/stand-in");
    let conf = work.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nlocation = \"{}\"\ninsecure = true\n",
            registry.host()
        ),
    )
    .unwrap();
    let reference = format!("{}/team/stand-in:v1", registry.host());
    let run = pull(&node, images.path(), &conf, &reference).ok();
    assert!(
        run.stdout
            .contains(&format!("Successfully pulled image \"{reference}\"")),
        "{run:?}"
    );
    let listed = node
        .podrun_env(
            &["images"],
            &[("PODRUN_IMAGE_ROOT", images.path().to_str().unwrap())],
        )
        .ok()
        .stdout;
    assert!(listed.contains("team/stand-in"), "{listed}");
    let manifest = format!(
        "{{apiVersion: v1, kind: Pod, metadata: {{name: pulled}}, spec: {{terminationGracePeriodSeconds: 1, containers: [{{name: c, image: '{reference}', imagePullPolicy: IfNotPresent}}]}}}}"
    );
    std::fs::write(work.path().join("pod.yaml"), manifest).unwrap();
    node.podrun_env(
        &[
            "apply",
            "-f",
            work.path().join("pod.yaml").to_str().unwrap(),
        ],
        &[("PODRUN_IMAGE_ROOT", images.path().to_str().unwrap())],
    )
    .ok();
    let deadline = Instant::now() + Duration::from_secs(10);
    let logs = loop {
        let logs = node.podrun(&["logs", "pulled"]).ok().stdout;
        if logs.contains("/opt/old/b.txt") || Instant::now() > deadline {
            break logs;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        logs, "STAND_IN=1\n/opt\n/opt/old\n/opt/old/b.txt\n",
        "the whiteout hides gone.txt, the opaque directory a.txt"
    );
    node.podrun(&["delete", "pulled", "--now"]).ok();
    drop(registry);
    node.assert_clean();
}

#[test]
fn a_mirror_stands_in_for_docker_hub_and_a_missing_image_leaves_nothing() {
    require_root!();
    let (node, images) = node_with_own_store();
    let Some(registry) = Registry::start(&node) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let base = layer(Some(&debug_rootfs(&node)), &[]);
    oci_layout(&layout, "latest", &[base], &["sh"]);
    registry.push(&node, &layout, "latest", "nicolaka/netshoot");
    // The upstream is a closed loopback port: were the mirror skipped, the pull would fail
    // here rather than reach docker.io.
    let conf = work.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nprefix = \"docker.io\"\nlocation = \"127.0.0.1:1\"\ninsecure = true\n\n[[registry.mirror]]\nlocation = \"{}\"\ninsecure = true\n",
            registry.host()
        ),
    )
    .unwrap();
    let run = pull(&node, images.path(), &conf, "nicolaka/netshoot").ok();
    assert!(
        run.stdout
            .contains("Successfully pulled image \"docker.io/nicolaka/netshoot:latest\""),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains(&format!("Trying {}/nicolaka/netshoot", registry.host()))
    );
    // Not there: the error names the image and each endpoint, and nothing stays.
    let missing = pull(&node, images.path(), &conf, "nicolaka/nothing:1");
    assert_ne!(missing.code, 0);
    assert!(
        missing
            .stderr
            .contains("failed to pull image \"docker.io/nicolaka/nothing:1\""),
        "{missing:?}"
    );
    assert!(
        missing.stderr.contains(&registry.host()) && missing.stderr.contains("127.0.0.1:1"),
        "{missing:?}"
    );
    let tmp = images.path().join("tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in the store: {left:?}");
    drop(registry);
    node.assert_clean();
}
