//! `cargo bench --bench controller` (root): what keeping Deployments costs and how fast a
//! lost pod comes back.
//!
//! - rest: the controller (worker + keeper) PSS with 1 and with 10 Deployments of one light
//!   pod each, and over a quiet window (nothing changes) its wake-ups (context switches) and
//!   CPU. Targets (issue 21): under 1 MiB PSS per Deployment, no wake-up more often than once
//!   a second at rest;
//! - replacement: a pod's death (its supervisor killed with SIGKILL; or the pod deleted by
//!   name) to its replacement Running: the controller's part (death to the new pod's record)
//!   and the pod's own start (record to its container running), medians over the runs.
//!   Target: under 1 s plus the pod's own start.

#[path = "support/stats.rs"]
mod stats;

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::Node;
use stats::{median, ms};

fn deployment(name: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - {{name: c, image: {}, command: [sleep, '3600']}}\n",
        common::DEBUG_IMAGE
    )
}

fn runs() -> usize {
    std::env::var("PODRUN_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15)
}

fn window() -> Duration {
    let secs = std::env::var("PODRUN_BENCH_WINDOW")
        .ok()
        .and_then(|v| v.parse().ok());
    Duration::from_secs(secs.unwrap_or(30))
}

fn pid_file(node: &Node, file: &str) -> i32 {
    std::fs::read_to_string(node.root.path().join(file))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Field `name` of `pid`'s `smaps_rollup`, in KiB.
fn smaps_kib(pid: i32, name: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// PSS of `pid` in KiB.
fn pss_kib(pid: i32) -> u64 {
    smaps_kib(pid, "Pss:")
}

/// Private dirty memory of `pid` in KiB (heap, stack, written data): what it alone costs.
/// Its private clean pages are the binary's code that no other process touched, page cache
/// the kernel can drop at any time.
fn uss_kib(pid: i32) -> u64 {
    smaps_kib(pid, "Private_Dirty:")
}

/// (voluntary + involuntary context switches, utime + stime ticks) of `pid`.
fn wakeups_and_ticks(pid: i32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let switches = status
        .lines()
        .filter(|l| l.contains("ctxt_switches"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    (switches, ticks)
}

fn running_pods(node: &Node) -> Vec<serde_json::Value> {
    node.pods_json()
        .into_iter()
        .filter(|p| {
            p["metadata"]["deletionTimestamp"].is_null()
                && p["status"]["containerStatuses"][0]["state"]["running"].is_object()
        })
        .collect()
}

fn rest(node: &Node) {
    node.apply_manifest("d0.yaml", &deployment("d0")).ok();
    node.wait_for_pods(Duration::from_secs(20), |p| p.len() == 1);
    std::thread::sleep(Duration::from_secs(1));
    let (worker, keeper) = (
        pid_file(node, "controller.pid"),
        pid_file(node, "controller-keeper.pid"),
    );
    let one = pss_kib(worker) + pss_kib(keeper);
    let uss_one = uss_kib(worker) + uss_kib(keeper);
    for i in 1..10 {
        node.apply_manifest(&format!("d{i}.yaml"), &deployment(&format!("d{i}")))
            .ok();
    }
    node.wait_for_pods(Duration::from_secs(60), |p| running_count(p) == 10);
    std::thread::sleep(Duration::from_secs(2));
    let ten = pss_kib(worker) + pss_kib(keeper);
    let uss_ten = uss_kib(worker) + uss_kib(keeper);
    println!(
        "rest: controller private dirty memory (worker + keeper) {uss_one} KiB with 1 Deployment, {uss_ten} KiB with 10 (worker {} KiB, keeper {} KiB): {:.0} KiB for each one more",
        uss_kib(worker),
        uss_kib(keeper),
        (uss_ten as f64 - uss_one as f64) / 9.0
    );
    println!(
        "rest: controller PSS (worker + keeper) {one} KiB with 1 Deployment, {ten} KiB with 10: {:.0} KiB per Deployment at 10, {:.0} KiB for each one more (target < 1024)",
        ten as f64 / 10.0,
        (ten as f64 - one as f64) / 9.0
    );
    let (w0, t0) = wakeups_and_ticks(worker);
    let (k0, _) = wakeups_and_ticks(keeper);
    std::thread::sleep(window());
    let (w1, t1) = wakeups_and_ticks(worker);
    let (k1, _) = wakeups_and_ticks(keeper);
    let secs = window().as_secs_f64();
    println!(
        "rest: over {secs:.0} s with 10 Deployments and nothing changing: worker {} wake-ups ({:.2}/s), keeper {} ({:.2}/s), worker CPU {} ms (target: no wake-up more often than 1/s)",
        w1 - w0,
        (w1 - w0) as f64 / secs,
        k1 - k0,
        (k1 - k0) as f64 / secs,
        (t1 - t0) * 10
    );
    for i in 0..10 {
        node.podrun(&["delete", "deployment", &format!("d{i}"), "--now"])
            .ok();
    }
}

fn running_count(p: &[serde_json::Value]) -> usize {
    p.iter()
        .filter(|p| p["status"]["containerStatuses"][0]["state"]["running"].is_object())
        .count()
}

fn stamp(v: &serde_json::Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc)
}

/// One replacement: `kill` the pod (at the returned wall-clock instant), then the controller's
/// part and the pod's own start.
fn replace(node: &Node, kill: &dyn Fn(&str)) -> (Duration, Duration) {
    let old = running_pods(node);
    let old_name = old[0]["metadata"]["name"].as_str().unwrap().to_owned();
    let t0 = chrono::Utc::now();
    kill(&old_name);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = running_pods(node);
        if let Some(new) = now
            .iter()
            .find(|p| p["metadata"]["name"] != old_name.as_str())
        {
            // The record's times, to the microsecond (the API view rounds to seconds).
            let name = new["metadata"]["name"].as_str().unwrap();
            let path = node
                .root
                .path()
                .join(format!("pods/default_{name}/pod.json"));
            let record: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            let created = stamp(&record["created_at"]);
            let running = stamp(&record["containers"][0]["state"]["running"]["startedAt"]);
            let react = (created - t0).to_std().unwrap_or_default();
            let start = (running - created).to_std().unwrap_or_default();
            // The old pod gone too before the next run.
            while node.pods_json().len() > 1 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            return (react, start);
        }
        assert!(Instant::now() < deadline, "no replacement");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn replacement(node: &Node) {
    node.apply_manifest("r.yaml", &deployment("r")).ok();
    node.wait_for_pods(Duration::from_secs(20), |p| running_count(p) == 1);
    let kill_supervisor = |pod: &str| {
        let pid = node.supervisor_pid(pod);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    };
    let delete = |pod: &str| {
        node.podrun(&["delete", "pod", pod, "--grace-period=0"])
            .ok();
    };
    for (what, kill) in [
        ("supervisor killed", &kill_supervisor as &dyn Fn(&str)),
        ("pod deleted by name", &delete as &dyn Fn(&str)),
    ] {
        let (mut react, mut start) = (Vec::new(), Vec::new());
        for _ in 0..runs() {
            let (r, s) = replace(node, kill);
            react.push(r);
            start.push(s);
            std::thread::sleep(Duration::from_millis(200));
        }
        println!(
            "replacement ({what}, {} runs): death -> new pod made {:.1} ms (max {:.1}), its own start {:.1} ms: {:.1} ms in all (target: controller's part < 1000 ms)",
            react.len(),
            ms(median(react.clone())),
            ms(*react.iter().max().unwrap()),
            ms(median(start.clone())),
            ms(median(react.clone())) + ms(median(start))
        );
    }
    node.podrun(&["delete", "deployment", "r", "--now"]).ok();
}

fn main() {
    if !common::is_root() {
        println!("controller bench: skipped (needs root)");
        return;
    }
    let node = Node::new();
    let only = std::env::var("PODRUN_BENCH_CONTROLLER_ONLY").unwrap_or_default();
    if only.is_empty() || only == "rest" {
        rest(&node);
    }
    if only.is_empty() || only == "replacement" {
        replacement(&node);
    }
    node.assert_clean();
}
