//! Issue 20, lifecycle hooks: preStop runs before the SIGTERM and counts against the grace
//! period (sleep and exec); a failed postStart kills the container (FailedPostStartHook) and
//! it is restarted; a failed preStop is reported (FailedPreStopHook) and the stop goes on.

mod common;

use std::time::{Duration, Instant};

use common::Node;

/// A container that appends `term <uptime>` to /shared/order on SIGTERM.
fn trapping(name: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    image: podrun.local/debug:1\n    command: [sh, -c, 'trap ''echo {name}-term $(cut -d\" \" -f1 /proc/uptime) >> /shared/order; exit 0'' TERM; while true; do sleep 1 & wait; done']\n    volumeMounts: [{{name: shared, mountPath: /shared}}]\n{extra}"
    )
}

fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn pre_stop_runs_before_the_sigterm_within_the_grace_period() {
    require_root!();
    let node = Node::new();
    let shared = node.shared_dir();
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: hooks}}\nspec:\n  terminationGracePeriodSeconds: 20\n  volumes: [{{name: shared, hostPath: {{path: '{}', type: Directory}}}}]\n  containers:\n{}{}",
        shared.display(),
        trapping(
            "sleeper",
            "    lifecycle: {preStop: {sleep: {seconds: 2}}}\n"
        ),
        trapping(
            "execer",
            "    lifecycle: {preStop: {exec: {command: [sh, -c, 'echo execer-prestop $(cut -d\" \" -f1 /proc/uptime) >> /shared/order']}}}\n"
        ),
    );
    node.apply_manifest("hooks.yaml", &manifest).ok();
    node.wait_for_pod("hooks", Duration::from_secs(20), |p| {
        p["status"]["phase"] == "Running"
    });
    let asked = uptime();
    let t0 = Instant::now();
    node.podrun(&["delete", "hooks"]).ok();
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "delete waited for the hook: {took:?}"
    );
    assert!(
        took < Duration::from_secs(15),
        "but not for the grace period: {took:?}"
    );
    let lines = common::order_file(&shared);
    let at = |what: &str| {
        lines
            .iter()
            .find(|(n, _)| n == what)
            .unwrap_or_else(|| panic!("{what} in {lines:?}"))
            .1
    };
    assert!(
        at("sleeper-term") >= asked + 1.9,
        "SIGTERM after the 2 s sleep hook: asked at {asked}, {lines:?}"
    );
    assert!(
        at("execer-prestop") <= at("execer-term"),
        "the exec hook ran in the container before its SIGTERM: {lines:?}"
    );
    node.assert_clean();
}

#[test]
fn a_failing_post_start_kills_and_restarts_and_a_failing_pre_stop_is_reported() {
    require_root!();
    let node = Node::new();
    let manifest = r#"apiVersion: v1
kind: Pod
metadata: {name: badhooks}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: web
    image: podrun.local/debug:1
    command: [sleep, '3600']
    lifecycle:
      postStart: {exec: {command: [sh, -c, 'echo cannot start; exit 1']}}
  - name: stopper
    image: podrun.local/debug:1
    command: [sleep, '3600']
    lifecycle:
      preStop: {exec: {command: [sh, -c, 'exit 7']}}
"#;
    node.apply_manifest("badhooks.yaml", manifest).ok();
    let pod = node.wait_for_pod("badhooks", Duration::from_secs(30), |p| {
        p["status"]["containerStatuses"][0]["restartCount"]
            .as_u64()
            .is_some_and(|n| n >= 1)
    });
    let web = &pod["status"]["containerStatuses"][0];
    assert!(web["restartCount"].as_u64().unwrap() >= 1, "{web}");
    let describe = node.podrun(&["describe", "pod", "badhooks"]).ok().stdout;
    for needle in [
        "FailedPostStartHook",
        "Exec lifecycle hook ([sh -c echo cannot start; exit 1]) for Container \"web\"",
    ] {
        assert!(describe.contains(needle), "{needle:?} in\n{describe}");
    }
    // A sandbox change stops the containers through their preStop hooks: the failed one is
    // reported and the stop goes on (the pod comes back in a new sandbox).
    node.kill_pause("badhooks");
    let deadline = Instant::now() + Duration::from_secs(30);
    let describe = loop {
        let describe = node.podrun(&["describe", "pod", "badhooks"]).ok().stdout;
        if describe.contains("FailedPreStopHook") || Instant::now() > deadline {
            break describe;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        describe.contains("FailedPreStopHook")
            && describe.contains("Exec lifecycle hook ([sh -c exit 7]) for Container \"stopper\""),
        "{describe}"
    );
    node.wait_for_pod("badhooks", Duration::from_secs(30), |p| {
        p["status"]["containerStatuses"][1]["state"]["running"].is_object()
    });
    node.podrun(&["delete", "badhooks", "--now"]).ok();
    node.assert_clean();
}
