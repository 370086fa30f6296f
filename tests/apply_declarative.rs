//! Issue 21 (first part): declarative `apply`. Applied again, an unchanged object is left
//! alone (same processes, same restart counts); a pod's changed image restarts that
//! container only, with the new image; any other pod change is refused with the API
//! server's message and changes nothing; an unchanged Deployment keeps its pods.

mod common;

use std::time::Duration;

use common::Node;
use serde_json::Value;

const ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Pod `web`: two containers that idle and end at once on SIGTERM.
fn web_pod(image_a: &str, sleep_b: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {{app: web}}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: a
    image: {image_a}
    command: [sh, -c, \"trap 'exit 0' TERM; while true; do sleep 1 & wait; done\"]
  - name: b
    image: podrun.local/debug:1
    command: [sh, -c, \"trap 'exit 0' TERM; while true; do sleep {sleep_b} & wait; done\"]
"
    )
}

/// (name, pid, restartCount) of every container of `pod`, its supervisor's and pause's pids.
fn processes(node: &Node, pod: &str) -> (Vec<(String, i64, u64)>, i64, i64) {
    let doc = node.inspect(pod);
    let containers = doc["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["pid"].as_i64().unwrap_or(0),
                c["restartCount"].as_u64().unwrap(),
            )
        })
        .collect();
    let supervisor = doc["supervisor"]["pid"].as_i64().unwrap();
    let pause = doc["sandbox"]["pause"]["pid"].as_i64().unwrap();
    (containers, supervisor, pause)
}

fn all_running(pod: &Value) -> bool {
    pod["status"]["containerStatuses"]
        .as_array()
        .is_some_and(|l| l.iter().all(|c| c["state"]["running"].is_object()))
}

fn status<'a>(pod: &'a Value, container: &str) -> &'a Value {
    pod["status"]["containerStatuses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == container)
        .unwrap()
}

#[test]
fn a_pod_applied_twice_is_unchanged_and_keeps_its_processes() {
    require_root!();
    let node = Node::new();
    let manifest = web_pod("podrun.local/debug:1", "1");
    let first = node.apply_manifest("web.yaml", &manifest).ok();
    assert!(
        first.stdout.starts_with("pod/web created"),
        "{}",
        first.stdout
    );
    node.wait_for_pod("web", Duration::from_secs(20), all_running);
    let before = processes(&node, "web");
    let pod = node.pod_json("web");
    let applied = pod["metadata"]["annotations"][ANNOTATION].as_str().unwrap();
    let applied: Value = serde_json::from_str(applied).unwrap();
    assert_eq!(applied["metadata"]["name"], "web");
    assert_eq!(applied["metadata"]["namespace"], "default");
    assert_eq!(
        applied["spec"]["containers"][0]["image"],
        "podrun.local/debug:1"
    );

    let again = node.apply_manifest("web.yaml", &manifest).ok();
    assert_eq!(again.stdout, "pod/web unchanged\n");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(processes(&node, "web"), before);

    // A label more: metadata, configured without touching a process.
    let labelled = manifest.replace("{app: web}", "{app: web, tier: front}");
    let out = node.apply_manifest("web.yaml", &labelled).ok();
    assert_eq!(out.stdout, "pod/web configured\n");
    let pod = node.pod_json("web");
    assert_eq!(pod["metadata"]["labels"]["tier"], "front");
    assert!(
        pod["metadata"]["annotations"][ANNOTATION]
            .as_str()
            .unwrap()
            .contains("\"tier\":\"front\"")
    );
    assert_eq!(processes(&node, "web"), before);
    let again = node.apply_manifest("web.yaml", &labelled).ok();
    assert_eq!(again.stdout, "pod/web unchanged\n");

    node.podrun(&["delete", "web", "--now"]).ok();
    node.assert_clean();
}

