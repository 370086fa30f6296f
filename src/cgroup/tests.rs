//! Fixture tests: tempdirs filled with the files the kernel would provide (youki
//! `libcgroups/src/test.rs` style). Files are never created by the code under test, so a wrong
//! file name shows up as a `Write` error.

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::*;

const MI: u64 = 1024 * 1024;

/// The example container: requests cpu 100m / memory 100Mi, limits cpu 200m / memory 200Mi.
fn web() -> ContainerResources {
    ContainerResources {
        cpu_request_millis: Some(100),
        cpu_limit_millis: Some(200),
        memory_request_bytes: Some(100 * MI),
        memory_limit_bytes: Some(200 * MI),
    }
}

fn set_fixture(dir: &Path, files: &[(&str, &str)]) {
    fs::create_dir_all(dir).unwrap();
    for (name, content) in files {
        fs::write(dir.join(name), content).unwrap();
    }
}

fn read(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
}

const V2_DIR_FILES: &[(&str, &str)] = &[
    ("cgroup.controllers", "cpu memory pids"),
    ("cgroup.subtree_control", ""),
    ("cgroup.procs", ""),
    ("cgroup.kill", ""),
    ("cgroup.events", "populated 0\nfrozen 0\n"),
    ("cpu.max", "max 100000\n"),
    ("cpu.weight", "100\n"),
    ("cpu.stat", ""),
    ("memory.max", "max\n"),
    ("memory.low", "0\n"),
    ("memory.current", "0\n"),
    ("memory.events", ""),
    ("memory.oom.group", "0\n"),
];

/// `<tmp>/{cgroup.controllers, cgroup.subtree_control}`, `<tmp>/podrun/...`, `<tmp>/podrun/podU/...`
/// and `<tmp>/podrun/podU/{web,pause}/...`.
fn v2_fixture() -> (TempDir, Hierarchy) {
    let tmp = TempDir::new().unwrap();
    let root = tmp.path();
    set_fixture(
        root,
        &[
            (
                "cgroup.controllers",
                "cpuset cpu io memory hugetlb pids rdma misc\n",
            ),
            ("cgroup.subtree_control", "cpu\n"),
        ],
    );
    set_fixture(&root.join("podrun"), V2_DIR_FILES);
    set_fixture(&root.join("podrun/podU"), V2_DIR_FILES);
    set_fixture(&root.join("podrun/podU/web"), V2_DIR_FILES);
    set_fixture(&root.join("podrun/podU/pause"), V2_DIR_FILES);
    let h = Hierarchy::detect_with_mountinfo(root, "").unwrap();
    assert_eq!(h.mode(), Mode::V2);
    (tmp, h)
}

const V1_CTRLS: [&str; 4] = ["cpu", "cpuacct", "memory", "pids"];

fn v1_dir_files(ctrl: &str) -> Vec<(&'static str, &'static str)> {
    let mut files = vec![("cgroup.procs", ""), ("tasks", "")];
    match ctrl {
        "cpu" => files.extend([
            ("cpu.cfs_period_us", "100000\n"),
            ("cpu.cfs_quota_us", "-1\n"),
            ("cpu.shares", "1024\n"),
            (
                "cpu.stat",
                "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n",
            ),
        ]),
        "cpuacct" => files.extend([("cpuacct.usage", "0\n")]),
        "memory" => files.extend([
            ("memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory.soft_limit_in_bytes", "9223372036854771712\n"),
            ("memory.usage_in_bytes", "0\n"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
            ),
        ]),
        _ => {}
    }
    files
}

fn v1_mountinfo(root: &Path) -> String {
    let mut s = format!(
        "31 23 0:28 / {} rw,relatime - tmpfs tmpfs rw,mode=755\n",
        root.display()
    );
    for (i, c) in V1_CTRLS.iter().enumerate() {
        s += &format!(
            "{} 31 0:{} / {}/{c} rw,relatime - cgroup cgroup rw,{c}\n",
            32 + i,
            29 + i,
            root.display()
        );
    }
    s += &format!(
        "41 31 0:38 / {}/unified rw,relatime - cgroup2 cgroup2 rw\n",
        root.display()
    );
    s
}

/// The layout of this project's dev machine: separate v1 mounts for cpu, cpuacct, memory, pids.
fn v1_fixture() -> (TempDir, Hierarchy) {
    let tmp = TempDir::new().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    for c in V1_CTRLS {
        let files = v1_dir_files(c);
        set_fixture(&root.join(c), &files);
        for d in ["podrun/podU", "podrun/podU/web"] {
            set_fixture(&root.join(c).join(d), &files);
        }
    }
    fs::create_dir_all(root.join("unified")).unwrap();
    let h = Hierarchy::detect_with_mountinfo(&root, &v1_mountinfo(&root)).unwrap();
    (tmp, h)
}

