//! The only home of `unsafe` in podrun: hooks that run between `fork` and `exec`, and the few
//! system calls nix does not wrap.
//!
//! Every closure given to `pre_exec` here runs in the forked child of a process that may have
//! other threads (tokio, the std runtime). Only async-signal-safe work is allowed there: raw
//! system calls on values prepared before the fork, no allocation, no locks.

pub mod bpf;
pub mod tty;

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sched::CloneFlags;

/// What a forked child does to itself before it execs, in this order: join its cgroups (so
/// nothing it does runs unlimited), set its oom_score_adj, create new namespaces (and the UTS
/// hostname) or join existing ones, start its own process group, and mark inherited fds CLOEXEC.
#[derive(Debug, Default)]
pub struct ChildSetup {
    /// Open `cgroup.procs` (v2) or `tasks` (v1) files; writing "0" moves the writing process,
    /// single-threaded after fork (see `ChildCgroup::self_placement_fds`).
    pub cgroup_procs: Vec<RawFd>,
    pub oom_score_adj: Option<i32>,
    /// Namespaces to create, and the hostname for a new UTS namespace.
    pub unshare: Option<(CloneFlags, String)>,
    pub new_process_group: bool,
    /// Descriptors handed to the new program as 3, 4, ... (in this order), without CLOEXEC.
    pub pass_fds: Vec<RawFd>,
    /// A pipe on which the child writes its pid (4 bytes, native endian) first of all, so the
    /// parent knows it before the child's set-up and exec are done.
    pub report_pid: Option<RawFd>,
}

/// Read the pid a child wrote on its `ChildSetup::report_pid` pipe; None if it closed the pipe
/// without (the fork failed).
pub fn read_reported_pid(pipe: OwnedFd) -> Option<i32> {
    let mut buf = [0u8; 4];
    io::Read::read_exact(&mut std::fs::File::from(pipe), &mut buf).ok()?;
    Some(i32::from_ne_bytes(buf))
}

/// Most descriptors `ChildSetup::pass_fds` can hand over.
const MAX_PASS_FDS: usize = 32;

/// Install `setup` as `cmd`'s pre-exec hook.
pub fn before_exec(cmd: &mut Command, setup: ChildSetup) {
    let oom: Option<Vec<u8>> = setup.oom_score_adj.map(|v| v.to_string().into_bytes());
    assert!(setup.pass_fds.len() <= MAX_PASS_FDS, "too many fds to pass");
    // SAFETY: the closure only makes system calls (getpid, write, open, close, unshare, sethostname,
    // setns, setpgid, close_range) on data prepared before fork and owned by the closure; all
    // of them are async-signal-safe and nothing allocates.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(fd) = setup.report_pid {
                let pid = libc::getpid().to_ne_bytes();
                libc::write(fd, pid.as_ptr().cast(), pid.len());
            }
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
            if setup.new_process_group && libc::setpgid(0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            close_inherited_fds();
            pass_fds(&setup.pass_fds)?;
            Ok(())
        });
    }
}

/// Mark every descriptor above stderr close-on-exec (as runc does before exec), so nothing the
/// supervisor, the caller of `podrun exec` or whoever started a process holds leaks into a
/// container. Async-signal-safe.
pub fn close_inherited_fds() {
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

/// Move `fds` to 3, 4, ... for the new program. Two steps (first above every target, then onto
/// the targets) so a source that already sits on a target number is never clobbered. The
/// copies made by `dup2` do not have CLOEXEC, so exactly these survive exec. Async-signal-safe.
fn pass_fds(fds: &[RawFd]) -> io::Result<()> {
    let mut high = [0 as RawFd; MAX_PASS_FDS];
    for (i, fd) in fds.iter().enumerate() {
        // SAFETY: fcntl(2) on plain integers; the result is checked.
        let copy = unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 3 + MAX_PASS_FDS as i32) };
        if copy < 0 {
            return Err(io::Error::last_os_error());
        }
        high[i] = copy;
    }
    for (i, fd) in high.iter().take(fds.len()).enumerate() {
        // SAFETY: dup2(2) on descriptors this process owns; the result is checked.
        if unsafe { libc::dup2(*fd, 3 + i as i32) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

const FSOPEN_CLOEXEC: libc::c_uint = 0x1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 0x1;
const OPEN_TREE_CLONE: libc::c_uint = 0x1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
/// `MOUNT_ATTR_*` for [`fs_mount`].
pub const MOUNT_ATTR_RDONLY: u32 = 0x1;
pub const MOUNT_ATTR_NOSUID: u32 = 0x2;
pub const MOUNT_ATTR_NODEV: u32 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u32 = 0x8;

fn owned_fd(rc: libc::c_long) -> io::Result<OwnedFd> {
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as RawFd) })
}

