//! Issue 3 acceptance on this host's cgroup layout (v1 hybrid here, v2 in the VM test bed):
//! limits in the cgroup files, every process in its cgroup, OOM kills, CPU throttling, cleanup.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::Node;
use serde_json::Value;

fn v2() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The directory of `<parent>/pod<uid>/<child>` holding `controller`'s files.
fn cgroup_dir(node: &Node, uid: &str, child: &str, controller: &str) -> PathBuf {
    let base = if v2() {
        PathBuf::from("/sys/fs/cgroup")
    } else {
        PathBuf::from("/sys/fs/cgroup").join(controller)
    };
    base.join(&node.cgroup_parent)
        .join(format!("pod{uid}"))
        .join(child)
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_owned()
}

fn uid(node: &Node, pod: &str) -> String {
    node.inspect(pod)["uid"].as_str().unwrap().to_owned()
}

#[test]
fn sidecar_limits_are_in_the_cgroup_files() {
    require_root!();
    let node = Node::new();
    node.apply("pods/sidecar.yaml").ok();
    let uid = uid(&node, "sidecar");
    if v2() {
        let web = cgroup_dir(&node, &uid, "web-server", "");
        assert_eq!(read(web.join("memory.max")), "209715200");
        assert_eq!(read(web.join("cpu.max")), "20000 100000");
        assert_eq!(read(web.join("memory.low")), "104857600");
        assert_eq!(read(web.join("cpu.weight")), "17");
        let pod = web.parent().unwrap().to_owned();
        assert_eq!(
            read(pod.join("memory.max")),
            "max",
            "curl-client has no limit, so the pod has none"
        );
        assert_eq!(read(pod.join("cpu.weight")), "4");
    } else {
        assert_eq!(
            read(cgroup_dir(&node, &uid, "web-server", "memory").join("memory.limit_in_bytes")),
            "209715200"
        );
        assert_eq!(
            read(
                cgroup_dir(&node, &uid, "web-server", "memory").join("memory.soft_limit_in_bytes")
            ),
            "104857600"
        );
        assert_eq!(
            read(cgroup_dir(&node, &uid, "web-server", "cpu").join("cpu.cfs_quota_us")),
            "20000"
        );
        assert_eq!(
            read(cgroup_dir(&node, &uid, "web-server", "cpu").join("cpu.cfs_period_us")),
            "100000"
        );
        assert_eq!(
            read(cgroup_dir(&node, &uid, "web-server", "cpu").join("cpu.shares")),
            "102"
        );
        let pod_cpu = cgroup_dir(&node, &uid, "", "cpu");
        assert_eq!(
            read(pod_cpu.join("cpu.shares")),
            "102",
            "pod shares from the summed requests"
        );
        assert_eq!(
            read(pod_cpu.join("cpu.cfs_quota_us")),
            "-1",
            "curl-client has no cpu limit"
        );
    }
    // Inside, /sys/fs/cgroup is the container's own cgroup (a cgroup namespace), read-only.
    let inside = |path: &str| {
        node.exec("sidecar", "web-server", &["cat", path])
            .ok()
            .stdout
            .trim()
            .to_owned()
    };
    if v2() {
        assert_eq!(inside("/sys/fs/cgroup/memory.max"), "209715200");
        assert_eq!(inside("/proc/1/cgroup"), "0::/");
    } else {
        assert_eq!(
            inside("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
            "209715200"
        );
    }
    let procs = if v2() {
        "/sys/fs/cgroup/cgroup.procs"
    } else {
        "/sys/fs/cgroup/memory/cgroup.procs"
    };
    let write = node.exec(
        "sidecar",
        "curl-client",
        &["sh", "-c", &format!("test -e {procs} && echo 1 > {procs}")],
    );
    assert!(
        write.stderr.contains("Read-only file system"),
        "/sys/fs/cgroup must be there and read-only: {}",
        write.stderr
    );
    assert_ne!(write.code, 0, "/sys/fs/cgroup must be read-only");
    let describe = node.podrun(&["describe", "pod", "sidecar"]).ok().stdout;
    assert!(
        describe.contains("QoS Class:        Burstable"),
        "{describe}"
    );
}

#[test]
fn every_container_process_is_in_its_own_cgroup() {
    require_root!();
    let node = Node::new();
    node.apply("pods/sidecar.yaml").ok();
    let info = node.inspect("sidecar");
    let uid = info["uid"].as_str().unwrap().to_owned();
    let memory_line = |pid: i64| -> String {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let key = if v2() { "0::" } else { ":memory:" };
        text.lines().find(|l| l.contains(key)).unwrap().to_owned()
    };
    for c in info["containers"].as_array().unwrap() {
        let pid = c["pid"].as_i64().unwrap();
        let want = format!(
            "/{}/pod{uid}/{}",
            node.cgroup_parent,
            c["name"].as_str().unwrap()
        );
        assert!(
            memory_line(pid).ends_with(&want),
            "{} not in {want}",
            memory_line(pid)
        );
    }
    let pause = info["sandbox"]["pause"]["pid"].as_i64().unwrap();
    assert!(memory_line(pause).ends_with(&format!("/pod{uid}/pause")));
    // A child the container forked (the shell loop's sleep) is in the container's cgroup too.
    let client = info["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "curl-client")
        .unwrap()["pid"]
        .as_i64()
        .unwrap();
    let r = node.eventually(&format!("pgrep -P {client} sleep"), Duration::from_secs(10));
    let sleep: i64 = r.stdout.trim().parse().expect("a sleep child");
    assert!(memory_line(sleep).ends_with(&format!("/pod{uid}/curl-client")));
    node.podrun(&["delete", "sidecar", "--now"]).ok();
    node.assert_clean();
}

#[test]
fn memory_hog_is_oom_killed_and_restarted() {
    require_root!();
    let node = Node::new();
    let env = [("PODRUN_BACKOFF_BASE_MS", "200")];
    node.podrun_env(
        &[
            "apply",
            "-f",
            common::repo_file("pods/limits-memory.yaml")
                .to_str()
                .unwrap(),
        ],
        &env,
    )
    .ok();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut restarts = 0;
    while Instant::now() < deadline && restarts < 2 {
        let pod: Value = node.pod_json("memory-hog");
        restarts = pod["status"]["containerStatuses"][0]["restartCount"]
            .as_u64()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(restarts >= 2, "restart count did not rise: {restarts}");
    let describe = node.podrun(&["describe", "pod", "memory-hog"]).ok().stdout;
    assert!(
        describe.contains("OOMKilled") && describe.contains("Exit Code:    137"),
        "{describe}"
    );
    let top: Value = serde_json::from_str(
        &node
            .podrun(&["top", "memory-hog", "-o", "json", "--interval-ms", "50"])
            .ok()
            .stdout,
    )
    .unwrap();
    assert!(top["items"][0]["oomKills"].as_u64().unwrap() >= 1, "{top}");
    node.podrun(&["delete", "memory-hog", "--now"]).ok();
    node.assert_clean();
}

#[test]
fn cpu_burner_is_capped_at_200m_and_throttled() {
    require_root!();
    let node = Node::new();
    node.apply("pods/limits-cpu.yaml").ok();
    std::thread::sleep(Duration::from_millis(300));
    let top: Value = serde_json::from_str(
        &node
            .podrun(&["top", "cpu-burner", "-o", "json", "--interval-ms", "5000"])
            .ok()
            .stdout,
    )
    .unwrap();
    let cores = top["items"][0]["cpuCores"].as_f64().unwrap();
    assert!(
        (0.15..=0.25).contains(&cores),
        "cpu usage {cores} cores, want 0.2 ± 25%"
    );
    assert!(
        top["items"][0]["throttledPeriods"].as_u64().unwrap() > 0,
        "{top}"
    );
    node.podrun(&["delete", "cpu-burner", "--now"]).ok();
    node.assert_clean();
}
