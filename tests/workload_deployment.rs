//! Issue 21: a Deployment keeps its promise. Its pods are replaced whatever happens to them
//! (deleted by name, their supervisor killed), it scales up and down by `scale` and by a
//! changed file, a new template rolls out a new ReplicaSet within maxSurge/maxUnavailable
//! (polled while it runs), `rollout undo|history|status|restart` work, and the controller
//! survives being killed without ever running twice. Every removed pod leaves nothing.

mod common;

use std::time::{Duration, Instant};

use common::Node;
use serde_json::Value;

/// Deployment `idle`: `replicas` pods of one container that idles and ends on SIGTERM.
fn idle(replicas: u32, image: &str, strategy: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: idle, labels: {{app: idle}}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: idle}}}}
  {strategy}
  template:
    metadata: {{labels: {{app: idle}}}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: c
        image: {image}
        command: [sh, -c, \"trap 'exit 0' TERM; while true; do sleep 1 & wait; done\"]
"
    )
}

fn name(p: &Value) -> String {
    p["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn running(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
        && p["status"]["containerStatuses"]
            .as_array()
            .is_some_and(|l| l.iter().all(|c| c["ready"] == true))
        && p["metadata"]["deletionTimestamp"].is_null()
}

fn running_names(pods: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = pods.iter().filter(|p| running(p)).map(name).collect();
    names.sort();
    names
}

/// Poll `done` every 50 ms for up to `timeout`; whether it became true.
fn until(timeout: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Pause processes of the node (one per live sandbox).
fn pauses(node: &Node) -> usize {
    node.processes()
        .iter()
        .filter(|p| common::cmdline(**p).contains("podrun-pause"))
        .count()
}

/// The controller's worker processes of this node.
fn workers(node: &Node) -> Vec<i32> {
    node.processes()
        .into_iter()
        .filter(|p| common::cmdline(*p).contains("__controller worker"))
        .collect()
}

fn controller_pid(node: &Node) -> i32 {
    let text = std::fs::read_to_string(node.root.path().join("controller.pid")).unwrap();
    text.trim().parse().unwrap()
}

#[test]
fn a_deleted_pod_or_a_killed_supervisor_is_replaced_never_doubled() {
    require_root!();
    let node = Node::new();
    let out = node
        .apply_manifest("idle.yaml", &idle(3, "podrun.local/debug:1", ""))
        .ok();
    assert!(
        out.stdout.starts_with("deployment.apps/idle created"),
        "{}",
        out.stdout
    );
    let pods = node.wait_for_pods(Duration::from_secs(10), |p| running_names(p).len() == 3);
    let before = running_names(&pods);

    // Deleted by name: a new pod (new name, new IP) runs within 5 s.
    let victim = &before[0];
    let ip = node.pod_ip(victim);
    let started = Instant::now();
    node.podrun(&["delete", "pod", victim, "--now"]).ok();
    let pods = node.wait_for_pods(Duration::from_secs(5), |p| {
        let names = running_names(p);
        names.len() == 3 && !names.contains(victim)
    });
    eprintln!("replaced in {:?}", started.elapsed());
    let after = running_names(&pods);
    let new: Vec<&String> = after.iter().filter(|n| !before.contains(n)).collect();
    assert_eq!(new.len(), 1, "{before:?} -> {after:?}");
    assert_ne!(node.pod_ip(new[0]), ip);
    assert!(new[0].starts_with("idle-"), "{new:?}");

    // Its supervisor killed: replaced, the old sandbox removed, never 4 pauses at rest.
    let target = after[1].clone();
    let sup = node.supervisor_pid(&target);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    node.wait_for_pods(Duration::from_secs(5), |p| {
        let names = running_names(p);
        names.len() == 3 && !names.contains(&target) && p.len() == 3
    });
    until(Duration::from_secs(5), || pauses(&node) == 3);
    assert_eq!(pauses(&node), 3);
    assert_eq!(node.veths().len(), 3, "{:?}", node.veths());
    assert_eq!(node.ipam_files().len(), 3, "{:?}", node.ipam_files());

    let out = node.podrun(&["get", "deployments"]).ok();
    let row: Vec<&str> = out
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..4], ["idle", "3/3", "3", "3"], "{}", out.stdout);
    node.podrun(&["delete", "deployment", "idle", "--now"]).ok();
    node.assert_clean();
}