fn cstring(text: &str) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(text).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// A new, detached filesystem mount made with the mount API (`fsopen(2)`, `fsconfig(2)`,
/// `fsmount(2)`): `options` are `key=value` pairs (an empty value sets a flag, `lowerdir+`
/// may repeat), `attrs` are `MOUNT_ATTR_*`. The mount is attached nowhere: it lives while the
/// descriptor (or a place it is moved to) does, so nothing appears in any mount table until
/// [`move_mount`] puts it somewhere. Overlay layers given as `lowerdir+` need no escaping of
/// `:` or `,` (Linux 6.8+).
pub fn fs_mount(fstype: &str, options: &[(&str, &str)], attrs: u32) -> io::Result<OwnedFd> {
    let fstype = cstring(fstype)?;
    // SAFETY: fsopen(2) reads a NUL-terminated string that outlives the call.
    let fs = owned_fd(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) })?;
    for (key, value) in options {
        let k = cstring(key)?;
        let v = cstring(value)?;
        let (cmd, value_ptr) = if value.is_empty() {
            (FSCONFIG_SET_FLAG, std::ptr::null())
        } else {
            (FSCONFIG_SET_STRING, v.as_ptr())
        };
        // SAFETY: fsconfig(2) with a descriptor we own and NUL-terminated strings that outlive
        // the call (or null for a flag).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                cmd,
                k.as_ptr(),
                value_ptr,
                0,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("{key}={value}: {e}")));
        }
    }
    // SAFETY: as above; FSCONFIG_CMD_CREATE takes no key or value.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fsmount(2) on the configured context we own.
    owned_fd(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) })
}

/// `open_tree(fd, "", OPEN_TREE_CLONE)`: a detached copy of the mount behind `fd` (a detached
/// mount from [`fs_mount`] too), sharing its filesystem: how one pod-level tmpfs is given to
/// each container's mount namespace.
pub fn clone_mount(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: open_tree(2) with a descriptor we hold and an empty NUL-terminated path.
    owned_fd(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            fd.as_raw_fd(),
            c"".as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_EMPTY_PATH as libc::c_uint,
        )
    })
}

