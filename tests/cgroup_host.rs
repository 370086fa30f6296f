//! Root integration tests on a cgroup v1 (hybrid) host, like the project's dev machine.
//! Each test skips with a printed reason when not root or not on v1.
//!
//! Run: `cargo test --test cgroup_host` (as root).

#[path = "vm/common.rs"]
mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use common::*;
use podrun::cgroup::{ContainerResources, Limits, Mode, PodCgroup, container_limits, pod_limits};

#[test]
fn v1_pod_lifecycle() {
    let Some(h) = require("v1_pod_lifecycle", Mode::V1) else {
        return;
    };
    let parent = TestParent::new(&h);
    let pod = PodCgroup::create(&h, &parent.name, "u1", &pod_limits(&[web()])).unwrap();
    let pause = pod.create_child("pause", &Limits::best_effort()).unwrap();
    let child = pod.create_child("web", &container_limits(&web())).unwrap();

    let mut sleep = Gated::spawn(&["sleep", "300"]);
    sleep.place_and_release(&child);
    let pid = sleep.pid();

    let want = format!("/{}/podu1/web", parent.name);
    let cg = proc_cgroup(pid);
    for ctrl in ["cpu", "cpuacct", "devices", "memory", "pids"] {
        assert!(
            cg.lines()
                .any(|l| l.split(':').nth(1) == Some(ctrl) && l.ends_with(&format!(":{want}"))),
            "{ctrl} not {want} in:\n{cg}"
        );
    }

    let cpu = h.root().join("cpu").join(&parent.name).join("podu1/web");
    let mem = h.root().join("memory").join(&parent.name).join("podu1/web");
    assert_eq!(read_trim(cpu.join("cpu.cfs_quota_us")), "20000");
    assert_eq!(read_trim(cpu.join("cpu.cfs_period_us")), "100000");
    assert_eq!(read_trim(cpu.join("cpu.shares")), "102");
    assert_eq!(read_trim(mem.join("memory.limit_in_bytes")), "209715200");
    assert_eq!(
        read_trim(mem.join("memory.soft_limit_in_bytes")),
        "104857600"
    );
    let pcpu = h.root().join("cpu").join(&parent.name).join("podu1/pause");
    assert_eq!(read_trim(pcpu.join("cpu.cfs_quota_us")), "-1");
    assert_eq!(read_trim(pcpu.join("cpu.shares")), "2");
    assert_eq!(child.pids().unwrap(), vec![pid]);
    assert!(pause.pids().unwrap().is_empty());

    let stats = child.stats().unwrap();
    assert_eq!(stats.memory_max, Some(209715200));
    assert_eq!(stats.oom_kills, 0);

    pod.kill_all().unwrap();
    let st = sleep
        .wait_timeout(Duration::from_secs(10))
        .expect("sleep died");
    assert_eq!(st.signal(), Some(9));
    assert!(child.pids().unwrap().is_empty());

    let paths = pod.paths();
    assert_eq!(paths.len(), 5 * 3, "{paths:?}"); // cpu, cpuacct, devices, memory, pids
    pod.remove().unwrap();
    for p in &paths {
        assert!(!p.exists(), "{} left behind", p.display());
    }
    // Idempotent, and the shared parent stays.
    pod.remove().unwrap();
    for m in h.v1_mounts() {
        assert!(m.path.join(&parent.name).is_dir());
    }
}

#[test]
fn v1_kill_all_gets_forked_children() {
    let Some(h) = require("v1_kill_all_gets_forked_children", Mode::V1) else {
        return;
    };
    let parent = TestParent::new(&h);
    let pod = PodCgroup::create(&h, &parent.name, "u2", &pod_limits(&[])).unwrap();
    let child = pod
        .create_child("app", &container_limits(&ContainerResources::default()))
        .unwrap();
    let mut sh = Gated::spawn(&["sh", "-c", "sleep 300 & sleep 300 & wait"]);
    sh.place_and_release(&child);
    let start = std::time::Instant::now();
    while child.pids().unwrap().len() < 3 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(child.pids().unwrap().len(), 3);
    pod.kill_all().unwrap();
    assert!(sh.wait_timeout(Duration::from_secs(10)).is_some());
    assert!(child.pids().unwrap().is_empty());
    pod.remove().unwrap();
    assert!(pod.paths().iter().all(|p| !p.exists()));
}

#[test]
fn v1_oom_kill_is_counted() {
    let Some(h) = require("v1_oom_kill_is_counted", Mode::V1) else {
        return;
    };
    let parent = TestParent::new(&h);
    let res = ContainerResources {
        memory_limit_bytes: Some(16 * MI),
        ..Default::default()
    };
    let pod = PodCgroup::create(&h, &parent.name, "u3", &pod_limits(&[res])).unwrap();
    let child = pod.create_child("hog", &container_limits(&res)).unwrap();
    // dd allocates and fills a 64 MiB buffer under a 16 MiB limit.
    let mut hog = Gated::spawn(&["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]);
    hog.place_and_release(&child);
    let st = hog
        .wait_timeout(Duration::from_secs(30))
        .expect("hog exited");
    assert_eq!(st.signal(), Some(9), "{st:?}");
    assert!(child.oom_kill_count().unwrap() >= 1);
    assert!(child.stats().unwrap().oom_kills >= 1);
    pod.kill_all().unwrap();
    pod.remove().unwrap();
}
