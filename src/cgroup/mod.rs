//! cgroups for pods, the way the kubelet (cgroupfs driver) and runc lay them out.
//!
//! Kernel interface: the cgroup filesystem (`Documentation/admin-guide/cgroup-v2.rst`,
//! `cgroups(7)`). Everything here is plain file I/O under a root path that callers pass in
//! (normally `/sys/fs/cgroup`), so the whole module is unit-tested on tempdir fixtures, in the
//! style of youki's `libcgroups`.
//!
//! Two backends:
//! * [`Mode::V2`]: one unified tree. `cpu.max`, `cpu.weight`, `memory.max`, `memory.low`,
//!   `memory.oom.group`, `cgroup.kill`, stats from `cpu.stat` / `memory.events`.
//! * [`Mode::V1`] (hybrid hosts): the same pod directory is created in the `cpu`, `cpuacct`,
//!   `memory` and `pids` hierarchies; `cpu.cfs_quota_us`/`cpu.cfs_period_us`/`cpu.shares`,
//!   `memory.limit_in_bytes`/`memory.soft_limit_in_bytes`.
//!
//! Layout: `<root>/<parent>/pod<uid>/{pause,<container>...}`. Limits are computed by
//! [`pod_limits`] / [`container_limits`] from plain numbers, so this module does not depend on the
//! manifest code. Writes open files with `create(false)`: a typo'd file name fails, in fixtures too.
//!
//! Typical use by the supervisor:
//! ```text
//! let h = Hierarchy::detect(Path::new("/sys/fs/cgroup"))?;
//! let pod = PodCgroup::create(&h, "podrun", uid, &pod_limits(&all_containers))?;
//! let pause = pod.create_child("pause", &Limits::best_effort())?;
//! let web = pod.create_child("web", &container_limits(&web_resources))?;
//! web.add_pid(pid)?;            // or self_placement_fds() before fork
//! ...
//! pod.kill_all()?; pod.remove()?;
//! ```
//!
//! Tests: unit tests on fixtures (`cargo test --lib cgroup`, no root); root tests on a v1 host
//! (`cargo test --test cgroup_host`); cgroup v2 tests in a VM (`tests/vm/run`, which runs
//! `tests/cgroup_v2.rs` under a v2 kernel via virtme-ng). Root tests skip with a `SKIP` line when
//! the host has the other layout.

mod detect;
mod devices;
pub mod formula;
mod qos;
mod stats;
mod v1;
mod v2;

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where the node's cgroup filesystem is mounted (the `--cgroup-root` default; the init stage
/// mirrors this one into a container).
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";
/// The default parent of the pod cgroups (`--cgroup-parent`), below the root.
pub const DEFAULT_PARENT: &str = "podrun";

pub use detect::{MountInfo, V1Mount, cgroup_hierarchy_at, parse_mountinfo};
pub use devices::{DEFAULT_RULES, DeviceAccess, DeviceKind, DeviceRule};
pub use qos::{BEST_EFFORT_OOM_SCORE_ADJ, GUARANTEED_OOM_SCORE_ADJ};
pub use stats::parse_flat_keyed;

/// Errors of the cgroup module. Each variant names the step and carries the path (and data).
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("write `{data}` to `{}`: {}", path.display(), errno_text(err))]
    Write {
        path: PathBuf,
        data: String,
        err: io::Error,
    },
    #[error("read `{}`: {}", path.display(), errno_text(err))]
    Read { path: PathBuf, err: io::Error },
    #[error("open `{}` for writing: {}", path.display(), errno_text(err))]
    Open { path: PathBuf, err: io::Error },
    #[error("create cgroup `{}`: {}", path.display(), errno_text(err))]
    CreateDir { path: PathBuf, err: io::Error },
    #[error("remove cgroup `{}`: {}", path.display(), errno_text(err))]
    RemoveDir { path: PathBuf, err: io::Error },
    #[error("parse `{}`: {reason} (content `{data}`)", path.display())]
    Parse {
        path: PathBuf,
        data: String,
        reason: String,
    },
    #[error(
        "cgroup v2 at `{}` lacks the {missing} controller(s) (cgroup.controllers: `{available}`)",
        root.display()
    )]
    NoV2Controllers {
        root: PathBuf,
        available: String,
        missing: String,
    },
    #[error(
        "no usable cgroup layout at `{}`: no cgroup v2 `cgroup.controllers`, and `{}` is not a cgroup v1 mount of the {controller} controller",
        root.display(), root.join(controller).display()
    )]
    NoV1Controller { root: PathBuf, controller: String },
    #[error("invalid cgroup name `{name}`: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("kill pid {pid} in `{}`: {err}", path.display())]
    Kill {
        path: PathBuf,
        pid: i32,
        err: nix::errno::Errno,
    },
    #[error("processes still in `{}` after {attempts} kill rounds: {pids:?}", path.display())]
    KillTimeout {
        path: PathBuf,
        attempts: u32,
        pids: Vec<i32>,
    },
}