/// `move_mount(2)`: attach the detached mount `fd` at `target` in the caller's mount namespace.
pub fn move_mount(fd: BorrowedFd<'_>, target: &std::path::Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let target = std::ffi::CString::new(target.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: move_mount(2) with a descriptor we hold and NUL-terminated paths that outlive
    // the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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

/// Send `fds` (SCM_RIGHTS) with a one-byte message on a Unix stream socket.
pub fn send_fds(channel: BorrowedFd<'_>, byte: u8, fds: &[RawFd]) -> io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    sendmsg::<()>(
        channel.as_raw_fd(),
        &[io::IoSlice::new(&[byte])],
        &[ControlMessage::ScmRights(fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    Ok(())
}

/// Receive one [`send_fds`] message: its byte and descriptors (at most 3; close-on-exec). No
/// byte means the sender closed the channel without sending.
pub fn recv_fds(channel: BorrowedFd<'_>) -> io::Result<(Option<u8>, Vec<OwnedFd>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut byte = [0u8; 1];
    let mut iov = [io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 3]);
    let msg = recvmsg::<()>(
        channel.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let got = (msg.bytes == 1).then_some(());
    let mut received = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            // SAFETY: SCM_RIGHTS installed these descriptors in this process just now; each
            // becomes owned exactly once, here.
            received.extend(
                fds.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    Ok((got.map(|()| byte[0]), received))
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

/// At most `arenas` glibc malloc arenas (`M_ARENA_MAX`): a server whose blocking pool runs
/// requests on many threads would otherwise keep an arena (and its freed pages) per thread.
pub fn limit_malloc_arenas(arenas: i32) {
    // SAFETY: mallopt only sets an allocator parameter; called at start-up.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
}

/// Give the pages malloc holds free back to the kernel (`malloc_trim(0)`), after a request
/// that built a large answer.
pub fn release_free_memory() {
    // SAFETY: malloc_trim walks the allocator's own free lists; no memory of ours is touched.
    unsafe { libc::malloc_trim(0) };
}

/// `fork(2)`, allowed only while this process has one thread: the child may then run any Rust
/// code (allocate, lock, start threads), as after exec. `Ok(None)` in the child, `Ok(Some(pid))`
/// in the parent; an error if the process has other threads or the fork failed.
pub fn fork_single_threaded() -> io::Result<Option<nix::unistd::Pid>> {
    if crate::procfs::own_thread_count() != Some(1) {
        return Err(io::Error::other("process has other threads"));
    }
    // SAFETY: with a single thread no lock can be held by a thread that does not exist in the
    // child, so the child is as sound as the parent.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => Ok(None),
        nix::unistd::ForkResult::Parent { child } => Ok(Some(child)),
    }
}

/// Make `/proc/self/cmdline` (what `ps` shows) read `args`. With CAP_SYS_RESOURCE as
/// systemd's `rename_process` does: the text lives in leaked heap memory named by
/// `PR_SET_MM_ARG_START/END`, argv exact. Without it, as setproctitle(3) does (nginx,
/// PostgreSQL, sshd): the text overwrites the original argument strings, and when it is longer,
/// the environment strings after them (moved to the heap first); the kernel then shows it as
/// one string, the arguments separated by spaces. For a single-threaded process only.
pub fn set_cmdline(args: &[&std::ffi::OsStr]) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let mut text = Vec::new();
    for a in args {
        text.extend_from_slice(a.as_bytes());
        text.push(0);
    }
    match name_heap_cmdline(text.clone()) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => overwrite_cmdline(text),
        other => other,
    }
}

fn name_heap_cmdline(text: Vec<u8>) -> io::Result<()> {
    let text: &'static mut [u8] = Box::leak(text.into_boxed_slice());
    let start = text.as_ptr() as libc::c_ulong;
    let end = start + text.len() as libc::c_ulong;
    let set = |what: libc::c_int, addr: libc::c_ulong| {
        // SAFETY: PR_SET_MM only records the address range; the memory is leaked, so it stays
        // valid for the life of the process.
        let rc = unsafe { libc::prctl(libc::PR_SET_MM, what, addr, 0 as libc::c_ulong, 0) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    if let Err(e) = set(libc::PR_SET_MM_ARG_START, start) {
        if e.raw_os_error() == Some(libc::EPERM) {
            return Err(e);
        }
        // The kernel wants start <= end at every step: when the old end lies below the new
        // start, move the end first.
        set(libc::PR_SET_MM_ARG_END, end)?;
        set(libc::PR_SET_MM_ARG_START, start)?;
    }
    set(libc::PR_SET_MM_ARG_END, end)
}

unsafe extern "C" {
    /// glibc's (and musl's) environment array, read by getenv(3).
    static mut environ: *mut *mut libc::c_char;
}

/// The setproctitle(3) way; `text` holds the arguments, each followed by a NUL.
fn overwrite_cmdline(mut text: Vec<u8>) -> io::Result<()> {
    // Fields 48-51 of /proc/self/stat: arg_start, arg_end, env_start, env_end.
    let field = |n: usize| -> io::Result<usize> {
        crate::procfs::own_stat_field(n)
            .map(|v| v as usize)
            .ok_or_else(|| io::Error::other(format!("/proc/self/stat has no field {n}")))
    };
    let (arg_start, arg_end) = (field(48)?, field(49)?);
    let (env_start, env_end) = (field(50)?, field(51)?);
    let area_end = if text.len() <= arg_end - arg_start {
        arg_end
    } else if env_start == arg_end && text.len() <= env_end - arg_start {
        // Longer than the arguments: one string running into the environment strings, which
        // get a copy on the heap first (getenv reads `environ`, not the strings' old home).
        let last = text.len() - 1;
        for b in &mut text[..last] {
            if *b == 0 {
                *b = b' ';
            }
        }
        move_environment_to_heap()?;
        env_end
    } else {
        return Err(io::Error::other(
            "command line longer than the original one",
        ));
    };
    // SAFETY: [arg_start, area_end) is this process's own argument (and environment) strings
    // on its stack, writable; nothing reads them any more but the kernel for /proc.
    unsafe {
        let area = std::slice::from_raw_parts_mut(arg_start as *mut u8, area_end - arg_start);
        area.fill(0);
        area[..text.len()].copy_from_slice(&text);
    }
    Ok(())
}

fn move_environment_to_heap() -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let mut pointers: Vec<*mut libc::c_char> = Vec::new();
    for (k, v) in std::env::vars_os() {
        let mut entry = k.as_bytes().to_vec();
        entry.push(b'=');
        entry.extend_from_slice(v.as_bytes());
        let entry = std::ffi::CString::new(entry).map_err(io::Error::other)?;
        pointers.push(entry.into_raw());
    }
    pointers.push(std::ptr::null_mut());
    let pointers: &'static mut [*mut libc::c_char] = Box::leak(pointers.into_boxed_slice());
    // SAFETY: single-threaded (the caller's contract): nobody reads `environ` meanwhile; the
    // new array and its strings are leaked, so they live as long as the process.
    unsafe { environ = pointers.as_mut_ptr() };
    Ok(())
}

/// Become a daemon's session leader with stdin on /dev/null and stdout/stderr on `log`, and
/// close every descriptor above stderr but `keep`. For a child right after
/// [`fork_single_threaded`].
pub fn daemonize_forked(log: std::fs::File, keep: RawFd) -> io::Result<()> {
    nix::unistd::setsid()?;
    let null = std::fs::File::open("/dev/null")?;
    for (from, to) in [
        (null.as_raw_fd(), 0),
        (log.as_raw_fd(), 1),
        (log.as_raw_fd(), 2),
    ] {
        // SAFETY: dup2(2) on descriptors this process owns; the result is checked.
        if unsafe { libc::dup2(from, to) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    drop((null, log));
    let close = |first: RawFd, last: RawFd| {
        if first <= last {
            // SAFETY: closes descriptors no live object of the child uses again: the forked
            // CLI's objects are never used in the child, which exits without returning to them.
            unsafe { libc::syscall(libc::SYS_close_range, first as u32, last as u32, 0) };
        }
    };
    close(3, keep - 1);
    close(keep + 1, RawFd::MAX);
    Ok(())
}

/// `fd` registered with the current tokio runtime for readability (a pidfd, a pipe).
pub fn async_readable(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd takes `fd` by value: the descriptor is open, owned by it alone, and
    // stays the same open file until the AsyncFd is dropped (OwnedFd's as_raw_fd never changes).
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsFd, AsRawFd};
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn descriptors_cross_a_socket_and_refer_to_the_same_files() {
        let (tx, rx) = std::os::unix::net::UnixStream::pair().unwrap();
        let files: Vec<std::fs::File> = (0..3).map(|_| tempfile::tempfile().unwrap()).collect();
        let raw: Vec<_> = files.iter().map(|f| f.as_raw_fd()).collect();
        super::send_fds(tx.as_fd(), b'x', &raw).unwrap();
        let (byte, got) = super::recv_fds(rx.as_fd()).unwrap();
        assert_eq!(byte, Some(b'x'));
        assert_eq!(got.len(), 3);
        for (sent, received) in files.iter().zip(got) {
            let received = std::fs::File::from(received);
            assert_ne!(received.as_raw_fd(), sent.as_raw_fd());
            assert_eq!(
                received.metadata().unwrap().ino(),
                sent.metadata().unwrap().ino()
            );
        }
        drop(tx);
        assert!(
            matches!(super::recv_fds(rx.as_fd()).unwrap(), (None, v) if v.is_empty()),
            "closed channel: nothing"
        );
    }
}
