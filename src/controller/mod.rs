//! The controller: one process pair per state root that keeps every Deployment, ReplicaSet
//! and Job reconciled, whichever front end made it.
//!
//! Process model (no daemon to install, nothing running while there is nothing to keep):
//! - `apply`, `scale`, `rollout` and the other verbs that leave a workload recorded call
//!   [`ensure_running`]: it takes the controller lock (`<root>/controller.lock`, flock) if
//!   it is free and starts `podrun __controller` with the lock's descriptor. A held lock
//!   means a controller runs: there is never a second one.
//! - That process is the **keeper**: it forks the **worker** (the reconcile loop,
//!   [`worker`]) and does nothing else but start a new worker when the worker ends while
//!   workloads are recorded (killed, crashed), with a back-off. The worker watches the
//!   keeper in turn and starts a new keeper (`__controller --adopt WORKER`) when it ends.
//!   Both hold the same locked file description, so the lock is free only when both are
//!   gone (then the next podrun verb starts a pair again).
//! - The worker sleeps in one poll(2) on an inotify descriptor (pod directories and
//!   records, the workload directories), a pidfd per supervisor of a workload's pod (a
//!   killed supervisor), the keeper's pidfd, and its next timer (minReadySeconds, a Job's
//!   deadline or back-off, a retry): no periodic wake-up when nothing changes. Each wake
//!   runs one pass ([`reconcile`]) under the workloads lock.
//! - The worker exits once no workload is recorded; the keeper then exits too.
//!
//! The pods it makes and removes go through the pod layer (`pod::apply::create_pods`,
//! `pod::delete`), the same operations the CLI verbs use.

mod jobs;
mod keeper;
mod reconcile;
mod worker;

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::config::Config;
use crate::lockfile::LockFile;

/// The environment variable naming the inherited, locked controller lock descriptor.
const LOCK_FD_ENV: &str = "PODRUN_CONTROLLER_LOCK_FD";

/// The controller's files under the state root.
pub struct ControllerPaths {
    root: PathBuf,
}

impl ControllerPaths {
    pub fn new(cfg: &Config) -> Self {
        ControllerPaths {
            root: cfg.root.clone(),
        }
    }

    pub fn lock(&self) -> PathBuf {
        self.root.join("controller.lock")
    }

    /// The worker's pid (what `ps` shows as `__controller` doing the work).
    pub fn worker_pid(&self) -> PathBuf {
        self.root.join("controller.pid")
    }

    pub fn keeper_pid(&self) -> PathBuf {
        self.root.join("controller-keeper.pid")
    }

    pub fn log(&self) -> PathBuf {
        self.root.join("controller.log")
    }
}

/// Start the controller unless one runs or nothing needs it; what happened, for the user's
/// log (nothing when it was already running).
pub fn ensure_running(cfg: &Config) -> Vec<String> {
    let store = cfg.store();
    if !store.has_workloads() {
        return Vec::new();
    }
    let paths = ControllerPaths::new(cfg);
    let lock = match LockFile::try_exclusive(&paths.lock(), 0o600) {
        Ok(Some(lock)) => lock,
        Ok(None) => return Vec::new(),
        Err(e) => return vec![format!("controller: {e}")],
    };
    match spawn(cfg, &paths, &lock, None) {
        Ok(_) => Vec::new(),
        Err(e) => vec![format!("controller: start podrun __controller: {e}")],
    }
}

/// Start `podrun __controller` (detached, its output in `controller.log`) holding `lock`'s
/// descriptor; `adopt`: the worker a new keeper watches.
fn spawn(
    cfg: &Config,
    paths: &ControllerPaths,
    lock: &LockFile,
    adopt: Option<i32>,
) -> std::io::Result<u32> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(paths.log())?;
    let fd = lock.file().as_raw_fd();
    let mut cmd = Command::new(crate::config::podrun_binary());
    cmd.args(global_args(cfg)).arg("__controller");
    if let Some(worker) = adopt {
        cmd.arg("--adopt").arg(worker.to_string());
    }
    cmd.env(LOCK_FD_ENV, fd.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    crate::sys::detach_before_exec(&mut cmd, fd);
    let child = cmd.spawn()?;
    Ok(child.id())
}

/// The node's settings as flags: the controller makes pods as the verb that started it would.
fn global_args(cfg: &Config) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    let mut flag = |name: &str, value: std::ffi::OsString| {
        args.push(format!("--{name}").into());
        args.push(value);
    };
    flag("root", cfg.root.clone().into());
    flag("bridge", cfg.bridge.clone().into());
    flag("pod-cidr", cfg.pod_cidr.to_string().into());
    flag("netns-dir", cfg.netns_dir.clone().into());
    flag("cgroup-root", cfg.cgroup_root.clone().into());
    flag("cgroup-parent", cfg.cgroup_parent.clone().into());
    flag("image-root", cfg.image_root.clone().into());
    flag("registries-conf", cfg.registries_conf.clone().into());
    args
}

/// `podrun __controller [--adopt WORKER]`: the keeper (see the module's notes); its exit code.
pub fn run(cfg: &Config, adopt: Option<i32>) -> i32 {
    let lock = std::env::var(LOCK_FD_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .and_then(crate::sys::inherited_fd);
    let lock = match lock {
        Some(fd) => LockFile::from_locked(std::fs::File::from(fd)),
        None => match LockFile::try_exclusive(&ControllerPaths::new(cfg).lock(), 0o600) {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                eprintln!(
                    "podrun: a controller already runs for {}",
                    cfg.root.display()
                );
                return 0;
            }
            Err(e) => {
                eprintln!("podrun: controller: {e}");
                return 1;
            }
        },
    };
    keeper::run(cfg, lock, adopt)
}

/// The running controller's worker pid, if any (for `doctor` and tests).
pub fn worker_pid(cfg: &Config) -> Option<i32> {
    let paths = ControllerPaths::new(cfg);
    let text = std::fs::read_to_string(paths.worker_pid()).ok()?;
    let pid: i32 = text.trim().parse().ok()?;
    let lock = LockFile::try_exclusive(&paths.lock(), 0o600).ok()?;
    // Free lock: nothing runs, whatever the file says.
    lock.is_none().then_some(pid)
}
