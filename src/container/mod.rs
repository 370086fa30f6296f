//! Starting a container: the image (`image`), the pod's /etc files (`podfiles`), capability
//! sets (`caps`), the OCI runtime spec (`oci`) and the init stage that runs it (`init`): the
//! supervisor forks into the container's cgroup, in the container's PID namespace, and execs
//! `podrun-init <bundle>`, which builds the container's mount namespace, joins the pause's
//! UTS/IPC/net namespaces once it is handed their descriptors (never by name), and execs the
//! process.

pub mod caps;
pub mod channel;
pub mod image;
pub mod init;
pub mod oci;
pub mod overlay;
pub mod podfiles;
pub mod volumes;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use nix::sched::CloneFlags;

use crate::sandbox::NamespaceFds;

/// PATH given to containers that do not set one (the usual image default; runc does the same).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("container {container}: open log {path}: {source}")]
    Log {
        container: String,
        path: std::path::PathBuf,
        source: io::Error,
    },
    #[error("container {container}: {what}: {source}")]
    Start {
        container: String,
        what: String,
        source: io::Error,
    },
    #[error("container {container}: {message}")]
    Init { container: String, message: String },
    #[error("container {container}: {message}")]
    Setup { container: String, message: String },
}

/// Open (append) the log file of one container run; stdout and stderr both go there.
pub fn open_log(container: &str, path: &Path) -> Result<File, ContainerError> {
    let err = |source| ContainerError::Log {
        container: container.to_owned(),
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(err)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(err)
}

/// Where a container process is placed before it execs.
pub struct Placement {
    /// Open placement files (`ChildCgroup::self_placement_fds`) of the container's cgroup.
    pub cgroup_procs: Vec<std::os::fd::RawFd>,
    /// The kubelet's value for the pod's QoS class.
    pub oom_score_adj: i32,
}

/// The PID namespace a container (or the pause) starts in.
pub enum PidNamespace<'a> {
    /// A new one, the process being its PID 1 (Kubernetes' default: one per container).
    New,
    /// The pod's (`shareProcessNamespace`): the pause's PID namespace.
    Join(BorrowedFd<'a>),
}

/// Run `spawn` on a short-lived thread that first enters `pid_ns`.
///
/// `unshare(CLONE_NEWPID)` and `setns(.., CLONE_NEWPID)` change only the namespace the caller's
/// *future children* are born in, and only for the calling thread. Doing it on a throwaway
/// thread keeps the supervisor itself (and its later children) where it was, and the child
/// forked from that thread is PID 1 of the new namespace (or a member of the joined one) from
/// its first instruction, with no extra fork in the init and no intermediate process to
/// forward signals and exit codes through.
pub fn spawn_in_pid_ns<T: Send>(
    pid_ns: Option<PidNamespace<'_>>,
    spawn: impl FnOnce() -> io::Result<T> + Send,
) -> io::Result<T> {
    let Some(pid_ns) = pid_ns else {
        return spawn();
    };
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                match pid_ns {
                    PidNamespace::New => nix::sched::unshare(CloneFlags::CLONE_NEWPID)?,
                    PidNamespace::Join(fd) => nix::sched::setns(fd, CloneFlags::CLONE_NEWPID)?,
                }
                spawn()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("spawn thread panicked")))
    })
}

/// How to start one container run.
pub struct InitStart<'a> {
    pub container: &'a str,
    /// The init stage's program (`podrun-init`, or `podrun __init`).
    pub init: &'a crate::config::InitProgram,
    /// `<pod dir>/<container>`, holding `config.json`.
    pub bundle: &'a Path,
    /// The init's channel ([`channel::pair`]): both ends; the init's is handed over.
    pub channel: (channel::SupervisorEnd, channel::InitEnd),
    /// How the init gets the pod's UTS, IPC and network namespaces.
    pub namespaces: PodNamespaces<'a>,
    pub pid_ns: PidNamespace<'a>,
    pub placement: Placement,
    pub log: File,
    /// Pod-level tmpfs mounts (name, detached mount fd) the container may mount.
    pub pod_volumes: &'a [(String, BorrowedFd<'a>)],
}