#[test]
fn detect_v2() {
    let (tmp, h) = v2_fixture();
    assert_eq!(h.mode(), Mode::V2);
    assert_eq!(h.root(), tmp.path());
    assert!(h.v1_mounts().is_empty());
}

#[test]
fn detect_v2_without_controllers_is_precise() {
    let tmp = TempDir::new().unwrap();
    set_fixture(tmp.path(), &[("cgroup.controllers", "pids io\n")]);
    let err = Hierarchy::detect_with_mountinfo(tmp.path(), "").unwrap_err();
    assert!(matches!(err, CgroupError::NoV2Controllers { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "cgroup v2 at `{}` lacks the cpu, memory controller(s) (cgroup.controllers: `pids io`)",
            tmp.path().display()
        )
    );
    // The empty unified mount of a hybrid host.
    set_fixture(tmp.path(), &[("cgroup.controllers", "")]);
    let err = Hierarchy::detect_with_mountinfo(tmp.path(), "").unwrap_err();
    assert!(err.to_string().contains("lacks the cpu, memory"), "{err}");
}

#[test]
fn detect_v1_hybrid() {
    let (tmp, h) = v1_fixture();
    let root = tmp.path().canonicalize().unwrap();
    assert_eq!(h.mode(), Mode::V1);
    let mounts: Vec<(PathBuf, Vec<String>)> = h
        .v1_mounts()
        .iter()
        .map(|m| (m.path.clone(), m.controllers.clone()))
        .collect();
    assert_eq!(
        mounts,
        V1_CTRLS
            .iter()
            .map(|c| (root.join(c), vec![c.to_string()]))
            .collect::<Vec<_>>()
    );
}

#[test]
fn detect_v1_comounted_cpu_cpuacct() {
    let tmp = TempDir::new().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    fs::create_dir_all(root.join("cpu,cpuacct")).unwrap();
    fs::create_dir_all(root.join("memory")).unwrap();
    std::os::unix::fs::symlink("cpu,cpuacct", root.join("cpu")).unwrap();
    std::os::unix::fs::symlink("cpu,cpuacct", root.join("cpuacct")).unwrap();
    let mi = format!(
        "32 31 0:29 / {r}/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
         35 31 0:32 / {r}/memory rw - cgroup cgroup rw,memory\n",
        r = root.display()
    );
    let h = Hierarchy::detect_with_mountinfo(&root, &mi).unwrap();
    assert_eq!(h.mode(), Mode::V1);
    assert_eq!(
        h.v1_mounts(),
        &[
            V1Mount {
                path: root.join("cpu,cpuacct"),
                controllers: vec!["cpu".into(), "cpuacct".into()]
            },
            V1Mount {
                path: root.join("memory"),
                controllers: vec!["memory".into()]
            },
        ]
    );
}

#[test]
fn detect_nothing_is_precise() {
    let tmp = TempDir::new().unwrap();
    fs::create_dir_all(tmp.path().join("cpu")).unwrap();
    // A directory that is not a mount (or a mount of the wrong type) is not accepted.
    let mi = format!(
        "32 31 0:29 / {}/cpu rw - tmpfs tmpfs rw\n",
        tmp.path().display()
    );
    let err = Hierarchy::detect_with_mountinfo(tmp.path(), &mi).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "no usable cgroup layout at `{r}`: no cgroup v2 `cgroup.controllers`, and `{r}/cpu` is not a cgroup v1 mount of the cpu controller",
            r = tmp.path().display()
        )
    );
}

#[test]
fn mountinfo_parsing() {
    let m = parse_mountinfo(
        "36 35 98:0 /mnt1 /mnt\\040with\\040space rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
         garbage\n\
         41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n",
    );
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].mount_point, PathBuf::from("/mnt with space"));
    assert_eq!(m[0].fs_type, "ext3");
    assert_eq!(m[1].super_options, vec!["rw", "nsdelegate"]);
}

