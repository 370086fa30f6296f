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

/// What a forked child does to itself before it execs, in this order: join its cgroups (so
/// nothing it does runs unlimited), set its oom_score_adj, create new namespaces (and the UTS
/// hostname) or join existing ones, start its own process group, and mark inherited fds CLOEXEC.
#[derive(Debug, Default)]
pub struct ChildSetup {
    /// Open `cgroup.procs` files; writing "0" moves the writing process (cgroup v1 and v2).
    pub cgroup_procs: Vec<RawFd>,
    pub oom_score_adj: Option<i32>,
    /// Namespaces to create, and the hostname for a new UTS namespace.
    pub unshare: Option<(CloneFlags, String)>,
    /// Namespace files to `setns` into, in order.
    pub join: Vec<(RawFd, CloneFlags)>,
    pub new_process_group: bool,
}

/// Install `setup` as `cmd`'s pre-exec hook.
pub fn before_exec(cmd: &mut Command, setup: ChildSetup) {
    let oom: Option<Vec<u8>> = setup.oom_score_adj.map(|v| v.to_string().into_bytes());
    // SAFETY: the closure only makes system calls (write, open, close, unshare, sethostname,
    // setns, setpgid, close_range) on data prepared before fork and owned by the closure; all
    // of them are async-signal-safe and nothing allocates.
    unsafe {
        cmd.pre_exec(move || {
            for fd in &setup.cgroup_procs {
                if libc::write(*fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(io::Error::last_os_error());
                }
            }
            // Best effort: lowering the score needs CAP_SYS_RESOURCE, which some hosts (and
            // containers running podrun) lack; the supervisor logs what the child really got.
            if let Some(value) = &oom {
                let fd = libc::open(
                    c"/proc/self/oom_score_adj".as_ptr(),
                    libc::O_WRONLY | libc::O_CLOEXEC,
                );
                if fd >= 0 {
                    libc::write(fd, value.as_ptr().cast(), value.len());
                    libc::close(fd);
                }
            }
            if let Some((flags, hostname)) = &setup.unshare {
                nix::sched::unshare(*flags)?;
                if flags.contains(CloneFlags::CLONE_NEWUTS) {
                    nix::unistd::sethostname(hostname)?;
                }
            }
            for (fd, flag) in &setup.join {
                if libc::setns(*fd, flag.bits()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if setup.new_process_group && libc::setpgid(0, 0) != 0 {
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
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
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

/// Give SIGPIPE back its default action (Rust's runtime ignores it), so a CLI verb piped into
/// `head` or `grep -q` ends quietly like any Unix tool instead of failing on a write error.
pub fn default_sigpipe() {
    // SAFETY: installing SIG_DFL runs no handler code; done once at start-up, before threads.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}
