//! Issue 22: a watch from a list's resourceVersion gets what changed after the list (as
//! client-go's reflector and `kubectl get -w` start one), and nothing when nothing did; a
//! pod's resourceVersion is its own (its record's last write), the same in a list and in
//! the watch's events.

mod common;

use std::time::Duration;

use common::Node;
use common::kubectl::{PORT, Server, idle_pod, running};
use serde_json::Value;

fn get(node: &Node, path: &str) -> String {
    let token = std::fs::read_to_string(node.root.path().join("api/token")).unwrap();
    let out = node
        .command("curl")
        .args(["-sk", "-H"])
        .arg(format!("Authorization: Bearer {}", token.trim()))
        .arg(format!("https://127.0.0.1:{PORT}{path}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_watch_from_a_lists_version_sees_what_changed_since() {
    require_root!();
    let node = Node::new();
    node.apply_manifest("idle.yaml", &idle_pod("podrun.local/debug:1", "true", ""))
        .ok();
    node.wait_for_pod("idle", Duration::from_secs(30), running);
    let server = Server::start(&node);
    let list: Value = serde_json::from_str(&get(&node, "/api/v1/namespaces/default/pods")).unwrap();
    let since = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let pod_rv = list["items"][0]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(pod_rv < since, "{pod_rv} {since}");
    // Nothing changed: the watch has nothing to say.
    let quiet = get(
        &node,
        &format!(
            "/api/v1/namespaces/default/pods?watch=true&resourceVersion={since}&timeoutSeconds=1"
        ),
    );
    assert_eq!(quiet, "", "{quiet}");
    // The container dies and restarts between the list and the watch.
    node.kill_first_container("idle");
    node.wait_for_pod("idle", Duration::from_secs(30), |p| {
        p["status"]["containerStatuses"][0]["restartCount"] == 1 && running(p)
    });
    let events = get(
        &node,
        &format!(
            "/api/v1/namespaces/default/pods?watch=true&resourceVersion={since}&timeoutSeconds=1"
        ),
    );
    let first: Value = serde_json::from_str(events.lines().next().unwrap_or("{}")).unwrap();
    assert_eq!(first["type"], "MODIFIED", "{events}");
    assert_eq!(first["object"]["metadata"]["name"], "idle");
    let rv = first["object"]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap();
    assert!(rv > since.as_str(), "{rv} {since}");
    let now: Value =
        serde_json::from_str(&get(&node, "/api/v1/namespaces/default/pods/idle")).unwrap();
    assert_eq!(now["metadata"]["resourceVersion"], rv);
    server.stop();
    node.podrun(&["delete", "pod", "idle"]).ok();
    node.assert_clean();
}
