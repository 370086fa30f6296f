//! `cargo bench --bench cgroup_setup` (root): what cgroups add to one pod's apply and delete.
//!
//! For the sidecar pod's resources, each run does exactly what the supervisor does on apply:
//! detect the hierarchy, create `<parent>/pod<uid>` with the pod values, then the `pause`,
//! `web-server` and `curl-client` children with their values, opening each child's
//! `cgroup.procs` for the pre-exec hook. Then (timed separately) what delete does: remove the
//! children and the pod directory. The parent is `podrun-bench-<pid>`, removed at the end.
//!
//! A third number is the cost of *placing* a process: spawning `/bin/true` with the pre-exec
//! hook that writes its `cgroup.procs` (as the pause and every container are started), minus
//! the same spawn without it. On cgroup v1 a migration takes the cgroup_threadgroup_rwsem for
//! writing, which can wait for an RCU grace period: runs are spaced out as separate applies are.

#[path = "support/stats.rs"]
mod stats;

use stats::{median, ms};
use std::time::{Duration, Instant};

use podrun::cgroup::{self, Hierarchy, Limits, PodCgroup};
use podrun::resources::pod_resources;

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: the benchmark needs root");
        return;
    }
    let runs: usize = std::env::var("PODRUN_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/pods/sidecar.yaml");
    let plan = match podrun::spec::load_file(std::path::Path::new(manifest))
        .expect("load sidecar.yaml")
        .remove(0)
    {
        podrun::spec::Object::Pod(p) => p,
        _ => panic!("sidecar.yaml is a Pod"),
    };
    let resources = pod_resources(&plan);
    let root = std::path::Path::new("/sys/fs/cgroup");
    let parent = format!("podrun-bench-{}", std::process::id());
    let (mut create, mut remove) = (Vec::new(), Vec::new());
    let mut mode = None;
    for i in 0..runs {
        let uid = format!("bench-{i}");
        let t = Instant::now();
        let h = Hierarchy::detect(root).expect("detect cgroups");
        let pod = PodCgroup::create(&h, &parent, &uid, &cgroup::pod_limits(&resources))
            .expect("create pod cgroup");
        let mut fds = Vec::new();
        let pause = pod
            .create_child("pause", &Limits::best_effort())
            .expect("pause cgroup");
        fds.extend(pause.self_placement_fds().expect("open pause procs"));
        for (spec, r) in plan.containers.iter().zip(&resources) {
            let child = pod
                .create_child(&spec.name, &cgroup::container_limits(r))
                .expect("container cgroup");
            fds.extend(child.self_placement_fds().expect("open procs"));
        }
        create.push(t.elapsed());
        drop(fds);
        mode = Some(h.mode());
        let t = Instant::now();
        pod.kill_all().expect("kill (empty)");
        pod.remove().expect("remove pod cgroup");
        remove.push(t.elapsed());
    }
    let placement = placement_cost(&parent, runs, &resources);
    for dir in podrun_bench_parent_dirs(&parent) {
        let _ = std::fs::remove_dir(dir);
    }
    println!(
        "cgroup setup for the sidecar pod ({mode:?}, pod + pause + 2 containers), {runs} runs, medians:"
    );
    println!(
        "  apply: create + write limits + open placement files: {:>7.3} ms",
        ms(median(create))
    );
    println!(
        "  delete: kill (empty) + remove:                    {:>7.3} ms",
        ms(median(remove))
    );
    println!(
        "  placing one process (spawn into cgroup - plain):  {:>7.3} ms  ({:.3} vs {:.3} ms)",
        ms(placement.0.saturating_sub(placement.1)),
        ms(placement.0),
        ms(placement.1)
    );
}

/// Median spawn+wait of `/bin/true` placed into a fresh pod cgroup, and without placement.
fn placement_cost(
    parent: &str,
    runs: usize,
    resources: &[podrun::cgroup::ContainerResources],
) -> (Duration, Duration) {
    let h = Hierarchy::detect(std::path::Path::new("/sys/fs/cgroup")).expect("detect cgroups");
    let (mut placed, mut plain) = (Vec::new(), Vec::new());
    for i in 0..runs {
        std::thread::sleep(Duration::from_millis(50));
        let pod = PodCgroup::create(
            &h,
            parent,
            &format!("place-{i}"),
            &cgroup::pod_limits(resources),
        )
        .expect("pod cgroup");
        let child = pod
            .create_child("c", &Limits::best_effort())
            .expect("child");
        let fds = child.self_placement_fds().expect("procs fds");
        let mut cmd = std::process::Command::new("/bin/true");
        podrun::sys::before_exec(
            &mut cmd,
            podrun::sys::ChildSetup {
                cgroup_procs: fds.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect(),
                ..Default::default()
            },
        );
        let t = Instant::now();
        cmd.status().expect("spawn placed");
        placed.push(t.elapsed());
        drop(fds);
        std::thread::sleep(Duration::from_millis(50));
        let mut cmd = std::process::Command::new("/bin/true");
        podrun::sys::before_exec(&mut cmd, podrun::sys::ChildSetup::default());
        let t = Instant::now();
        cmd.status().expect("spawn plain");
        plain.push(t.elapsed());
        pod.remove().expect("remove");
    }
    (median(placed), median(plain))
}

/// The parent directory in every hierarchy (v2: one; v1: one per controller podrun uses).
fn podrun_bench_parent_dirs(parent: &str) -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        return vec![root.join(parent)];
    }
    ["cpu", "cpuacct", "cpu,cpuacct", "memory", "pids"]
        .iter()
        .map(|c| root.join(c).join(parent))
        .collect()
}
