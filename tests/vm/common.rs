//! Helpers shared by the root cgroup integration tests (`tests/cgroup_host.rs`,
//! `tests/cgroup_v2.rs`), included with `#[path = "vm/common.rs"] mod common;`.
//!
//! Every test works under its own `podrun-test-<uuid>` parent, removed by [`TestParent`]'s `Drop`
//! whether the test passes or fails, and only ever kills processes it started itself.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use podrun::cgroup::{ChildCgroup, ContainerResources, Hierarchy, Mode};

pub const MI: u64 = 1024 * 1024;
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The brief's example container: requests cpu 100m / memory 100Mi, limits 200m / 200Mi.
pub fn web() -> ContainerResources {
    ContainerResources {
        cpu_request_millis: Some(100),
        cpu_limit_millis: Some(200),
        memory_request_bytes: Some(100 * MI),
        memory_limit_bytes: Some(200 * MI),
    }
}

/// Prints past the test harness's output capture, so skips show in a normal `cargo test` run.
pub fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
}

/// The hierarchy if we are root and it has `mode`; otherwise prints why the test is skipped.
pub fn require(test: &str, mode: Mode) -> Option<Hierarchy> {
    if !nix::unistd::geteuid().is_root() {
        skip(test, "needs root");
        return None;
    }
    match Hierarchy::detect(Path::new(CGROUP_ROOT)) {
        Ok(h) if h.mode() == mode => Some(h),
        Ok(h) => {
            let why = format!(
                "needs cgroup {mode:?}, this host is {:?}{}",
                h.mode(),
                if mode == Mode::V2 {
                    " (tests/vm/run boots a v2 VM)"
                } else {
                    ""
                }
            );
            skip(test, &why);
            None
        }
        Err(e) => {
            skip(test, &format!("no usable cgroup hierarchy: {e}"));
            None
        }
    }
}

/// A unique parent cgroup (`podrun-test-<uuid>`) in every hierarchy; removed on drop.
pub struct TestParent {
    pub name: String,
    dirs: Vec<PathBuf>,
}

impl TestParent {
    pub fn new(h: &Hierarchy) -> TestParent {
        let name = format!("podrun-test-{}", uuid::Uuid::new_v4().simple());
        let dirs = match h.mode() {
            Mode::V2 => vec![h.root().join(&name)],
            Mode::V1 => h.v1_mounts().iter().map(|m| m.path.join(&name)).collect(),
        };
        TestParent { name, dirs }
    }
}

impl Drop for TestParent {
    fn drop(&mut self) {
        for dir in &self.dirs {
            kill_tree(dir);
        }
        for dir in &self.dirs {
            rmdir_tree(dir);
        }
    }
}

/// SIGKILL the processes in our own test cgroup tree (they can only be ones this test started).
fn kill_tree(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in procs.split_whitespace().filter_map(|p| p.parse().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            kill_tree(&e.path());
        }
    }
}

fn rmdir_tree(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_tree(&e.path());
            }
        }
    }
    for _ in 0..100 {
        match std::fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                eprintln!("cleanup: rmdir {}: {e}", dir.display());
                return;
            }
            _ => return,
        }
    }
}

/// A process that waits on stdin before `exec`ing `argv`, so it can be placed in a cgroup first
/// (memory is charged where it is allocated, and v1/v2 do not move charges).
pub struct Gated {
    pub child: Child,
}

impl Gated {
    pub fn spawn(argv: &[&str]) -> Gated {
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"read _ && exec "$@""#)
            .arg("sh")
            .args(argv)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn /bin/sh");
        Gated { child }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Places the process in `cg`, then lets it `exec`.
    pub fn place_and_release(&mut self, cg: &ChildCgroup) {
        cg.add_pid(self.pid()).expect("add_pid");
        let mut stdin = self.child.stdin.take().expect("stdin");
        stdin.write_all(b"go\n").expect("release gated child");
    }

    /// Waits up to `timeout` for the exit status.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return Some(st);
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gated {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines of `/proc/<pid>/cgroup`.
pub fn proc_cgroup(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read /proc/<pid>/cgroup")
}

pub fn read_trim(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_owned()
}
