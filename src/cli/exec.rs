//! `podrun exec NAME [-c C] [-i] [-t] -- CMD...`: start the command in the container
//! ([`crate::pod::exec`]), relay the terminal with `-t`, wait, and return its exit status.

use clap::Args;

use super::{Result, load_pod, msg, pod_arg};
use crate::config::Config;
use crate::pod::exec::{self, ExecStdio, Started};
use crate::pod::exec_child;

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
    /// `podrun serve`'s exec: report the start (and hand over the terminal) on this
    /// descriptor instead of relaying ([`crate::pod::exec_child`]).
    #[arg(long, hide = true, value_name = "FD")]
    pub report_fd: Option<i32>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub fn exec(cfg: &Config, namespace: &str, args: &ExecArgs) -> Result<i32> {
    if let Some(fd) = args.report_fd {
        return exec_reported(cfg, namespace, args, fd);
    }
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
    let Started { child, terminal } = exec::start(&r, &container, &args.command, stdio)?;
    if let Some(master) = terminal {
        super::terminal::relay(master, args.stdin)
            .map_err(|e| msg(format!("exec: terminal: {e}")))?;
    }
    wait(child)
}

fn wait(mut child: std::process::Child) -> Result<i32> {
    let status = child
        .wait()
        .map_err(|e| msg(format!("exec: wait for the process: {e}")))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// The child of `podrun serve`'s exec: the stdio it was given go to the command (or a pty
/// of the container's, whose master goes back on the report descriptor), and the start or
/// the error is reported there.
fn exec_reported(cfg: &Config, namespace: &str, args: &ExecArgs, fd: i32) -> Result<i32> {
    let reporter = exec_child::Reporter::from_fd(fd)
        .ok_or_else(|| msg(format!("exec: descriptor {fd} is not open")))?;
    crate::sys::close_inherited_fds();
    let started = (|| {
        let r = load_pod(cfg, namespace, pod_arg(&args.pod)?)?;
        let container = super::logs::pick_container(&r, args.container.as_deref())?;
        let stdio = match (args.tty, args.stdin) {
            (true, _) => ExecStdio::Terminal,
            (false, true) => ExecStdio::Inherit,
            (false, false) => ExecStdio::Null,
        };
        Ok::<_, super::CliError>(exec::start(&r, &container, &args.command, stdio)?)
    })();
    let Started { child, terminal } = match started {
        Ok(s) => s,
        Err(e) => {
            reporter.failed(&e.to_string());
            return Err(e);
        }
    };
    let sent = match &terminal {
        Some(master) => reporter.terminal(master),
        None => reporter.started(),
    };
    drop(terminal);
    drop(reporter);
    sent.map_err(|e| msg(format!("exec: report the start: {e}")))?;
    wait(child)
}
