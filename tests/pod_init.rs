//! Issue 20, init containers: they run one at a time, in order, in the pod's sandbox (its
//! volumes), each to completion, before the app containers; a failing one restarts with
//! back-off or fails the pod under Never; a new sandbox runs them again.

mod common;

use std::time::{Duration, Instant};

use common::Node;
use serde_json::Value;

/// An init container `name` appending `<name>-start <uptime>` to /work/order, printing a line,
/// sleeping `sleep` seconds, then appending `<name>-end <uptime>`.
fn init_container(name: &str, sleep: u32) -> String {
    let stamp =
        |what: &str| format!("echo {name}-{what} $(cut -d\" \" -f1 /proc/uptime) >> /work/order");
    format!(
        "  - name: {name}\n    image: podrun.local/debug:1\n    command: [sh, -c, '{}; echo hello from {name}; sleep {sleep}; {}']\n    volumeMounts: [{{name: work, mountPath: /work}}]\n",
        stamp("start"),
        stamp("end")
    )
}

/// Pod `name` with init containers `init1` and `init2` (each sleeping `sleep` s) and an app
/// container `app` that appends its own line, then sleeps; its postStart hook (1 s) holds it
/// at PodInitializing, as the kubelet writes no status until the hook returns.
fn pod_with_inits(name: &str, sleep: u32) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  volumes: [{{name: work, emptyDir: {{}}}}]\n  initContainers:\n{}{}  containers:\n  - name: app\n    image: podrun.local/debug:1\n    command: [sh, -c, 'echo app-start $(cut -d\" \" -f1 /proc/uptime) >> /work/order; exec sleep 3600']\n    volumeMounts: [{{name: work, mountPath: /work}}]\n    lifecycle: {{postStart: {{exec: {{command: [sleep, '1']}}}}}}\n",
        init_container("init1", sleep),
        init_container("init2", sleep)
    )
}

