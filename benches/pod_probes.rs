//! `cargo bench --bench pod_probes` (root): what probes and init containers cost a real pod.
//!
//! - probes: a pod of 10 containers, each with a startup (httpGet), a liveness (httpGet) and a
//!   readiness (tcpSocket) probe at periodSeconds 1, against one Python server in the pod that
//!   logs the monotonic time of every connection it accepts, by port and path. Over a window
//!   of steady state: the supervisor's CPU time (all its threads: utime + stime of
//!   /proc/PID/stat) per probe attempt the server saw, and the period jitter: how far each
//!   liveness attempt came from one period after the one before (median, p99, max);
//! - init gap: a pod of 5 init containers that exit at once, then the app: from one init
//!   container's exit (finishedAt in the record, to the microsecond) to the next one's start
//!   (startedAt), median and max over the runs.
//!
//! Targets (issue 20): under 0.1 ms of supervisor CPU per exec-free probe, p99 jitter under
//! 50 ms, an init gap under 5 ms.
//!
//! `PODRUN_BENCH_RUNS` probes pods one after the other (medians at the end);
//! `PODRUN_BENCH_COMPARE=OTHER` measures another build's podrun (its podrun-init and
//! podrun-pause beside it) run by run in turn with this one, each going first every other
//! round, and prints the ratio of the medians; `PODRUN_BENCH_PERF=1` also counts the
//! supervisor's CPU with `perf stat -e task-clock` (to the nanosecond: /proc counts whole
//! ticks on some kernels, 4 or 10 ms, so a 60 s window holds only some 30 of them). The
//! softirq work of the pod's packets is charged to whichever process runs when it is done:
//! a busy machine moves some of it to ksoftirqd, so compare builds only in the same run.

#[path = "support/stats.rs"]
mod stats;

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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

/// The podrun binaries measured: this build's, then `PODRUN_BENCH_COMPARE` (another build,
/// with its podrun-init and podrun-pause beside it) if set, run by run in turn.
fn binaries() -> Vec<PathBuf> {
    let mut all = vec![PathBuf::from(common::PODRUN)];
    if let Some(other) = std::env::var_os("PODRUN_BENCH_COMPARE").filter(|v| !v.is_empty()) {
        all.push(other.into());
    }
    all
}

/// `binary <args>` on the node (what `Node::podrun` does, with another build).
fn podrun_with(node: &Node, binary: &Path, args: &[&str]) {
    let mut c = node.command(binary.to_str().unwrap());
    c.env("PODRUN_ROOT", node.root.path())
        .env("PODRUN_POD_CIDR", &node.cidr)
        .env("PODRUN_CGROUP_PARENT", &node.cgroup_parent)
        .env("PODRUN_IMAGE_ROOT", common::image_root())
        .args(args);
    common::Run::from(c.output().expect("run podrun")).ok();
}

