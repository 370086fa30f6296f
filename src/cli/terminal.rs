//! `podrun exec -t`: the process gets a terminal of its own, a pty opened from the
//! container's `/dev/ptmx` (so `tty` names the container's `/dev/pts/N`), as
//! `kubectl exec -it` gives it. The caller's terminal is put in raw mode (restored on every way
//! out), its window size is copied to the pty and kept in sync on SIGWINCH, and bytes are
//! relayed both ways until the process's side of the pty is closed.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::pty::PtyMaster;
use nix::sys::termios::{self, SetArg, Termios};

/// kubectl's words when `-t` is asked for without a terminal to give.
pub const NOT_A_TERMINAL: &str =
    "Unable to use a TTY - input is not a terminal or the right kind of file";

/// Whether the caller's stdin is a terminal `-t` can use.
pub fn stdin_is_terminal() -> bool {
    nix::unistd::isatty(io::stdin()).unwrap_or(false)
}

/// The caller's terminal in raw mode while this lives.
struct RawMode {
    saved: Termios,
}

impl RawMode {
    fn enter() -> io::Result<RawMode> {
        let stdin = io::stdin();
        let saved = termios::tcgetattr(&stdin)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(io::stdin(), SetArg::TCSAFLUSH, &self.saved);
    }
}

/// Relay between the caller's terminal and `master` until the process's side closes (or the
/// caller is hung up or terminated); `with_stdin` is `-i`. Signals wake the loop through a
/// socketpair (signal-hook), so the raw mode is restored whatever ends it.
pub fn relay(master: PtyMaster, with_stdin: bool) -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGWINCH};
    let (wake_rx, wake_tx) = UnixStream::pair()?;
    wake_rx.set_nonblocking(true)?;
    let ended = Arc::new(AtomicBool::new(false));
    let mut ids = Vec::new();
    for sig in [SIGWINCH, SIGTERM, SIGHUP, SIGINT] {
        if sig != SIGWINCH {
            ids.push(signal_hook::flag::register(sig, ended.clone())?);
        }
        ids.push(signal_hook::low_level::pipe::register(
            sig,
            wake_tx.try_clone()?,
        )?);
    }
    let raw = if with_stdin {
        RawMode::enter().ok()
    } else {
        None
    };
    let result = pump(&master, &wake_rx, &ended, with_stdin);
    drop(raw);
    for id in ids {
        signal_hook::low_level::unregister(id);
    }
    result
}

fn pump(
    master: &PtyMaster,
    wake: &UnixStream,
    ended: &AtomicBool,
    with_stdin: bool,
) -> io::Result<()> {
    let mut stdin_open = with_stdin;
    let mut buf = [0u8; 8192];
    let mut out = io::stdout();
    let mut terminal = File::from(master.as_fd().try_clone_to_owned()?);
    loop {
        let stdin = io::stdin();
        let mut fds = vec![
            PollFd::new(master.as_fd(), PollFlags::POLLIN),
            PollFd::new(wake.as_fd(), PollFlags::POLLIN),
        ];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        let (from_process, woken, from_caller) = (ready(0), ready(1), ready(2));
        drop(fds);
        if woken && !on_signals(wake, master.as_fd(), ended)? {
            return Ok(());
        }
        if from_process {
            match terminal.read(&mut buf) {
                // EIO: every holder of the slave closed it (the process ended).
                Ok(0) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EIO) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
                Ok(n) => {
                    out.write_all(&buf[..n])?;
                    out.flush()?;
                }
            }
        }
        if from_caller {
            match io::stdin().lock().read(&mut buf) {
                Ok(0) => stdin_open = false,
                Ok(n) => terminal.write_all(&buf[..n])?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => stdin_open = false,
            }
        }
    }
}

/// Handle the signals that woke the loop: copy the window size (SIGWINCH); false when the
/// relay should end (TERM, HUP or INT arrived).
fn on_signals(wake: &UnixStream, master: BorrowedFd<'_>, ended: &AtomicBool) -> io::Result<bool> {
    let mut bytes = [0u8; 64];
    loop {
        match (&*wake).read(&mut bytes) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    // The pipe carries no signal number: the size is copied whenever a signal came (setting
    // an unchanged size sends no SIGWINCH), the flag says whether one of them ends the relay.
    if let Ok(ws) = crate::sys::tty::window_size(io::stdin().as_fd()) {
        let _ = crate::sys::tty::set_window_size(master, &ws);
    }
    Ok(!ended.load(Ordering::SeqCst))
}
