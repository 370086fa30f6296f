//! Issue 4, acceptance 7: 50 pods applied and deleted in a loop, 3 times, leave nothing behind,
//! and a long-lived pod's supervisor (which meanwhile re-creates its sandbox and restarts its
//! container every round) does not grow in open file descriptors or memory.

mod common;

use std::time::Duration;

use common::Node;

const REPLICAS: usize = 50;
const ROUNDS: usize = 3;

fn churn_manifest() -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: churn}}
spec:
  replicas: {REPLICAS}
  selector: {{matchLabels: {{app: churn}}}}
  template:
    metadata: {{labels: {{app: churn}}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - {{name: main, image: podrun.local/debug:1, command: [sleep, '3600']}}
      - {{name: side, image: podrun.local/debug:1, command: [sh, -c, 'sleep 3600 & wait']}}
"
    )
}

const WITNESS: &str = "{apiVersion: v1, kind: Pod, metadata: {name: witness}, spec: {containers: [{name: c, image: podrun.local/debug:1, command: [sleep, '3600']}]}}";

/// (open fds, VmRSS in KiB) of a process.
fn fds_and_rss(pid: i32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    (fds, rss)
}

/// Mounts in the node's mount namespace (netns pins live there).
fn mount_count(node: &Node) -> usize {
    std::fs::read_to_string(format!("/proc/{}/mountinfo", node.pid()))
        .unwrap()
        .lines()
        .count()
}

fn running_pods(node: &Node) -> usize {
    let out = node.podrun(&["get", "pods"]).ok().stdout;
    out.lines().filter(|l| l.contains(" Running ")).count()
}

#[test]
fn fifty_pods_three_times_leave_nothing_and_leak_nothing() {
    require_root!();
    let node = Node::new();
    let dir = node.root.path();
    let churn = dir.join("churn.yaml");
    let witness = dir.join("witness.yaml");
    std::fs::write(&churn, churn_manifest()).unwrap();
    std::fs::write(&witness, WITNESS).unwrap();
    // Every sandbox re-creation goes through the kubelet's back-off (0, then base, 2x base, ...
    // after the last run ended): a short base keeps each round's restart within its wait.
    node.podrun_env(
        &["apply", "-f", witness.to_str().unwrap()],
        &[("PODRUN_BACKOFF_BASE_MS", "100")],
    )
    .ok();
    let supervisor = node.supervisor_pid("witness");
    let baseline_links = node.links().len();
    let baseline_mounts = mount_count(&node);
    let mut usage = Vec::new();
    for round in 1..=ROUNDS {
        node.podrun(&["apply", "-f", churn.to_str().unwrap()]).ok();
        assert_eq!(
            running_pods(&node),
            REPLICAS + 1,
            "round {round}: pods running"
        );
        assert_eq!(
            node.ipam_files().len(),
            REPLICAS + 1,
            "round {round}: addresses"
        );

        // Meanwhile the witness loses its sandbox (and so restarts its container).
        let pause = node.inspect("witness")["sandbox"]["pause"]["pid"]
            .as_i64()
            .unwrap();
        node.sh(&format!("kill -9 {pause}")).ok();
        let r = node.eventually(
            &format!(
                "PODRUN_ROOT={} {} get pod witness -o json | grep -q '\"restartCount\": {round}'",
                node.root.path().display(),
                common::PODRUN
            ),
            Duration::from_secs(10),
        );
        assert_eq!(
            r.code, 0,
            "round {round}: witness not restarted in a new sandbox"
        );

        node.podrun(&["delete", "-f", churn.to_str().unwrap(), "--now"])
            .ok();
        assert_eq!(node.state_entries(), 1, "round {round}: pod state left");
        assert_eq!(node.ipam_files().len(), 1, "round {round}: addresses left");
        assert_eq!(
            node.links().len(),
            baseline_links,
            "round {round}: links {:?}",
            node.links()
        );
        assert_eq!(mount_count(&node), baseline_mounts, "round {round}: mounts");
        let pins = node.sh("ls /run/netns").ok().stdout;
        assert_eq!(pins.trim(), "witness", "round {round}: netns pins");
        // One pod cgroup per hierarchy is left: the witness's.
        let parents = common::cgroup_parent_dirs(&node.cgroup_parent);
        let pod_dirs: Vec<_> = parents
            .iter()
            .flat_map(|d| std::fs::read_dir(d).unwrap().flatten())
            .filter(|e| e.file_type().unwrap().is_dir())
            .map(|e| e.path())
            .collect();
        assert_eq!(pod_dirs.len(), parents.len(), "round {round}: {pod_dirs:?}");
        usage.push(fds_and_rss(supervisor));
    }
    eprintln!("witness supervisor (fds, VmRSS KiB) after each round: {usage:?}");
    let (first, last) = (usage[0], usage[ROUNDS - 1]);
    assert_eq!(first.0, last.0, "supervisor fds grew: {usage:?}");
    assert!(
        last.1 <= first.1 + 512,
        "supervisor memory grew by more than 512 KiB: {usage:?}"
    );
    node.podrun(&["delete", "witness", "--now"]).ok();
    node.assert_clean();
}
