//! Issue 17, defect 8: what `get -o json`, `describe` and `get` print matches what kubectl
//! shows for the same pod: imageID, conditions with lastTransitionTime, describe's Status as
//! the phase, `get -A` with nothing, and every missing image named.

mod common;

use std::time::Duration;

use common::Node;

const DEBUG_IMAGE: &str = "podrun.local/debug:1";

fn pod(name: &str, policy: &str, command: &str) -> String {
    format!(
        "{{apiVersion: v1, kind: Pod, metadata: {{name: {name}}}, spec: {{restartPolicy: {policy}, terminationGracePeriodSeconds: 1, containers: [{{name: c, image: '{DEBUG_IMAGE}', command: {command}}}]}}}}"
    )
}

#[test]
fn image_id_and_conditions_are_set() {
    require_root!();
    let node = Node::new();
    node.apply_manifest("p.yaml", &pod("p", "Always", "[sleep, '600']"))
        .ok();
    let id = node
        .podrun(&["images", "-q", "--no-trunc", DEBUG_IMAGE])
        .ok()
        .stdout;
    let id = id.trim().strip_prefix("sha256:").unwrap_or(id.trim());
    assert_eq!(id.len(), 64, "{id}");
    let v = node.pod_json("p");
    let status = &v["status"]["containerStatuses"][0];
    assert_eq!(
        status["imageID"],
        format!("podrun.local/debug@sha256:{id}"),
        "{status}"
    );
    let started = status["state"]["running"]["startedAt"].as_str().unwrap();
    let conditions = v["status"]["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 5);
    for c in conditions {
        let at = c["lastTransitionTime"].as_str().unwrap_or("");
        assert!(
            chrono::DateTime::parse_from_rfc3339(at).is_ok(),
            "no lastTransitionTime: {c}"
        );
        if c["type"] == "Ready" {
            assert_eq!(c["status"], "True");
            assert_eq!(at, started, "Ready turned True when the container started");
        }
    }
    node.podrun(&["delete", "p", "--now"]).ok();
    node.assert_clean();
}

#[test]
fn describe_shows_the_phase_where_get_shows_the_reason() {
    require_root!();
    let node = Node::new();
    let env = [("PODRUN_BACKOFF_BASE_MS", "3000")];
    let f = node.root.path().join("pods.yaml");
    std::fs::write(
        &f,
        format!(
            "{}\n---\n{}",
            pod("crash", "Always", "[sh, -c, 'exit 1']"),
            pod("done", "Never", "[sh, -c, 'exit 0']")
        ),
    )
    .unwrap();
    node.podrun_env(&["apply", "-f", f.to_str().unwrap()], &env)
        .ok();
    let word = |pod: &str| {
        node.podrun(&["get", "pods", pod, "--no-headers"])
            .stdout
            .split_whitespace()
            .nth(2)
            .unwrap_or("")
            .to_owned()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while (word("crash") != "CrashLoopBackOff" || word("done") != "Completed")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(word("crash"), "CrashLoopBackOff");
    assert_eq!(word("done"), "Completed");
    let status_line = |pod: &str| {
        node.podrun(&["describe", "pod", pod])
            .ok()
            .stdout
            .lines()
            .find(|l| l.starts_with("Status:"))
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    assert_eq!(status_line("crash"), "Running");
    assert_eq!(status_line("done"), "Succeeded");
    node.podrun(&["delete", "--all", "--now"]).ok();
    node.assert_clean();
}

#[test]
fn get_all_namespaces_with_no_pods_says_no_resources() {
    require_root!();
    let node = Node::new();
    let r = node.podrun(&["get", "pods", "-A"]).ok();
    assert_eq!(r.stderr.trim(), "No resources found");
    let r = node.podrun(&["get", "pods"]).ok();
    assert_eq!(r.stderr.trim(), "No resources found in default namespace.");
}

#[test]
fn every_missing_image_is_named() {
    require_root!();
    let node = Node::new();
    let manifest = format!(
        "{{apiVersion: v1, kind: Pod, metadata: {{name: two}}, spec: {{containers: [{{name: a, image: podrun.local/nope:1, command: [sh]}}, {{name: b, image: '{DEBUG_IMAGE}', command: [sh]}}, {{name: c, image: podrun.local/gone:2, command: [sh]}}]}}}}\n---\n\
         {{apiVersion: apps/v1, kind: Deployment, metadata: {{name: d}}, spec: {{replicas: 3, selector: {{matchLabels: {{app: d}}}}, template: {{metadata: {{labels: {{app: d}}}}, spec: {{containers: [{{name: x, image: podrun.local/absent:3, command: [sh]}}]}}}}}}}}"
    );
    let r = node.apply_manifest("bad.yaml", &manifest);
    assert_ne!(r.code, 0);
    for expect in [
        "pod/two: spec.containers[0].image: image \"podrun.local/nope:1\" not found",
        "pod/two: spec.containers[2].image: image \"podrun.local/gone:2\" not found",
        "deployment.apps/d: spec.template.spec.containers[0].image: image \"podrun.local/absent:3\" not found",
    ] {
        assert!(r.stderr.contains(expect), "{expect:?} not in {}", r.stderr);
    }
    assert_eq!(
        r.stderr.matches("absent:3\" not found").count(),
        1,
        "{}",
        r.stderr
    );
    assert_eq!(node.state_entries(), 0);
    assert!(node.processes().is_empty());
}