impl CgroupError {
    /// The underlying I/O error, if the failed step was a file operation.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            CgroupError::Write { err, .. }
            | CgroupError::Read { err, .. }
            | CgroupError::Open { err, .. }
            | CgroupError::CreateDir { err, .. }
            | CgroupError::RemoveDir { err, .. } => Some(err),
            _ => None,
        }
    }
}

/// "Invalid argument" rather than "Invalid argument (os error 22)".
fn errno_text(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => err.to_string(),
    }
}

/// CPU and memory of one container, as plain numbers (millicores, bytes). `None` = not set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerResources {
    pub cpu_request_millis: Option<u64>,
    pub cpu_limit_millis: Option<u64>,
    pub memory_request_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
}

/// Kubernetes QoS class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl fmt::Display for QosClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        })
    }
}

/// Kubernetes `GetPodQOS` (requests default to limits; zero quantities are ignored).
/// Pass every container of the pod, init containers included.
pub fn qos_class(containers: &[ContainerResources]) -> QosClass {
    qos::qos_class(containers)
}

/// kubelet policy: Guaranteed −997, BestEffort 1000, Burstable
/// `1000 − 1000 × request / node_memory` clamped to [3, 999].
pub fn oom_score_adj(qos: QosClass, memory_request_bytes: u64, node_memory_bytes: u64) -> i32 {
    qos::oom_score_adj(qos, memory_request_bytes, node_memory_bytes)
}

/// Which cgroup layout the host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    V2,
    V1,
}

/// The detected cgroup layout: the mode plus the root (v2) or the v1 controller mounts.
#[derive(Debug, Clone, PartialEq)]
pub struct Hierarchy {
    mode: Mode,
    root: PathBuf,
    /// V1 only: the mounts of `cpu`, `cpuacct`, `memory`, `pids` (co-mounted ones merged).
    v1_mounts: Vec<V1Mount>,
}

impl Hierarchy {
    /// Detects the layout under `cgroup_root` (normally `/sys/fs/cgroup`) using
    /// `/proc/self/mountinfo`: v2 when `<root>/cgroup.controllers` lists `cpu` and `memory`; v1
    /// when `<root>/cpu` and `<root>/memory` are cgroup v1 mounts of those controllers.
    pub fn detect(cgroup_root: &Path) -> Result<Hierarchy, CgroupError> {
        let path = Path::new("/proc/self/mountinfo");
        let mountinfo = fs::read_to_string(path).map_err(|err| CgroupError::Read {
            path: path.to_owned(),
            err,
        })?;
        Self::detect_with_mountinfo(cgroup_root, &mountinfo)
    }

    /// [`Hierarchy::detect`] with the mountinfo text passed in (for fixtures).
    pub fn detect_with_mountinfo(
        cgroup_root: &Path,
        mountinfo: &str,
    ) -> Result<Hierarchy, CgroupError> {
        detect::detect(cgroup_root, mountinfo)
    }

