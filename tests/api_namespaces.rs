//! Issue 22: namespaces made and deleted with the real kubectl (1.27 and 1.33): `kubectl
//! create namespace`, a pod applied into it, `kubectl delete namespace` (its pods go with it,
//! kernel objects too), and the API server's refusals (already exists, invalid name, the
//! default namespace).

mod common;

use common::Node;
use common::kubectl::{Server, idle_pod, kubectl, kubectls};

#[test]
fn kubectl_creates_and_deletes_namespaces() {
    require_root!();
    let node = Node::new();
    let server = Server::start(&node);
    let cache = tempfile::tempdir().unwrap();
    let file = node.root.path().join("idle.yaml");
    std::fs::write(&file, idle_pod("podrun.local/debug:1", "true", "")).unwrap();
    let bins = kubectls();
    for bin in [&bins[0], &bins[2]] {
        let v = bin.file_name().unwrap().to_string_lossy().into_owned();
        let cache = cache.path().join(&v);
        let k = |args: &[&str]| kubectl(&node, bin, &cache, args);
        let out = k(&["create", "namespace", "team-a"]).ok();
        assert_eq!(out.stdout, "namespace/team-a created\n", "{v}");
        let out = k(&["get", "ns"]).ok().stdout;
        assert!(
            out.lines()
                .any(|l| l.starts_with("team-a ") && l.contains("Active")),
            "{v}: {out}"
        );
        let again = k(&["create", "namespace", "team-a"]);
        assert!(
            again
                .stderr
                .contains("namespaces \"team-a\" already exists"),
            "{v}: {again:?}"
        );
        let bad = k(&["create", "namespace", "Team_B"]);
        assert!(
            bad.stderr
                .contains("a lowercase RFC 1123 label must consist of"),
            "{v}: {bad:?}"
        );
        let out = k(&["apply", "-n", "team-a", "-f", file.to_str().unwrap()]).ok();
        assert_eq!(out.stdout, "pod/idle created\n", "{v}");
        k(&[
            "wait",
            "--for=condition=Ready",
            "pod/idle",
            "-n",
            "team-a",
            "--timeout=30s",
        ])
        .ok();
        let out = k(&["get", "pods", "-n", "team-a"]).ok().stdout;
        assert!(out.contains("idle"), "{v}: {out}");
        let out = k(&["delete", "namespace", "team-a"]).ok();
        assert_eq!(out.stdout, "namespace \"team-a\" deleted\n", "{v}");
        let left = node
            .podrun(&["get", "pods", "-A", "-o", "name"])
            .ok()
            .stdout;
        assert_eq!(left, "", "{v}: its pod is gone");
        let gone = k(&["get", "ns", "team-a"]);
        assert!(
            gone.stderr.contains("namespaces \"team-a\" not found"),
            "{v}: {gone:?}"
        );
        let default = k(&["delete", "namespace", "default"]);
        assert!(
            default
                .stderr
                .contains("namespaces \"default\" is forbidden: this namespace may not be deleted"),
            "{v}: {default:?}"
        );
    }
    server.stop();
    node.assert_clean();
}
