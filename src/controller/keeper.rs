//! The keeper: starts the worker and starts it again when it ends while workloads are
//! recorded (killed, crashed), with a back-off (0.1 s doubling to 5 s; back to 0.1 s after a
//! worker that ran a minute). Single-threaded, so it forks the worker; it has no other work.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

use super::ControllerPaths;
use crate::config::Config;
use crate::lockfile::LockFile;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub fn run(cfg: &Config, lock: LockFile, adopt: Option<i32>) -> i32 {
    let paths = ControllerPaths::new(cfg);
    let _ = crate::state::write_private(
        &paths.keeper_pid(),
        format!("{}\n", std::process::id()).as_bytes(),
    );
    let store = cfg.store();
    let mut backoff = FIRST_BACKOFF;
    let mut worker = match adopt {
        Some(pid) => Some(pid),
        None => start_worker(cfg, &lock),
    };
    loop {
        let started = Instant::now();
        if let Some(pid) = worker {
            wait_for(pid);
        }
        if !store.has_workloads() {
            let _ = std::fs::remove_file(paths.keeper_pid());
            return 0;
        }
        if started.elapsed() > Duration::from_secs(60) {
            backoff = FIRST_BACKOFF;
        }
        eprintln!(
            "{} controller: worker {} ended; starting another in {} ms",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            worker.unwrap_or(0),
            backoff.as_millis()
        );
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
        worker = start_worker(cfg, &lock);
    }
}

/// Fork the worker; None if the fork failed (tried again after the back-off).
fn start_worker(cfg: &Config, lock: &LockFile) -> Option<i32> {
    match crate::sys::fork_single_threaded() {
        Ok(Some(pid)) => Some(pid.as_raw()),
        Ok(None) => {
            let keeper = nix::unistd::getppid().as_raw();
            std::process::exit(super::worker::run(cfg, lock, keeper))
        }
        Err(e) => {
            eprintln!("podrun: controller: fork the worker: {e}");
            None
        }
    }
}

/// Until process `pid` has ended (reaped if it is our child).
fn wait_for(pid: i32) {
    if let Ok(fd) = crate::sys::pidfd_open(pid) {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        while let Err(nix::errno::Errno::EINTR) = poll(&mut fds, PollTimeout::NONE) {}
    }
    let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
    // Anything else of ours that ended (nothing else is started here).
    while let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if status == nix::sys::wait::WaitStatus::StillAlive {
            break;
        }
    }
}