/// The STATUS words `pod` goes through (each once, in order) until `last` or `timeout`.
fn watch_status(node: &Node, pod: &str, last: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut seen: Vec<String> = Vec::new();
    while Instant::now() < deadline {
        let word = node.get_column(pod, 2);
        if seen.last() != Some(&word) {
            seen.push(word.clone());
        }
        if word == last {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    seen
}

fn init_status<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["status"]["initContainerStatuses"]
        .as_array()
        .expect("initContainerStatuses")
        .iter()
        .find(|s| s["name"] == name)
        .expect("the init container's status")
}

/// The `(name, uptime)` lines of /work/order, read in the app container.
fn order_lines(node: &Node, pod: &str) -> Vec<(String, f64)> {
    let out = node.exec(pod, "app", &["cat", "/work/order"]).ok().stdout;
    out.lines()
        .map(|l| {
            let (what, at) = l.split_once(' ').expect("name and time");
            (what.to_owned(), at.parse().expect("an uptime"))
        })
        .collect()
}

#[test]
fn init_containers_run_in_order_to_completion_before_the_app() {
    require_root!();
    let node = Node::new();
    node.apply_manifest("inits.yaml", &pod_with_inits("inits", 2))
        .ok();
    let seen = watch_status(&node, "inits", "Running", Duration::from_secs(30));
    assert_eq!(
        seen,
        ["Init:0/2", "Init:1/2", "PodInitializing", "Running"],
        "the STATUS words in order"
    );
    // The order, proven by the times the containers wrote into the shared emptyDir: each
    // init container ended before the next one started, the app started after the last.
    let lines = order_lines(&node, "inits");
    let names: Vec<&str> = lines.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "init1-start",
            "init1-end",
            "init2-start",
            "init2-end",
            "app-start"
        ]
    );
    assert!(
        lines.windows(2).all(|w| w[0].1 <= w[1].1),
        "times go up: {lines:?}"
    );
    assert!(
        lines[1].1 - lines[0].1 >= 1.9,
        "init1 ran its sleep: {lines:?}"
    );

    let pod = node.pod_json("inits");
    assert_eq!(pod["status"]["phase"], "Running");
    for name in ["init1", "init2"] {
        let s = init_status(&pod, name);
        assert_eq!(s["state"]["terminated"]["reason"], "Completed", "{s}");
        assert_eq!(s["state"]["terminated"]["exitCode"], 0, "{s}");
        assert_eq!(s["restartCount"], 0, "{s}");
    }
    let apps = pod["status"]["containerStatuses"].as_array().unwrap();
    assert_eq!(apps.len(), 1, "only the app container: {apps:?}");
    assert_eq!(apps[0]["name"], "app");
    let conditions = pod["status"]["conditions"].as_array().unwrap();
    let initialized = conditions
        .iter()
        .find(|c| c["type"] == "Initialized")
        .unwrap();
    assert_eq!(initialized["status"], "True");
    // READY counts the app containers only.
    let row = node.podrun(&["get", "pods", "--no-headers"]).ok().stdout;
    assert!(row.contains(" 1/1 "), "{row}");

    let describe = node.podrun(&["describe", "pod", "inits"]).ok().stdout;
    let init_section = describe
        .split("Init Containers:")
        .nth(1)
        .expect("an Init Containers section")
        .split("\nContainers:")
        .next()
        .unwrap();
    for needle in [
        "  init1:",
        "  init2:",
        "    State:          Terminated",
        "      Reason:       Completed",
        "      Exit Code:    0",
    ] {
        assert!(init_section.contains(needle), "{needle:?} in\n{describe}");
    }
    assert!(
        !init_section.contains("  app:"),
        "the app is under Containers:\n{describe}"
    );

    let logs = node.podrun(&["logs", "inits", "-c", "init1"]).ok().stdout;
    assert_eq!(logs, "hello from init1\n");
    // Without -c: the app container (with kubectl's notice naming the init containers).
    let default = node.podrun(&["logs", "inits"]).ok();
    assert_eq!(default.stdout, "");
    assert!(
        default
            .stderr
            .contains("Defaulted container \"app\" out of: app, init1 (init), init2 (init)"),
        "{}",
        default.stderr
    );
    node.podrun(&["delete", "inits", "--now"]).ok();
    node.assert_clean();
}

/// Pod `name` under `policy` whose init container fails (exit 1) and whose app container,
/// were it started, would write a marker into the emptyDir.
fn failing_init_pod(name: &str, policy: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: {policy}\n  volumes: [{{name: work, emptyDir: {{}}}}]\n  initContainers:\n  - name: init1\n    image: podrun.local/debug:1\n    command: [sh, -c, 'echo failing; exit 1']\n  containers:\n  - name: app\n    image: podrun.local/debug:1\n    command: [sh, -c, 'touch /work/app-ran; exec sleep 3600']\n    volumeMounts: [{{name: work, mountPath: /work}}]\n"
    )
}

#[track_caller]
fn assert_app_never_started(pod: &Value) {
    let app = &pod["status"]["containerStatuses"][0];
    assert_eq!(app["name"], "app");
    assert_eq!(
        app["state"]["waiting"]["reason"], "PodInitializing",
        "{app}"
    );
    assert_eq!(app["restartCount"], 0, "{app}");
    assert_eq!(app["lastState"], serde_json::json!({}), "{app}");
}