#[test]
fn an_image_change_restarts_that_container_with_the_new_image() {
    require_root!();
    let node = Node::new();
    node.apply_manifest("web.yaml", &web_pod("podrun.local/debug:1", "1"))
        .ok();
    node.wait_for_pod("web", Duration::from_secs(20), all_running);
    let (before, supervisor, pause) = processes(&node, "web");
    let python = node.exec("web", "a", &["sh", "-c", "command -v python3"]);
    assert_ne!(python.code, 0, "the debug image has python3: {python:?}");

    let changed = web_pod("podrun.local/python:3.11-slim", "1");
    let out = node.apply_manifest("web.yaml", &changed).ok();
    assert_eq!(out.stdout, "pod/web configured\n");
    let pod = node.wait_for_pod("web", Duration::from_secs(20), |p| {
        status(p, "a")["restartCount"] == 1 && all_running(p)
    });
    let a = status(&pod, "a");
    assert_eq!(a["restartCount"], 1, "{pod:#}");
    assert_eq!(a["image"], "podrun.local/python:3.11-slim");
    assert_eq!(
        pod["spec"]["containers"][0]["image"],
        "podrun.local/python:3.11-slim"
    );
    assert_eq!(status(&pod, "b")["restartCount"], 0);
    let (after, supervisor_after, pause_after) = processes(&node, "web");
    assert_ne!(after[0].1, before[0].1, "container a was not restarted");
    assert_eq!(after[1], before[1], "container b was touched");
    assert_eq!((supervisor_after, pause_after), (supervisor, pause));
    // The new image's root filesystem: python is in it, and not in the debug image.
    let python = node.exec("web", "a", &["sh", "-c", "command -v python3"]);
    assert_eq!(python.code, 0, "{python:?}");
    let describe = node.podrun(&["describe", "pod", "web"]).ok().stdout;
    assert!(
        describe.contains("Container a definition changed, will be restarted"),
        "{describe}"
    );
    let annotation = pod["metadata"]["annotations"][ANNOTATION].as_str().unwrap();
    assert!(annotation.contains("python:3.11-slim"), "{annotation}");
    // The same file once more: unchanged.
    let again = node.apply_manifest("web.yaml", &changed).ok();
    assert_eq!(again.stdout, "pod/web unchanged\n");

    node.podrun(&["delete", "web", "--now"]).ok();
    node.assert_clean();
}

