//! Reading `/proc`: process identity (pid + start time, so a recycled PID is never mistaken for
//! ours), namespace inodes, and the parent/child tree used to find everything a container forked.

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

/// Wait once until one of the processes whose pidfds `held` has exits (a pidfd turns
/// readable the moment its process exits: no polling interval) or `deadline` passes, and drop
/// the exited ones from `held`. False when there is nothing left to wait for or poll failed.
pub fn wait_for_exits<T>(
    held: &mut Vec<T>,
    pidfd: impl for<'a> Fn(&'a T) -> std::os::fd::BorrowedFd<'a>,
    deadline: std::time::Instant,
) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    if held.is_empty() || left.is_zero() {
        return false;
    }
    let mut fds: Vec<PollFd> = held
        .iter()
        .map(|h| PollFd::new(pidfd(h), PollFlags::POLLIN))
        .collect();
    let timeout = PollTimeout::try_from(left.as_millis().clamp(1, i32::MAX as u128) as i32)
        .unwrap_or(PollTimeout::MAX);
    if poll(&mut fds, timeout).is_err() {
        return false;
    }
    let exited: Vec<bool> = fds
        .iter()
        .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
        .collect();
    drop(fds);
    let mut exited = exited.into_iter();
    held.retain(|_| !exited.next().unwrap_or(false));
    true
}