/// How an init gets the pod's UTS, IPC and network namespaces, which it joins (by these
/// descriptors, SCM_RIGHTS on its channel) before it mounts what depends on them (/sys,
/// /dev/mqueue).
pub enum PodNamespaces<'a> {
    /// The sandbox is up: sent right after the fork.
    Now(&'a NamespaceFds),
    /// Sent by whoever has them first (a [`channel::NamespaceSender`] of this init's channel,
    /// the pause may still be making them); the init waits.
    Later,
}

/// An init stage that was forked and may still be setting up the container's root filesystem;
/// it waits at the start gate, right before exec'ing the container's process, until
/// [`LaunchedInit::release`] (runc's `create`, then `start`).
pub struct LaunchedInit {
    container: String,
    child: Child,
    channel: channel::SupervisorEnd,
}

impl LaunchedInit {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Let the init exec the container's process as soon as its root filesystem is ready,
    /// without waiting for it (several containers' gates can open at once; opening twice is
    /// harmless: the init reads the first).
    pub fn open_gate(&mut self) {
        self.channel.open_gate();
    }

    /// Open the gate, then wait on the channel until the init has exec'd the container's
    /// process (its end closes) or reported why it could not (then the init is reaped and the
    /// reason returned).
    pub fn release(self) -> Result<Child, ContainerError> {
        let LaunchedInit {
            container,
            mut child,
            channel,
        } = self;
        channel.open_gate();
        if let Err(channel::InitFailure(message)) = channel.outcome() {
            let _ = child.wait();
            return Err(ContainerError::Init { container, message });
        }
        Ok(child)
    }
}

/// Fork into the container's cgroup (and PID namespace) and exec the init stage
/// (`podrun-init <bundle>`, or `podrun __init <bundle>`), which builds the container's mount
/// namespace and root filesystem at once (in parallel with whatever the caller does next: the
/// pause, other containers, the pod network), joins the pod's namespaces once it is handed
/// them, mounts what depends on them, and then waits at its start gate.
pub fn spawn_init(start: InitStart<'_>) -> Result<LaunchedInit, ContainerError> {
    let name = start.container;
    let io_err = |what: &str, source: io::Error| ContainerError::Start {
        container: name.to_owned(),
        what: what.to_owned(),
        source,
    };
    let (supervisor_end, init_end) = start.channel;
    let volumes: Vec<(&str, RawFd)> = start
        .pod_volumes
        .iter()
        .map(|(name, fd)| (name.as_str(), fd.as_raw_fd()))
        .collect();
    let fds = channel::InitFds::new(init_end.as_raw_fd(), &volumes);
    let mut cmd = Command::new(&start.init.path);
    cmd.args(&start.init.args)
        .arg(start.bundle)
        .env_clear()
        .envs(fds.env)
        .stdin(Stdio::null())
        .stdout(start.log.try_clone().map_err(|e| io_err("log", e))?)
        .stderr(start.log);
    let setup = crate::sys::ChildSetup {
        cgroup_procs: start.placement.cgroup_procs,
        oom_score_adj: Some(start.placement.oom_score_adj),
        new_process_group: true,
        pass_fds: fds.pass,
        ..Default::default()
    };
    crate::sys::before_exec(&mut cmd, setup);
    let child =
        spawn_in_pid_ns(Some(start.pid_ns), || cmd.spawn()).map_err(|e| io_err("start init", e))?;
    drop(cmd);
    // Ours closed: the channel reads end-of-file once the init's copy closes too.
    drop(init_end);
    if let PodNamespaces::Now(ns) = start.namespaces {
        supervisor_end.send_namespaces(ns);
    }
    Ok(LaunchedInit {
        container: name.to_owned(),
        child,
        channel: supervisor_end,
    })
}
