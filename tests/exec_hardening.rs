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

/// Drives `cmd` on a pty of its own, as a person at a terminal would: the outer terminal
/// starts at 30x100, `steps` are (text to type, text to wait for in what follows; `RESIZE` first
/// resizes the outer terminal to 40x120). Prints the whole output, then `EXIT <code>`.
const TERMINAL_DRIVER: &str = r#"
import fcntl, json, os, select, struct, subprocess, sys, termios, time
cmd, env, steps = json.loads(sys.argv[1])
master, slave = os.openpty()
def size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
size(slave, 30, 100)
p = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env,
                     start_new_session=True, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
os.close(slave)
out = b""
def read_until(text, since=0, timeout=10):
    global out
    end = time.time() + timeout
    while text.encode() not in out[since:] and time.time() < end:
        r, _, _ = select.select([master], [], [], 0.1)
        if r:
            try:
                out += os.read(master, 65536)
            except OSError:
                return
for typed, expect in steps:
    if typed.startswith("RESIZE"):
        size(master, 40, 120)
        typed = typed[len("RESIZE"):]
    mark = len(out)
    os.write(master, typed.encode())
    read_until(expect, mark)
try:
    code = p.wait(timeout=10)
except subprocess.TimeoutExpired:
    p.kill(); code = "timeout"
read_until("\0", timeout=0.3)
sys.stdout.write(out.decode(errors="replace"))
print(f"\nEXIT {code}")
"#;

fn at_terminal(node: &Node, args: &[&str], steps: &[(&str, &str)]) -> (String, String) {
    let cmd = node.podrun_command(args);
    let argv: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            env.insert(k.to_string_lossy().into(), v.to_string_lossy().into());
        }
    }
    let input = serde_json::json!([argv, env, steps]).to_string();
    let out = Command::new("python3")
        .args(["-c", TERMINAL_DRIVER, &input])
        .output()
        .expect("run python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = text.rsplit("EXIT ").next().unwrap_or("").trim().to_owned();
    (text, code)
}

#[test]
fn exec_with_a_terminal_gives_the_process_a_pty_of_its_own() {
    require_root!();
    let node = Node::new();
    sleeper(&node, "tty");
    let (out, code) = at_terminal(
        &node,
        &["exec", "-it", "tty", "-c", "c", "--", "sh", "-i"],
        &[
            ("tty\n", "/dev/pts/"),
            ("stty size\n", "30 100"),
            ("RESIZEstty size\n", "40 120"),
            ("sleep 100 &\n", "# "),
            ("jobs\n", "Running"),
            ("kill %1\n", "# "),
            ("exit 7\n", "\0"),
        ],
    );
    assert_eq!(code, "7", "the shell's exit code comes back: {out}");
    assert!(
        out.contains("/dev/pts/0"),
        "tty names the container's pty: {out}"
    );
    assert!(!out.contains("not a tty"), "{out}");
    assert!(out.contains("30 100"), "the window size is passed: {out}");
    assert!(out.contains("40 120"), "a resize is passed on: {out}");
    assert!(out.contains("Running"), "job control works: {out}");
    assert!(
        !out.contains("job control turned off") && !out.contains("Cannot set tty process group"),
        "{out}"
    );

    // Without a terminal on stdin, -t says so (kubectl's words) and runs without one.
    let r = node.podrun(&["exec", "-t", "tty", "-c", "c", "--", "tty"]);
    assert!(
        r.stderr
            .contains("Unable to use a TTY - input is not a terminal or the right kind of file"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout.trim(), "not a tty");
    // Without -i the process's stdin is /dev/null.
    let r = node
        .exec("tty", "c", &["sh", "-c", "readlink /proc/self/fd/0"])
        .ok();
    assert_eq!(r.stdout.trim(), "/dev/null");
    node.podrun(&["delete", "tty", "--now"]).ok();
    node.assert_clean();
}
