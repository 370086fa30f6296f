//! Exec: run a command inside a running container, as `runc exec` does: join the container's
//! cgroup and its IPC, UTS, network, PID and mount namespaces (through its main process's
//! namespace files), take its working directory, environment, user, capabilities and
//! no_new_privs from its `config.json`, then start the command (the PID namespace only applies
//! to children, so the command is a child of the calling process). The caller relays its stdio
//! and waits for it.
//!
//! This process joins the container's namespaces for good: call it from a process that does
//! nothing else afterwards (the CLI's `exec`), or from a child forked for it.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Child, Command};

use nix::fcntl::OFlag;
use nix::pty::{PtyMaster, grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sched::CloneFlags;
use oci_spec::runtime::Spec;

use super::{Result, failed as msg};
use crate::state::PodRecord;

/// What the command's stdio is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecStdio {
    /// stdin /dev/null, stdout and stderr the caller's (kubectl exec without -i).
    Null,
    /// The caller's stdin, stdout and stderr.
    Inherit,
    /// A pty of its own from the container's /dev/ptmx: stdin, stdout and stderr, and its
    /// controlling terminal; the caller relays through the master.
    Terminal,
}

/// A command started in a container: the process, and the pty master with [`ExecStdio::Terminal`].
pub struct Started {
    pub child: Child,
    pub terminal: Option<PtyMaster>,
}

/// The namespaces of a container, in the order they are entered (mount last: it changes the
/// root, after which host paths are gone).
const EXEC_NAMESPACES: [(&str, CloneFlags); 6] = [
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// Start `command` in container `container` of pod `r`.
pub fn start(
    r: &PodRecord,
    container: &str,
    command: &[String],
    stdio: ExecStdio,
) -> Result<Started> {
    let c = r.container(container).ok_or_else(|| {
        msg(format!(
            "container {container} is not valid for pod {}",
            r.plan.name
        ))
    })?;
    let not_found = || {
        msg(format!(
            "unable to upgrade connection: container not found (\"{container}\")"
        ))
    };
    let process = c.process.filter(|p| p.is_alive()).ok_or_else(not_found)?;
    let bundle = c.bundle.as_ref().ok_or_else(not_found)?;
    let config = crate::state::bundle_config(bundle);
    let spec = Spec::load(&config).map_err(|e| msg(format!("read {}: {e}", config.display())))?;
    let oci_process = spec
        .process()
        .clone()
        .ok_or_else(|| msg(format!("{} has no process", config.display())))?;
    // Everything host-side is opened before the first setns.
    let mut fds = Vec::new();
    for (kind, flag) in EXEC_NAMESPACES {
        let f = crate::procfs::open_ns(process.pid, kind)
            .map_err(|(path, e)| msg(format!("open {}: {e}", path.display())))?;
        fds.push((f, flag));
    }
    let cgroup_fds = super::pod_cgroup(r)
        .and_then(|p| p.ok())
        .and_then(|p| p.child(container).ok())
        .and_then(|child| child.self_placement_fds().ok())
        .unwrap_or_default();
    for fd in cgroup_fds {
        use std::io::Write;
        let _ = std::fs::File::from(fd).write_all(std::process::id().to_string().as_bytes());
    }
    for (f, flag) in &fds {
        nix::sched::setns(f, *flag).map_err(|e| msg(format!("setns {flag:?}: {e}")))?;
    }
    let cwd = oci_process.cwd().clone();
    if std::env::set_current_dir(&cwd).is_err() {
        let _ = std::env::set_current_dir("/");
    }
    // The pty comes from the container's /dev/ptmx (its own devpts), before the user changes.
    let pty = if stdio == ExecStdio::Terminal {
        Some(open_pty().map_err(|e| {
            msg(format!(
                "OCI runtime exec failed: open a terminal in the container: {e}"
            ))
        })?)
    } else {
        None
    };
    let mut env = crate::container::init::environment(&oci_process);
    if pty.is_some() && !env.iter().any(|(k, _)| k == "TERM") {
        env.push(("TERM".into(), "xterm".into())); // as containerd's CRI exec with a tty
    }
    let env_list: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let program = crate::container::init::exec_program(&command[0], &env_list)
        .map_err(|e| msg(format!("OCI runtime exec failed: exec failed: {e}")))?;
    crate::container::init::apply_credentials(&oci_process)
        .map_err(|e| msg(format!("OCI runtime exec failed: {e}")))?;
    let mut cmd = Command::new(&program);
    {
        use std::os::unix::process::CommandExt;
        cmd.arg0(&command[0]);
    }
    cmd.args(&command[1..]).env_clear().envs(env);
    if let Some((_, slave)) = &pty {
        let [stdin, stdout, stderr] = slave_stdio(slave)
            .map_err(|e| msg(format!("OCI runtime exec failed: terminal: {e}")))?;
        cmd.stdin(stdin).stdout(stdout).stderr(stderr);
        crate::sys::tty::controlling_terminal_before_exec(&mut cmd);
    } else if stdio == ExecStdio::Null {
        cmd.stdin(std::process::Stdio::null());
    }
    let child = cmd.spawn().map_err(|e| {
        msg(format!(
            "OCI runtime exec failed: exec failed: unable to start container process: exec: \"{}\": {e}",
            command[0]
        ))
    })?;
    // The Command holds copies of the slave: once it and ours are closed, the master reads
    // EIO when the process's side is gone.
    drop(cmd);
    Ok(Started {
        child,
        terminal: pty.map(|(master, _slave)| master),
    })
}

/// A new pty from `/dev/ptmx` of the mount namespace this process is in: the master, and the
/// slave opened (for the process's stdio), its size taken from the caller's terminal.
fn open_pty() -> io::Result<(PtyMaster, File)> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname_r(&master)?;
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&name)?;
    if let Ok(ws) = crate::sys::tty::window_size(io::stdin().as_fd()) {
        let _ = crate::sys::tty::set_window_size(master.as_fd(), &ws);
    }
    Ok((master, slave))
}

/// The slave as the child's stdin, stdout and stderr.
fn slave_stdio(slave: &File) -> io::Result<[OwnedFd; 3]> {
    Ok([
        slave.as_fd().try_clone_to_owned()?,
        slave.as_fd().try_clone_to_owned()?,
        slave.as_fd().try_clone_to_owned()?,
    ])
}
