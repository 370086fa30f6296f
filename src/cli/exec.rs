//! `podrun exec NAME [-c C] [-i] [-t] -- CMD...`: start the command in the container
//! ([`crate::pod::exec`]), relay the terminal with `-t`, wait, and return its exit status.

use clap::Args;

use super::{Result, load_pod, msg, pod_arg};
use crate::config::Config;
use crate::pod::exec::{self, ExecStdio, Started};

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
    let stdio = match (tty, args.stdin) {
        (true, _) => ExecStdio::Terminal,
        (false, true) => ExecStdio::Inherit,
        (false, false) => ExecStdio::Null,
    };
    let Started {
        mut child,
        terminal,
    } = exec::start(&r, &container, &args.command, stdio)?;
    if let Some(master) = terminal {
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
