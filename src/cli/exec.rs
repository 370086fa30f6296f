//! `podrun exec NAME [-c C] -- CMD...`: run a command inside a running container, as
//! `runc exec` does: join the container's cgroup and its IPC, UTS, network, PID and mount
//! namespaces (through its main process's namespace files), take its working directory,
//! environment, user, capabilities and no_new_privs from its `config.json`, then start the
//! command and wait for it (the PID namespace only applies to children, so the command is a
//! child of this process), returning its exit status.

use std::process::Command;

use clap::Args;
use nix::sched::CloneFlags;
use oci_spec::runtime::Spec;

use super::{Result, load_pod, msg, pod_arg};
use crate::config::Config;

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// `pod/NAME` or NAME.
    pub pod: String,
    /// Container (default: the first).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Pass stdin to the process (without it the process reads /dev/null, as kubectl's).
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Give the process a terminal of its own (a pty in the container), the caller's
    /// terminal in raw mode; needs stdin to be a terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
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

pub fn exec(cfg: &Config, namespace: &str, args: &ExecArgs) -> Result<i32> {
    // Whatever the caller left open (a shell's `exec 7</etc`) must not reach the container:
    // every descriptor but 0-2 closes at the exec (podrun's own are opened close-on-exec).
    crate::sys::close_inherited_fds();
    let tty = args.tty && {
        let usable = super::terminal::stdin_is_terminal();
        if !usable {
            eprintln!("{}", super::terminal::NOT_A_TERMINAL);
        }
        usable
    };
    let name = pod_arg(&args.pod)?;
    let r = load_pod(cfg, namespace, name)?;
    let container = super::logs::pick_container(&r, args.container.as_deref())?;
    let c = r.container(&container).expect("picked from the record");
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
    let cgroup_fds = crate::pod::pod_cgroup(&r)
        .and_then(|p| p.ok())
        .and_then(|p| p.child(&container).ok())
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
    let pty = if tty {
        Some(super::terminal::open_pty().map_err(|e| {
            msg(format!(
                "OCI runtime exec failed: open a terminal in the container: {e}"
            ))
        })?)
    } else {
        None
    };
    let mut env = crate::container::init::environment(&oci_process);
    if tty && !env.iter().any(|(k, _)| k == "TERM") {
        env.push(("TERM".into(), "xterm".into())); // as containerd's CRI exec with a tty
    }
    let env_list: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let program = crate::container::init::exec_program(&args.command[0], &env_list)
        .map_err(|e| msg(format!("OCI runtime exec failed: exec failed: {e}")))?;
    crate::container::init::apply_credentials(&oci_process)
        .map_err(|e| msg(format!("OCI runtime exec failed: {e}")))?;
    let mut cmd = Command::new(&program);
    {
        use std::os::unix::process::CommandExt;
        cmd.arg0(&args.command[0]);
    }
    cmd.args(&args.command[1..]).env_clear().envs(env);
    if let Some((_, slave)) = &pty {
        let [stdin, stdout, stderr] = super::terminal::slave_stdio(slave)
            .map_err(|e| msg(format!("OCI runtime exec failed: terminal: {e}")))?;
        cmd.stdin(stdin).stdout(stdout).stderr(stderr);
        crate::sys::tty::controlling_terminal_before_exec(&mut cmd);
    } else if !args.stdin {
        cmd.stdin(std::process::Stdio::null());
    }
    let mut child = cmd.spawn().map_err(|e| {
        msg(format!(
            "OCI runtime exec failed: exec failed: unable to start container process: exec: \"{}\": {e}",
            args.command[0]
        ))
    })?;
    // The Command holds copies of the slave: once it and ours are closed, the master reads
    // EIO when the process's side is gone.
    drop(cmd);
    if let Some((master, slave)) = pty {
        drop(slave);
        super::terminal::relay(master, args.stdin)
            .map_err(|e| msg(format!("exec: terminal: {e}")))?;
    }
    let status = child
        .wait()
        .map_err(|e| msg(format!("exec: wait for the process: {e}")))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}
