//! `podrun exec NAME [-c C] -- CMD...`: join the pod's UTS/IPC/net namespaces (through the
//! pause's namespace files, as the containers did) and exec the command in place, with the
//! container's environment and working directory.

use std::os::unix::process::CommandExt;
use std::process::Command;

use clap::Args;

use super::{Result, load_pod, msg};
use crate::config::Config;
use crate::sandbox::NamespaceFds;
use crate::spec::ResolvedProcess;

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// `pod/NAME` or NAME.
    pub pod: String,
    /// Container (default: the first).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Accepted for kubectl compatibility (stdin is always passed through).
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Accepted for kubectl compatibility (the terminal is passed through as it is).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub fn exec(cfg: &Config, namespace: &str, args: &ExecArgs) -> Result<i32> {
    let name = args.pod.strip_prefix("pod/").unwrap_or(&args.pod);
    let r = load_pod(cfg, namespace, name)?;
    let container = super::logs::pick_container(&r, args.container.as_deref())?;
    let c = r.container(&container).expect("picked from the record");
    if c.process.is_none_or(|p| !p.is_alive()) {
        return Err(msg(format!(
            "unable to upgrade connection: container not found (\"{container}\")"
        )));
    }
    let pause = r
        .sandbox
        .as_ref()
        .filter(|s| s.ready)
        .and_then(|s| s.pause)
        .filter(|p| p.is_alive());
    let pause = pause.ok_or_else(|| msg(format!("pod {name} has no running sandbox")))?;
    let ns = NamespaceFds::open(pause.pid).map_err(|e| msg(e.to_string()))?;
    for (fd, flag) in &ns.fds {
        nix::sched::setns(fd, *flag).map_err(|e| msg(format!("setns {flag:?}: {e}")))?;
    }
    let resolved = c.resolved.clone().unwrap_or(ResolvedProcess {
        argv: Vec::new(),
        env: Vec::new(),
        working_dir: None,
    });
    let mut cmd = Command::new(&args.command[0]);
    cmd.args(&args.command[1..])
        .env_clear()
        .envs(crate::container::environment(&resolved, &r.plan.hostname))
        .current_dir(resolved.working_dir.as_deref().unwrap_or("/"));
    let err = cmd.exec();
    Err(msg(format!(
        "OCI runtime exec failed: exec failed: unable to start container process: exec: \"{}\": {err}",
        args.command[0]
    )))
}
