//! The worker: a reconcile pass at start and after every change it is told of, sleeping in
//! one poll(2) in between (see the module notes of `controller`).

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::ControllerPaths;
use super::reconcile::{self, Memory};
use crate::config::Config;
use crate::lockfile::LockFile;
use crate::state::StateWatch;

/// A pass even when nothing was heard of for this long: a safety net, not a poll.
const RESYNC: Duration = Duration::from_secs(60);
/// Changes that come together (a record written aside and renamed, a delete's files) are
/// taken in one pass: the worker waits this long for the rest of a burst.
const SETTLE: Duration = Duration::from_millis(5);

pub fn run(cfg: &Config, lock: &LockFile, keeper: i32) -> i32 {
    let paths = ControllerPaths::new(cfg);
    let me = std::process::id() as i32;
    let root = cfg.root.clone().into_os_string();
    let exe = crate::config::podrun_binary().into_os_string();
    let name: [&std::ffi::OsStr; 5] = [
        &exe,
        "--root".as_ref(),
        &root,
        "__controller".as_ref(),
        "worker".as_ref(),
    ];
    let _ = crate::sys::set_cmdline(&name);
    // A long-lived process: its supervisors are exec'd, not forked (see `exec_supervisors`).
    crate::pod::exec_supervisors();
    // Atomically: a reader never sees it empty or half-written.
    let _ = crate::state::write_private(&paths.worker_pid(), format!("{me}\n").as_bytes());
    let mut watches = match StateWatch::new(&cfg.root) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("podrun: controller: inotify: {e}");
            return 1;
        }
    };
    let mut keeper = crate::sys::pidfd_open(keeper).ok();
    let mut memory = Memory::default();
    let mut supervisors: HashMap<i32, OwnedFd> = HashMap::new();
    loop {
        reap();
        watches.refresh();
        let outcome = reconcile::pass(cfg, &mut memory);
        if !outcome.workloads {
            let _ = std::fs::remove_file(paths.worker_pid());
            return 0;
        }
        watch_supervisors(&mut supervisors, &outcome.supervisors);
        if outcome.changed {
            // What it did is heard of as changes too; take them in the next pass.
            std::thread::sleep(SETTLE);
        }
        let timeout = outcome
            .next
            .map(|at| at.saturating_duration_since(Instant::now()))
            .unwrap_or(RESYNC)
            .min(RESYNC);
        let keeper_ended = wait(&watches, keeper.as_ref(), &supervisors, timeout);
        if keeper_ended {
            keeper = respawn_keeper(cfg, &paths, lock, me);
        }
        // The rest of a burst of changes, in the same pass.
        std::thread::sleep(SETTLE);
        watches.drain();
    }
}

/// Sleep until a change, the keeper's end, a supervisor's end or `timeout`; whether the
/// keeper ended.
fn wait(
    watches: &StateWatch,
    keeper: Option<&OwnedFd>,
    supervisors: &HashMap<i32, OwnedFd>,
    timeout: Duration,
) -> bool {
    let mut fds = vec![PollFd::new(watches.fd(), PollFlags::POLLIN)];
    if let Some(k) = keeper {
        fds.push(PollFd::new(k.as_fd(), PollFlags::POLLIN));
    }
    fds.extend(
        supervisors
            .values()
            .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN)),
    );
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
    if poll(&mut fds, timeout).is_err() {
        return false;
    }
    keeper.is_some() && fds[1].revents().is_some_and(|r| !r.is_empty())
}

/// A new keeper (`__controller --adopt ME`) holding the lock, watched in turn.
fn respawn_keeper(
    cfg: &Config,
    paths: &ControllerPaths,
    lock: &LockFile,
    me: i32,
) -> Option<OwnedFd> {
    eprintln!(
        "{} controller: keeper ended; starting another",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    match super::spawn(cfg, paths, lock, Some(me)) {
        Ok(pid) => crate::sys::pidfd_open(pid as i32).ok(),
        Err(e) => {
            eprintln!("podrun: controller: start a keeper: {e}");
            None
        }
    }
}

/// A pidfd per supervisor of a workload's pod: its end (killed, crashed) wakes the worker.
fn watch_supervisors(watched: &mut HashMap<i32, OwnedFd>, live: &[i32]) {
    let live: HashSet<i32> = live.iter().copied().collect();
    watched.retain(|pid, _| live.contains(pid));
    for pid in live {
        if let std::collections::hash_map::Entry::Vacant(slot) = watched.entry(pid)
            && let Ok(fd) = crate::sys::pidfd_open(pid)
        {
            slot.insert(fd);
        }
    }
}

/// Reap the worker's ended children (the supervisors it forked, keepers it started).
fn reap() {
    while let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}
