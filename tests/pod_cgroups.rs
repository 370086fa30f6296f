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

/// Issue 17, defect 3: containerd's default device rules (v1 devices controller here, a BPF
/// device filter on v2): a container may mknod and use null, zero, full, random, urandom, tty,
/// console, ptmx and pts, and no other device, even one a hostPath hands it; privileged gets all.
#[test]
fn containers_get_containerds_default_devices_and_privileged_gets_all() {
    require_root!();
    let node = Node::new();
    // A device node of the host's /dev/net/tun (c 10 200: opening it needs no capability, and
    // containerd's rules leave it out) in a directory the test owns.
    let dev_dir = node.root.path().join("devs");
    std::fs::create_dir(&dev_dir).unwrap();
    nix::sys::stat::mknod(
        &dev_dir.join("tun"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(10, 200),
    )
    .unwrap();
    let pod = |name: &str, privileged: bool| {
        format!(
            "{{apiVersion: v1, kind: Pod, metadata: {{name: {name}}}, spec: {{terminationGracePeriodSeconds: 1, \
             volumes: [{{name: d, hostPath: {{path: '{}'}}}}], containers: [{{name: c, image: podrun.local/debug:1, \
             command: [sleep, '600'], securityContext: {{privileged: {privileged}}}, volumeMounts: [{{name: d, mountPath: /hostdev}}]}}]}}}}",
            dev_dir.display()
        )
    };
    node.apply_manifest("plain.yaml", &pod("plain", false)).ok();
    node.apply_manifest("priv.yaml", &pod("priv", true)).ok();
    let sh = |pod: &str, script: &str| node.exec(pod, "c", &["sh", "-c", script]);

    // Allowed: the default devices, opened and made.
    let r = sh(
        "plain",
        "head -c 4 /dev/urandom | wc -c && echo x > /dev/null && head -c 1 /dev/zero | wc -c \
         && mknod /tmp/null2 c 1 3 && echo x > /tmp/null2 && echo made-null",
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("made-null"), "{}", r.stdout);
    // Refused: another device, by the kernel's device cgroup (EPERM, not a mount's EACCES).
    let r = sh("plain", "head -c 0 /hostdev/tun");
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("Operation not permitted"), "{}", r.stderr);
    let r = sh("plain", "mknod /tmp/sda b 8 0");
    assert_ne!(r.code, 0, "mknod of a block device must be refused");
    assert!(r.stderr.contains("Operation not permitted"), "{}", r.stderr);
    let r = sh("plain", "mknod /tmp/mem c 1 1");
    assert!(r.stderr.contains("Operation not permitted"), "{}", r.stderr);
    // Privileged: every device (opening tun, reading nothing; the block node is never opened).
    let r = sh(
        "priv",
        "head -c 0 /hostdev/tun && mknod /tmp/sda b 8 0 && echo ok",
    );
    assert_eq!(r.stdout.trim(), "ok", "{}", r.stderr);

    // The kernel's view.
    let (plain, privileged) = (uid(&node, "plain"), uid(&node, "priv"));
    if v2() {
        use std::os::fd::AsFd;
        let attached = |uid: &str| {
            let dir = std::fs::File::open(cgroup_dir(&node, uid, "c", "")).unwrap();
            podrun::sys::bpf::device_programs_attached(dir.as_fd()).unwrap()
        };
        assert_eq!(
            attached(&plain),
            1,
            "one device filter on the container's cgroup"
        );
        assert_eq!(attached(&privileged), 0, "none for a privileged container");
    } else {
        let list = |uid: &str, child: &str| {
            read(cgroup_dir(&node, uid, child, "devices").join("devices.list"))
        };
        let want = podrun::cgroup::DeviceAccess::Default.v1_list().join("\n");
        assert_eq!(list(&plain, "c"), want);
        assert_eq!(list(&plain, "pause"), want);
        assert_eq!(list(&privileged, "c"), "a *:* rwm");
    }
    node.podrun(&["delete", "--all", "--now"]).ok();
    node.assert_clean();
}