#[test]
fn cgroup_hierarchy_names_controllers_only() {
    let m = parse_mountinfo(
        "30 25 0:26 / /sys/fs/cgroup/tmp rw - tmpfs tmpfs rw\n\
         33 25 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,xattr,cpu,cpuacct\n\
         34 25 0:30 / /sys/fs/cgroup/sys\\040temd rw - cgroup cgroup rw,xattr,release_agent=/x,name=systemd\n\
         41 25 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate\n",
    );
    let at = |p: &str| cgroup_hierarchy_at(&m, Path::new(p));
    assert_eq!(
        at("/sys/fs/cgroup/cpu,cpuacct"),
        Some(("cgroup".into(), "cpu,cpuacct".into()))
    );
    assert_eq!(
        at("/sys/fs/cgroup/sys temd"),
        Some(("cgroup".into(), "name=systemd".into())),
        "the mount point is unescaped"
    );
    assert_eq!(
        at("/sys/fs/cgroup/unified"),
        Some(("cgroup2".into(), String::new()))
    );
    assert_eq!(at("/sys/fs/cgroup/tmp"), None, "not a cgroup");
    assert_eq!(at("/sys/fs/cgroup/memory"), None);
}

#[test]
fn v2_pod_and_container_files() {
    let (tmp, h) = v2_fixture();
    let root = tmp.path();
    let pod_l = pod_limits(&[web()]);
    let pod = PodCgroup::create(&h, "podrun", "U", &pod_l).unwrap();
    let pod_dir = root.join("podrun/podU");
    assert_eq!(pod.path(), pod_dir);

    // Controllers enabled top-down; the root already had cpu.
    assert_eq!(read(root.join("cgroup.subtree_control")), "+memory +pids");
    assert_eq!(
        read(root.join("podrun/cgroup.subtree_control")),
        "+cpu +memory +pids"
    );
    assert_eq!(
        read(pod_dir.join("cgroup.subtree_control")),
        "+cpu +memory +pids"
    );

    // Pod: Burstable, shares 102 → linear weight 4; every container has limits.
    assert_eq!(read(pod_dir.join("cpu.max")), "20000 100000");
    assert_eq!(read(pod_dir.join("cpu.weight")), "4");
    assert_eq!(read(pod_dir.join("memory.max")), "209715200");
    assert_eq!(read(pod_dir.join("memory.low")), "104857600");
    assert_eq!(read(pod_dir.join("memory.oom.group")), "0\n");

    let child = pod.create_child("web", &container_limits(&web())).unwrap();
    let dir = pod_dir.join("web");
    assert_eq!(child.path(), dir);
    assert_eq!(child.paths(), vec![dir.clone()]);
    assert_eq!(read(dir.join("cpu.max")), "20000 100000");
    assert_eq!(read(dir.join("cpu.weight")), "17");
    assert_eq!(read(dir.join("memory.max")), "209715200");
    assert_eq!(read(dir.join("memory.low")), "104857600");
    assert_eq!(read(dir.join("memory.oom.group")), "1");

    // No limits: `max 100000`, memory files untouched.
    let pause = pod
        .create_child("pause", &container_limits(&ContainerResources::default()))
        .unwrap();
    let p = pause.path();
    assert_eq!(read(p.join("cpu.max")), "max 100000");
    assert_eq!(read(p.join("cpu.weight")), "1");
    assert_eq!(read(p.join("memory.max")), "max\n");
    assert_eq!(read(p.join("memory.low")), "0\n");

    child.add_pid(4242).unwrap();
    assert_eq!(read(dir.join("cgroup.procs")), "4242");
    assert_eq!(child.self_placement_fds().unwrap().len(), 1);

    assert_eq!(
        pod.paths(),
        vec![pod_dir.clone(), pod_dir.join("pause"), dir]
    );
    // `open` sees the same cgroup.
    assert_eq!(PodCgroup::open(&h, "podrun", "U"), pod);
}

#[test]
fn v2_subtree_control_already_enabled_is_not_rewritten() {
    let (tmp, h) = v2_fixture();
    let root = tmp.path();
    fs::write(root.join("cgroup.subtree_control"), "cpu memory pids\n").unwrap();
    PodCgroup::create(&h, "podrun", "U", &Limits::best_effort()).unwrap();
    assert_eq!(
        read(root.join("cgroup.subtree_control")),
        "cpu memory pids\n"
    );
}

#[test]
fn v2_missing_controller_below_root() {
    let (tmp, h) = v2_fixture();
    fs::write(tmp.path().join("podrun/cgroup.controllers"), "cpu pids").unwrap();
    let err = PodCgroup::create(&h, "podrun", "U", &Limits::best_effort()).unwrap_err();
    assert!(
        matches!(&err, CgroupError::NoV2Controllers { missing, .. } if missing == "memory"),
        "{err}"
    );
}