#[test]
fn scaled_by_scale_and_by_a_changed_file() {
    require_root!();
    let node = Node::new();
    node.apply_manifest("idle.yaml", &idle(3, "podrun.local/debug:1", ""))
        .ok();
    node.wait_for_pods(Duration::from_secs(10), |p| running_names(p).len() == 3);
    let out = node
        .podrun(&["scale", "deployment/idle", "--replicas=6"])
        .ok();
    assert_eq!(out.stdout, "deployment.apps/idle scaled\n");
    let pods = node.wait_for_pods(Duration::from_secs(20), |p| running_names(p).len() == 6);
    assert_eq!(pods.len(), 6);
    assert_eq!(node.veths().len(), 6);

    let out = node
        .apply_manifest("idle.yaml", &idle(2, "podrun.local/debug:1", ""))
        .ok();
    assert_eq!(out.stdout, "deployment.apps/idle configured\n");
    node.wait_for_pods(Duration::from_secs(20), |p| {
        p.len() == 2 && running_names(p).len() == 2
    });
    // The extra pods went with every kernel object they had.
    until(Duration::from_secs(5), || {
        pauses(&node) == 2 && node.veths().len() == 2
    });
    assert_eq!(pauses(&node), 2);
    assert_eq!(node.veths().len(), 2, "{:?}", node.veths());
    assert_eq!(node.ipam_files().len(), 2, "{:?}", node.ipam_files());
    let out = node.podrun(&["get", "rs", "--no-headers"]).ok();
    let row: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(&row[1..4], ["2", "2", "2"], "{}", out.stdout);

    // Applied again as it is: unchanged.
    let out = node
        .apply_manifest("idle.yaml", &idle(2, "podrun.local/debug:1", ""))
        .ok();
    assert_eq!(out.stdout, "deployment.apps/idle unchanged\n");
    let file = node.root.path().join("idle.yaml");
    node.podrun(&["delete", "-f", file.to_str().unwrap(), "--now"])
        .ok();
    node.assert_clean();
}

const SURGE_1: &str =
    "strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}";

