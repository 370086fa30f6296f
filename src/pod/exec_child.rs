//! Exec for a long-running process that must stay in its own namespaces (`podrun serve`): a
//! child `podrun exec` joins the container's ([`super::exec`]) and reports on a socket handed
//! to it as descriptor 3 whether the command started: `s` (started; the command's stdio are
//! the child's, piped to the caller), `t` with the pty master of the command's terminal (the
//! caller relays it and sets its size), or `e` and the error text (nothing was started). The
//! child then waits for the command and exits with its status.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Stdio;

use crate::config::Config;
use crate::state::PodRecord;

/// The hidden `podrun exec` flag that names the report descriptor.
pub const REPORT_FD_FLAG: &str = "--report-fd";
/// The number the report socket has in the child.
const REPORT_FD: i32 = 3;

const STARTED: u8 = b's';
const TERMINAL: u8 = b't';
const FAILED: u8 = b'e';

/// What the caller asks for.
pub struct Request<'a> {
    pub record: &'a PodRecord,
    pub container: &'a str,
    pub command: &'a [String],
    pub stdin: bool,
    pub tty: bool,
}

/// A started command: the `podrun exec` child (its stdout and stderr are the command's, and
/// stdin when asked, unless it has a terminal, which carries all three).
pub struct Running {
    pub child: tokio::process::Child,
    pub terminal: Option<std::fs::File>,
}

/// Start `req` through a child `podrun exec`. Err: the command did not start (the text is
/// the runtime's, as `podrun exec` prints it).
pub async fn start(cfg: &Config, req: &Request<'_>) -> Result<Running, String> {
    let exe = std::env::current_exe().map_err(|e| format!("podrun executable: {e}"))?;
    let (ours, theirs) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--root")
        .arg(&cfg.root)
        .args(["exec", "-n", &req.record.plan.namespace])
        .arg(&req.record.plan.name)
        .args(["-c", req.container])
        .args([REPORT_FD_FLAG, &REPORT_FD.to_string()]);
    if req.stdin {
        cmd.arg("-i");
    }
    if req.tty {
        cmd.arg("-t");
    }
    cmd.arg("--").args(req.command);
    // With a terminal the command's stdio are the pty; the child's own stay quiet.
    let piped = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
    cmd.stdin(piped(req.stdin && !req.tty))
        .stdout(piped(!req.tty))
        .stderr(piped(!req.tty));
    crate::sys::before_exec(
        &mut cmd,
        crate::sys::ChildSetup {
            pass_fds: vec![theirs.as_raw_fd()],
            ..Default::default()
        },
    );
    let mut child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("start podrun exec: {e}"))?;
    drop(theirs);
    let report = tokio::task::spawn_blocking(move || read_report(ours))
        .await
        .map_err(|e| e.to_string())?;
    match report {
        Ok((TERMINAL, Some(master))) => Ok(Running {
            child,
            terminal: Some(std::fs::File::from(master)),
        }),
        Ok((STARTED, None)) => Ok(Running {
            child,
            terminal: None,
        }),
        Ok((_, _)) | Err(_) => {
            let _ = child.wait().await;
            Err(report.err().unwrap_or_else(|| "exec: no report".into()))
        }
    }
}

/// The child's report: its byte and the descriptor with it, or the error text.
fn read_report(sock: UnixStream) -> Result<(u8, Option<OwnedFd>), String> {
    let (byte, mut fds) = crate::sys::recv_fds(sock.as_fd()).map_err(|e| e.to_string())?;
    match byte {
        Some(FAILED) | None => {
            let mut text = String::new();
            let _ = (&sock).read_to_string(&mut text);
            Err(if text.is_empty() {
                "exec: the command did not start".into()
            } else {
                text
            })
        }
        Some(b) => Ok((b, fds.pop())),
    }
}

/// The child's side: the report socket it was handed.
pub struct Reporter(UnixStream);

impl Reporter {
    pub fn from_fd(fd: i32) -> Option<Reporter> {
        crate::sys::inherited_fd(fd).map(|fd| Reporter(UnixStream::from(fd)))
    }

    pub fn started(&self) -> io::Result<()> {
        crate::sys::send_fds(self.0.as_fd(), STARTED, &[])
    }

    pub fn terminal(&self, master: &impl AsRawFd) -> io::Result<()> {
        crate::sys::send_fds(self.0.as_fd(), TERMINAL, &[master.as_raw_fd()])
    }

    pub fn failed(&self, message: &str) {
        let _ = crate::sys::send_fds(self.0.as_fd(), FAILED, &[]);
        let _ = (&self.0).write_all(message.as_bytes());
    }
}