#[test]
fn write_error_names_path_and_data() {
    let (tmp, h) = v2_fixture();
    fs::remove_file(tmp.path().join("podrun/podU/web/memory.oom.group")).unwrap();
    let pod = PodCgroup::create(&h, "podrun", "U", &Limits::best_effort()).unwrap();
    let err = pod
        .create_child("web", &container_limits(&web()))
        .unwrap_err();
    let path = tmp.path().join("podrun/podU/web/memory.oom.group");
    assert_eq!(
        err.to_string(),
        format!(
            "write `1` to `{}`: No such file or directory",
            path.display()
        )
    );
    assert_eq!(
        err.io_error().map(std::io::Error::kind),
        Some(std::io::ErrorKind::NotFound)
    );
    // And the fixture did not grow the file.
    assert!(!path.exists());
}

#[test]
fn v1_pod_and_container_files() {
    let (tmp, h) = v1_fixture();
    let root = tmp.path().canonicalize().unwrap();
    let pod = PodCgroup::create(&h, "podrun", "U", &pod_limits(&[web()])).unwrap();
    let child = pod.create_child("web", &container_limits(&web())).unwrap();

    let cpu = root.join("cpu/podrun/podU/web");
    let mem = root.join("memory/podrun/podU/web");
    assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "20000");
    assert_eq!(read(cpu.join("cpu.cfs_period_us")), "100000");
    assert_eq!(read(cpu.join("cpu.shares")), "102");
    assert_eq!(read(mem.join("memory.limit_in_bytes")), "209715200");
    assert_eq!(read(mem.join("memory.soft_limit_in_bytes")), "104857600");
    let pod_cpu = root.join("cpu/podrun/podU");
    assert_eq!(read(pod_cpu.join("cpu.cfs_quota_us")), "20000");
    assert_eq!(read(pod_cpu.join("cpu.shares")), "102");

    assert_eq!(child.path(), mem);
    assert_eq!(
        child.paths(),
        V1_CTRLS
            .iter()
            .map(|c| root.join(c).join("podrun/podU/web"))
            .collect::<Vec<_>>()
    );
    child.add_pid(77).unwrap();
    for p in child.paths() {
        assert_eq!(read(p.join("cgroup.procs")), "77");
    }
    assert_eq!(child.self_placement_fds().unwrap().len(), 4);
    assert_eq!(pod.paths().len(), 8);

    // No limit → quota -1, memory left alone.
    let be = pod
        .create_child("web", &container_limits(&ContainerResources::default()))
        .unwrap();
    assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "-1");
    assert_eq!(read(cpu.join("cpu.shares")), "2");
    assert_eq!(read(mem.join("memory.limit_in_bytes")), "209715200");
    assert_eq!(be, child);
}

#[test]
fn v2_stats_from_fixture() {
    let (tmp, h) = v2_fixture();
    let dir = tmp.path().join("podrun/podU/web");
    set_fixture(
        &dir,
        &[
            (
                "cpu.stat",
                "usage_usec 52001\nuser_usec 50000\nsystem_usec 2001\nnr_periods 40\nnr_throttled 12\nthrottled_usec 345678\nnr_bursts 0\nburst_usec 0\n",
            ),
            ("memory.current", "17002496\n"),
            ("memory.max", "16777216\n"),
            (
                "memory.events",
                "low 0\nhigh 0\nmax 93\noom 2\noom_kill 2\noom_group_kill 1\n",
            ),
            (
                "memory.stat",
                "anon 12000000\nfile 5000000\nactive_file 904496\ninactive_file 4096000\n",
            ),
        ],
    );
    let pod = PodCgroup::open(&h, "podrun", "U");
    let child = pod.child("web").unwrap();
    assert_eq!(
        child.stats().unwrap(),
        CgroupStats {
            cpu_usage_usec: 52001,
            nr_periods: 40,
            nr_throttled: 12,
            throttled_usec: 345678,
            memory_current: 17002496,
            memory_max: Some(16777216),
            oom_kills: 2,
            memory_inactive_file: 4096000,
        }
    );
    assert_eq!(child.stats().unwrap().memory_working_set(), 12906496);
    assert_eq!(child.oom_kill_count().unwrap(), 2);
    // The pod cgroup's fixture has empty cpu.stat / memory.events and memory.max "max".
    let s = pod.stats().unwrap();
    assert_eq!(s.memory_max, None);
    assert_eq!(s.oom_kills, 0);
}

