//! The pod sandbox: a pause process that owns fresh network, UTS and IPC namespaces, and the
//! network namespace pinned at `/run/netns/<pod>` (a bind mount, as `ip netns add` makes) so
//! that `ip netns exec <pod> ...` works and the network outlives a pause crash, as containerd's
//! pinned `cni-<id>` netns does.

use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::CloneFlags;

/// The namespaces a pod shares, in the order containers join them (youki's order: uts, ipc, net).
pub const POD_NAMESPACES: [(&str, CloneFlags); 3] = [
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("net", CloneFlags::CLONE_NEWNET),
];

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("start pause process {binary}: {source}")]
    StartPause { binary: PathBuf, source: io::Error },
    #[error("open namespace {path}: {source}")]
    OpenNamespace { path: PathBuf, source: io::Error },
    #[error("pin network namespace at {path}: {source}")]
    Pin { path: PathBuf, source: io::Error },
    #[error("unpin network namespace at {path}: {source}")]
    Unpin { path: PathBuf, source: io::Error },
}

/// containerd's oom_score_adj for the sandbox container: the pause is the last thing to kill.
pub const PAUSE_OOM_SCORE_ADJ: i32 = -998;

/// Open namespace files of a live pause process (O_CLOEXEC), for `setns`.
pub struct NamespaceFds {
    pub fds: Vec<(OwnedFd, CloneFlags)>,
    /// The pod's PID namespace, when the pause holds one (`shareProcessNamespace`). Not in
    /// `fds`: it is entered by the thread that forks a container, not in the child.
    pub pid: Option<OwnedFd>,
}

fn open_ns(pid: i32, kind: &str) -> Result<OwnedFd, SandboxError> {
    let file = crate::procfs::open_ns(pid, kind)
        .map_err(|(path, source)| SandboxError::OpenNamespace { path, source })?;
    Ok(OwnedFd::from(file))
}

impl NamespaceFds {
    pub fn open(pid: i32) -> Result<Self, SandboxError> {
        let mut fds = Vec::new();
        for (kind, flag) in POD_NAMESPACES {
            fds.push((open_ns(pid, kind)?, flag));
        }
        Ok(Self { fds, pid: None })
    }

    /// Also open the pause's PID namespace (a pod with `shareProcessNamespace`).
    pub fn open_with_pid(pid: i32) -> Result<Self, SandboxError> {
        let mut ns = Self::open(pid)?;
        ns.pid = Some(open_ns(pid, "pid")?);
        Ok(ns)
    }

    pub fn net(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fds
            .iter()
            .find(|(_, f)| *f == CloneFlags::CLONE_NEWNET)
            .map(|(fd, _)| fd.as_fd())
            .expect("net ns is always opened")
    }

    /// The inode numbers of the net, UTS and IPC namespaces (what `ls -l /proc/<pid>/ns`
    /// shows), read from the open descriptors.
    pub fn inodes(&self) -> Option<crate::state::NsInodes> {
        let inode = |flag| {
            let (fd, _) = self.fds.iter().find(|(_, f)| *f == flag)?;
            nix::sys::stat::fstat(fd).ok().map(|st| st.st_ino)
        };
        Some(crate::state::NsInodes {
            net: inode(CloneFlags::CLONE_NEWNET)?,
            uts: inode(CloneFlags::CLONE_NEWUTS)?,
            ipc: inode(CloneFlags::CLONE_NEWIPC)?,
        })
    }

    /// (raw fd, flag) pairs for the pre-exec `setns` hook; valid while `self` lives.
    pub fn raw(&self) -> Vec<(std::os::fd::RawFd, CloneFlags)> {
        self.fds
            .iter()
            .map(|(fd, f)| (fd.as_raw_fd(), *f))
            .collect()
    }
}

/// Fork + exec the pause binary in new net/UTS/IPC namespaces with the pod's hostname, and with
/// `pid_namespace` as PID 1 of a new PID namespace (the pod's, for `shareProcessNamespace`).
/// `cgroup_procs` are open placement files (`ChildCgroup::self_placement_fds`) of the pause's cgroup (joined before exec).
/// `report_pid`: a pipe the child writes its pid on right after the fork.
pub fn start_pause(
    binary: &Path,
    hostname: &str,
    log: File,
    cgroup_procs: Vec<RawFd>,
    pid_namespace: bool,
    report_pid: Option<RawFd>,
) -> Result<Child, SandboxError> {
    let mut cmd = Command::new(binary);
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|source| SandboxError::StartPause {
            binary: binary.to_owned(),
            source,
        })?)
        .stderr(log)
        .env_clear();
    let flags = CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
    let setup = crate::sys::ChildSetup {
        cgroup_procs,
        oom_score_adj: Some(PAUSE_OOM_SCORE_ADJ),
        unshare: Some((flags, hostname.to_owned())),
        report_pid,
        ..Default::default()
    };
    crate::sys::before_exec(&mut cmd, setup);
    let pid_ns = pid_namespace.then_some(crate::container::PidNamespace::New);
    crate::container::spawn_in_pid_ns(pid_ns, || cmd.spawn()).map_err(|source| {
        SandboxError::StartPause {
            binary: binary.to_owned(),
            source,
        }
    })
}

/// Bind-mount `/proc/<pid>/ns/net` onto `path` (creating the directory and an empty file).
pub fn pin_netns(pid: i32, path: &Path) -> Result<(), SandboxError> {
    let err = |source| SandboxError::Pin {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(err)?;
    }
    File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(err)?;
    let src = crate::procfs::ns_path(pid, "net");
    mount(
        Some(&src),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| err(io::Error::from(e)))
}

/// Undo `pin_netns`: lazy unmount, then remove the file. Missing pieces are fine.
pub fn unpin_netns(path: &Path) -> Result<(), SandboxError> {
    let err = |source| SandboxError::Unpin {
        path: path.to_owned(),
        source,
    };
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(err(io::Error::from(e))),
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(err(e)),
    }
}
