//! `cargo bench --bench api_serve` (root): `podrun serve` with 250 pods on the node (issue 22's
//! performance targets).
//!
//! - list: `kubectl get pods` against the server and `podrun get pods`, interleaved round by
//!   round (each goes first every other round), wall time per command, medians and the ratio;
//!   and the server's own time for the list request (curl's time from the request sent to the
//!   first byte of the answer, TLS set up before), as JSON and as the Table kubectl asks for;
//! - watch latency: a watch open on the pods (curl, streaming), a pod's container killed: the
//!   time from the kill to its MODIFIED event (the supervisor's reaction, its record written,
//!   the server's inotify wake-up and re-list of 250 pods, the event sent), median over
//!   rounds;
//! - memory: the server's resident set (VmRSS) and PSS after all of it.
//!
//! Targets: under 20 ms of server time for the list of 250 pods, under 50 ms of watch
//! latency, under 20 MiB resident. `PODRUN_BENCH_PODS` (default 250) and
//! `PODRUN_BENCH_RUNS` (default 15) change the sizes.

#[path = "support/stats.rs"]
mod stats;

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::Node;
use common::kubectl::{Server, kubeconfig};
use stats::{median, ms};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn manifest(pods: usize) -> String {
    (0..pods)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: p{i:04}, labels: {{app: bench}}}}\n\
                 spec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    \
                 image: podrun.local/debug:1\n    command: [sh, -c, \"trap 'exit 0' TERM; while true; do sleep 1 & wait; done\"]\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

fn timed(mut c: Command) -> Duration {
    let t = Instant::now();
    let out = c.output().expect("run");
    assert!(out.status.success(), "{out:?}");
    t.elapsed()
}

fn token(node: &Node) -> String {
    std::fs::read_to_string(node.root.path().join("api/token"))
        .expect("token")
        .trim()
        .to_owned()
}

/// The server's time for one GET: first byte minus the TLS handshake's end (seconds).
fn server_time(node: &Node, token: &str, accept: &str, path: &str) -> Duration {
    let out = node
        .command("curl")
        .args([
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{time_appconnect} %{time_starttransfer}",
        ])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", &format!("Accept: {accept}")])
        .arg(format!("https://127.0.0.1:{}{path}", common::kubectl::PORT))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().unwrap());
    let (tls, first) = (it.next().unwrap(), it.next().unwrap());
    Duration::from_secs_f64((first - tls).max(0.0))
}

fn main() {
    if !common::is_root() {
        eprintln!("api_serve: needs root, skipped");
        return;
    }
    let pods = env_or("PODRUN_BENCH_PODS", 250);
    let runs = env_or("PODRUN_BENCH_RUNS", 15);
    let node = Node::with_cidr("10.213.0.0/22");
    let t = Instant::now();
    node.apply_manifest("bench.yaml", &manifest(pods)).ok();
    node.wait_for_pods(Duration::from_secs(300), |p| {
        p.len() == pods && p.iter().all(|p| p["status"]["phase"] == "Running")
    });
    eprintln!("{pods} pods running in {:?}", t.elapsed());
    let server = Server::start(&node);
    eprintln!("serve started in {:?}", server.started_in);
    let cache = tempfile::tempdir().unwrap();
    let kubectl_get = || {
        let mut c = node.command("kubectl");
        c.arg("--kubeconfig")
            .arg(kubeconfig(&node))
            .arg("--cache-dir")
            .arg(cache.path())
            .args(["get", "pods"])
            .stdout(Stdio::null());
        c
    };
    let podrun_get = || {
        let mut c = node.podrun_command(&["get", "pods"]);
        c.stdout(Stdio::null());
        c
    };
    timed(kubectl_get()); // discovery cached
    let (mut k, mut p) = (Vec::new(), Vec::new());
    for round in 0..runs {
        if round % 2 == 0 {
            k.push(timed(kubectl_get()));
            p.push(timed(podrun_get()));
        } else {
            p.push(timed(podrun_get()));
            k.push(timed(kubectl_get()));
        }
    }
    let (km, pm) = (median(k.clone()), median(p.clone()));
    println!(
        "get pods, {pods} pods: kubectl via serve {:.1} ms (min {:.1}), podrun get {:.1} ms (min {:.1}), ratio {:.2}",
        ms(km),
        ms(*k.iter().min().unwrap()),
        ms(pm),
        ms(*p.iter().min().unwrap()),
        ms(km) / ms(pm)
    );
    let token = token(&node);
    for (what, accept) in [
        ("JSON", "application/json"),
        (
            "Table",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        ),
    ] {
        let times: Vec<Duration> = (0..runs)
            .map(|_| {
                server_time(
                    &node,
                    &token,
                    accept,
                    "/api/v1/namespaces/default/pods?limit=500",
                )
            })
            .collect();
        println!(
            "server time, list of {pods} pods as {what}: median {:.1} ms (min {:.1}, max {:.1})",
            ms(median(times.clone())),
            ms(*times.iter().min().unwrap()),
            ms(*times.iter().max().unwrap())
        );
    }

    // Watch latency: a streaming watch, a container killed, its MODIFIED event.
    let mut watch = node
        .command("curl")
        .args(["-skN", "-H", &format!("Authorization: Bearer {token}")])
        .arg(format!(
            "https://127.0.0.1:{}/api/v1/namespaces/default/pods?watch=true&resourceVersion=1",
            common::kubectl::PORT
        ))
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl watch");
    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    let out = BufReader::new(watch.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in out.lines().map_while(|l| l.ok()) {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            let name = v["object"]["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if tx
                .send((
                    Instant::now(),
                    format!("{} {name}", v["type"].as_str().unwrap_or_default()),
                ))
                .is_err()
            {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    while rx.try_recv().is_ok() {}
    let mut latencies = Vec::new();
    for round in 0..runs.min(pods) {
        let name = format!("p{round:04}");
        let pid = node.inspect(&name)["containers"][0]["pid"]
            .as_i64()
            .unwrap();
        let t0 = Instant::now();
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        let want = format!("MODIFIED {name}");
        let deadline = t0 + Duration::from_secs(10);
        while let Ok((at, event)) =
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if event == want {
                latencies.push(at - t0);
                break;
            }
        }
        // Let the restart and its events settle before the next round.
        std::thread::sleep(Duration::from_millis(1500));
        while rx.try_recv().is_ok() {}
    }
    println!(
        "watch latency, container killed -> MODIFIED ({pods} pods listed per change): median {:.1} ms (min {:.1}, max {:.1}, {} rounds)",
        ms(median(latencies.clone())),
        ms(*latencies.iter().min().unwrap()),
        ms(*latencies.iter().max().unwrap()),
        latencies.len()
    );
    let _ = watch.kill();
    let _ = watch.wait();

    let pid = server.pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    for field in ["RssAnon", "RssFile"] {
        if let Some(l) = status.lines().find(|l| l.starts_with(field)) {
            println!(
                "serve {}",
                l.split_whitespace().collect::<Vec<_>>().join(" ")
            );
        }
    }
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .unwrap_or("VmRSS: ?")
        .to_owned();
    let pss = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Pss:"))
        .unwrap_or("Pss: ?")
        .to_owned();
    println!(
        "serve memory with {pods} pods: {} / {}",
        rss.split_whitespace().skip(1).collect::<Vec<_>>().join(" "),
        pss.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
    );
    server.stop();
    let t = Instant::now();
    node.podrun(&["delete", "--all"]).ok();
    eprintln!("deleted in {:?}", t.elapsed());
}
