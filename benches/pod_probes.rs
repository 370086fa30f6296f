//! `cargo bench --bench pod_probes` (root): what probes and init containers cost a real pod.
//!
//! - probes: a pod of 10 containers, each with a startup (httpGet), a liveness (httpGet) and a
//!   readiness (tcpSocket) probe at periodSeconds 1, against one Python server in the pod that
//!   logs the monotonic time of every connection it accepts, by port and path. Over a window
//!   of steady state: the supervisor's CPU time (all its threads, /proc/PID/task/*/schedstat) per probe
//!   attempt the server saw, and the period jitter: how far each liveness attempt came from
//!   one period after the one before (median, p99, max);
//! - init gap: a pod of 5 init containers that exit at once, then the app: from one init
//!   container's exit (finishedAt in the record, to the microsecond) to the next one's start
//!   (startedAt), median and max over the runs.
//!
//! Targets (issue 20): under 0.1 ms of supervisor CPU per exec-free probe, p99 jitter under
//! 50 ms, an init gap under 5 ms.

#[path = "support/stats.rs"]
mod stats;

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::Node;

const CONTAINERS: usize = 10;
/// The steady-state window (`PODRUN_BENCH_WINDOW` seconds, default 30).
fn window() -> Duration {
    let secs = std::env::var("PODRUN_BENCH_WINDOW")
        .ok()
        .and_then(|v| v.parse().ok());
    Duration::from_secs(secs.unwrap_or(30))
}

/// One Python process serving ports 8000..8009: HTTP 200 to a request, and a log line
/// `<port> <path or -> <monotonic>` per connection (a tcpSocket probe sends nothing).
const SERVER: &str = r#"
import selectors, socket, sys, time
sel = selectors.DefaultSelector()
for port in range(8000, 8010):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(64); s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, ("listen", port))
while True:
    for key, _ in sel.select():
        kind, port = key.data
        if kind == "listen":
            c, _ = key.fileobj.accept(); c.setblocking(False)
            sel.register(c, selectors.EVENT_READ, ("conn", (port, time.monotonic())))
            continue
        c = key.fileobj; port, at = port
        try:
            data = c.recv(4096)
        except BlockingIOError:
            continue
        path = data.split(b" ")[1].decode() if data.startswith(b"GET ") else "-"
        if data:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        print(port, path, "%.6f" % at, flush=True)
        sel.unregister(c); c.close()
"#;

fn probes_pod() -> String {
    let mut containers = String::new();
    for i in 0..CONTAINERS {
        let port = 8000 + i;
        let command = if i == 0 {
            format!("[python3, -c, {}]", serde_json::to_string(SERVER).unwrap())
        } else {
            "[sleep, '3600']".into()
        };
        let image = if i == 0 {
            common::PYTHON_IMAGE
        } else {
            common::DEBUG_IMAGE
        };
        containers.push_str(&format!(
            "  - name: c{i}\n    image: {image}\n    command: {command}\n    \
             startupProbe: {{httpGet: {{path: /start, port: {port}}}, periodSeconds: 1, failureThreshold: 30}}\n    \
             livenessProbe: {{httpGet: {{path: /live, port: {port}}}, periodSeconds: 1}}\n    \
             readinessProbe: {{tcpSocket: {{port: {port}}}, periodSeconds: 1}}\n"
        ));
    }
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: probes}}\nspec:\n  containers:\n{containers}"
    )
}

/// utime + stime of every thread of `pid`, in seconds.
fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks
        / nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .unwrap()
            .unwrap() as f64
}

/// The server's lines `(port, path, monotonic)`.
fn server_log(node: &Node) -> Vec<(u16, String, f64)> {
    let out = node.podrun(&["logs", "probes", "-c", "c0"]).ok().stdout;
    out.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((
                f.next()?.parse().ok()?,
                f.next()?.to_owned(),
                f.next()?.parse().ok()?,
            ))
        })
        .collect()
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn probes(node: &Node) {
    node.apply_manifest("probes.yaml", &probes_pod()).ok();
    node.wait_for_pod("probes", Duration::from_secs(60), |p| {
        p["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
    });
    std::thread::sleep(Duration::from_secs(2));
    let pid = node.supervisor_pid("probes");
    let (cpu0, seen0) = (cpu_seconds(pid), server_log(node).len());
    std::thread::sleep(window());
    let (cpu1, log) = (cpu_seconds(pid), server_log(node));
    let attempts = log.len() - seen0;
    let cpu_ms = (cpu1 - cpu0) * 1e3;
    println!(
        "probes: {attempts} attempts in {:.0} s (startup probes done: liveness httpGet + readiness tcpSocket), supervisor CPU {cpu_ms:.1} ms = {:.4} ms per probe (target < 0.1)",
        window().as_secs_f64(),
        cpu_ms / attempts as f64
    );
    let mut jitter = Vec::new();
    for port in 8000..8000 + CONTAINERS as u16 {
        let times: Vec<f64> = log[seen0..]
            .iter()
            .filter(|(p, path, _)| *p == port && path == "/live")
            .map(|(_, _, t)| *t)
            .collect();
        jitter.extend(times.windows(2).map(|w| ((w[1] - w[0]) - 1.0).abs() * 1e3));
    }
    println!(
        "probes: liveness period jitter over {} intervals: median {:.2} ms, p99 {:.2} ms, max {:.2} ms (target p99 < 50)",
        jitter.len(),
        percentile(jitter.clone(), 0.5),
        percentile(jitter.clone(), 0.99),
        percentile(jitter, 1.0)
    );
    node.podrun(&["delete", "probes", "--now"]).ok();
}

fn init_gap(node: &Node, runs: usize) {
    let inits: String = (0..5)
        .map(|i| {
            format!(
                "  - {{name: i{i}, image: {}, command: ['true']}}\n",
                common::DEBUG_IMAGE
            )
        })
        .collect();
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: inits}}\nspec:\n  initContainers:\n{inits}  containers:\n  - {{name: app, image: {}, command: [sleep, '3600']}}\n",
        common::DEBUG_IMAGE
    );
    let mut gaps = Vec::new();
    for _ in 0..runs {
        node.apply_manifest("inits.yaml", &manifest).ok();
        node.wait_for_pod("inits", Duration::from_secs(30), |p| {
            p["status"]["containerStatuses"][0]["state"]["running"].is_object()
        });
        let record = node.root.path().join("pods/default_inits/pod.json");
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
        let time = |v: &serde_json::Value| {
            chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap()
        };
        let containers = record["containers"].as_array().unwrap();
        for pair in containers.windows(2) {
            let finished = time(&pair[0]["state"]["terminated"]["finishedAt"]);
            let next = &pair[1]["state"];
            let started = next["terminated"]["startedAt"]
                .as_str()
                .or(next["running"]["startedAt"].as_str())
                .map(|s| chrono::DateTime::parse_from_rfc3339(s).unwrap())
                .unwrap();
            gaps.push((started - finished).to_std().unwrap_or_default());
        }
        node.podrun(&["delete", "inits", "--now"]).ok();
    }
    let max = *gaps.iter().max().unwrap();
    println!(
        "init gap (exit of one init container -> start of the next, or of the app): median {:.2} ms, max {:.2} ms over {} gaps (target < 5)",
        stats::ms(stats::median(gaps.clone())),
        stats::ms(max),
        gaps.len()
    );
}

fn main() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("pod_probes: needs root (skipped)");
        return;
    }
    let node = Node::new();
    if std::env::var_os("PODRUN_BENCH_PROBES_ONLY").is_none() {
        init_gap(&node, 10);
    }
    probes(&node);
    node.assert_clean();
}