#[test]
fn v1_stats_from_fixture() {
    let (tmp, h) = v1_fixture();
    let root = tmp.path().canonicalize().unwrap();
    let rel = "podrun/podU/web";
    set_fixture(
        &root.join("cpuacct").join(rel),
        &[("cpuacct.usage", "52001999\n")],
    );
    set_fixture(
        &root.join("cpu").join(rel),
        &[(
            "cpu.stat",
            "nr_periods 40\nnr_throttled 12\nthrottled_time 345678000\n",
        )],
    );
    set_fixture(
        &root.join("memory").join(rel),
        &[
            ("memory.usage_in_bytes", "17002496\n"),
            ("memory.limit_in_bytes", "16777216\n"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
            ),
            (
                "memory.stat",
                "cache 5000000\ninactive_file 1\ntotal_cache 5000000\ntotal_inactive_file 4096000\n",
            ),
        ],
    );
    let child = PodCgroup::open(&h, "podrun", "U").child("web").unwrap();
    assert_eq!(
        child.stats().unwrap(),
        CgroupStats {
            cpu_usage_usec: 52001,
            nr_periods: 40,
            nr_throttled: 12,
            throttled_usec: 345678,
            memory_current: 17002496,
            memory_max: Some(16777216),
            oom_kills: 3,
            memory_inactive_file: 4096000,
        }
    );
    assert_eq!(child.oom_kill_count().unwrap(), 3);
    // "Unlimited" on v1 is a huge number.
    let pod = PodCgroup::open(&h, "podrun", "U").stats().unwrap();
    assert_eq!(pod.memory_max, None);
}

#[test]
fn stats_parse_error_names_file() {
    let (tmp, h) = v2_fixture();
    let dir = tmp.path().join("podrun/podU/web");
    fs::write(dir.join("memory.current"), "lots\n").unwrap();
    let err = PodCgroup::open(&h, "podrun", "U")
        .child("web")
        .unwrap()
        .stats()
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("parse `{}`", dir.join("memory.current").display())),
        "{err}"
    );
}

#[test]
fn remove_is_idempotent_and_keeps_parent() {
    // Empty directories stand in for cgroups (rmdir of a real cgroup ignores its files).
    let tmp = TempDir::new().unwrap();
    let root = tmp.path();
    set_fixture(root, &[("cgroup.controllers", "cpu memory")]);
    for d in ["podrun/podU/web", "podrun/podU/pause", "podrun/podV"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    let h = Hierarchy::detect_with_mountinfo(root, "").unwrap();
    let pod = PodCgroup::open(&h, "podrun", "U");
    assert_eq!(pod.paths().len(), 3);
    pod.remove().unwrap();
    assert!(!root.join("podrun/podU").exists());
    assert!(root.join("podrun/podV").exists());
    pod.remove().unwrap();
    assert_eq!(pod.paths(), vec![root.join("podrun/podU")]);
}

#[test]
fn kill_all_v2_uses_cgroup_kill() {
    let (tmp, h) = v2_fixture();
    let pod = PodCgroup::open(&h, "podrun", "U");
    pod.kill_all().unwrap();
    assert_eq!(read(tmp.path().join("podrun/podU/cgroup.kill")), "1");
}

#[test]
fn kill_all_v1_on_empty_cgroups() {
    let (_tmp, h) = v1_fixture();
    PodCgroup::open(&h, "podrun", "U").kill_all().unwrap();
    // A pod that no longer exists has nothing to kill.
    PodCgroup::open(&h, "podrun", "gone").kill_all().unwrap();
}

#[test]
fn names_are_checked() {
    let (_tmp, h) = v2_fixture();
    for bad in ["", "..", "a/b"] {
        assert!(matches!(
            PodCgroup::create(&h, "podrun", bad, &Limits::best_effort()),
            Err(CgroupError::InvalidName { .. })
        ));
    }
    for bad in ["", "/abs", "a/../b"] {
        assert!(matches!(
            PodCgroup::create(&h, bad, "U", &Limits::best_effort()),
            Err(CgroupError::InvalidName { .. })
        ));
    }
    let pod = PodCgroup::open(&h, "podrun", "U");
    assert!(pod.create_child("../x", &Limits::best_effort()).is_err());
}

#[test]
fn limits_serialize() {
    let l = container_limits(&web());
    let json = serde_json::to_string(&l).unwrap();
    assert_eq!(
        json,
        r#"{"cpu_quota_us":20000,"cpu_period_us":100000,"cpu_shares":102,"cpu_weight":17,"memory_max":209715200,"memory_low":104857600}"#
    );
    assert_eq!(serde_json::from_str::<Limits>(&json).unwrap(), l);
    assert_eq!(v2::cpu_max_value(&l), "20000 100000");
}
