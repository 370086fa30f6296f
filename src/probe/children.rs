//! The processes the prober starts (exec probes and hooks: `podrun exec`) in a process that
//! reaps every child: the supervisor is a child subreaper and waits with `waitpid(-1)`, so it
//! would take their exit statuses before the prober could (the prober's wait then fails with
//! ECHILD: a passing exec probe read as failed). So the two share a table: a child is entered
//! in it while it is spawned (under the table's lock, which the reaper takes for each
//! `waitpid`, so no exit is reaped before its child is known), the reaper hands the status of
//! a child in the table to the table ([`claim`]), and the prober waits for the child's pidfd
//! and takes the status from the table, or reaps it itself when no reaper ran.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::OwnedFd;
use std::process::{Child, Command};
use std::sync::{Mutex, MutexGuard};

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Running,
    /// Reaped by the reaper: the exit code (128 + signal for a signal).
    Exited(i32),
    /// The prober stopped waiting (its attempt ended): the reaper drops it when it exits.
    Abandoned,
}

static CHILDREN: Mutex<BTreeMap<i32, Entry>> = Mutex::new(BTreeMap::new());

fn table() -> MutexGuard<'static, BTreeMap<i32, Entry>> {
    CHILDREN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Held by the reaper around each `waitpid(-1)` and its [`claim`]: no child of the prober's
/// is reaped between its spawn and its entry in the table.
pub struct Reaping(MutexGuard<'static, BTreeMap<i32, Entry>>);

pub fn reaping() -> Reaping {
    Reaping(table())
}

impl Reaping {
    /// The reaper reaped `pid` with exit `code`: true when it is the prober's (kept for it).
    pub fn claim(&mut self, pid: i32, code: i32) -> bool {
        match self.0.get(&pid).copied() {
            None => false,
            Some(Entry::Abandoned) => {
                self.0.remove(&pid);
                true
            }
            Some(_) => {
                self.0.insert(pid, Entry::Exited(code));
                true
            }
        }
    }
}

/// A child of the prober's: its process and pidfd (readable once it exited).
pub struct Spawned {
    pub child: Child,
    pub pidfd: OwnedFd,
    done: bool,
}

/// Spawn `cmd` and enter it in the table.
pub fn spawn(cmd: &mut Command) -> io::Result<Spawned> {
    let mut table = table();
    let child = cmd.spawn()?;
    let pid = child.id() as i32;
    let pidfd = crate::sys::pidfd_open(pid)?;
    table.insert(pid, Entry::Running);
    Ok(Spawned {
        child,
        pidfd,
        done: false,
    })
}

impl Spawned {
    /// The exit code (128 + signal) once the pidfd said the child exited: from the reaper,
    /// or reaped here.
    pub fn exit_code(&mut self) -> io::Result<i32> {
        let pid = self.child.id() as i32;
        let mut table = table();
        if let Some(Entry::Exited(code)) = table.get(&pid).copied() {
            table.remove(&pid);
            self.done = true;
            return Ok(code);
        }
        let status =
            waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)).map_err(io::Error::from)?;
        let code = match status {
            WaitStatus::Exited(_, code) => code,
            WaitStatus::Signaled(_, signal, _) => 128 + signal as i32,
            _ => return Err(io::Error::new(io::ErrorKind::WouldBlock, "still running")),
        };
        table.remove(&pid);
        self.done = true;
        Ok(code)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let pid = self.child.id() as i32;
        let mut table = table();
        // Reaped already by the reaper: forget it; else whoever reaps it drops the entry (the
        // reaper), or it is reaped here if it already exited (no reaper).
        match table.get(&pid).copied() {
            Some(Entry::Exited(_)) => {
                table.remove(&pid);
            }
            _ => match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {
                    table.insert(pid, Entry::Abandoned);
                }
                _ => {
                    table.remove(&pid);
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reaper_keeps_the_status_of_a_child_of_the_probers() {
        let mut spawned = spawn(Command::new("/bin/sh").args(["-c", "exit 3"])).unwrap();
        let pid = spawned.child.id() as i32;
        // The reaper gets it first (as the supervisor's waitpid(-1) would).
        loop {
            let mut reaping = reaping();
            if let Ok(WaitStatus::Exited(p, code)) =
                waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG))
            {
                assert!(reaping.claim(p.as_raw(), code));
                break;
            }
            drop(reaping);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(spawned.exit_code().unwrap(), 3);
        assert!(!reaping().claim(pid, 0), "forgotten once taken");
    }

    #[test]
    fn without_a_reaper_the_child_is_reaped_here() {
        let mut spawned = spawn(Command::new("/bin/sh").args(["-c", "exit 4"])).unwrap();
        let code = loop {
            match spawned.exit_code() {
                Ok(code) => break code,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(code, 4);
    }
}