/// Start time of `pid` in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
pub fn start_time(pid: i32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Parent PID (field 4 of `/proc/<pid>/stat`).
pub fn parent(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// State letter (field 3): `Z` for a zombie.
pub fn state(pid: i32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

/// Fields after the `comm` (which may contain spaces and parentheses), starting with the state.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    stat_fields_of(&format!("/proc/{pid}/stat"))
}

fn stat_fields_of(path: &str) -> Option<Vec<String>> {
    let stat = fs::read_to_string(path).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    Some(after.split_whitespace().map(str::to_owned).collect())
}

/// Field `n` (numbered as in proc(5), from 3 on) of this process's `/proc/self/stat`.
pub fn own_stat_field(n: usize) -> Option<u64> {
    stat_fields_of("/proc/self/stat")?
        .get(n.checked_sub(3)?)?
        .parse()
        .ok()
}

/// Number of threads of this process (field 20).
pub fn own_thread_count() -> Option<u64> {
    own_stat_field(20)
}

/// True when `pid` still runs the process that started at `start` (a zombie counts as gone).
pub fn is_same_process(pid: i32, start: Option<u64>) -> bool {
    if pid <= 0 {
        return false;
    }
    // One read of /proc/<pid>/stat for both (the API server asks this of every pod's
    // processes on each list).
    let Some(fields) = stat_fields(pid) else {
        return false;
    };
    let zombie = fields.first().is_some_and(|s| s.starts_with('Z'));
    let now: Option<u64> = fields.get(19).and_then(|f| f.parse().ok());
    match (now, start) {
        (Some(now), Some(then)) => now == then && !zombie,
        (Some(_), None) => !zombie,
        _ => false,
    }
}

/// `/proc/<pid>/ns/<kind>`: a namespace of `pid` (`kind` is `net`, `uts`, `ipc`, `pid`,
/// `mnt`...), to open for `setns`, bind-mount as a pin or name in a runtime spec.
pub fn ns_path(pid: i32, kind: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/{kind}"))
}

/// Open a namespace of `pid` (O_CLOEXEC) for `setns`; the error names the path.
pub fn open_ns(pid: i32, kind: &str) -> Result<File, (PathBuf, std::io::Error)> {
    let path = ns_path(pid, kind);
    File::open(&path).map_err(|e| (path, e))
}

/// Inode of a namespace of `pid` (see [`ns_path`]).
pub fn ns_inode(pid: i32, kind: &str) -> Option<u64> {
    fs::metadata(ns_path(pid, kind)).ok().map(|m| m.ino())
}

/// How a child ended, from `waitpid`: its pid, the exit code as a shell shows it (the
/// status, or 128 + the signal's number) and the signal that killed it. `None` for a status
/// that is not an end (stopped, continued, still alive).
pub fn exit_of(status: WaitStatus) -> Option<(i32, i32, Option<i32>)> {
    match status {
        WaitStatus::Exited(pid, code) => Some((pid.as_raw(), code, None)),
        WaitStatus::Signaled(pid, sig, _) => {
            Some((pid.as_raw(), 128 + sig as i32, Some(sig as i32)))
        }
        _ => None,
    }
}

/// The pid of every process in /proc (of this PID namespace), in directory order.
pub fn pids() -> impl Iterator<Item = i32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
}

/// Every live descendant of `root` (children first found, then theirs), from one scan of /proc.
pub fn descendants(root: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for pid in pids() {
        if let Some(ppid) = parent(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut queue = vec![root];
    while let Some(p) = queue.pop() {
        for &c in children.get(&p).into_iter().flatten() {
            out.push(c);
            queue.push(c);
        }
    }
    out
}

/// Signal a process group; "no such process" is not an error (it is already gone).
pub fn signal_group(pgid: i32, signal: Signal) {
    if pgid > 1 {
        let _ = killpg(Pid::from_raw(pgid), signal);
    }
}

/// Signal one process if it is still the one we started.
pub fn signal_if_same(pid: i32, start: Option<u64>, signal: Signal) {
    if is_same_process(pid, start) {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// Why SIGTERM would not reach a process, as `/proc/<pid>/status` shows it right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigtermBlind {
    /// It ignores SIGTERM (`SigIgn`).
    Ignores,
    /// It is PID 1 of a PID namespace of its own and has no SIGTERM handler (`SigCgt`): the
    /// kernel drops a signal sent to such an init from outside with the default action (what
    /// a container's first process is in Kubernetes too).
    InitWithoutHandler,
}

/// Whether a SIGTERM sent to `pid` now would be lost (see [`SigtermBlind`]); `None` when it
/// would be delivered, or the process is gone.
pub fn sigterm_blind(pid: i32) -> Option<SigtermBlind> {
    sigterm_blind_in(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

fn sigterm_blind_in(status: &str) -> Option<SigtermBlind> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let term = 1u64 << (libc::SIGTERM - 1);
    let mask = |name| u64::from_str_radix(field(name)?, 16).ok();
    if mask("SigIgn")? & term != 0 {
        return Some(SigtermBlind::Ignores);
    }
    let ns_pids: Vec<&str> = field("NSpid")?.split_whitespace().collect();
    let init_of_own_ns = ns_pids.len() > 1 && ns_pids.last() == Some(&"1");
    (init_of_own_ns && mask("SigCgt")? & term == 0).then_some(SigtermBlind::InitWithoutHandler)
}

/// Whether `pid` has a handler for `signal` now (`SigCgt` of `/proc/<pid>/status`): a signal
/// whose default action ends the process is only sent to one that catches it.
pub fn catches(pid: i32, signal: Signal) -> bool {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|mask| mask & (1u64 << (signal as i32 - 1)) != 0)
}

/// Boot time in seconds since the epoch and the clock tick rate, to turn start times into dates.
pub fn clock_ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map(|v| v as u64)
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(ns_pid: &str, ign: &str, cgt: &str) -> String {
        format!("Name:\tpython3\nNSpid:\t{ns_pid}\nSigIgn:\t{ign}\nSigCgt:\t{cgt}\n")
    }

    #[test]
    fn sigterm_is_lost_on_an_init_without_handler_or_when_ignored() {
        use SigtermBlind::*;
        let (none, term) = ("0000000000000000", "0000000000004000");
        let blind = |ns, ign, cgt| sigterm_blind_in(&status(ns, ign, cgt));
        assert_eq!(blind("15996\t1", none, none), Some(InitWithoutHandler));
        assert_eq!(blind("15996\t1", none, term), None, "a handler receives it");
        assert_eq!(
            blind("15996\t7", none, none),
            None,
            "not an init: the default kills"
        );
        assert_eq!(blind("15996", none, none), None, "the host's namespace");
        assert_eq!(blind("15996\t1", term, none), Some(Ignores));
        assert_eq!(blind("15996", term, none), Some(Ignores));
        // This test process: not an init, no SIGTERM handler.
        assert_eq!(sigterm_blind(std::process::id() as i32), None);
    }

    #[test]
    fn exit_codes_are_the_status_or_128_plus_the_signal() {
        let pid = Pid::from_raw(7);
        assert_eq!(exit_of(WaitStatus::Exited(pid, 3)), Some((7, 3, None)));
        assert_eq!(
            exit_of(WaitStatus::Signaled(pid, Signal::SIGKILL, false)),
            Some((7, 137, Some(9)))
        );
        assert_eq!(exit_of(WaitStatus::StillAlive), None);
        assert_eq!(exit_of(WaitStatus::Stopped(pid, Signal::SIGSTOP)), None);
    }

    #[test]
    fn own_stat_fields_are_read_after_the_command_name() {
        // The test harness runs threads of its own; the main one and this one at least.
        assert!(own_thread_count().unwrap() >= 1);
        let (arg_start, arg_end) = (own_stat_field(48).unwrap(), own_stat_field(49).unwrap());
        assert!(arg_start < arg_end, "{arg_start} {arg_end}");
        assert_eq!(
            own_stat_field(1),
            None,
            "fields before the state are not counted"
        );
        assert_eq!(
            own_stat_field(4).map(|p| p as u32),
            Some(std::os::unix::process::parent_id())
        );
    }
}
