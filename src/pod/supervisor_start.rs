//! Start one pod's supervisor for `apply`, detached (its own session, stdout/stderr in its
//! `supervisor.log`, [`crate::state::PodPaths`]), with a pipe on which it reports `ok` or
//! why not ([`StartReport`]).
//!
//! The supervisor is forked from the CLI itself: a second exec of the podrun binary (loading,
//! relocating, parsing the command line again) cost ~2 ms of each apply. The child renames
//! itself to the command it stands for, `podrun --root ROOT __supervise KEY`, so `ps` and
//! `podrun doctor` see the same process as before. When the CLI has other threads (fork would
//! not be safe) or the rename is refused (no CAP_SYS_RESOURCE), that command is exec'd instead.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::unistd::Pid;

use super::{PodError, Result};
use crate::config::{self, Config};
use crate::state::{PodKey, PodRecord, Store};
use crate::supervisor::report::StartReport;

/// The environment variable naming the report pipe's descriptor of an exec'd supervisor.
pub const READY_FD_ENV: &str = "PODRUN_READY_FD";

/// A started supervisor: its pid (a child of the CLI until the CLI exits) and the read end of
/// its report pipe.
pub struct StartedSupervisor {
    pub pid: Pid,
    pub ready: File,
}

/// Start the supervisor of `record`'s pod (just saved by apply).
pub fn start(cfg: &Config, store: &Store, record: &PodRecord) -> Result<StartedSupervisor> {
    let key = &record.key();
    let io = |context: &'static str| {
        move |source| PodError::Io {
            context: context.to_owned(),
            source,
        }
    };
    let (rd, wr) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| io("pipe")(e.into()))?;
    let log =
        File::create(store.paths(key).supervisor_log()).map_err(io("create supervisor log"))?;
    let exe = config::podrun_binary();
    let args = supervise_args(cfg, key);
    // Anything buffered now would be written again by the child.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let fork = if exec_requested() {
        Err(std::io::Error::other("PODRUN_SUPERVISOR=exec"))
    } else {
        crate::sys::fork_single_threaded()
    };
    let pid = match fork {
        Ok(Some(pid)) => pid,
        Ok(None) => become_supervisor(store, record, log, wr, &exe, &args),
        Err(_) => {
            let mut cmd = supervise_command(&exe, &args, &wr);
            cmd.stdin(Stdio::null())
                .stdout(log.try_clone().map_err(io("supervisor log"))?)
                .stderr(log);
            crate::sys::detach_before_exec(&mut cmd, wr.as_raw_fd());
            let child = cmd.spawn().map_err(io("start supervisor"))?;
            Pid::from_raw(child.id() as i32)
        }
    };
    drop(wr);
    Ok(StartedSupervisor {
        pid,
        ready: File::from(rd),
    })
}

/// Set by a process whose state a fork would carry into the supervisor: one that built a
/// tokio runtime (any runtime with I/O sets up tokio's process-wide signal registry, a
/// socket pair the forked child closes as it detaches; the numbers are reused by the
/// supervisor's own files, and its prober's runtime then reads them as the registry's and
/// panics, `Bad read on self-pipe`), and the long-running controller and API server. Such a
/// process execs its supervisors.
static EXEC_ALWAYS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From now on, this process execs every supervisor it starts instead of forking it. Called
/// by whatever builds a tokio runtime (see [`EXEC_ALWAYS`]).
pub fn exec_supervisors() {
    EXEC_ALWAYS.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// `PODRUN_SUPERVISOR=exec`: always exec a fresh `podrun __supervise` (the fallback path; for
/// tests, and for hosts where a renamed fork would confuse some tool).
fn exec_requested() -> bool {
    EXEC_ALWAYS.load(std::sync::atomic::Ordering::Relaxed)
        || std::env::var("PODRUN_SUPERVISOR").is_ok_and(|v| v == "exec")
}

/// `--root ROOT __supervise KEY`: the supervisor's command line after the program name.
fn supervise_args(cfg: &Config, key: &PodKey) -> Vec<std::ffi::OsString> {
    vec![
        "--root".into(),
        cfg.root.clone().into_os_string(),
        "__supervise".into(),
        key.to_string().into(),
    ]
}

fn supervise_command(
    exe: &std::path::Path,
    args: &[std::ffi::OsString],
    ready: &OwnedFd,
) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .env(READY_FD_ENV, ready.as_raw_fd().to_string());
    cmd
}

/// The forked child: detach, take the supervisor's name and run it; never returns.
fn become_supervisor(
    store: &Store,
    record: &PodRecord,
    log: File,
    ready: OwnedFd,
    exe: &std::path::Path,
    args: &[std::ffi::OsString],
) -> ! {
    if let Err(e) = crate::sys::daemonize_forked(log, ready.as_raw_fd()) {
        report_and_exit(ready, &format!("detach supervisor: {e}"));
    }
    let mut cmdline: Vec<&OsStr> = vec![exe.as_os_str()];
    cmdline.extend(args.iter().map(|a| a.as_os_str()));
    if let Err(e) = crate::sys::set_cmdline(&cmdline) {
        tracing::debug!(error = %e, "cannot rename the forked supervisor; exec'ing it");
        let _ = nix::fcntl::fcntl(
            &ready,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        );
        let err = supervise_command(exe, args, &ready).exec();
        report_and_exit(ready, &format!("start supervisor: {err}"));
    }
    let code = crate::supervisor::run(
        store.clone(),
        record.key(),
        Some(record.clone()),
        config::pause_binary(),
        Some(ready),
    );
    std::process::exit(code)
}

fn report_and_exit(ready: OwnedFd, message: &str) -> ! {
    StartReport::Failed(message.to_owned()).send(ready);
    std::process::exit(1)
}