    /// A v2 hierarchy at `root` without any checks (tests, or a caller that already knows).
    pub fn v2(root: &Path) -> Hierarchy {
        Hierarchy {
            mode: Mode::V2,
            root: root.to_owned(),
            v1_mounts: Vec::new(),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The cgroup root this hierarchy was detected under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// V1 only: the controller mounts in use (empty on v2).
    pub fn v1_mounts(&self) -> &[V1Mount] {
        &self.v1_mounts
    }

    /// The root cgroup's CPU time and (v1) memory working set: the whole node's.
    pub fn node_usage(&self) -> Result<NodeUsage, CgroupError> {
        match self.mode {
            Mode::V2 => Ok(NodeUsage {
                cpu_usage_usec: v2::cpu_usage_usec(&self.root)?,
                memory_working_set: None,
            }),
            Mode::V1 => v1::node_usage(&self.dirs(Path::new(""))),
        }
    }

    /// The directories `rel` corresponds to: one on v2, one per used v1 mount.
    fn dirs(&self, rel: &Path) -> Vec<Dir> {
        match self.mode {
            Mode::V2 => vec![Dir {
                path: self.root.join(rel),
                controllers: Vec::new(),
            }],
            Mode::V1 => self
                .v1_mounts
                .iter()
                .map(|m| Dir {
                    path: m.path.join(rel),
                    controllers: m.controllers.clone(),
                })
                .collect(),
        }
    }
}

/// Values written for one cgroup (what `podrun inspect` shows and tests assert).
///
/// `cpu_weight` is the v2 value (linear for pods, runc quadratic for containers); the v1 backend
/// writes `cpu_shares` instead. `None` means "leave the kernel default" (`max` / unlimited),
/// except `cpu_quota_us: None`, which is written as `max <period>` (v2) or `-1` (v1).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Limits {
    pub cpu_quota_us: Option<u64>,
    pub cpu_period_us: u64,
    pub cpu_shares: u64,
    pub cpu_weight: Option<u64>,
    pub memory_max: Option<u64>,
    pub memory_low: Option<u64>,
}

impl Limits {
    /// A BestEffort cgroup: no quota, shares 2 (weight 1), no memory values.
    pub fn best_effort() -> Limits {
        Limits {
            cpu_quota_us: None,
            cpu_period_us: formula::QUOTA_PERIOD_US,
            cpu_shares: formula::MIN_SHARES,
            cpu_weight: Some(1),
            memory_max: None,
            memory_low: None,
        }
    }
}

/// kubelet `ResourceConfigForPod`: shares from summed requests (kubelet's linear weight for v2);
/// quota only if every container has a cpu limit (or the pod is Guaranteed); `memory_max` only if
/// every container has a memory limit; `memory_low` = summed memory requests. BestEffort: shares 2.
pub fn pod_limits(containers: &[ContainerResources]) -> Limits {
    qos::pod_limits(containers)
}

/// [`pod_limits`] with init containers: each sum is the larger of the app containers' sum and
/// the largest init container's value, as the kubelet's `PodRequests`/`PodLimits`.
pub fn pod_limits_with_inits(apps: &[ContainerResources], inits: &[ContainerResources]) -> Limits {
    qos::pod_limits_with_inits(apps, inits)
}

/// What runc writes for one container: quota from the limit (period 100000, min quota 1000),
/// shares from the request (or the limit if there is no request) with runc's quadratic weight,
/// `memory_max` = limit, `memory_low` = request (defaulting to the limit).
pub fn container_limits(c: &ContainerResources) -> Limits {
    qos::container_limits(c)
}

/// Usage counters of one cgroup. CPU times in µs. `memory_max: None` = unlimited.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CgroupStats {
    pub cpu_usage_usec: u64,
    pub nr_periods: u64,
    pub nr_throttled: u64,
    pub throttled_usec: u64,
    pub memory_current: u64,
    pub memory_max: Option<u64>,
    pub oom_kills: u64,
    /// The page cache not recently used: v2 `memory.stat` `inactive_file`, v1 `memory.stat`
    /// `total_inactive_file` (the hierarchy's, as cAdvisor reads it); 0 without `memory.stat`.
    #[serde(default)]
    pub memory_inactive_file: u64,
}

impl CgroupStats {
    /// The memory working set as cAdvisor (and so the kubelet, metrics-server and `kubectl
    /// top`) computes it: usage minus the inactive file cache, 0 if that is larger.
    pub fn memory_working_set(&self) -> u64 {
        self.memory_current
            .saturating_sub(self.memory_inactive_file)
    }
}

/// What the root cgroup tells of the whole node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeUsage {
    /// CPU time of every process, in µs: v1 the cpuacct root's `cpuacct.usage`, v2 the root's
    /// `cpu.stat` `usage_usec`.
    pub cpu_usage_usec: u64,
    /// v1: the memory root's usage minus its `total_inactive_file` (the node working set
    /// cAdvisor reports on v1). v2: None, the root cgroup has no `memory.current`.
    pub memory_working_set: Option<u64>,
}

/// One cgroup directory, with the v1 controllers its hierarchy carries (empty on v2).
#[derive(Debug, Clone, PartialEq)]
struct Dir {
    path: PathBuf,
    controllers: Vec<String>,
}

impl Dir {
    fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
    fn child(&self, name: &str) -> Dir {
        Dir {
            path: self.path.join(name),
            controllers: self.controllers.clone(),
        }
    }
}

/// A pod's cgroups: `<parent>/pod<uid>` with one child per container and one named `pause`.
#[derive(Debug, Clone, PartialEq)]
pub struct PodCgroup {
    mode: Mode,
    dirs: Vec<Dir>,
}

