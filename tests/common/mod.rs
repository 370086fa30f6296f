//! A throwaway "node" per test: a holder process in fresh network and mount namespaces (mount
//! propagation private, a tmpfs over /run/netns), its own state root, and podrun run inside it
//! through nsenter. Nothing a test creates (bridge, veths, nft table, netns pins, processes) is
//! visible on the host, tests run in parallel, and Drop removes everything even when a test fails.
#![allow(dead_code)]

pub mod kubectl;
pub mod registry;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const PODRUN: &str = env!("CARGO_BIN_EXE_podrun");

pub fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The debug image (busybox, curl, ip) and the python image of the tests.
pub const DEBUG_IMAGE: &str = "podrun.local/debug:1";
pub const PYTHON_IMAGE: &str = "podrun.local/python:3.11-slim";

/// The test images (built once per target dir by `scripts/test-images.sh`, from this machine's
/// busybox-static, curl, ip and python3), as an image root for `PODRUN_IMAGE_ROOT`.
pub fn image_root() -> PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("podrun-test-images");
        let done = root.join(".complete");
        if done.exists() {
            return root;
        }
        // Test binaries may run at once: one builds, the others wait on the lock.
        std::fs::create_dir_all(root.parent().unwrap()).unwrap();
        let lock = std::fs::File::create(root.with_extension("lock")).unwrap();
        lock.lock().unwrap();
        if !done.exists() {
            let out = Command::new(repo_file("scripts/test-images.sh"))
                .arg(&root)
                .env("PODRUN", PODRUN)
                .output()
                .expect("run scripts/test-images.sh");
            assert!(
                out.status.success(),
                "building test images failed (is busybox-static installed?): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::write(&done, "").unwrap();
        }
        root
    })
    .clone()
}

/// podrun's example images built by their recipes (`rootfs/build.sh`: the offline stand-ins
/// `podrun.local/debug:1` and `podrun.local/python:3.11-slim` as the README's demo builds them),
/// once per target dir (the script skips an image whose recipe and host files are unchanged), as
/// an image root for `PODRUN_IMAGE_ROOT`.
pub fn recipe_image_root() -> PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("podrun-recipe-images");
        std::fs::create_dir_all(&root).unwrap();
        let lock = std::fs::File::create(root.with_extension("lock")).unwrap();
        lock.lock().unwrap();
        let out = Command::new(repo_file("rootfs/build.sh"))
            .env("PODRUN", PODRUN)
            .env("PODRUN_IMAGE_ROOT", &root)
            .output()
            .expect("run rootfs/build.sh");
        assert!(
            out.status.success(),
            "rootfs/build.sh failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        root
    })
    .clone()
}

/// Root tests skip (with a message) when not run as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[macro_export]
macro_rules! require_root {
    () => {
        if !common::is_root() {
            eprintln!("skipped: this test needs root (namespaces, veth, nftables)");
            return;
        }
    };
}

pub struct Node {
    holder: Child,
    pub root: tempfile::TempDir,
    pub cidr: String,
    /// This test's own cgroup parent (`podrun-test-<uuid>`), removed on drop.
    pub cgroup_parent: String,
}

/// The cgroup directories that hold `parent` (one per v1 controller, or the v2 one).
pub fn cgroup_parent_dirs(parent: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        return vec![root.join(parent)];
    }
    ["cpu", "cpuacct", "devices", "memory", "pids"]
        .iter()
        .map(|c| root.join(c).join(parent))
        .collect()
}

/// Every cgroup directory below `dir`, deepest first.
pub fn cgroup_tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.extend(cgroup_tree(&e.path()));
            }
        }
    }
    if dir.is_dir() {
        out.push(dir.to_owned());
    }
    out
}

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(o: Output) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "command failed\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

impl Node {
    pub fn new() -> Self {
        Self::with_cidr("10.244.0.0/24")
    }

    pub fn with_cidr(cidr: &str) -> Self {
        let holder = Command::new("unshare")
            .args([
                "--net",
                "--mount",
                "--propagation",
                "private",
                "--",
                "sleep",
                "infinity",
            ])
            .stdin(Stdio::null())
            .spawn()
            .expect("start namespace holder");
        let cgroup_parent = format!(
            "podrun-test-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let node = Node {
            holder,
            root: tempfile::tempdir().expect("tempdir"),
            cidr: cidr.to_owned(),
            cgroup_parent,
        };
        // Wait until unshare has exec'd sleep inside the new namespaces.
        let deadline = Instant::now() + Duration::from_secs(5);
        while node.mnt_inode() == own_ns("mnt") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::fs::create_dir_all("/run/netns").expect("create /run/netns");
        node.sh("mount -t tmpfs tmpfs /run/netns && ip link set lo up")
            .ok();
        node
    }

