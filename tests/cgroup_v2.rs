//! Root integration tests on a pure cgroup v2 host. On this project's v1 (hybrid) dev machine
//! they print `SKIP ...` and pass; `tests/vm/run` boots a v2 kernel and runs them there.
//!
//! Run: `tests/vm/run` (or `cargo test --test cgroup_v2` as root on a v2 host).

#[path = "vm/common.rs"]
mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use common::*;
use podrun::cgroup::{
    CgroupStats, ContainerResources, Limits, Mode, PodCgroup, container_limits, pod_limits,
};

#[test]
fn v2_pod_files_and_lifecycle() {
    let Some(h) = require("v2_pod_files_and_lifecycle", Mode::V2) else {
        return;
    };
    let parent = TestParent::new(&h);
    let pod = PodCgroup::create(&h, &parent.name, "u1", &pod_limits(&[web()])).unwrap();
    let pause = pod.create_child("pause", &Limits::best_effort()).unwrap();
    let child = pod.create_child("web", &container_limits(&web())).unwrap();

    let pod_dir = h.root().join(&parent.name).join("podu1");
    let dir = pod_dir.join("web");
    assert_eq!(child.path(), dir);
    assert_eq!(read_trim(dir.join("cpu.max")), "20000 100000");
    assert_eq!(read_trim(dir.join("cpu.weight")), "17");
    assert_eq!(read_trim(dir.join("memory.max")), "209715200");
    assert_eq!(read_trim(dir.join("memory.low")), "104857600");
    assert_eq!(read_trim(dir.join("memory.oom.group")), "1");
    assert_eq!(read_trim(pod_dir.join("cpu.max")), "20000 100000");
    assert_eq!(read_trim(pod_dir.join("cpu.weight")), "4");
    assert_eq!(read_trim(pod_dir.join("memory.max")), "209715200");
    assert_eq!(read_trim(pause.path().join("cpu.max")), "max 100000");
    assert_eq!(read_trim(pause.path().join("cpu.weight")), "1");
    assert_eq!(read_trim(pause.path().join("memory.max")), "max");
    for c in ["cpu", "memory"] {
        assert!(
            read_trim(pod_dir.join("cgroup.subtree_control"))
                .split(' ')
                .any(|x| x == c)
        );
    }

    let mut sleep = Gated::spawn(&["sleep", "300"]);
    sleep.place_and_release(&child);
    let want = format!("0::/{}/podu1/web", parent.name);
    assert_eq!(proc_cgroup(sleep.pid()).trim(), want);
    assert_eq!(child.pids().unwrap(), vec![sleep.pid()]);
    assert_eq!(child.stats().unwrap().memory_max, Some(209715200));

    pod.kill_all().unwrap();
    let st = sleep
        .wait_timeout(Duration::from_secs(20))
        .expect("sleep died");
    assert_eq!(st.signal(), Some(9));

    let paths = pod.paths();
    assert_eq!(paths.len(), 3, "{paths:?}");
    pod.remove().unwrap();
    assert!(paths.iter().all(|p| !p.exists()));
    pod.remove().unwrap();
    assert!(h.root().join(&parent.name).is_dir(), "shared parent kept");
}

#[test]
fn v2_oom_kill_is_counted() {
    let Some(h) = require("v2_oom_kill_is_counted", Mode::V2) else {
        return;
    };
    let parent = TestParent::new(&h);
    let res = ContainerResources {
        memory_limit_bytes: Some(16 * MI),
        ..Default::default()
    };
    let pod = PodCgroup::create(&h, &parent.name, "u2", &pod_limits(&[res])).unwrap();
    let child = pod.create_child("hog", &container_limits(&res)).unwrap();
    assert_eq!(read_trim(child.path().join("memory.max")), "16777216");
    // Allocate and touch 64 MiB under a 16 MiB memory.max: python3 if present, else dd's buffer.
    let argv: &[&str] = if std::path::Path::new("/usr/bin/python3").exists() {
        &["/usr/bin/python3", "-c", "b = bytearray(64 << 20)"]
    } else {
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]
    };
    let mut hog = Gated::spawn(argv);
    hog.place_and_release(&child);
    let st = hog
        .wait_timeout(Duration::from_secs(60))
        .expect("hog exited");
    assert_eq!(st.signal(), Some(9), "{st:?}");
    let kills = child.oom_kill_count().unwrap();
    eprintln!(
        "oom_kill in {}/memory.events: {kills}",
        child.path().display()
    );
    assert!(kills >= 1);
    // memory.events is hierarchical: the pod sees it too.
    assert!(pod.stats().unwrap().oom_kills >= 1);
    pod.kill_all().unwrap();
    pod.remove().unwrap();
}

#[test]
fn v2_cpu_throttling_visible() {
    let Some(h) = require("v2_cpu_throttling_visible", Mode::V2) else {
        return;
    };
    let parent = TestParent::new(&h);
    let res = ContainerResources {
        cpu_limit_millis: Some(100),
        ..Default::default()
    };
    let pod = PodCgroup::create(&h, &parent.name, "u3", &pod_limits(&[res])).unwrap();
    let child = pod.create_child("spin", &container_limits(&res)).unwrap();
    assert_eq!(read_trim(child.path().join("cpu.max")), "10000 100000");
    let mut spin = Gated::spawn(&["sh", "-c", "while :; do :; done"]);
    spin.place_and_release(&child);
    std::thread::sleep(Duration::from_millis(1500));
    let s: CgroupStats = child.stats().unwrap();
    eprintln!("cpu.stat of a 100m busy loop after 1.5 s: {s:?}");
    assert!(s.cpu_usage_usec > 0);
    assert!(s.nr_periods > 0);
    assert!(s.nr_throttled > 0, "{s:?}");
    assert!(s.throttled_usec > 0, "{s:?}");
    pod.kill_all().unwrap();
    assert!(spin.wait_timeout(Duration::from_secs(20)).is_some());
    pod.remove().unwrap();
}
