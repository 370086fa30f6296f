//! Issue 17, defects 1 and 5: `podrun exec` hands the container nothing of the caller's but
//! stdio, and `-t` gives the process a terminal of its own.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::Node;

const DEBUG_IMAGE: &str = "podrun.local/debug:1";

fn sleeper(node: &Node, name: &str) {
    node.apply_manifest(
        &format!("{name}.yaml"),
        &format!(
            "{{apiVersion: v1, kind: Pod, metadata: {{name: {name}}}, spec: {{terminationGracePeriodSeconds: 1, containers: [{{name: c, image: '{DEBUG_IMAGE}', command: [sleep, '600']}}]}}}}"
        ),
    )
    .ok();
}

/// `cmd` run through `sh -c 'exec 7</etc; exec "$@"'`: the caller holds the node's /etc open.
fn with_etc_open(cmd: &Command) -> Command {
    let mut sh = Command::new("sh");
    sh.args(["-c", "exec 7</etc; exec \"$@\"", "sh"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            sh.env(k, v);
        }
    }
    sh
}

#[test]
fn exec_passes_no_descriptor_of_the_caller_into_the_container() {
    require_root!();
    let node = Node::new();
    sleeper(&node, "fds");
    let mut holder =
        with_etc_open(&node.podrun_command(&["exec", "fds", "-c", "c", "--", "sleep", "3"]))
            .stdout(Stdio::null())
            .spawn()
            .expect("start exec");
    // Wait until the exec'd sleep runs in the container, then look at every process there.
    let r = node.eventually("true", Duration::from_millis(1));
    assert_eq!(r.code, 0);
    let mut seen = String::new();
    for _ in 0..100 {
        seen = node
            .exec(
                "fds",
                "c",
                &["sh", "-c", "ps -o pid,args | grep -c 'sleep 3'"],
            )
            .stdout;
        if seen.trim() != "0" && seen.trim() != "1" {
            break;
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    let fds = node
        .exec(
            "fds",
            "c",
            &[
                "sh",
                "-c",
                "for p in /proc/[0-9]*; do for f in $p/fd/*; do echo \"$p ${f##*/} $(readlink $f)\"; done; done; \
                 for p in /proc/[0-9]*; do [ -e $p/fd/7 ] && cat $p/fd/7/hostname; done; true",
            ],
        )
        .ok()
        .stdout;
    let _ = holder.wait();
    let leaked: Vec<&str> = fds
        .lines()
        .filter(|l| {
            let mut parts = l.split_whitespace();
            let (_, fd, target) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
            // The shell running this loop has its own pipes and the dir it reads; the rest
            // must hold 0-2 only.
            !matches!(fd, Some("0" | "1" | "2"))
                && !target.starts_with("pipe:")
                && !target.starts_with("/proc")
        })
        .collect();
    assert!(
        leaked.is_empty(),
        "descriptors beyond stdio in the container: {leaked:?}\n{fds}\n(ps saw {seen})"
    );
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    assert!(
        host.trim().is_empty() || !fds.contains(host.trim()),
        "the node's /etc was readable: {fds}"
    );
    // The container's own process holds exactly stdio.
    let pid = node.pod_json("fds")["status"]["containerStatuses"][0]["pid"]
        .as_i64()
        .unwrap();
    let mut own: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    own.sort();
    assert_eq!(own, ["0", "1", "2"]);
    node.podrun(&["delete", "fds", "--now"]).ok();
    node.assert_clean();
}
