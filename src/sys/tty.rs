//! Terminal system calls for `podrun exec -t`: window sizes and a child's controlling terminal.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// A terminal's size (`struct winsize`).
pub type WindowSize = libc::winsize;

/// The window size of terminal `fd` (TIOCGWINSZ).
pub fn window_size(fd: BorrowedFd<'_>) -> io::Result<WindowSize> {
    let mut ws = WindowSize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `struct winsize` into the pointed-to value, which lives
    // for the call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ws)
}

/// Set terminal `fd`'s window size (TIOCSWINSZ); the kernel sends SIGWINCH to its foreground
/// process group when it changes.
pub fn set_window_size(fd: BorrowedFd<'_>, ws: &WindowSize) -> io::Result<()> {
    // SAFETY: TIOCSWINSZ reads one `struct winsize` from the pointer, valid for the call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws as *const WindowSize) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Make `cmd`'s child a session leader whose controlling terminal is its stdin (which the
/// caller set to a pty slave), so job control works in it (`setsid`, `TIOCSCTTY`).
pub fn controlling_terminal_before_exec(cmd: &mut Command) {
    // SAFETY: the closure only calls setsid(2) and ioctl(2) on fd 0, both async-signal-safe,
    // and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