/// One container's cgroup (the child of a [`PodCgroup`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ChildCgroup {
    mode: Mode,
    dirs: Vec<Dir>,
}

/// Checks that `name` is one plain path component.
fn check_name(name: &str) -> Result<(), CgroupError> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.contains('/') || name.contains('\0') {
        "must be a single path component"
    } else if name == "." || name == ".." {
        "must not be `.` or `..`"
    } else {
        return Ok(());
    };
    Err(CgroupError::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

/// Checks that `parent` is a relative path of plain components.
fn check_parent(parent: &str) -> Result<(), CgroupError> {
    let p = Path::new(parent);
    if parent.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(CgroupError::InvalidName {
            name: parent.to_owned(),
            reason: "parent must be a non-empty relative path without `..`",
        });
    }
    Ok(())
}

fn pod_rel(parent: &str, pod_uid: &str) -> PathBuf {
    Path::new(parent).join(format!("pod{pod_uid}"))
}

impl PodCgroup {
    /// Creates `<parent>/pod<uid>` and writes `limits`. v2: creates the parent directories and
    /// enables `+cpu +memory` (and `+pids` when available) in `cgroup.subtree_control` from the
    /// root down to the pod. v1: creates the directory in the cpu, cpuacct, memory and pids
    /// hierarchies. Existing directories are reused (the limits are rewritten).
    pub fn create(
        h: &Hierarchy,
        parent: &str,
        pod_uid: &str,
        limits: &Limits,
    ) -> Result<PodCgroup, CgroupError> {
        check_parent(parent)?;
        check_name(pod_uid)?;
        let pod = PodCgroup::open(h, parent, pod_uid);
        match h.mode {
            Mode::V2 => {
                v2::create_path(&h.root, &pod_rel(parent, pod_uid))?;
                v2::apply(&pod.dirs[0].path, limits, false)?;
            }
            Mode::V1 => {
                for dir in &pod.dirs {
                    make_dir_all(&dir.path)?;
                    v1::apply(dir, limits)?;
                }
            }
        }
        Ok(pod)
    }

    /// The pod cgroup's handle without touching the filesystem (for delete/top after a crash).
    pub fn open(h: &Hierarchy, parent: &str, pod_uid: &str) -> PodCgroup {
        PodCgroup {
            mode: h.mode,
            dirs: h.dirs(&pod_rel(parent, pod_uid)),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The pod directory (v2), or the pod directory in the memory hierarchy (v1).
    pub fn path(&self) -> PathBuf {
        primary(&self.dirs)
    }

    /// The handle of an existing child, without touching the filesystem.
    pub fn child(&self, name: &str) -> Result<ChildCgroup, CgroupError> {
        check_name(name)?;
        Ok(ChildCgroup {
            mode: self.mode,
            dirs: self.dirs.iter().map(|d| d.child(name)).collect(),
        })
    }

    /// Creates the child cgroup `name` (a container, or `pause`) and writes `limits`;
    /// v2 also writes `memory.oom.group=1` so an OOM kills the whole container.
    pub fn create_child(&self, name: &str, limits: &Limits) -> Result<ChildCgroup, CgroupError> {
        let child = self.child(name)?;
        for dir in &child.dirs {
            make_dir(&dir.path)?;
            match self.mode {
                Mode::V2 => v2::apply(&dir.path, limits, true)?,
                Mode::V1 => v1::apply(dir, limits)?,
            }
        }
        Ok(child)
    }

    /// The pod directories themselves (one per v1 hierarchy, or the v2 one).
    pub fn pod_dirs(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.path.clone()).collect()
    }

    /// Every directory: the pod directories, then each existing child directory (read from the
    /// filesystem, so it also works on a handle from [`PodCgroup::open`]).
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self.dirs.iter().map(|d| d.path.clone()).collect();
        for dir in &self.dirs {
            out.extend(subdirs(&dir.path).unwrap_or_default());
        }
        out
    }

