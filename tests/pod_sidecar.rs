//! Issue 20, native sidecars (init containers with `restartPolicy: Always`): the Kubernetes
//! documentation's log-shipping example. The sidecar starts before the app and runs beside
//! it, is restarted when killed (whatever the pod's policy), does not keep a `Never` pod from
//! completing, and is stopped after the app on delete.

mod common;

use std::path::Path;
use std::time::Duration;

use common::Node;

/// A shell line appending `<what> <uptime>` to /shared/order.
fn stamp(what: &str) -> String {
    format!("echo {what} $(cut -d\" \" -f1 /proc/uptime) >> /shared/order")
}

/// The documentation's sidecar example: `myapp` appends to /opt/logs.txt, `logshipper`
/// (an init container with restartPolicy Always) tails it; both record their start and their
/// SIGTERM in the host directory `shared`.
fn log_shipping_pod(name: &str, policy: &str, app_runs: &str, shared: &Path) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: {policy}
  terminationGracePeriodSeconds: 10
  volumes:
  - {{name: data, emptyDir: {{}}}}
  - {{name: shared, hostPath: {{path: '{shared}', type: Directory}}}}
  initContainers:
  - name: logshipper
    image: podrun.local/debug:1
    restartPolicy: Always
    command: [sh, -c, 'trap ''{term_sidecar}; exit 0'' TERM; {start_sidecar}; touch /opt/logs.txt; tail -F /opt/logs.txt & wait']
    volumeMounts: [{{name: data, mountPath: /opt}}, {{name: shared, mountPath: /shared}}]
  containers:
  - name: myapp
    image: podrun.local/debug:1
    command: [sh, -c, 'trap ''{term_app}; exit 0'' TERM; {start_app}; {app_runs}']
    volumeMounts: [{{name: data, mountPath: /opt}}, {{name: shared, mountPath: /shared}}]
"#,
        shared = shared.display(),
        term_sidecar = stamp("sidecar-term"),
        start_sidecar = stamp("sidecar-start"),
        term_app = stamp("app-term"),
        start_app = stamp("app-start"),
    )
}

const LOGGING_FOREVER: &str =
    "while true; do echo logging $(date +%s) >> /opt/logs.txt; sleep 1 & wait; done";

#[test]
fn the_log_shipping_sidecar_runs_before_and_beside_the_app_restarts_and_stops_last() {
    require_root!();
    let node = Node::new();
    let shared = node.shared_dir();
    let manifest = log_shipping_pod("logship", "Always", LOGGING_FOREVER, &shared);
    node.apply_manifest("logship.yaml", &manifest).ok();
    let pod = node.wait_for_pod("logship", Duration::from_secs(30), |p| {
        p["status"]["containerStatuses"][0]["state"]["running"].is_object()
    });
    let sidecar = common::container_status(&pod, "initContainerStatuses", "logshipper");
    assert!(sidecar["state"]["running"].is_object(), "{sidecar}");
    assert_eq!(sidecar["started"], true, "{sidecar}");
    assert_eq!(sidecar["ready"], true, "{sidecar}");
    let names: Vec<String> = common::order_file(&shared)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["sidecar-start", "app-start"], "the sidecar first");
    // READY counts the sidecar; STATUS is Running; Initialized once the sidecar started.
    let row = node.podrun(&["get", "pods", "--no-headers"]).ok().stdout;
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[1..3], ["2/2", "Running"], "{row}");
    let initialized = pod["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Initialized")
        .unwrap()
        .clone();
    assert_eq!(initialized["status"], "True", "{initialized}");
    // The sidecar ships the app's log lines.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let logs = node
            .podrun(&["logs", "logship", "-c", "logshipper"])
            .ok()
            .stdout;
        if logs.contains("logging ") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no shipped line: {logs:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Killed, the sidecar is restarted (the app is not).
    let pid = sidecar["pid"].as_i64().expect("the sidecar's pid") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let pod = node.wait_for_pod("logship", Duration::from_secs(20), |p| {
        let s = common::container_status(p, "initContainerStatuses", "logshipper");
        s["restartCount"] == 1 && s["state"]["running"].is_object()
    });
    let app = common::container_status(&pod, "containerStatuses", "myapp");
    assert_eq!(app["restartCount"], 0, "{app}");
    assert!(app["state"]["running"].is_object(), "{app}");

    // Delete: the app gets SIGTERM and ends before the sidecar gets its own.
    node.podrun(&["delete", "logship"]).ok();
    let lines = common::order_file(&shared);
    let at = |what: &str| {
        lines
            .iter()
            .rev()
            .find(|(n, _)| n == what)
            .unwrap_or_else(|| panic!("{what} in {lines:?}"))
            .1
    };
    assert!(
        at("app-term") <= at("sidecar-term"),
        "the sidecar stops after the app: {lines:?}"
    );
    let describe_gone = node.podrun(&["get", "pods", "--no-headers"]).ok().stdout;
    assert!(!describe_gone.contains("logship"), "{describe_gone}");
    node.assert_clean();
}