    pub fn pid(&self) -> u32 {
        self.holder.id()
    }

    fn mnt_inode(&self) -> u64 {
        std::fs::metadata(format!("/proc/{}/ns/mnt", self.pid()))
            .map(|m| m.ino())
            .unwrap_or(0)
    }

    fn enter(&self) -> Command {
        self.enter_in(Path::new("/"))
    }

    /// nsenter into the node, working in `dir` (entering the node's mount namespace resets
    /// the working directory: `--wd` sets it again).
    fn enter_in(&self, dir: &Path) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t")
            .arg(self.pid().to_string())
            .args(["-n", "-m"])
            .arg(format!("--wd={}", dir.display()))
            .arg("--");
        c
    }

    /// `program` run on this node (its network and mount namespaces), not started yet.
    pub fn command(&self, program: &str) -> Command {
        let mut c = self.enter();
        c.arg(program);
        c
    }

    /// `podrun <args>` on this node.
    pub fn podrun(&self, args: &[&str]) -> Run {
        self.podrun_env(args, &[])
    }

    /// `podrun <args>` on this node, not started yet (for concurrent runs).
    pub fn podrun_command(&self, args: &[&str]) -> Command {
        self.podrun_command_in(Path::new("/"), args)
    }

    /// As [`Node::podrun_command`], run from directory `dir`.
    pub fn podrun_command_in(&self, dir: &Path, args: &[&str]) -> Command {
        let mut c = self.enter_in(dir);
        c.arg(PODRUN)
            .env("PODRUN_ROOT", self.root.path())
            .env("PODRUN_POD_CIDR", &self.cidr)
            .env("PODRUN_CGROUP_PARENT", &self.cgroup_parent)
            .env("PODRUN_IMAGE_ROOT", image_root())
            .args(args);
        c
    }

    /// `podrun get pod NAME -o json`, parsed.
    /// Column `n` (0: NAME, 1: READY, 2: STATUS, ...) of `pod`'s row in `get pods`.
    pub fn get_column(&self, pod: &str, n: usize) -> String {
        let out = self.podrun(&["get", "pods", "--no-headers"]).ok().stdout;
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(pod))
            .and_then(|l| l.split_whitespace().nth(n))
            .unwrap_or("")
            .to_owned()
    }

    /// A host directory for a test's hostPath volume (inside the node's state root).
    pub fn shared_dir(&self) -> PathBuf {
        let dir = self.root.path().join("shared");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    pub fn pod_json(&self, pod: &str) -> serde_json::Value {
        serde_json::from_str(&self.podrun(&["get", "pod", pod, "-o", "json"]).ok().stdout)
            .expect("get -o json prints JSON")
    }

    /// Poll `pod` until `done` holds for its JSON (bounded); the last JSON seen.
    pub fn wait_for_pod(
        &self,
        pod: &str,
        timeout: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.pod_json(pod);
            if done(&v) || Instant::now() >= deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn podrun_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut c = self.podrun_command(args);
        for (k, v) in env {
            c.env(k, v);
        }
        Run::from(c.output().expect("run podrun"))
    }

    /// `podrun exec POD -c CONTAINER -- CMD...` on this node.
    pub fn exec(&self, pod: &str, container: &str, cmd: &[&str]) -> Run {
        let mut args = vec!["exec", pod, "-c", container, "--"];
        args.extend_from_slice(cmd);
        self.podrun(&args)
    }

    /// A shell command in the node's namespaces.
    pub fn sh(&self, script: &str) -> Run {
        Run::from(
            self.enter()
                .args(["sh", "-c", script])
                .output()
                .expect("run sh"),
        )
    }

    /// `podrun apply -f` of `manifest`, written to `<state root>/<file>` first.
    pub fn apply_manifest(&self, file: &str, manifest: &str) -> Run {
        let f = self.root.path().join(file);
        std::fs::write(&f, manifest).expect("write manifest");
        self.podrun(&["apply", "-f", f.to_str().unwrap()])
    }

    pub fn apply(&self, rel: &str) -> Run {
        self.podrun(&["apply", "-f", repo_file(rel).to_str().unwrap()])
    }

    pub fn inspect(&self, pod: &str) -> serde_json::Value {
        let out = self.podrun(&["inspect", pod]).ok();
        serde_json::from_str(&out.stdout).expect("inspect prints JSON")
    }

    /// The host end of `pod`'s veth, from `podrun inspect`.
    pub fn host_veth(&self, pod: &str) -> String {
        self.inspect(pod)["sandbox"]["hostVeth"]
            .as_str()
            .expect("inspect names the host veth")
            .to_owned()
    }

    /// The pid of `pod`'s supervisor, from `podrun inspect`.
    /// SIGKILL `pod`'s pause process (the sandbox dies; the supervisor re-creates it).
    pub fn kill_pause(&self, pod: &str) {
        let pause = self.inspect(pod)["sandbox"]["pause"]["pid"]
            .as_i64()
            .expect("inspect names the pause's pid") as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pause),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }

    pub fn supervisor_pid(&self, pod: &str) -> i32 {
        self.inspect(pod)["supervisor"]["pid"]
            .as_i64()
            .expect("inspect names the supervisor's pid") as i32
    }

    pub fn pod_ip(&self, pod: &str) -> String {
        let out = self.podrun(&["get", "pod", pod, "-o", "json"]).ok();
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        v["status"]["podIP"].as_str().expect("podIP").to_owned()
    }

    /// Retry `script` (bounded) until it exits 0; return its last run.
    pub fn eventually(&self, script: &str, timeout: Duration) -> Run {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.sh(script);
            if r.code == 0 || Instant::now() >= deadline {
                return r;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every pod of the node (`get pods -o json` items).
    pub fn pods_json(&self) -> Vec<serde_json::Value> {
        let out = self.podrun(&["get", "pods", "-o", "json"]).ok().stdout;
        let list: serde_json::Value = serde_json::from_str(&out).expect("get pods -o json");
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// The pods for which `keep` holds, once `done` holds for that list, polled for up to
    /// `timeout`; panics with the last list if it never does.
    #[track_caller]
    pub fn wait_for_pods(
        &self,
        timeout: Duration,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let pods = self.pods_json();
            if done(&pods) {
                return pods;
            }
            if Instant::now() >= deadline {
                let names: Vec<String> = pods
                    .iter()
                    .map(|p| format!("{} {}", p["metadata"]["name"], p["status"]["phase"]))
                    .collect();
                panic!("pods never got there: {names:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Processes that live in this node's mount namespace (everything podrun started here),
    /// those in the node's cgroups (containers have mount namespaces of their own), and
    /// supervisors of the node's state root wherever they run.
    /// SIGKILL the process of `pod`'s first container (a crash the supervisor restarts).
    pub fn kill_first_container(&self, pod: &str) {
        let pid = self.inspect(pod)["containers"][0]["pid"]
            .as_i64()
            .expect("the container runs");
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .expect("kill");
    }

    pub fn processes(&self) -> Vec<i32> {
        let mine = self.mnt_inode();
        let holder = self.pid() as i32;
        let supervising = format!("--root {} __supervise ", self.root.path().display());
        let in_cgroups: Vec<i32> = cgroup_parent_dirs(&self.cgroup_parent)
            .iter()
            .flat_map(|d| cgroup_tree(d))
            .flat_map(|d| {
                std::fs::read_to_string(d.join("cgroup.procs"))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.parse::<i32>().ok())
                    .collect::<Vec<_>>()
            })
            .collect();
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| pid != holder)
            .filter(|pid| {
                in_cgroups.contains(pid)
                    || std::fs::metadata(format!("/proc/{pid}/ns/mnt"))
                        .map(|m| m.ino())
                        .ok()
                        == Some(mine)
                    // A supervisor of this node's root in another mount namespace.
                    || cmdline(*pid).contains(&supervising)
            })
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| !s.contains(") Z "))
                    .unwrap_or(false)
            })
            .collect()
    }

    /// Names of the links in the node's network namespace.
    pub fn links(&self) -> Vec<String> {
        let out = self.sh("ip -j link show").ok();
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Names of the veths (host ends of pod veth pairs) in the node's network namespace.
    pub fn veths(&self) -> Vec<String> {
        self.links()
            .into_iter()
            .filter(|l| l.starts_with("veth"))
            .collect()
    }

    /// Entries in the state root's pods dir.
    pub fn state_entries(&self) -> usize {
        std::fs::read_dir(self.root.path().join("pods"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    pub fn ipam_files(&self) -> Vec<String> {
        std::fs::read_dir(self.root.path().join("networks/podrun0"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.contains('.') && !n.starts_with("last_reserved"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Assert the node holds nothing of podrun's: no veth/bridge (nor a half-made one), no pins, no nft table, no
    /// process, no state, no allocated address.
    #[track_caller]
    pub fn assert_clean(&self) {
        // The controller ends once no workload is left: give it the moment it takes.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline
            && self
                .processes()
                .iter()
                .any(|p| cmdline(*p).contains("__controller"))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let links = self.links();
        assert!(
            links
                .iter()
                .all(|l| !l.starts_with("veth") && !l.starts_with("prn") && l != "podrun0"),
            "links left: {links:?}"
        );
        let pins = self.sh("ls /run/netns").ok().stdout;
        assert!(pins.trim().is_empty(), "netns pins left: {pins}");
        let nft = self.sh("nft list tables").ok().stdout;
        assert!(!nft.contains("podrun"), "nft table left: {nft}");
        let procs = self.processes();
        assert!(
            procs.is_empty(),
            "processes left: {:?}",
            procs.iter().map(|p| cmdline(*p)).collect::<Vec<_>>()
        );
        assert_eq!(self.state_entries(), 0, "pod state left");
        let parents = cgroup_parent_dirs(&self.cgroup_parent);
        let cgroups: Vec<PathBuf> = parents
            .iter()
            .flat_map(|d| cgroup_tree(d))
            .filter(|d| !parents.contains(d))
            .collect();
        assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
        assert!(
            self.ipam_files().is_empty(),
            "addresses still allocated: {:?}",
            self.ipam_files()
        );
    }
}

pub fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn own_ns(kind: &str) -> u64 {
    std::fs::metadata(format!("/proc/self/ns/{kind}"))
        .map(|m| m.ino())
        .unwrap_or(0)
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.root.path().join("controller.log"));
            if let Ok(text) = log {
                eprintln!("--- controller.log:\n{text}");
            }
            // A failed test: show what the supervisors said before everything is removed.
            for entry in std::fs::read_dir(self.root.path().join("pods"))
                .into_iter()
                .flatten()
                .flatten()
            {
                for log in ["supervisor.log", "pause.log"] {
                    let text = std::fs::read_to_string(entry.path().join(log)).unwrap_or_default();
                    eprintln!("--- {}/{log}:\n{text}", entry.file_name().to_string_lossy());
                }
            }
        }
        // Workloads first (else their controller replaces the pods deleted), then the pods.
        for kind in ["deployments", "replicasets", "jobs"] {
            let _ = self.podrun(&["delete", kind, "--all", "--grace-period=0"]);
        }
        let _ = self.podrun(&["delete", "--all", "--grace-period=0"]);
        // Whatever is still running in the node's mount namespace is ours: kill it by PID.
        for _ in 0..3 {
            for pid in self.processes() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        for dir in cgroup_parent_dirs(&self.cgroup_parent) {
            for d in cgroup_tree(&dir) {
                for pid in std::fs::read_to_string(d.join("cgroup.procs"))
                    .unwrap_or_default()
                    .lines()
                {
                    if let Ok(pid) = pid.parse::<i32>() {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
                // Killed processes reparented to the host's PID 1 keep the cgroup busy until
                // it reaps them (seen: a second and more on this VM).
                for _ in 0..500 {
                    if std::fs::remove_dir(&d).is_ok() || !d.exists() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
}

/// The `(what, uptime)` lines containers appended to `dir/order` (`echo what $(cut -d" " -f1
/// /proc/uptime)`), in order.
pub fn order_file(dir: &Path) -> Vec<(String, f64)> {
    std::fs::read_to_string(dir.join("order"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let (what, at) = l.split_once(' ').unwrap_or_else(|| panic!("{l:?}"));
            (
                what.to_owned(),
                at.parse().unwrap_or_else(|_| panic!("{l:?}")),
            )
        })
        .collect()
}

/// The status of container `name` in `list` (`containerStatuses`, `initContainerStatuses`)
/// of a pod's JSON.
pub fn container_status<'a>(
    pod: &'a serde_json::Value,
    list: &str,
    name: &str,
) -> &'a serde_json::Value {
    pod["status"][list]
        .as_array()
        .unwrap_or_else(|| panic!("{list} in {pod}"))
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {list} of {pod}"))
}
