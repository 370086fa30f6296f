//! `cargo bench --bench pod_lifecycle` (root): medians for the sidecar pod on a throwaway node.
//!
//! - apply: `podrun apply` until it returns (sandbox ready, both containers started);
//! - web: from the start of apply until the web server answers HTTP on the pod IP;
//! - delete: `podrun delete --now` until it returns (every object gone).
//!
//! Three settings: the sidecar alone on the node (every apply also creates the bridge and the
//! nft table, every delete removes them), next to a resident pod (the node network stays), and
//! next to it without the web server's 200m CPU limit (its CFS quota, 20 ms per 100 ms period,
//! is what bounds "web" with the limit). The floor for "web" is the same python command started
//! directly, without podrun, answering on the node's loopback.
//!
//! podrun runs in the node's namespaces through a pre-exec `setns` (no nsenter in the timing);
//! the HTTP probe runs on a thread that joined the node's network namespace.
//!
//! The node's state root (records, logs, the containers' overlay upper directories) is a tmpfs
//! mounted in the node's own mount namespace, as `/run/podrun` is on a standard Debian or
//! Ubuntu host (/run is a tmpfs there). `PODRUN_BENCH_STATE=disk` keeps it on the disk of the
//! temporary directory instead: on a journal-less ext4 (this VM's root filesystem) every file
//! podrun creates first skips the inodes deleted in the last 30 s, which grows with the churn.

#[path = "support/stats.rs"]
mod stats;

#[path = "../tests/common/mod.rs"]
mod common;

use stats::{median, ms};
use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Node;
use nix::sched::{CloneFlags, setns};

/// The podrun binary measured: this build's, or `PODRUN_BENCH_BINARY` (another build, with
/// its podrun-init and podrun-pause beside it).
fn binary() -> std::path::PathBuf {
    std::env::var_os("PODRUN_BENCH_BINARY")
        .filter(|v| !v.is_empty())
        .map(Into::into)
        .unwrap_or_else(|| common::PODRUN.into())
}

/// The builds measured: [`binary`], then `PODRUN_BENCH_COMPARE` (another build) if set. Two
/// builds are measured run by run in turn (each going first every other round), so that a
/// drifting machine speed (CPU steal, page cache) weighs on both alike.
fn binaries() -> Vec<std::path::PathBuf> {
    let mut all = vec![binary()];
    if let Some(other) = std::env::var_os("PODRUN_BENCH_COMPARE").filter(|v| !v.is_empty()) {
        all.push(other.into());
    }
    all
}

/// Run podrun in the node; returns how long it took, whether it succeeded and its stdout.
fn podrun(node: &Node, args: &[&str]) -> (Duration, bool, String) {
    podrun_of(&binary(), node, args)
}

