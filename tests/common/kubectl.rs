//! `podrun serve` on a test node and the real kubectl against it: the oldest (1.27), the
//! PATH's (1.32) and the newest (1.33) binaries, each with its own cache directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Node, Run};

pub const PORT: &str = "16443";

/// The kubectl binaries: the oldest, the PATH's, the newest.
pub fn kubectls() -> Vec<PathBuf> {
    let path = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "readlink -f \"$(command -v kubectl)\""])
            .output()
            .expect("find kubectl")
            .stdout,
    )
    .unwrap();
    let path = PathBuf::from(path.trim());
    let dir = path.parent().unwrap().to_owned();
    vec![dir.join("kubectl.1.27"), path, dir.join("kubectl.1.33")]
}

/// `podrun serve --port PORT` on the node, once it prints its address.
pub struct Server {
    child: Child,
    pub started_in: Duration,
    /// Its stdout, kept open while it runs.
    _out: BufReader<std::process::ChildStdout>,
}

impl Server {
    pub fn start(node: &Node) -> Server {
        let t0 = Instant::now();
        let mut child = node
            .podrun_command(&["serve", "--port", PORT])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start podrun serve");
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut line).unwrap();
        assert!(line.starts_with("serving https://127.0.0.1:"), "{line:?}");
        Server {
            child,
            started_in: t0.elapsed(),
            _out: out,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM by PID (nsenter execs podrun: the child is the server), and its exit.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "serve ended with {status}");
    }
}

pub fn kubeconfig(node: &Node) -> PathBuf {
    node.root.path().join("api/kubeconfig")
}

/// `kubectl --kubeconfig <the server's> --cache-dir CACHE ARGS` on the node.
pub fn kubectl_command(
    node: &Node,
    bin: &Path,
    cache: &Path,
    args: &[&str],
) -> std::process::Command {
    let mut c = node.command(bin.to_str().unwrap());
    c.arg("--kubeconfig")
        .arg(kubeconfig(node))
        .arg("--cache-dir")
        .arg(cache)
        .args(args);
    c
}

pub fn kubectl(node: &Node, bin: &Path, cache: &Path, args: &[&str]) -> Run {
    Run::from(
        kubectl_command(node, bin, cache, args)
            .output()
            .expect("run kubectl"),
    )
}

/// A pod that idles in container `c` after `command`, stopping at once on SIGTERM.
pub fn idle_pod(image: &str, command: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: idle, labels: {{app: idle}}}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: c
    image: {image}
    command: [sh, -c, \"trap 'exit 0' TERM; {command}; while true; do sleep 1 & wait; done\"]
{extra}"
    )
}

/// Running with every container ready.
pub fn running(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
        && p["status"]["containerStatuses"]
            .as_array()
            .is_some_and(|l| l.iter().all(|c| c["ready"] == true))
}

/// The lines a running command prints, gathered by a thread.
pub struct Lines {
    child: Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Lines {
    pub fn spawn(mut command: std::process::Command) -> Lines {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn");
        let out = BufReader::new(child.stdout.take().unwrap());
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Lines { child, lines }
    }

    /// Wait until a line has all of `words`.
    pub fn wait_for(&self, words: &[&str], what: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let lines = self.lines.lock().unwrap().clone();
            if lines.iter().any(|l| words.iter().all(|w| l.contains(w))) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: no {words:?} in {lines:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kubectl get --raw PATH`, parsed.
pub fn get_raw(node: &Node, bin: &Path, cache: &Path, path: &str) -> Value {
    serde_json::from_str(
        &kubectl(node, bin, cache, &["get", "--raw", path])
            .ok()
            .stdout,
    )
    .expect("kubectl get --raw prints JSON")
}
