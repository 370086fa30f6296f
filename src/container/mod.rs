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
pub mod podfiles;
pub mod volumes;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
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
    /// How the init gets the pod's UTS, IPC and network namespaces.
    pub namespaces: PodNamespaces<'a>,
    pub pid_ns: PidNamespace<'a>,
    pub placement: Placement,
    pub log: File,
    /// Pod-level tmpfs mounts (name, detached mount fd) the container may mount.
    pub pod_volumes: &'a [(String, BorrowedFd<'a>)],
}

/// How an init gets the pod's UTS, IPC and network namespaces, which it joins (by these
/// descriptors, SCM_RIGHTS) before it mounts what depends on them (/sys, /dev/mqueue).
pub enum PodNamespaces<'a> {
    /// The sandbox is up: sent right after the fork.
    Now(&'a NamespaceFds),
    /// The receiving end of a [`namespace_channel`]: whoever has the namespaces first sends
    /// them (the pause may still be making them); the init waits.
    Later(BorrowedFd<'a>),
}

/// The sending end of an init's namespace channel.
pub struct NamespaceSender(UnixStream);

/// A channel for [`PodNamespaces::Later`], made before the init is forked: the sender, and
/// the end the init receives on.
pub fn namespace_channel() -> io::Result<(NamespaceSender, UnixStream)> {
    let (tx, rx) = UnixStream::pair()?;
    Ok((NamespaceSender(tx), rx))
}

impl NamespaceSender {
    /// Hand the pod's namespaces over. The message waits in the socket until the init reads
    /// it; an init that already failed (or was never forked) has closed its end, and its
    /// reason is on its sync pipe.
    pub fn send(self, ns: &NamespaceFds) {
        let fds: Vec<RawFd> = ns.fds.iter().map(|(fd, _)| fd.as_raw_fd()).collect();
        use std::os::fd::AsFd;
        let _ = crate::sys::send_fds(self.0.as_fd(), &fds);
    }
}

/// An init stage that was forked and may still be setting up the container's root filesystem;
/// it waits at the start gate, right before exec'ing the container's process, until
/// [`LaunchedInit::release`] (runc's `create`, then `start`).
pub struct LaunchedInit {
    container: String,
    child: Child,
    sync: File,
    /// Write end of the start gate; `None` once opened.
    gate: Option<File>,
}

impl LaunchedInit {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Let the init exec the container's process as soon as its root filesystem is ready,
    /// without waiting for it (several containers' gates can open at once).
    pub fn open_gate(&mut self) {
        // An init that already failed has closed its end: its reason is on the sync pipe.
        if let Some(mut gate) = self.gate.take() {
            channel::open_gate(&mut gate);
        }
    }

    /// Open the gate, then wait on the sync pipe until the init has exec'd the container's
    /// process (EOF) or reported why it could not (then the init is reaped and the reason
    /// returned).
    pub fn release(mut self) -> Result<Child, ContainerError> {
        self.open_gate();
        let LaunchedInit {
            container,
            mut child,
            mut sync,
            ..
        } = self;
        if let Err(channel::InitFailure(message)) = channel::InitFailure::receive(&mut sync) {
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
    let (sync_rx, sync_tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| io_err("sync pipe", e.into()))?;
    let (gate_rx, gate_tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| io_err("start gate pipe", e.into()))?;
    // With the namespaces at hand, a channel of our own, sent on right after the fork.
    let (send_now, ns_rx, ns_fd) = match start.namespaces {
        PodNamespaces::Now(ns) => {
            let (tx, rx) = namespace_channel().map_err(|e| io_err("namespace channel", e))?;
            let fd = rx.as_raw_fd();
            (Some((tx, ns)), Some(rx), fd)
        }
        PodNamespaces::Later(fd) => (None, None, fd.as_raw_fd()),
    };
    let volumes: Vec<(&str, RawFd)> = start
        .pod_volumes
        .iter()
        .map(|(name, fd)| (name.as_str(), fd.as_raw_fd()))
        .collect();
    let fds = channel::InitFds::new(sync_tx.as_raw_fd(), gate_rx.as_raw_fd(), ns_fd, &volumes);
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
    drop(sync_tx);
    drop(gate_rx);
    drop(ns_rx);
    if let Some((tx, ns)) = send_now {
        tx.send(ns);
    }
    Ok(LaunchedInit {
        container: name.to_owned(),
        child,
        sync: File::from(sync_rx),
        gate: Some(File::from(gate_tx)),
    })
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;

    use super::*;

    /// The namespaces sent before the init reads them wait in the channel, and arrive as the
    /// same namespaces; a channel whose init end is gone takes the send without harm.
    #[test]
    fn namespaces_sent_early_wait_in_the_channel() {
        let own = NamespaceFds::open(std::process::id() as i32).expect("open own namespaces");
        let (tx, rx) = namespace_channel().unwrap();
        tx.send(&own);
        let got = crate::sys::recv_fds(rx.as_fd()).expect("receive");
        assert_eq!(got.len(), own.fds.len());
        for ((sent, _), received) in own.fds.iter().zip(&got) {
            let a = File::from(sent.try_clone().unwrap()).metadata().unwrap();
            let b = File::from(received.try_clone().unwrap())
                .metadata()
                .unwrap();
            assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()));
        }
        let (tx, rx) = namespace_channel().unwrap();
        drop(rx);
        tx.send(&own);
    }
}
