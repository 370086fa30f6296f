//! Issue 22, podrun's own CLI: `podrun get pods -w --output-watch-events` prints a row per
//! change (ADDED as the pod is made, MODIFIED as it becomes ready and as its container is
//! killed and restarted, DELETED at delete) and `podrun wait` returns when the condition
//! holds (`condition=Ready`, `jsonpath={.status.phase}=Running`, `delete`), or fails at its
//! timeout with kubectl's message.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::Node;
use common::kubectl::idle_pod;

fn next_line(rx: &mpsc::Receiver<String>, what: &str) -> String {
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("no line for {what}"))
}

/// Lines until one contains `text`.
fn until(rx: &mpsc::Receiver<String>, text: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let l = next_line(rx, text);
        let hit = l.contains(text);
        seen.push(l);
        if hit {
            return seen;
        }
    }
}

#[test]
fn get_watch_and_wait_follow_the_pod() {
    require_root!();
    let node = Node::new();
    let mut watch = node
        .podrun_command(&["get", "pods", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = BufReader::new(watch.stdout.take().unwrap());
    std::thread::spawn(move || {
        for l in out.lines().map_while(|l| l.ok()) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let probe = "    readinessProbe: {exec: {command: [test, -e, /tmp/ready]}, periodSeconds: 1}\n";
    node.apply_manifest(
        "idle.yaml",
        &idle_pod("podrun.local/debug:1", "true", probe),
    )
    .ok();
    let header = next_line(&rx, "the header");
    assert!(
        header.starts_with("EVENT") && header.contains("NAME") && header.contains("RESTARTS"),
        "{header:?}"
    );
    let added = next_line(&rx, "ADDED");
    assert!(
        added.starts_with("ADDED") && added.contains("idle"),
        "{added:?}"
    );

    // Not ready yet: a wait with a short timeout fails as kubectl's does.
    let short = node
        .podrun_command(&["wait", "--for=condition=Ready", "pod/idle", "--timeout=1s"])
        .output()
        .unwrap();
    assert_eq!(short.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&short.stderr)
            .contains("timed out waiting for the condition on pods/idle"),
        "{short:?}"
    );
    let t0 = Instant::now();
    let waiting = node
        .podrun_command(&["wait", "--for=condition=Ready", "-l", "app=idle", "pods"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    node.exec("idle", "c", &["touch", "/tmp/ready"]).ok();
    let waited = waiting.wait_with_output().unwrap();
    assert!(waited.status.success());
    assert_eq!(
        String::from_utf8_lossy(&waited.stdout),
        "pod/idle condition met\n"
    );
    eprintln!("ready and waited in {:?}", t0.elapsed());
    let lines = until(&rx, "1/1");
    assert!(lines.iter().all(|l| l.starts_with("MODIFIED")), "{lines:?}");
    let phase = node
        .podrun(&["wait", "--for=jsonpath={.status.phase}=Running", "pod/idle"])
        .ok();
    assert_eq!(phase.stdout, "pod/idle condition met\n");

    // A killed container: MODIFIED rows up to its restart, counted with its age.
    node.kill_first_container("idle");
    let lines = until(&rx, " ago)");
    assert!(
        lines.last().unwrap().contains("1 (") && lines.iter().all(|l| l.starts_with("MODIFIED")),
        "{lines:?}"
    );

    let deleting = node
        .podrun_command(&["wait", "--for=delete", "pod/idle", "--timeout=30s"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    node.podrun(&["delete", "pod", "idle"]).ok();
    let lines = until(&rx, "DELETED");
    assert!(lines.last().unwrap().contains("idle"), "{lines:?}");
    let deleted = deleting.wait_with_output().unwrap();
    assert!(deleted.status.success());
    assert_eq!(
        String::from_utf8_lossy(&deleted.stdout),
        "pod/idle deleted\n"
    );

    let bad = node
        .podrun_command(&["wait", "--for=ready", "pod/x"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unrecognized condition: \"ready\""));
    let pid = watch.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let _ = watch.wait();
    node.assert_clean();
}
