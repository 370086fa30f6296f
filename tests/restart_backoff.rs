//! Issue 17, defects 2 and 4: every restart goes through the kubelet's back-off (a start error
//! too), a pod's state stays bounded while it loops, and `delete` of a pod whose supervisor is
//! gone still sends SIGTERM and waits the grace period.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Node;
use serde_json::Value;

/// A directory the test owns, for a hostPath volume.
fn host_dir(node: &Node, name: &str) -> PathBuf {
    let dir = node.root.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An executable script at `path`.
fn write_script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Every file and directory under `dir` (recursively, not following links).
fn entries_under(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            1 + if is_dir { entries_under(&e.path()) } else { 0 }
        })
        .sum()
}

/// The `<restart>.log` files of container `c` of pod `pod`.
fn log_files(node: &Node, pod: &str, c: &str) -> Vec<String> {
    let dir = node
        .root
        .path()
        .join("pods")
        .join(format!("default_{pod}"))
        .join(c);
    let mut logs: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log"))
        .collect();
    logs.sort();
    logs
}

fn status_of<'a>(pod: &'a Value, c: &str) -> &'a Value {
    pod["status"]["containerStatuses"]
        .as_array()
        .expect("containerStatuses")
        .iter()
        .find(|s| s["name"] == c)
        .expect("the container's status")
}