fn podrun_of(binary: &Path, node: &Node, args: &[&str]) -> (Duration, bool, String) {
    let net = File::open(format!("/proc/{}/ns/net", node.pid())).unwrap();
    let mnt = File::open(format!("/proc/{}/ns/mnt", node.pid())).unwrap();
    let mut cmd = Command::new(binary);
    cmd.args(args)
        .env("PODRUN_ROOT", node.root.path())
        .env("PODRUN_CGROUP_PARENT", &node.cgroup_parent)
        .env("PODRUN_IMAGE_ROOT", common::image_root())
        .stdout(Stdio::piped())
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
    let out = cmd.output().unwrap();
    let took = t.elapsed();
    (
        took,
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The pod IP from apply's summary (`network    10.244.0.3/24 gw ...`): no second podrun
/// process competes with the containers' start while "web" is measured.
fn ip_from_summary(summary: &str) -> String {
    summary
        .lines()
        .find_map(|l| l.trim().strip_prefix("network"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|cidr| cidr.split('/').next())
        .unwrap_or_else(|| panic!("no network line in apply's output:\n{summary}"))
        .to_owned()
}

/// Wait (on a thread inside the node's netns) until GET / answers; returns when it did.
fn wait_http(node: &Node, ip: String) -> Instant {
    let net = File::open(format!("/proc/{}/ns/net", node.pid())).unwrap();
    std::thread::spawn(move || {
        setns(&net, CloneFlags::CLONE_NEWNET).unwrap();
        poll_http(&ip)
    })
    .join()
    .unwrap()
}

fn poll_http(ip: &str) -> Instant {
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
}

struct Medians {
    apply: Duration,
    web: Duration,
    delete: Duration,
}

/// `runs` rounds of apply -> web answers -> delete of pod `sidecar` from `file`, for each of
/// `builds` in turn; their medians in that order.
fn measure(
    node: &Node,
    builds: &[std::path::PathBuf],
    file: &Path,
    runs: usize,
    settle: Duration,
) -> Vec<Medians> {
    let file = file.to_str().unwrap();
    let mut times = vec![(Vec::new(), Vec::new(), Vec::new()); builds.len()];
    for round in 0..runs {
        // Each build goes first every other round: the first of a round measured slower.
        let mut order: Vec<_> = builds.iter().zip(&mut times).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for (build, (apply, web, delete)) in order {
            std::thread::sleep(settle);
            let start = Instant::now();
            let (d, ok, summary) = podrun_of(build, node, &["apply", "-f", file]);
            assert!(ok, "apply failed");
            apply.push(d);
            web.push(wait_http(node, ip_from_summary(&summary)) - start);
            let (d, ok, _) = podrun_of(build, node, &["delete", "sidecar", "--now"]);
            assert!(ok, "delete failed");
            delete.push(d);
        }
    }
    times
        .into_iter()
        .map(|(apply, web, delete)| Medians {
            apply: median(apply),
            web: median(web),
            delete: median(delete),
        })
        .collect()
}

/// The web server's own command, started directly in the node's network namespace (no podrun,
/// no cgroup limit): from spawn until it answers on the node's loopback.
fn python_floor(node: &Node, manifest: &Path, runs: usize) -> Duration {
    let objects = podrun::spec::load_file_in(manifest, None).expect("manifest");
    let Some(podrun::spec::Object::Pod(plan)) = objects.into_iter().next() else {
        panic!("not a pod");
    };
    let web = &plan.containers[0];
    let net = File::open(format!("/proc/{}/ns/net", node.pid())).unwrap();
    let mut argv: Vec<String> = web.command.iter().chain(&web.args).cloned().collect();
    // The interpreter the image was built from (rootfs/build.sh copies the host's), not
    // whatever `python3` a PATH shim (pyenv) would start.
    if argv[0] == "python3" {
        argv[0] = "/usr/bin/python3".into();
    }
    let times = std::thread::spawn(move || {
        setns(&net, CloneFlags::CLONE_NEWNET).unwrap();
        let mut times = Vec::new();
        for _ in 0..runs {
            let start = Instant::now();
            let mut child = Command::new(&argv[0])
                .args(&argv[1..])
                .env("POD_IP", "127.0.0.1")
                .env("HOSTNAME", "floor")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start python3");
            times.push(poll_http("127.0.0.1") - start);
            let _ = child.kill();
            let _ = child.wait();
        }
        times
    })
    .join()
    .unwrap();
    median(times)
}

/// Mount a tmpfs over the node's state root, in the node's mount namespace only (it goes with
/// the node).
fn state_on_tmpfs(node: &Node) {
    let status = Command::new("nsenter")
        .args([
            "-t",
            &node.pid().to_string(),
            "-m",
            "mount",
            "-t",
            "tmpfs",
            "tmpfs",
        ])
        .arg(node.root.path())
        .status()
        .expect("run nsenter");
    assert!(status.success(), "mount a tmpfs on the node's state root");
}

/// `pods/sidecar.yaml` with a different pod name, or without the web server's CPU limit.
fn variant(dir: &Path, name: &str, edit: impl Fn(&str) -> String) -> std::path::PathBuf {
    let text = std::fs::read_to_string(common::repo_file("pods/sidecar.yaml")).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, edit(&text)).unwrap();
    path
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
    let state = if std::env::var("PODRUN_BENCH_STATE").is_ok_and(|v| v == "disk") {
        "disk (temporary directory)"
    } else {
        state_on_tmpfs(&node);
        "tmpfs"
    };
    let dir = tempfile::tempdir().unwrap();
    let sidecar = common::repo_file("pods/sidecar.yaml");
    let resident = variant(dir.path(), "resident.yaml", |t| {
        t.replace("  name: sidecar\n", "  name: resident\n")
    });
    let unlimited = variant(dir.path(), "unlimited.yaml", |t| {
        t.replace("      limits:\n        cpu: 200m\n", "      limits:\n")
    });
    assert_ne!(
        std::fs::read_to_string(&unlimited).unwrap(),
        std::fs::read_to_string(&sidecar).unwrap(),
        "the CPU limit to remove is not in pods/sidecar.yaml any more"
    );
    // Warm-up: pages in the binaries and images.
    podrun(&node, &["apply", "-f", sidecar.to_str().unwrap()]);
    podrun(&node, &["delete", "sidecar", "--now"]);

    let builds = binaries();
    let alone = measure(&node, &builds, &sidecar, runs, settle);
    let (_, ok, _) = podrun(&node, &["apply", "-f", resident.to_str().unwrap()]);
    assert!(ok, "apply resident pod failed");
    let beside = measure(&node, &builds, &sidecar, runs, settle);
    let free = measure(&node, &builds, &unlimited, runs, settle);
    podrun(&node, &["delete", "resident", "--now"]);
    let floor = python_floor(&node, &sidecar, runs);

    for (i, build) in builds.iter().enumerate() {
        println!("[{}] {}", i + 1, build.display());
    }
    println!(
        "sidecar pod, {runs} runs, {} ms after the previous delete, state root on {state}, medians (ms):",
        settle.as_millis()
    );
    println!("  {:<44} {:>8} {:>8} {:>8}", "", "apply", "web", "delete");
    for (label, all) in [
        ("alone (node network made and removed)", &alone),
        ("beside a resident pod", &beside),
        ("beside a resident pod, no web CPU limit", &free),
    ] {
        for (i, m) in all.iter().enumerate() {
            let label = if builds.len() > 1 {
                format!("[{}] {label}", i + 1)
            } else {
                label.to_owned()
            };
            println!(
                "  {label:<44} {:>8.2} {:>8.2} {:>8.2}",
                ms(m.apply),
                ms(m.web),
                ms(m.delete)
            );
        }
    }
    println!(
        "  {:<44} {:>8} {:>8.2}",
        "python alone (same command, no podrun)",
        "",
        ms(floor)
    );
}