#[test]
fn a_command_change_is_refused_and_changes_nothing() {
    require_root!();
    let node = Node::new();
    let manifest = web_pod("podrun.local/debug:1", "1");
    node.apply_manifest("web.yaml", &manifest).ok();
    node.wait_for_pod("web", Duration::from_secs(20), all_running);
    let before = processes(&node, "web");
    let annotation_before = node.pod_json("web")["metadata"]["annotations"][ANNOTATION].clone();

    // The command of b and, in the same file, an allowed image change of a: all refused.
    let out = node.apply_manifest("web.yaml", &web_pod("podrun.local/python:3.11-slim", "2"));
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("The Pod \"web\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("spec.containers[1].command"),
        "{}",
        out.stderr
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(processes(&node, "web"), before);
    let pod = node.pod_json("web");
    assert_eq!(
        pod["metadata"]["annotations"][ANNOTATION],
        annotation_before
    );
    assert_eq!(status(&pod, "a")["image"], "podrun.local/debug:1");

    // Applied with a new pod in the same file: the new pod is not made either.
    let two = format!(
        "{}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: other}}\nspec: {{containers: [{{name: c, image: podrun.local/debug:1, command: [sleep, '60']}}]}}\n",
        web_pod("podrun.local/debug:1", "2")
    );
    let out = node.apply_manifest("two.yaml", &two);
    assert_ne!(out.code, 0, "{out:?}");
    assert_ne!(node.podrun(&["get", "pod", "other"]).code, 0);

    node.podrun(&["delete", "web", "--now"]).ok();
    node.assert_clean();
}

#[test]
fn a_deployment_applied_twice_is_unchanged_and_keeps_its_pods() {
    require_root!();
    let node = Node::new();
    let manifest = "apiVersion: apps/v1
kind: Deployment
metadata: {name: idle}
spec:
  replicas: 2
  selector: {matchLabels: {app: idle}}
  template:
    metadata: {labels: {app: idle}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: c
        image: podrun.local/debug:1
        command: [sh, -c, \"trap 'exit 0' TERM; while true; do sleep 1 & wait; done\"]
";
    let first = node.apply_manifest("idle.yaml", manifest).ok();
    assert!(
        first.stdout.starts_with("deployment.apps/idle created"),
        "{}",
        first.stdout
    );
    let names = || -> Vec<String> {
        let out = node.podrun(&["get", "pods", "-o", "name"]).ok().stdout;
        out.lines().map(str::to_owned).collect()
    };
    let pods = names();
    assert_eq!(pods.len(), 2, "{pods:?}");
    let before: Vec<_> = pods
        .iter()
        .map(|p| processes(&node, p.trim_start_matches("pod/")))
        .collect();

    let again = node.apply_manifest("idle.yaml", manifest).ok();
    assert_eq!(again.stdout, "deployment.apps/idle unchanged\n");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(names(), pods);
    let after: Vec<_> = pods
        .iter()
        .map(|p| processes(&node, p.trim_start_matches("pod/")))
        .collect();
    assert_eq!(after, before);

    // Scaled in the file: configured, and the controller makes the third pod.
    let scaled = manifest.replace("replicas: 2", "replicas: 3");
    let out = node.apply_manifest("idle.yaml", &scaled).ok();
    assert_eq!(out.stdout, "deployment.apps/idle configured\n");
    node.wait_for_pods(Duration::from_secs(15), |pods| {
        pods.iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count()
            == 3
    });
    let now = names();
    assert!(pods.iter().all(|p| now.contains(p)), "{pods:?} {now:?}");

    let f = node.root.path().join("idle.yaml");
    node.podrun(&["delete", "-f", f.to_str().unwrap(), "--now"])
        .ok();
    node.assert_clean();
    // Deleted, it is created again.
    let third = node.apply_manifest("idle.yaml", manifest).ok();
    assert!(
        third.stdout.starts_with("deployment.apps/idle created"),
        "{}",
        third.stdout
    );
    node.podrun(&["delete", "-f", f.to_str().unwrap(), "--now"])
        .ok();
    node.assert_clean();
}

#[test]
fn under_restart_policy_never_the_updated_container_still_restarts() {
    require_root!();
    let node = Node::new();
    let pod = |image: &str| {
        format!(
            "{{apiVersion: v1, kind: Pod, metadata: {{name: once}}, spec: {{restartPolicy: Never, terminationGracePeriodSeconds: 5, containers: [{{name: c, image: '{image}', command: [sh, -c, \"trap 'exit 0' TERM; while true; do sleep 1 & wait; done\"]}}]}}}}"
        )
    };
    node.apply_manifest("once.yaml", &pod("podrun.local/debug:1"))
        .ok();
    node.wait_for_pod("once", Duration::from_secs(20), all_running);
    let out = node
        .apply_manifest("once.yaml", &pod("podrun.local/python:3.11-slim"))
        .ok();
    assert_eq!(out.stdout, "pod/once configured\n");
    let pod = node.wait_for_pod("once", Duration::from_secs(20), |p| {
        status(p, "c")["restartCount"] == 1 && all_running(p)
    });
    assert!(all_running(&pod), "{pod:#}");
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(status(&pod, "c")["image"], "podrun.local/python:3.11-slim");
    node.podrun(&["delete", "once", "--now"]).ok();
    node.assert_clean();
}

/// Issue 21, acceptance 1: `apply pods/deployment.yaml` twice.
#[test]
fn the_example_deployment_applied_twice_is_unchanged() {
    require_root!();
    let node = Node::new();
    let first = node.apply("pods/deployment.yaml").ok();
    assert!(
        first.stdout.starts_with("deployment.apps/web created"),
        "{}",
        first.stdout
    );
    let pods: Vec<String> = node
        .podrun(&["get", "pods", "-o", "name"])
        .ok()
        .stdout
        .lines()
        .map(|l| l.trim_start_matches("pod/").to_owned())
        .collect();
    assert_eq!(pods.len(), 3, "{pods:?}");
    let before: Vec<_> = pods.iter().map(|p| processes(&node, p)).collect();
    let again = node.apply("pods/deployment.yaml").ok();
    assert_eq!(again.stdout, "deployment.apps/web unchanged\n");
    std::thread::sleep(Duration::from_millis(500));
    let after: Vec<_> = pods.iter().map(|p| processes(&node, p)).collect();
    assert_eq!(after, before);
    let file = common::repo_file("pods/deployment.yaml");
    node.podrun(&["delete", "-f", file.to_str().unwrap(), "--now"])
        .ok();
    node.assert_clean();
}