    /// Kills every process in the pod. v2: `cgroup.kill` on the pod cgroup (falls back to the v1
    /// loop on kernels without it), then waits until it is unpopulated. v1: SIGKILL every pid in
    /// `cgroup.procs` of the pod and each child, repeated until empty (bounded).
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        match self.mode {
            Mode::V2 => v2::kill_all(&self.dirs[0].path),
            Mode::V1 => kill_loop(&self.dirs),
        }
    }

    /// Removes the children, then the pod directory, in every hierarchy. Retries briefly on EBUSY
    /// while processes exit. Idempotent (missing directories are fine); the shared parent stays.
    pub fn remove(&self) -> Result<(), CgroupError> {
        let mut first_err = None;
        for dir in &self.dirs {
            let children = subdirs(&dir.path).unwrap_or_default();
            for path in children.iter().chain(std::iter::once(&dir.path)) {
                if let Err(e) = remove_dir_retry(path)
                    && first_err.is_none()
                {
                    first_err = Some(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Pod-wide counters (v2 `memory.events` is hierarchical, so child OOM kills count).
    pub fn stats(&self) -> Result<CgroupStats, CgroupError> {
        read_stats(self.mode, &self.dirs)
    }
}

impl ChildCgroup {
    /// Restricts the devices the cgroup's processes may open or create (call it before any
    /// process joins): v1 through the devices controller, v2 with a device filter program.
    pub fn restrict_devices(&self, access: DeviceAccess) -> Result<(), CgroupError> {
        match self.mode {
            Mode::V1 => self
                .dirs
                .iter()
                .filter(|d| d.has("devices"))
                .try_for_each(|d| access.apply_v1(&d.path)),
            Mode::V2 => access.apply_v2(&self.dirs[0].path),
        }
    }

    /// Moves `pid` into this cgroup (every v1 hierarchy on v1).
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        for dir in &self.dirs {
            write_file(&dir.path.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Opens, for writing (`O_CLOEXEC`), the file of every directory of this cgroup through which
    /// a freshly forked child moves itself in: `cgroup.procs` on v2, `tasks` on v1.
    ///
    /// For placing a forked child before `exec`: open these in the parent *before* forking, then
    /// in the child (e.g. in `Command::pre_exec`) write `b"0"` to each fd with `write(2)`, which is
    /// async-signal-safe; the kernel reads pid 0 as "the writing process". The alternative without
    /// fds is a sync pipe: the child blocks until the parent has called [`ChildCgroup::add_pid`].
    ///
    /// Why `tasks` on v1: a forked child has a single thread, so moving that thread moves the
    /// process, and a thread moving itself is the one migration the kernel does without taking
    /// `cgroup_threadgroup_rwsem` for writing. Through `cgroup.procs` it does take it, and on a
    /// v1 host the first writer after a quiet spell waits an RCU grace period with the global
    /// `cgroup_mutex` held: 5-20 ms per pod here, against 0.5 ms for the same nine hierarchies
    /// through `tasks`.
    pub fn self_placement_fds(&self) -> Result<Vec<OwnedFd>, CgroupError> {
        let file = match self.mode {
            Mode::V1 => "tasks",
            Mode::V2 => "cgroup.procs",
        };
        self.dirs
            .iter()
            .map(|d| {
                let path = d.path.join(file);
                OpenOptions::new()
                    .write(true)
                    .create(false)
                    .open(&path)
                    .map(OwnedFd::from)
                    .map_err(|err| CgroupError::Open { path, err })
            })
            .collect()
    }

    pub fn stats(&self) -> Result<CgroupStats, CgroupError> {
        read_stats(self.mode, &self.dirs)
    }

    /// OOM kills in this cgroup: v2 `memory.events` `oom_kill`; v1 `memory.oom_control` `oom_kill`.
    pub fn oom_kill_count(&self) -> Result<u64, CgroupError> {
        match self.mode {
            Mode::V2 => v2::oom_kills(&self.dirs[0].path),
            Mode::V1 => match self.dirs.iter().find(|d| d.has("memory")) {
                Some(d) => v1::oom_kills(&d.path),
                None => Ok(0),
            },
        }
    }

    /// The cgroup directory (v2), or the directory in the memory hierarchy (v1).
    pub fn path(&self) -> PathBuf {
        primary(&self.dirs)
    }

    /// Every directory of this cgroup (one on v2, one per hierarchy on v1).
    pub fn paths(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.path.clone()).collect()
    }

    /// Pids currently in this cgroup (the first directory's `cgroup.procs`).
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        read_pids(&self.dirs[0].path)
    }
}

fn primary(dirs: &[Dir]) -> PathBuf {
    dirs.iter()
        .find(|d| d.has("memory"))
        .or(dirs.first())
        .map(|d| d.path.clone())
        .unwrap_or_default()
}

fn read_stats(mode: Mode, dirs: &[Dir]) -> Result<CgroupStats, CgroupError> {
    match mode {
        Mode::V2 => v2::stats(&dirs[0].path),
        Mode::V1 => v1::stats(dirs),
    }
}

/// Writes `data` to an existing file (truncating). Never creates files.
pub(crate) fn write_file(path: &Path, data: &str) -> Result<(), CgroupError> {
    let wrap = |err| CgroupError::Write {
        path: path.to_owned(),
        data: data.to_owned(),
        err,
    };
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .create(false)
        .open(path)
        .map_err(wrap)?;
    // One write(2): cgroup files parse each write separately.
    f.write_all(data.as_bytes()).map_err(wrap)?;
    Ok(())
}

pub(crate) fn read_file(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|err| CgroupError::Read {
        path: path.to_owned(),
        err,
    })
}

fn make_dir(path: &Path) -> Result<(), CgroupError> {
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(CgroupError::CreateDir {
            path: path.to_owned(),
            err,
        }),
    }
}

fn make_dir_all(path: &Path) -> Result<(), CgroupError> {
    fs::create_dir_all(path).map_err(|err| CgroupError::CreateDir {
        path: path.to_owned(),
        err,
    })
}

fn subdirs(path: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let rd = match fs::read_dir(path) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => {
            return Err(CgroupError::Read {
                path: path.to_owned(),
                err,
            });
        }
    };
    let mut out: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    out.sort();
    Ok(out)
}

const REMOVE_ATTEMPTS: u32 = 50;
const RETRY_SLEEP: Duration = Duration::from_millis(20);

/// rmdir, retrying on EBUSY (processes still exiting); ENOENT counts as success. Nested
/// directories (deeper than a container) are removed first.
fn remove_dir_retry(path: &Path) -> Result<(), CgroupError> {
    for sub in subdirs(path)? {
        remove_dir_retry(&sub)?;
    }
    let mut attempt = 0;
    loop {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < REMOVE_ATTEMPTS => {
                attempt += 1;
                std::thread::sleep(RETRY_SLEEP);
            }
            Err(err) => {
                return Err(CgroupError::RemoveDir {
                    path: path.to_owned(),
                    err,
                });
            }
        }
    }
}

