//! `cargo bench --bench pod_lifecycle` (root): medians for the sidecar pod on a throwaway node.
//!
//! - apply: `podrun apply` until it returns (sandbox ready, both containers started);
//! - web: from the start of apply until the web server answers HTTP on the pod IP;
//! - delete: `podrun delete --now` until it returns (every object gone).
//!
//! podrun runs in the node's namespaces through a pre-exec `setns` (no nsenter in the timing);
//! the HTTP probe runs on a thread that joined the node's network namespace.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Node;
use nix::sched::{CloneFlags, setns};

fn podrun(node: &Node, args: &[&str]) -> (Duration, bool) {
    let net = File::open(format!("/proc/{}/ns/net", node.pid())).unwrap();
    let mnt = File::open(format!("/proc/{}/ns/mnt", node.pid())).unwrap();
    let mut cmd = Command::new(common::PODRUN);
    cmd.args(args)
        .env("PODRUN_ROOT", node.root.path())
        .env("PODRUN_CGROUP_PARENT", &node.cgroup_parent)
        .env("PODRUN_IMAGE_ROOT", common::image_root())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // SAFETY: setns(2) is async-signal-safe; the files stay open in the parent during spawn.
    unsafe {
        cmd.pre_exec(move || {
            setns(&net, CloneFlags::CLONE_NEWNET)?;
            setns(&mnt, CloneFlags::CLONE_NEWNS)?;
            Ok(())
        });
    }
    let t = Instant::now();
    let ok = cmd.status().unwrap().success();
    (t.elapsed(), ok)
}

/// Wait (on a thread inside the node's netns) until GET / answers; returns when it did.
fn wait_http(node: &Node, ip: String) -> Instant {
    let net = File::open(format!("/proc/{}/ns/net", node.pid())).unwrap();
    std::thread::spawn(move || {
        setns(&net, CloneFlags::CLONE_NEWNET).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect_timeout(
                &format!("{ip}:80").parse().unwrap(),
                Duration::from_millis(200),
            ) {
                let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
                let mut buf = String::new();
                if s.read_to_string(&mut buf).is_ok() && buf.starts_with("HTTP/1.0 200") {
                    return Instant::now();
                }
            }
            if std::env::var_os("PODRUN_BENCH_DEBUG").is_some() {
                eprintln!("probe miss at {:?}", deadline - Instant::now());
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        panic!("web server never answered on {ip}");
    })
    .join()
    .unwrap()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if !common::is_root() {
        eprintln!("skipped: the benchmark needs root");
        return;
    }
    let runs: usize = std::env::var("PODRUN_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    // The kernel frees a deleted pod's network namespace asynchronously (cleanup_net holds the
    // rtnl lock for tens of ms), which stalls the next pod's netns creation: let it settle.
    let settle = Duration::from_millis(
        std::env::var("PODRUN_BENCH_SETTLE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200),
    );
    let node = Node::new();
    let file = common::repo_file("pods/sidecar.yaml");
    let (mut apply, mut web, mut delete) = (Vec::new(), Vec::new(), Vec::new());
    // Warm-up: creates the bridge and nft table, pages in the binaries.
    podrun(&node, &["apply", "-f", file.to_str().unwrap()]);
    podrun(&node, &["delete", "sidecar", "--now"]);
    for _ in 0..runs {
        std::thread::sleep(settle);
        let start = Instant::now();
        let (d, ok) = podrun(&node, &["apply", "-f", file.to_str().unwrap()]);
        assert!(ok, "apply failed");
        apply.push(d);
        let ip = node.pod_ip("sidecar");
        web.push(wait_http(&node, ip) - start);
        let (d, ok) = podrun(&node, &["delete", "sidecar", "--now"]);
        assert!(ok, "delete failed");
        delete.push(d);
    }
    println!(
        "sidecar pod, {runs} runs, {} ms after the previous delete, medians:",
        settle.as_millis()
    );
    println!(
        "  apply (sandbox + network + both containers started): {:>7.2} ms",
        median(apply).as_secs_f64() * 1e3
    );
    println!(
        "  apply start -> web server answers on the pod IP:     {:>7.2} ms",
        median(web).as_secs_f64() * 1e3
    );
    println!(
        "  delete (every object gone):                          {:>7.2} ms",
        median(delete).as_secs_f64() * 1e3
    );
}