/// A container whose command (a script on a hostPath) is removed while it runs: its next start
/// fails. As the kubelet does, that start is retried after the back-off (here the real 10 s),
/// not at once: within 5 s the restart count stays small, the status shows the start error
/// (waiting `RunContainerError`, then `CrashLoopBackOff`; lastState `StartError`, exit code
/// 128), describe shows the BackOff event, and the pod's state directory stops growing.
#[test]
fn a_start_error_is_restarted_with_back_off() {
    require_root!();
    let node = Node::new();
    let data = host_dir(&node, "data");
    let script = data.join("run.sh");
    write_script(&script, "echo run; sleep 1; exit 1");
    node.apply_manifest(
        "gone.yaml",
        &format!(
            "{{apiVersion: v1, kind: Pod, metadata: {{name: gone}}, spec: {{restartPolicy: Always, \
             volumes: [{{name: data, hostPath: {{path: {}, type: Directory}}}}], \
             containers: [{{name: c, image: podrun.local/debug:1, command: [/data/run.sh], \
             volumeMounts: [{{name: data, mountPath: /data}}]}}]}}}}",
            data.display()
        ),
    )
    .ok();
    std::fs::remove_file(&script).unwrap();
    // The run ends after ~1 s; the first restart comes at once and fails to start.
    let pod = node.wait_for_pod("gone", Duration::from_secs(10), |v| {
        status_of(v, "c")["lastState"]["terminated"]["reason"] == "StartError"
    });
    let c = status_of(&pod, "c");
    let last = &c["lastState"]["terminated"];
    assert_eq!(last["reason"], "StartError", "{pod:#}");
    assert_eq!(last["exitCode"], 128, "{pod:#}");
    assert!(
        last["message"]
            .as_str()
            .is_some_and(|m| m.contains("stat /data/run.sh: no such file or directory")),
        "{pod:#}"
    );
    let pod_dir = node.root.path().join("pods/default_gone");
    let before = entries_under(&pod_dir);
    let t = Instant::now();
    let (mut reasons, mut restarts) = (std::collections::BTreeSet::new(), 0);
    while t.elapsed() < Duration::from_secs(5) {
        let pod = node.pod_json("gone");
        let c = status_of(&pod, "c");
        if let Some(r) = c["state"]["waiting"]["reason"].as_str() {
            reasons.insert(r.to_owned());
        }
        restarts = c["restartCount"].as_u64().unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = entries_under(&pod_dir);
    assert!(
        restarts <= 2,
        "restarted {restarts} times within ~6 s; the pod's state went from {before} to \
         {after} entries in 5 s"
    );
    assert!(
        reasons.contains("CrashLoopBackOff")
            && reasons
                .iter()
                .all(|r| r == "CrashLoopBackOff" || r == "RunContainerError"),
        "waiting reasons seen: {reasons:?}"
    );
    assert!(
        after <= before + 2,
        "the pod's state grew from {before} to {after} entries in 5 s"
    );
    let describe = node.podrun(&["describe", "pod", "gone"]).ok().stdout;
    assert!(
        describe.contains("Back-off restarting failed container c in pod gone")
            && describe.contains("Error: ")
            && describe.contains("no such file or directory"),
        "{describe}"
    );
    node.podrun(&["delete", "gone", "--now"]).ok();
    node.assert_clean();
}

/// Containers that loop fast (a short back-off base): one crashing, one whose script is gone
/// so every start fails. Each keeps only its current and previous `<restart>.log`, `logs -p`
/// still shows the previous run, the pod's state stays bounded, and the repeated events are
/// counted, not repeated.
#[test]
fn a_restart_loop_keeps_two_logs_and_bounded_state() {
    require_root!();
    let node = Node::new();
    let data = host_dir(&node, "data");
    let script = data.join("run.sh");
    write_script(&script, "echo ran; sleep 0.3; exit 1");
    let f = node.root.path().join("loop.yaml");
    std::fs::write(
        &f,
        format!(
            "{{apiVersion: v1, kind: Pod, metadata: {{name: loop}}, spec: {{ \
             volumes: [{{name: data, hostPath: {{path: {}, type: Directory}}}}], \
             containers: [{{name: crash, image: podrun.local/debug:1, command: [sh, -c, 'echo run; exit 1']}}, \
             {{name: gone, image: podrun.local/debug:1, command: [/data/run.sh], \
             volumeMounts: [{{name: data, mountPath: /data}}]}}]}}}}",
            data.display()
        ),
    )
    .unwrap();
    node.podrun_env(
        &["apply", "-f", f.to_str().unwrap()],
        &[("PODRUN_BACKOFF_BASE_MS", "40")],
    )
    .ok();
    std::fs::remove_file(&script).unwrap();
    let restarts = |v: &Value, c: &str| status_of(v, c)["restartCount"].as_u64().unwrap();
    let pod = node.wait_for_pod("loop", Duration::from_secs(20), |v| {
        restarts(v, "crash") >= 3 && restarts(v, "gone") >= 3
    });
    assert!(
        restarts(&pod, "crash") >= 3 && restarts(&pod, "gone") >= 3,
        "{pod:#}"
    );
    let pod_dir = node.root.path().join("pods/default_loop");
    let before = entries_under(&pod_dir);
    let pod = node.wait_for_pod("loop", Duration::from_secs(20), |v| {
        restarts(v, "crash") >= 6 && restarts(v, "gone") >= 6
    });
    assert!(
        restarts(&pod, "crash") >= 6 && restarts(&pod, "gone") >= 6,
        "{pod:#}"
    );
    let after = entries_under(&pod_dir);
    for c in ["crash", "gone"] {
        let logs = log_files(&node, "loop", c);
        assert!(logs.len() <= 2, "{c} keeps {logs:?}");
    }
    assert!(
        after <= before + 2,
        "the pod's state grew from {before} to {after} entries over 3 more restarts"
    );
    // `logs -p` shows the previous run of the crashing container.
    let deadline = Instant::now() + Duration::from_secs(10);
    let prev = loop {
        let r = node.podrun(&["logs", "loop", "-c", "crash", "-p"]);
        if (r.code == 0 && r.stdout.trim() == "run") || Instant::now() >= deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(prev.stdout.trim(), "run", "{}", prev.stderr);
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(pod_dir.join("pod.json")).expect("read the pod record"),
    )
    .unwrap();
    let events = record["events"].as_array().unwrap();
    let backoffs: Vec<&Value> = events.iter().filter(|e| e["reason"] == "BackOff").collect();
    assert_eq!(
        backoffs.len(),
        2,
        "one BackOff event per container: {events:#?}"
    );
    assert!(
        backoffs.iter().all(|e| e["count"].as_u64() >= Some(2)),
        "{events:#?}"
    );
    let failed: Vec<&Value> = events.iter().filter(|e| e["reason"] == "Failed").collect();
    assert!(
        failed.len() == 1 && failed[0]["count"].as_u64() >= Some(3),
        "{events:#?}"
    );
    assert!(events.len() < 12, "{} events: {events:#?}", events.len());
    node.podrun(&["delete", "loop", "--now"]).ok();
    node.assert_clean();
}

/// A pod whose supervisor was killed: delete still stops it as the supervisor would. The
/// container with a TERM trap gets the SIGTERM (its trap writes a file), the one ignoring it
/// is killed when the grace period ends (delete takes about the period, and says why), and
/// nothing of the pod stays on the node.
#[test]
fn delete_after_the_supervisor_is_lost_sends_sigterm_and_waits_the_grace_period() {
    require_root!();
    let node = Node::new();
    let data = host_dir(&node, "data");
    node.apply_manifest(
        "orphan.yaml",
        &format!(
            "{{apiVersion: v1, kind: Pod, metadata: {{name: orphan}}, spec: {{ \
             volumes: [{{name: data, hostPath: {{path: {}, type: Directory}}}}], \
             containers: [\
             {{name: polite, image: podrun.local/debug:1, command: [sh, -c, \"trap 'echo got TERM > /data/term; exit 0' TERM; touch /data/ready; while :; do sleep 0.1; done\"], \
             volumeMounts: [{{name: data, mountPath: /data}}]}}, \
             {{name: stubborn, image: podrun.local/debug:1, command: [sh, -c, \"trap '' TERM; while :; do sleep 0.1; done\"]}}]}}}}",
            data.display()
        ),
    )
    .ok();
    // The trap is installed once the script runs past it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !data.join("ready").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(data.join("ready").exists(), "polite never started");
    let sup = node.supervisor_pid("orphan");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while common::cmdline(sup).contains("__supervise") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let t = Instant::now();
    let run = node
        .podrun(&["delete", "orphan", "--grace-period", "5"])
        .ok();
    let took = t.elapsed();
    let term = std::fs::read_to_string(data.join("term")).unwrap_or_default();
    assert_eq!(term.trim(), "got TERM", "the TERM trap never ran");
    assert!(
        took >= Duration::from_millis(4900) && took < Duration::from_secs(12),
        "delete took {took:?}, expected about the 5 s grace period"
    );
    assert!(
        run.stderr
            .contains("container \"stubborn\" of pod \"orphan\" ignores SIGTERM"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains("pod \"orphan\" deleted"),
        "{}",
        run.stdout
    );
    node.assert_clean();
}

/// The pause dies while a container is in back-off: the new sandbox does not start it before
/// its back-off has passed (the kubelet consults the back-off for every start, the sandbox's
/// re-creation included), while its sibling restarts in the new sandbox at once.
#[test]
fn a_new_sandbox_keeps_a_container_in_back_off() {
    require_root!();
    let node = Node::new();
    let f = node.root.path().join("flappy.yaml");
    std::fs::write(
        &f,
        "{apiVersion: v1, kind: Pod, metadata: {name: flappy}, spec: {containers: [\
         {name: crash, image: podrun.local/debug:1, command: [sh, -c, 'echo run; exit 1']}, \
         {name: steady, image: podrun.local/debug:1, command: [sh, -c, \"trap 'exit 0' TERM; while :; do sleep 0.1; done\"]}]}}",
    )
    .unwrap();
    node.podrun_env(
        &["apply", "-f", f.to_str().unwrap()],
        &[("PODRUN_BACKOFF_BASE_MS", "4000")],
    )
    .ok();
    // First exit: restarted at once; second: 4 s of back-off.
    let pod = node.wait_for_pod("flappy", Duration::from_secs(10), |v| {
        let c = status_of(v, "crash");
        c["restartCount"] == 1 && c["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    });
    let crash = status_of(&pod, "crash");
    assert_eq!(
        crash["state"]["waiting"]["reason"], "CrashLoopBackOff",
        "{pod:#}"
    );
    node.kill_pause("flappy");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = node.inspect("flappy");
    while Instant::now() < deadline {
        after = node.inspect("flappy");
        let steady = &after["containers"][1];
        if after["sandbox"]["attempt"] == 1 && steady["alive"] == true {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(after["sandbox"]["attempt"], 1, "{after:#}");
    let pod = node.pod_json("flappy");
    assert_eq!(status_of(&pod, "steady")["restartCount"], 1, "{pod:#}");
    let crash = status_of(&pod, "crash");
    assert_eq!(
        crash["restartCount"], 1,
        "started in the new sandbox during its back-off: {pod:#}"
    );
    assert_eq!(
        crash["state"]["waiting"]["reason"], "CrashLoopBackOff",
        "{pod:#}"
    );
    // Once the back-off has passed, it runs again.
    let pod = node.wait_for_pod("flappy", Duration::from_secs(10), |v| {
        status_of(v, "crash")["restartCount"].as_u64() >= Some(2)
    });
    assert!(
        status_of(&pod, "crash")["restartCount"].as_u64() >= Some(2),
        "{pod:#}"
    );
    node.podrun(&["delete", "flappy", "--now"]).ok();
    node.assert_clean();
}
