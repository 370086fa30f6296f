//! Issue 19 (first part): `podrun pull` from a real registry (Debian's docker-registry on a
//! loopback port of the test's own, with its own config and storage), the image pushed by skopeo
//! from an OCI layout this test writes: two gzip layers, the second with a whiteout and an
//! opaque directory. The pulled image runs in a pod, and shows the layers applied; a mirror
//! stands in for docker.io under the book's image name (the upstream is a closed loopback
//! port: no traffic leaves the machine); a missing image fails naming it and leaves nothing.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Node;
use common::registry::{Entry, Layer, Registry, TestImage, debug_rootfs, oci_layout, tar_of};

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
    let base = Layer::gzip(&tar_of(
        Some(&debug_rootfs(&node)),
        &[
            Entry::File("opt/gone.txt", "gone\n"),
            Entry::File("opt/old/a.txt", "a\n"),
        ],
    ));
    let change = Layer::gzip(&tar_of(
        None,
        &[
            Entry::File("opt/.wh.gone.txt", ""),
            Entry::File("opt/old/.wh..wh..opq", ""),
            Entry::File("opt/old/b.txt", "b\n"),
        ],
    ));
    let layout = work.path().join("layout");
    let cmd = ["sh", "-c", "echo ARCH=$ARCH; find /opt | sort; sleep 600"];
    oci_layout(
        &layout,
        "v1",
        &[TestImage {
            arch: "amd64",
            layers: &[base, change],
            cmd: &cmd,
        }],
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
        logs, "ARCH=amd64\n/opt\n/opt/old\n/opt/old/b.txt\n",
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
    let base = Layer::gzip(&tar_of(Some(&debug_rootfs(&node)), &[]));
    oci_layout(
        &layout,
        "latest",
        &[TestImage {
            arch: "amd64",
            layers: &[base],
            cmd: &["sh"],
        }],
    );
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
