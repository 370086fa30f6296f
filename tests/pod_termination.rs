//! Issue 20, termination messages: the file at `terminationMessagePath` (default
//! /dev/termination-log), written by the container, is its run's message in
//! `state.terminated.message` / `lastState.terminated.message` and in `describe`; with
//! `FallbackToLogsOnError`, a failed run that wrote none has its log's tail instead.

mod common;

use std::time::Duration;

use common::Node;

#[test]
fn a_written_termination_message_shows_in_json_and_describe() {
    require_root!();
    let node = Node::new();
    let manifest = r#"apiVersion: v1
kind: Pod
metadata: {name: msg}
spec:
  restartPolicy: Never
  containers:
  - name: default-path
    image: podrun.local/debug:1
    command: [sh, -c, 'echo -n "disk full on /data" > /dev/termination-log; exit 3']
  - name: own-path
    image: podrun.local/debug:1
    securityContext: {runAsUser: 1000}
    terminationMessagePath: /tmp/my-message
    command: [sh, -c, 'echo "written as uid $(id -u)" > /tmp/my-message']
"#;
    node.apply_manifest("msg.yaml", manifest).ok();
    let pod = node.wait_for_pod("msg", Duration::from_secs(30), |p| {
        p["status"]["phase"] == "Failed"
    });
    let statuses = pod["status"]["containerStatuses"].as_array().unwrap();
    let terminated = |i: usize| statuses[i]["state"]["terminated"].clone();
    assert_eq!(terminated(0)["message"], "disk full on /data", "{pod}");
    assert_eq!(terminated(0)["exitCode"], 3);
    assert_eq!(
        terminated(1)["message"],
        "written as uid 1000\n",
        "a non-root container can write it: {pod}"
    );
    let spec = &pod["spec"]["containers"][0];
    assert_eq!(spec["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(spec["terminationMessagePolicy"], "File");
    let describe = node.podrun(&["describe", "pod", "msg"]).ok().stdout;
    assert!(
        describe.contains("      Message:      disk full on /data"),
        "{describe}"
    );
    node.podrun(&["delete", "msg", "--now"]).ok();
    node.assert_clean();
}

#[test]
fn fallback_to_logs_on_error_takes_the_log_tail_of_a_failed_run_only() {
    require_root!();
    let node = Node::new();
    let manifest = r#"apiVersion: v1
kind: Pod
metadata: {name: fallback}
spec:
  restartPolicy: OnFailure
  volumes: [{name: work, emptyDir: {}}]
  containers:
  - name: app
    image: podrun.local/debug:1
    terminationMessagePolicy: FallbackToLogsOnError
    volumeMounts: [{name: work, mountPath: /work}]
    command: [sh, -c, 'for i in $(seq 1 100); do echo line $i; done; if [ -e /work/again ]; then exit 0; fi; touch /work/again; exit 1']
"#;
    node.apply_manifest("fallback.yaml", manifest).ok();
    let pod = node.wait_for_pod("fallback", Duration::from_secs(40), |p| {
        p["status"]["phase"] == "Succeeded"
    });
    let status = &pod["status"]["containerStatuses"][0];
    let message = status["lastState"]["terminated"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("a message from the log: {status}"));
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(lines.len(), 80, "the last 80 lines: {message:?}");
    assert_eq!(lines[0], "line 21");
    assert_eq!(lines[79], "line 100");
    assert_eq!(status["lastState"]["terminated"]["exitCode"], 1);
    // The run that succeeded has no message: the fallback is for errors only.
    assert_eq!(status["state"]["terminated"]["exitCode"], 0, "{status}");
    assert!(
        status["state"]["terminated"]["message"].is_null(),
        "{status}"
    );
    node.podrun(&["delete", "fallback", "--now"]).ok();
    node.assert_clean();
}