#[test]
fn a_sidecar_does_not_keep_a_never_pod_from_completing() {
    require_root!();
    let node = Node::new();
    let shared = node.shared_dir();
    let manifest = log_shipping_pod(
        "job",
        "Never",
        "echo work done >> /opt/logs.txt; sleep 1; exit 0",
        &shared,
    );
    node.apply_manifest("job.yaml", &manifest).ok();
    // The phase follows the app containers (Succeeded as the app ends); the sidecar is
    // stopped right after.
    let pod = node.wait_for_pod("job", Duration::from_secs(30), |p| {
        p["status"]["phase"] == "Succeeded"
            && common::container_status(p, "initContainerStatuses", "logshipper")["state"]["terminated"]
                .is_object()
    });
    assert_eq!(pod["status"]["phase"], "Succeeded", "{pod}");
    let app = common::container_status(&pod, "containerStatuses", "myapp");
    assert_eq!(app["state"]["terminated"]["exitCode"], 0, "{app}");
    // The sidecar was stopped once the app ended (it handled the SIGTERM).
    let sidecar = common::container_status(&pod, "initContainerStatuses", "logshipper");
    assert!(sidecar["state"]["terminated"].is_object(), "{sidecar}");
    assert_eq!(sidecar["restartCount"], 0, "not restarted: {sidecar}");
    let names: Vec<String> = common::order_file(&shared)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["sidecar-start", "app-start", "sidecar-term"]);
    let row = node.podrun(&["get", "pods", "--no-headers"]).ok().stdout;
    assert!(row.contains(" Completed "), "{row}");
    node.podrun(&["delete", "pod", "job", "--now"]).ok();
    node.assert_clean();
}

#[test]
fn the_app_waits_for_the_sidecars_startup_probe() {
    require_root!();
    let node = Node::new();
    let shared = node.shared_dir();
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: gated}}
spec:
  terminationGracePeriodSeconds: 2
  volumes: [{{name: shared, hostPath: {{path: '{shared}', type: Directory}}}}]
  initContainers:
  - name: proxy
    image: podrun.local/debug:1
    restartPolicy: Always
    command: [sh, -c, '{start}; sleep 2; touch /tmp/up; exec sleep 3600']
    volumeMounts: [{{name: shared, mountPath: /shared}}]
    startupProbe: {{exec: {{command: [test, -e, /tmp/up]}}, periodSeconds: 1, failureThreshold: 30}}
  containers:
  - name: app
    image: podrun.local/debug:1
    command: [sh, -c, '{app}; exec sleep 3600']
    volumeMounts: [{{name: shared, mountPath: /shared}}]
"#,
        shared = shared.display(),
        start = stamp("proxy-start"),
        app = stamp("app-start"),
    );
    node.apply_manifest("gated.yaml", &manifest).ok();
    // Until the sidecar's startup probe passes it has not started: Init:0/1, the app waits.
    std::thread::sleep(Duration::from_millis(800));
    let row = node.podrun(&["get", "pods", "--no-headers"]).ok().stdout;
    assert!(row.contains(" Init:0/1 "), "{row}");
    let pod = node.wait_for_pod("gated", Duration::from_secs(30), |p| {
        p["status"]["containerStatuses"][0]["state"]["running"].is_object()
    });
    let proxy = common::container_status(&pod, "initContainerStatuses", "proxy");
    assert_eq!(proxy["started"], true, "{proxy}");
    let lines = common::order_file(&shared);
    let at = |what: &str| lines.iter().find(|(n, _)| n == what).unwrap().1;
    assert!(
        at("app-start") - at("proxy-start") >= 1.9,
        "the app started after the probe passed: {lines:?}"
    );
    node.podrun(&["delete", "gated", "--now"]).ok();
    node.assert_clean();
}
