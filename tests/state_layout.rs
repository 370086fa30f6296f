//! Issue 18: a container's files never collide with the pod's own. Containers named after the
//! pod's state files (`hostname`, `volumes`, `etc`, `pause`, `containers`) run side by side with
//! an emptyDir, see the pod's /etc/hostname and /etc/hosts, write their logs, and delete leaves
//! nothing.

mod common;

use std::time::{Duration, Instant};

use common::Node;

const DEBUG_IMAGE: &str = "podrun.local/debug:1";
const NAMES: [&str; 5] = ["hostname", "volumes", "etc", "pause", "containers"];

#[test]
fn containers_named_like_the_pods_own_files_run() {
    require_root!();
    let node = Node::new();
    let containers: Vec<String> = NAMES
        .iter()
        .map(|n| {
            format!(
                "{{name: {n}, image: '{DEBUG_IMAGE}', command: [sh, -c, 'echo hello from {n}; cat /etc/hostname; echo {n} > /data/{n}; sleep 600'], volumeMounts: [{{name: volumes, mountPath: /data}}]}}"
            )
        })
        .collect();
    let manifest = format!(
        "{{apiVersion: v1, kind: Pod, metadata: {{name: clash}}, spec: {{terminationGracePeriodSeconds: 1, volumes: [{{name: volumes, emptyDir: {{}}}}], containers: [{}]}}}}",
        containers.join(", ")
    );
    node.apply_manifest("clash.yaml", &manifest).ok();
    for n in NAMES {
        let deadline = Instant::now() + Duration::from_secs(10);
        let logs = loop {
            let logs = node.podrun(&["logs", "clash", "-c", n]).ok().stdout;
            if logs.lines().count() >= 2 || Instant::now() > deadline {
                break logs;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(logs, format!("hello from {n}\nclash\n"), "container {n}");
        let hosts = node.exec("clash", n, &["cat", "/etc/hosts"]).ok().stdout;
        assert!(hosts.contains("\tclash"), "{n}: /etc/hosts {hosts}");
    }
    let listing = node.exec("clash", "etc", &["ls", "/data"]).ok().stdout;
    let mut seen: Vec<&str> = listing.split_whitespace().collect();
    seen.sort();
    let mut want = NAMES.to_vec();
    want.sort();
    assert_eq!(seen, want, "every container wrote to the shared emptyDir");
    let v = node.pod_json("clash");
    for s in v["status"]["containerStatuses"].as_array().unwrap() {
        assert!(s["state"]["running"].is_object(), "{s}");
        assert_eq!(s["restartCount"], 0, "{s}");
    }
    node.podrun(&["delete", "clash", "--now"]).ok();
    node.assert_clean();
}