#[test]
fn a_failing_init_container_backs_off_or_fails_the_pod_under_never() {
    require_root!();
    let node = Node::new();
    let f = node.root.path().join("crash.yaml");
    std::fs::write(&f, failing_init_pod("crash", "Always")).unwrap();
    node.podrun_env(
        &["apply", "-f", f.to_str().unwrap()],
        &[("PODRUN_BACKOFF_BASE_MS", "200")],
    )
    .ok();
    let seen = watch_status(
        &node,
        "crash",
        "Init:CrashLoopBackOff",
        Duration::from_secs(20),
    );
    assert_eq!(
        seen.last().map(String::as_str),
        Some("Init:CrashLoopBackOff"),
        "{seen:?}"
    );
    let pod = node.wait_for_pod("crash", Duration::from_secs(20), |p| {
        init_status(p, "init1")["restartCount"].as_u64() >= Some(2)
    });
    let init = init_status(&pod, "init1");
    assert!(init["restartCount"].as_u64() >= Some(2), "{init}");
    assert_eq!(pod["status"]["phase"], "Pending");
    assert_app_never_started(&pod);
    let describe = node.podrun(&["describe", "pod", "crash"]).ok().stdout;
    assert!(
        describe.contains("Back-off restarting failed container init1 in pod crash"),
        "{describe}"
    );
    let logs = node.podrun(&["logs", "crash", "-c", "init1"]).ok().stdout;
    assert_eq!(logs, "failing\n");
    node.podrun(&["delete", "crash", "--now"]).ok();

    // Never: the pod fails, the app never runs, the sandbox is stopped.
    node.apply_manifest("never.yaml", &failing_init_pod("never", "Never"))
        .ok();
    let pod = node.wait_for_pod("never", Duration::from_secs(20), |p| {
        p["status"]["phase"] == "Failed"
    });
    assert_eq!(pod["status"]["phase"], "Failed", "{pod}");
    let init = init_status(&pod, "init1");
    assert_eq!(init["state"]["terminated"]["exitCode"], 1, "{init}");
    assert_eq!(init["restartCount"], 0, "{init}");
    assert_app_never_started(&pod);
    assert_eq!(node.get_column("never", 2), "Init:Error");
    let pod = node.wait_for_pod("never", Duration::from_secs(10), |p| {
        p["status"]["conditions"][0]["status"] == "False"
    });
    assert_eq!(
        pod["status"]["conditions"][0]["type"],
        "PodReadyToStartContainers"
    );
    assert_eq!(
        pod["status"]["conditions"][0]["status"], "False",
        "the sandbox is stopped"
    );
    node.podrun(&["delete", "never", "--now"]).ok();
    node.assert_clean();
}

#[test]
fn a_new_sandbox_runs_the_init_containers_again() {
    require_root!();
    let node = Node::new();
    node.apply_manifest("again.yaml", &pod_with_inits("again", 0))
        .ok();
    let seen = watch_status(&node, "again", "Running", Duration::from_secs(30));
    assert_eq!(seen.last().map(String::as_str), Some("Running"), "{seen:?}");
    assert_eq!(order_lines(&node, "again").len(), 5);
    node.kill_pause("again");
    let pod = node.wait_for_pod("again", Duration::from_secs(30), |p| {
        p["status"]["containerStatuses"][0]["restartCount"] == 1
            && p["status"]["containerStatuses"][0]["state"]["running"].is_object()
    });
    assert_eq!(node.inspect("again")["sandbox"]["attempt"], 1);
    for name in ["init1", "init2"] {
        let s = init_status(&pod, name);
        assert_eq!(s["restartCount"], 1, "{s}");
        assert_eq!(s["state"]["terminated"]["reason"], "Completed", "{s}");
    }
    assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 1);
    // The emptyDir belongs to the pod, not the sandbox (as the kubelet keeps it): it holds
    // both rounds, the second in order after the first.
    let lines = order_lines(&node, "again");
    let names: Vec<&str> = lines.iter().map(|(n, _)| n.as_str()).collect();
    let round = [
        "init1-start",
        "init1-end",
        "init2-start",
        "init2-end",
        "app-start",
    ];
    assert_eq!(names, [round, round].concat(), "{lines:?}");
    assert!(lines.windows(2).all(|w| w[0].1 <= w[1].1), "{lines:?}");
    let describe = node.podrun(&["describe", "pod", "again"]).ok().stdout;
    assert!(describe.contains("SandboxChanged"), "{describe}");
    node.podrun(&["delete", "again", "--now"]).ok();
    node.assert_clean();
}