/// `perf stat -e task-clock` of every thread of `pid` for `window`, in ms (on-CPU time to the
/// nanosecond, where /proc counts in ticks), when `PODRUN_BENCH_PERF` is set and perf runs.
fn perf_task_clock(pid: i32, window: Duration) -> Option<std::thread::JoinHandle<Option<f64>>> {
    std::env::var_os("PODRUN_BENCH_PERF")?;
    let child = Command::new("perf")
        .args(["stat", "-x", ",", "-e", "task-clock", "-p"])
        .arg(pid.to_string())
        .arg("--")
        .arg("sleep")
        .arg(format!("{}", window.as_secs_f64()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    Some(std::thread::spawn(move || {
        let out = child.wait_with_output().ok()?;
        let text = String::from_utf8_lossy(&out.stderr);
        text.lines()
            .find(|l| l.contains("task-clock"))?
            .split(',')
            .next()?
            .parse()
            .ok()
    }))
}

/// One measurement of the probes pod run by `binary`.
struct ProbesRun {
    cpu_per_probe: f64,
    perf_per_probe: Option<f64>,
    jitter_p99: f64,
}

fn probes(node: &Node, binary: &Path) -> ProbesRun {
    let manifest = node.root.path().join("probes.yaml");
    std::fs::write(&manifest, probes_pod()).unwrap();
    podrun_with(node, binary, &["apply", "-f", manifest.to_str().unwrap()]);
    node.wait_for_pod("probes", Duration::from_secs(60), |p| {
        p["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
    });
    std::thread::sleep(Duration::from_secs(2));
    let pid = node.supervisor_pid("probes");
    let (cpu0, seen0) = (cpu_seconds(pid), server_log(node).len());
    let perf = perf_task_clock(pid, window());
    std::thread::sleep(window());
    let (cpu1, log) = (cpu_seconds(pid), server_log(node));
    let perf_ms = perf.and_then(|p| p.join().ok().flatten());
    let attempts = log.len() - seen0;
    let cpu_ms = (cpu1 - cpu0) * 1e3;
    let perf_text = perf_ms.map_or(String::new(), |ms| {
        format!(
            "; perf task-clock {ms:.1} ms = {:.4} ms per probe",
            ms / attempts as f64
        )
    });
    println!(
        "probes [{}]: {attempts} attempts in {:.0} s (startup probes done: liveness httpGet + readiness tcpSocket), supervisor CPU {cpu_ms:.1} ms = {:.4} ms per probe (target < 0.1){perf_text}",
        binary.display(),
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
    let p99 = percentile(jitter.clone(), 0.99);
    println!(
        "probes [{}]: liveness period jitter over {} intervals: median {:.2} ms, p99 {p99:.2} ms, max {:.2} ms (target p99 < 50)",
        binary.display(),
        jitter.len(),
        percentile(jitter.clone(), 0.5),
        percentile(jitter, 1.0)
    );
    podrun_with(node, binary, &["delete", "probes", "--now"]);
    ProbesRun {
        cpu_per_probe: cpu_ms / attempts as f64,
        perf_per_probe: perf_ms.map(|ms| ms / attempts as f64),
        jitter_p99: p99,
    }
}

/// `PODRUN_BENCH_RUNS` rounds (default 1) of every build, each going first every other round;
/// the medians per build.
fn probes_rounds(node: &Node) {
    let runs: usize = std::env::var("PODRUN_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let builds = binaries();
    let mut results: Vec<Vec<ProbesRun>> = builds.iter().map(|_| Vec::new()).collect();
    for round in 0..runs {
        let mut order: Vec<usize> = (0..builds.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            results[i].push(probes(node, &builds[i]));
        }
    }
    if runs == 1 && builds.len() == 1 {
        return;
    }
    let mut medians = Vec::new();
    for (binary, runs) in builds.iter().zip(&results) {
        let cpu = percentile(runs.iter().map(|r| r.cpu_per_probe).collect(), 0.5);
        let p99 = percentile(runs.iter().map(|r| r.jitter_p99).collect(), 0.5);
        let perf: Vec<f64> = runs.iter().filter_map(|r| r.perf_per_probe).collect();
        let perf_median = (!perf.is_empty()).then(|| percentile(perf, 0.5));
        println!(
            "probes [{}] over {} runs: median supervisor CPU {cpu:.4} ms per probe{}, median jitter p99 {p99:.2} ms",
            binary.display(),
            runs.len(),
            perf_median.map_or(String::new(), |p| format!(" (perf task-clock {p:.4} ms)"))
        );
        medians.push((cpu, perf_median));
    }
    if let [(a, pa), (b, pb)] = medians[..] {
        println!(
            "probes: this build / compared = {:.3} (supervisor CPU){}",
            a / b,
            match (pa, pb) {
                (Some(pa), Some(pb)) => format!(", {:.3} (perf task-clock)", pa / pb),
                _ => String::new(),
            }
        );
    }
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
    probes_rounds(&node);
    node.assert_clean();
}