/// Pids in `<dir>/cgroup.procs`; a missing cgroup has none.
fn read_pids(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let path = dir.join("cgroup.procs");
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(CgroupError::Read { path, err }),
    };
    text.split_whitespace()
        .map(|s| {
            s.parse().map_err(|_| CgroupError::Parse {
                path: path.clone(),
                data: text.clone(),
                reason: format!("`{s}` is not a pid"),
            })
        })
        .collect()
}

const KILL_ROUNDS: u32 = 100;
/// Rounds (of [`RETRY_SLEEP`]) to wait for killed processes to be reaped: 20 s.
const ZOMBIE_ROUNDS: u32 = 1000;

/// SIGKILL every pid in `cgroup.procs` of each directory and its descendants until all are empty.
fn kill_loop(dirs: &[Dir]) -> Result<(), CgroupError> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    let mut all = Vec::new();
    for d in dirs {
        collect_tree(&d.path, &mut all)?;
    }
    let mut remaining = Vec::new();
    let mut rounds = 0;
    let mut zombie_rounds = 0;
    loop {
        remaining.clear();
        for dir in &all {
            for pid in read_pids(dir)? {
                remaining.push(pid);
                match kill(Pid::from_raw(pid), Signal::SIGKILL) {
                    Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                    Err(err) => {
                        return Err(CgroupError::Kill {
                            path: dir.clone(),
                            pid,
                            err,
                        });
                    }
                }
            }
        }
        if remaining.is_empty() {
            return Ok(());
        }
        // Dead but not yet reaped (their reaper, the node's init when the supervisor is gone,
        // may be slow under load): a v1 cgroup lists them until then. Worth a longer wait.
        if remaining
            .iter()
            .all(|&p| crate::procfs::state(p).is_none_or(|s| s == 'Z'))
        {
            zombie_rounds += 1;
        } else {
            rounds += 1;
        }
        if rounds >= KILL_ROUNDS || zombie_rounds >= ZOMBIE_ROUNDS {
            break;
        }
        std::thread::sleep(RETRY_SLEEP);
    }
    remaining.sort_unstable();
    remaining.dedup();
    Err(CgroupError::KillTimeout {
        path: dirs.first().map(|d| d.path.clone()).unwrap_or_default(),
        attempts: KILL_ROUNDS,
        pids: remaining,
    })
}

fn collect_tree(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), CgroupError> {
    out.push(path.to_owned());
    for sub in subdirs(path)? {
        collect_tree(&sub, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
