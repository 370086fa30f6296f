//! The only home of `unsafe` in podrun: hooks that run between `fork` and `exec`, and the few
//! system calls nix does not wrap.
//!
//! Every closure given to `pre_exec` here runs in the forked child of a process that may have
//! other threads (tokio, the std runtime). Only async-signal-safe work is allowed there: raw
//! system calls on values prepared before the fork, no allocation, no locks.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sched::CloneFlags;

/// Let `cmd` create fresh namespaces (`flags`) and set the new UTS namespace's hostname before it
/// execs. Used for the pause process, which then only has to hold them.
pub fn unshare_before_exec(cmd: &mut Command, flags: CloneFlags, hostname: String) {
    let set_hostname = flags.contains(CloneFlags::CLONE_NEWUTS);
    // SAFETY: the closure only calls unshare(2), sethostname(2) and setsid(2) on data owned by
    // the closure (allocated before fork); all are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            nix::sched::unshare(flags)?;
            if set_hostname {
                nix::unistd::sethostname(&hostname)?;
            }
            close_inherited_fds();
            Ok(())
        });
    }
}

/// Let `cmd` join the namespaces behind `fds` (in order) and start its own process group before
/// it execs, so that the supervisor can signal the container and everything it forks at once.
pub fn join_before_exec(cmd: &mut Command, fds: Vec<(RawFd, CloneFlags)>) {
    // SAFETY: setns(2) and setpgid(2) are async-signal-safe; the fds stay open in the parent
    // (they are owned by the caller for the duration of `spawn`), and the Vec was built before
    // fork and is only read here.
    unsafe {
        cmd.pre_exec(move || {
            for (fd, flag) in &fds {
                if libc::setns(*fd, flag.bits()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if libc::setpgid(0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            close_inherited_fds();
            Ok(())
        });
    }
}

/// Mark every descriptor above stderr close-on-exec (as runc does before exec), so nothing the
/// supervisor or whoever started it holds leaks into a container. Async-signal-safe.
fn close_inherited_fds() {
    // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC only sets flags; no memory is touched.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
}

/// Detach `cmd` from the caller's session (a daemon), keeping `inherit` open across exec.
pub fn detach_before_exec(cmd: &mut Command, inherit: RawFd) {
    // SAFETY: setsid(2) and fcntl(2) are async-signal-safe and take plain integers.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            let flags = libc::fcntl(inherit, libc::F_GETFD);
            if flags < 0 || libc::fcntl(inherit, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// `pidfd_open(2)`: a file descriptor that becomes readable when `pid` exits. Lets the CLI wait
/// for a supervisor that is not its child, without polling.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain system call with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_send_signal(2)`: signal exactly the process behind `pidfd`, immune to PID reuse.
pub fn pidfd_send_signal(pidfd: &OwnedFd, signal: i32) -> io::Result<()> {
    // SAFETY: plain system call; a null siginfo is allowed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Take ownership of a descriptor inherited across exec (its number passed in the environment),
/// if it is open.
pub fn inherited_fd(fd: RawFd) -> Option<OwnedFd> {
    // SAFETY: F_GETFD only queries the descriptor table.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    // Close it on our own exec: the processes we start must not hold our parent's pipe open.
    // SAFETY: F_SETFD on a descriptor we just checked is open.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    // SAFETY: the descriptor is open and was created by our parent for this process alone;
    // nothing else in this process refers to it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}