/// The image of pod `p`'s container.
fn image(p: &Value) -> String {
    p["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Poll until the Deployment runs 3 pods of `want`, checking at every poll that at least 3
/// pods run and at most 4 (maxSurge 1, maxUnavailable 0).
fn roll_to(node: &Node, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pods = node.pods_json();
        let live: Vec<&Value> = pods.iter().filter(|p| running(p)).collect();
        assert!(
            live.len() >= 3,
            "fewer than 3 running during the rollout: {:?}",
            running_names(&pods)
        );
        let not_leaving = pods
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .count();
        assert!(
            not_leaving <= 4,
            "more than maxSurge: {:?}",
            running_names(&pods)
        );
        if pods.len() == 3 && live.len() == 3 && live.iter().all(|p| image(p) == want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "rollout never finished: {pods:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn history(node: &Node) -> Vec<String> {
    let out = node
        .podrun(&["rollout", "history", "deployment/idle"])
        .ok()
        .stdout;
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("deployment.apps/idle "), "{out}");
    assert!(
        lines.next().unwrap().starts_with("REVISION  CHANGE-CAUSE"),
        "{out}"
    );
    lines
        .filter(|l| !l.is_empty())
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect()
}

#[test]
fn a_new_image_rolls_out_within_max_surge_and_rolls_back() {
    require_root!();
    let node = Node::new();
    node.apply_manifest("idle.yaml", &idle(3, "podrun.local/debug:1", SURGE_1))
        .ok();
    node.wait_for_pods(Duration::from_secs(10), |p| running_names(p).len() == 3);
    let python = "podrun.local/python:3.11-slim";
    let out = node
        .apply_manifest("idle.yaml", &idle(3, python, SURGE_1))
        .ok();
    assert_eq!(out.stdout, "deployment.apps/idle configured\n");
    roll_to(&node, python);
    let status = node
        .podrun(&["rollout", "status", "deployment/idle", "--timeout=30s"])
        .ok();
    assert!(
        status
            .stdout
            .ends_with("deployment \"idle\" successfully rolled out\n"),
        "{}",
        status.stdout
    );
    let rs = node
        .podrun(&["get", "replicasets", "--no-headers"])
        .ok()
        .stdout;
    let desired: Vec<&str> = rs
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    let mut sorted = desired.clone();
    sorted.sort();
    assert_eq!(sorted, ["0", "3"], "{rs}");
    assert_eq!(history(&node), ["1", "2"]);

    let out = node.podrun(&["rollout", "undo", "deployment/idle"]).ok();
    assert_eq!(out.stdout, "deployment.apps/idle rolled back\n");
    roll_to(&node, "podrun.local/debug:1");
    // Revision 1's ReplicaSet is the newest revision again.
    assert_eq!(history(&node), ["2", "3"]);
    let out = node
        .podrun(&["rollout", "history", "deployment/idle", "--revision=3"])
        .ok();
    assert!(
        out.stdout.contains("Image:      podrun.local/debug:1"),
        "{}",
        out.stdout
    );

    // restart: a new ReplicaSet, every pod replaced.
    let before = running_names(&node.pods_json());
    let out = node.podrun(&["rollout", "restart", "deployment/idle"]).ok();
    assert_eq!(out.stdout, "deployment.apps/idle restarted\n");
    node.podrun(&["rollout", "status", "deployment/idle", "--timeout=60s"])
        .ok();
    let pods = node.wait_for_pods(Duration::from_secs(20), |p| {
        p.len() == 3 && running_names(p).len() == 3
    });
    let after = running_names(&pods);
    assert!(
        after.iter().all(|n| !before.contains(n)),
        "{before:?} {after:?}"
    );
    assert_eq!(history(&node), ["2", "3", "4"]);

    let out = node
        .podrun(&["get", "deployments,replicasets", "-o", "name"])
        .ok();
    assert!(
        out.stdout
            .starts_with("deployment.apps/idle\nreplicaset.apps/idle-"),
        "{}",
        out.stdout
    );
    node.podrun(&["delete", "deployment/idle", "--now"]).ok();
    node.assert_clean();
}

#[test]
fn a_killed_controller_comes_back_finishes_the_rollout_and_never_runs_twice() {
    require_root!();
    let node = Node::new();
    node.apply_manifest("idle.yaml", &idle(3, "podrun.local/debug:1", SURGE_1))
        .ok();
    node.wait_for_pods(Duration::from_secs(10), |p| running_names(p).len() == 3);
    let python = "podrun.local/python:3.11-slim";
    let first = controller_pid(&node);
    node.apply_manifest("idle.yaml", &idle(3, python, SURGE_1))
        .ok();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    roll_to(&node, python);
    let second = controller_pid(&node);
    assert_ne!(first, second);
    assert_eq!(workers(&node), [second]);

    // The keeper killed: the worker starts another; still one worker, and it still works.
    let keeper: i32 = std::fs::read_to_string(node.root.path().join("controller-keeper.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(keeper),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let keeper_file = node.root.path().join("controller-keeper.pid");
    while std::fs::read_to_string(&keeper_file)
        .unwrap_or_default()
        .trim()
        == keeper.to_string()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_ne!(
        std::fs::read_to_string(&keeper_file).unwrap().trim(),
        keeper.to_string()
    );
    assert_eq!(workers(&node), [second]);
    node.podrun(&["scale", "deployment", "idle", "--replicas=4"])
        .ok();
    node.wait_for_pods(Duration::from_secs(10), |p| running_names(p).len() == 4);
    // A second controller started by hand finds the lock held and leaves.
    let out = node.podrun(&["__controller"]).ok();
    assert!(
        out.stderr.contains("a controller already runs"),
        "{}",
        out.stderr
    );
    assert_eq!(workers(&node), [second]);

    until(Duration::from_secs(5), || pauses(&node) == 4);
    assert_eq!(pauses(&node), 4);
    assert_eq!(node.veths().len(), 4);
    assert_eq!(node.ipam_files().len(), 4);
    node.podrun(&["delete", "deployment", "idle", "--now"]).ok();
    node.assert_clean();
}

#[test]
fn recreate_stops_every_old_pod_before_a_new_one_starts() {
    require_root!();
    let node = Node::new();
    let recreate = "strategy: {type: Recreate}";
    node.apply_manifest("idle.yaml", &idle(2, "podrun.local/debug:1", recreate))
        .ok();
    node.wait_for_pods(Duration::from_secs(10), |p| running_names(p).len() == 2);
    let python = "podrun.local/python:3.11-slim";
    node.apply_manifest("idle.yaml", &idle(2, python, recreate))
        .ok();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pods = node.pods_json();
        let images: Vec<String> = pods.iter().map(image).collect();
        assert!(
            !(images.iter().any(|i| i == python) && images.iter().any(|i| i != python)),
            "old and new pods at once: {images:?}"
        );
        if running_names(&pods).len() == 2 && images.iter().all(|i| i == python) {
            break;
        }
        assert!(Instant::now() < deadline, "never recreated: {images:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    node.podrun(&["delete", "deployment", "idle", "--now"]).ok();
    node.assert_clean();
}

#[test]
fn a_replica_set_of_its_own_keeps_its_replicas() {
    require_root!();
    let node = Node::new();
    let rs = |replicas: u32| {
        format!(
            "apiVersion: apps/v1
kind: ReplicaSet
metadata: {{name: solo}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: solo}}}}
  template:
    metadata: {{labels: {{app: solo}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {{name: c, image: podrun.local/debug:1, command: [sleep, '3600']}}
"
        )
    };
    let out = node.apply_manifest("solo.yaml", &rs(2)).ok();
    assert!(
        out.stdout.starts_with("replicaset.apps/solo created"),
        "{}",
        out.stdout
    );
    let pods = node.wait_for_pods(Duration::from_secs(10), |p| running_names(p).len() == 2);
    assert!(pods.iter().all(|p| name(p).starts_with("solo-")));
    assert_eq!(
        pods[0]["metadata"]["ownerReferences"][0]["kind"],
        "ReplicaSet"
    );
    let victim = name(&pods[0]);
    node.podrun(&["delete", "pod", &victim, "--now"]).ok();
    node.wait_for_pods(Duration::from_secs(5), |p| {
        running_names(p).len() == 2 && !running_names(p).contains(&victim)
    });
    node.podrun(&["scale", "rs/solo", "--replicas=3"]).ok();
    node.wait_for_pods(Duration::from_secs(10), |p| running_names(p).len() == 3);
    let out = node.apply_manifest("solo.yaml", &rs(1)).ok();
    assert_eq!(out.stdout, "replicaset.apps/solo configured\n");
    node.wait_for_pods(Duration::from_secs(10), |p| {
        p.len() == 1 && running_names(p).len() == 1
    });
    node.podrun(&["delete", "rs", "solo"]).ok();
    node.assert_clean();
}

#[test]
fn a_rollout_that_makes_no_progress_exceeds_its_deadline() {
    require_root!();
    let node = Node::new();
    let strategy = format!("{SURGE_1}\n  progressDeadlineSeconds: 2");
    node.apply_manifest("idle.yaml", &idle(2, "podrun.local/debug:1", &strategy))
        .ok();
    node.wait_for_pods(Duration::from_secs(10), |p| running_names(p).len() == 2);
    // The new pods never get ready: the rollout stops at one surge pod.
    let never_ready = idle(2, "podrun.local/python:3.11-slim", &strategy).replace(
        "        command:",
        "        readinessProbe: {exec: {command: ['false']}, periodSeconds: 1}\n        command:",
    );
    node.apply_manifest("idle.yaml", &never_ready).ok();
    let started = Instant::now();
    let out = node.podrun(&["rollout", "status", "deployment/idle", "--timeout=20s"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("deployment \"idle\" exceeded its progress deadline"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout
            .contains("1 out of 2 new replicas have been updated"),
        "{}",
        out.stdout
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let describe = node.podrun(&["describe", "deployment", "idle"]).ok().stdout;
    assert!(
        describe.contains("Progressing    False   ProgressDeadlineExceeded"),
        "{describe}"
    );
    // The old pods still serve: maxUnavailable 0.
    assert_eq!(
        running_names(&node.pods_json())
            .iter()
            .filter(|n| !n.is_empty())
            .count(),
        2
    );
    node.podrun(&["delete", "deployment", "idle", "--now"]).ok();
    node.assert_clean();
}
