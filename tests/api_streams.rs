//! Issue 22, the streaming subresources with the real kubectl: `kubectl exec` over SPDY/3.1
//! (1.27) and over WebSocket `v5.channel.k8s.io` (1.32, 1.33): stdout and stderr apart, stdin,
//! the exit code, a command that does not exist; `kubectl exec -it` through a pty (the
//! terminal's size at the start and after a resize, the exit code); `kubectl port-forward`
//! over SPDY (1.27) and through the WebSocket tunnel (1.33) to a server that listens on the
//! pod's loopback only; `kubectl attach` following a container's output with all three, the
//! server living on as each client is interrupted.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Node;
use common::kubectl::{Server, idle_pod, kubectl, kubectl_command, kubectls, running};

fn version(bin: &std::path::Path) -> String {
    bin.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn kubectl_execs_with_and_without_a_terminal() {
    require_root!();
    let node = Node::new();
    let server = Server::start(&node);
    let cache = tempfile::tempdir().unwrap();
    node.apply_manifest("idle.yaml", &idle_pod("podrun.local/debug:1", "true", ""))
        .ok();
    node.wait_for_pod("idle", Duration::from_secs(30), running);
    for bin in kubectls() {
        let v = version(&bin);
        let cache = cache.path().join(&v);
        let k = |args: &[&str]| kubectl(&node, &bin, &cache, args);

        let out = k(&[
            "exec",
            "idle",
            "-c",
            "c",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ]);
        assert_eq!(out.code, 3, "{v}: {out:?}");
        assert_eq!(out.stdout, "out\n", "{v}");
        assert!(out.stderr.starts_with("err\n"), "{v}: {}", out.stderr);
        assert!(
            out.stderr.contains("command terminated with exit code 3"),
            "{v}: {}",
            out.stderr
        );

        let mut child = kubectl_command(&node, &bin, &cache, &["exec", "-i", "idle", "--", "cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(b"hello\nthrough stdin\n").unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{v}: {out:?}");
        assert_eq!(out.stdout, b"hello\nthrough stdin\n", "{v}");

        let out = k(&["exec", "idle", "--", "no-such-program"]);
        assert_ne!(out.code, 0, "{v}");
        assert!(
            out.stderr.contains("no-such-program"),
            "{v}: {}",
            out.stderr
        );

        let out = k(&["exec", "idle", "-c", "nope", "--", "true"]);
        assert_ne!(out.code, 0, "{v}");
        assert!(
            out.stderr
                .contains("container nope is not valid for pod idle"),
            "{v}: {}",
            out.stderr
        );

        // -it through a pty of the test's, 40x100, resized to 50x120 mid-session.
        let script = r#"
import fcntl, os, pty, struct, sys, termios, time
def size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
pid, fd = pty.fork()
if pid == 0:
    size(0, 40, 100)
    os.execvp(sys.argv[1], sys.argv[1:])
out = b""
def until(text, limit=20):
    global out
    end = time.time() + limit
    while text not in out and time.time() < end:
        try:
            out += os.read(fd, 4096)
        except OSError:
            break
    return text in out
os.write(fd, b"busybox stty size; busybox tty\n")
until(b"40 100")
size(fd, 50, 120)
time.sleep(0.5)
os.write(fd, b"busybox stty size; exit 7\n")
until(b"50 120")
until(b"\x00never", 5)
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
        let mut c = node.command("python3");
        c.arg("-c").arg(script).arg(&bin).args([
            "--kubeconfig",
            common::kubectl::kubeconfig(&node).to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "exec",
            "-it",
            "idle",
            "--",
            "sh",
        ]);
        let out = common::Run::from(c.output().unwrap());
        assert!(out.stdout.contains("40 100"), "{v}: {out:?}");
        assert!(out.stdout.contains("/dev/pts/"), "{v}: {out:?}");
        assert!(out.stdout.contains("50 120"), "{v}: resize: {out:?}");
        assert_eq!(out.code, 7, "{v}: {out:?}");
    }
    // Every exec's child `podrun exec` is gone with its command.
    let execs: Vec<String> = node
        .processes()
        .into_iter()
        .map(common::cmdline)
        .filter(|c| c.contains("--report-fd"))
        .collect();
    assert!(execs.is_empty(), "{execs:?}");
    node.podrun(&["delete", "pod", "idle"]).ok();
    server.stop();
    node.assert_clean();
}

/// `kubectl attach` follows the container's output from now on (SPDY with 1.27, WebSocket
/// with 1.33), until interrupted.
#[test]
fn kubectl_attaches_to_the_containers_output() {
    require_root!();
    let node = Node::new();
    let server = Server::start(&node);
    let cache = tempfile::tempdir().unwrap();
    let pod = idle_pod("podrun.local/debug:1", "true", "").replace(
        "while true; do sleep 1 & wait; done",
        "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2 & wait; done",
    );
    node.apply_manifest("ticker.yaml", &pod).ok();
    node.wait_for_pod("idle", Duration::from_secs(30), running);
    let bins = kubectls();
    for bin in [&bins[2], &bins[1], &bins[0]] {
        let v = version(bin);
        let cache = cache.path().join(&v);
        let attach = kubectl_command(&node, bin, &cache, &["attach", "idle", "-c", "c"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let pid = attach.id().to_string();
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
        let out = attach.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let ticks: Vec<&str> = stdout.lines().filter(|l| l.starts_with("tick ")).collect();
        assert!(
            ticks.len() >= 3,
            "{v}: {stdout:?} {:?}",
            String::from_utf8_lossy(&out.stderr)
        );
        // From now on: not the log from the start.
        assert!(!ticks.contains(&"tick 1"), "{v}: {stdout}");
    }
    node.podrun(&["delete", "pod", "idle"]).ok();
    server.stop();
    node.assert_clean();
}

#[test]
fn kubectl_port_forwards_to_the_pods_loopback() {
    require_root!();
    let node = Node::new();
    let server = Server::start(&node);
    let cache = tempfile::tempdir().unwrap();
    let manifest = "apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: podrun.local/python:3.11-slim
    command: [python3, -m, http.server, '8080', --bind, 127.0.0.1]
    readinessProbe:
      exec: {command: [python3, -c, \"import socket; socket.create_connection(('127.0.0.1', 8080))\"]}
      periodSeconds: 1
";
    node.apply_manifest("web.yaml", manifest).ok();

    node.wait_for_pod("web", Duration::from_secs(30), running);
    let bins = kubectls();
    for (bin, local, closed) in [(&bins[0], "18080", "18090"), (&bins[2], "18081", "18091")] {
        let v = version(bin);
        let cache = cache.path().join(&v);
        let mut pf = kubectl_command(
            &node,
            bin,
            &cache,
            &[
                "port-forward",
                "pod/web",
                &format!("{local}:8080"),
                &format!("{closed}:9"),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        let mut line = String::new();
        let mut out = BufReader::new(pf.stdout.take().unwrap());
        out.read_line(&mut line).unwrap();
        assert!(
            line.starts_with(&format!("Forwarding from 127.0.0.1:{local} -> 8080")),
            "{v}: {line:?}"
        );
        let t0 = Instant::now();
        for path in ["/", "/etc/"] {
            let got = node
                .command("curl")
                .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
                .arg(format!("http://127.0.0.1:{local}{path}"))
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&got.stdout),
                "200",
                "{v}: {path}: {}",
                String::from_utf8_lossy(&got.stderr)
            );
        }
        eprintln!("{v}: two requests in {:?}", t0.elapsed());
        // A port nothing listens on in the pod: the connection closes, kubectl reports the
        // kubelet's error.
        let got = node
            .command("curl")
            .args(["-sS", &format!("http://127.0.0.1:{closed}/")])
            .output()
            .unwrap();
        assert!(!got.status.success(), "{v}");
        std::thread::sleep(Duration::from_millis(300));
        let pid = pf.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        let out = pf.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("error forwarding port 9 to pod web, uid ")
                && stderr.contains("failed to connect to localhost:9 inside namespace"),
            "{v}: {stderr}"
        );
    }

    node.podrun(&["delete", "pod", "web"]).ok();
    server.stop();
    node.assert_clean();
}
