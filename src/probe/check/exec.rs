//! exec: run the command in the container through `target.exec_program` (podrun's own `exec`
//! verb), stdout and stderr on one pipe as the kubelet's combined output (`pkg/probe/exec`:
//! exit 0 is success, anything else is a failure whose message is the output, at most 10 KiB).
//!
//! The child is killed when the attempt times out or is dropped (an aborted worker): a
//! probe's command must never outlive its attempt. It leads a process group of its own, and
//! the whole group is killed: `podrun exec` starts the command in the container as its child
//! (in its group), which killing `podrun exec` alone would leave running.

use std::io;
use std::process::Stdio;
use std::time::Duration;

use std::os::unix::process::CommandExt;
use std::process::Command;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

use super::MAX_OUTPUT;
use crate::probe::{Outcome, Target};

pub(super) async fn check(command: &[String], target: &Target, timeout: Duration) -> Outcome {
    let (reader, writer) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => return Outcome::Failure(format!("cannot make the output pipe: {e}")),
    };
    let (stdout, stderr) = match writer.try_clone() {
        Ok(second) => (Stdio::from(writer), Stdio::from(second)),
        Err(e) => return Outcome::Failure(format!("cannot make the output pipe: {e}")),
    };
    let mut cmd = Command::new(&target.exec_program);
    cmd.args(&target.exec_args)
        .args(command)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    let spawned = super::super::children::spawn(&mut cmd);
    // The write ends live in `cmd` until it goes: end of output is then the child's (and its
    // children's) closing them.
    drop(cmd);
    let mut spawned = match spawned {
        Ok(c) => c,
        Err(e) => return Outcome::Failure(e.to_string()),
    };
    let _group = GroupKill(spawned.child.id());
    let reader = match pipe::Receiver::from_owned_fd(reader.into()) {
        Ok(r) => r,
        Err(e) => return Outcome::Failure(format!("cannot read the output: {e}")),
    };
    let run = async {
        let mut output = Vec::new();
        let mut reader = reader;
        let status = {
            let reading = read_limited(&mut reader, &mut output);
            tokio::pin!(reading);
            tokio::select! {
                () = &mut reading => exited(&mut spawned).await,
                status = exited(&mut spawned) => {
                    // What the command wrote before it ended; a process it left behind may
                    // keep the pipe open, so the end of output is not waited for long.
                    let _ = tokio::time::timeout(LINGER, &mut reading).await;
                    status
                }
            }
        };
        (output, status)
    };
    match tokio::time::timeout(timeout, run).await {
        Ok((output, Ok(code))) => {
            if code == 0 {
                Outcome::Success
            } else {
                Outcome::Failure(String::from_utf8_lossy(&output).into_owned())
            }
        }
        Ok((_, Err(e))) => Outcome::Failure(e.to_string()),
        // The group is killed as `_group` goes.
        Err(_) => Outcome::Failure(format!("command {:?} timed out", command.join(" "))),
    }
}

/// The exit code of `spawned` once its pidfd turns readable (it exited; reaped by the
/// supervisor's reaper or here).
async fn exited(spawned: &mut super::super::children::Spawned) -> io::Result<i32> {
    let fd = crate::sys::async_readable(spawned.pidfd.try_clone()?)?;
    loop {
        let mut ready = fd.readable().await?;
        match spawned.exit_code() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready.clear_ready(),
            other => return other,
        }
    }
}

/// Kills the process group of the attempt's command when the attempt ends, however it ends
/// (what the command left behind in the container goes with it).
struct GroupKill(u32);

impl Drop for GroupKill {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.0 as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    }
}

/// How long the output is read after the command ended (a process it started in the
/// background may hold the pipe: its output is not the probe's).
const LINGER: Duration = Duration::from_millis(50);

/// All the pipe says until its end into `kept`, the first [`MAX_OUTPUT`] bytes kept (the rest
/// drained, so a chatty command does not block on a full pipe).
async fn read_limited(reader: &mut pipe::Receiver, kept: &mut Vec<u8>) {
    let mut buf = [0u8; 4096];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => {
                let room = MAX_OUTPUT - kept.len();
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn target() -> Target {
        crate::probe::test_support::target()
    }

    fn run(command: &[&str], timeout: Duration) -> Outcome {
        let command: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(check(&command, &target(), timeout))
    }

    #[test]
    fn exit_zero_is_success() {
        assert_eq!(run(&["true"], Duration::from_secs(5)), Outcome::Success);
    }

    #[test]
    fn a_failure_carries_stdout_and_stderr() {
        let outcome = run(
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
            Duration::from_secs(5),
        );
        assert_eq!(outcome, Outcome::Failure("out\nerr\n".into()));
    }

    #[test]
    fn output_is_limited_to_10_kib() {
        let outcome = run(
            &["sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x; exit 1"],
            Duration::from_secs(5),
        );
        match outcome {
            Outcome::Failure(text) => assert_eq!(text.len(), MAX_OUTPUT),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_timeout_kills_the_command() {
        let t = Instant::now();
        let outcome = run(&["sleep", "10"], Duration::from_millis(300));
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert_eq!(
            outcome,
            Outcome::Failure("command \"sleep 10\" timed out".into())
        );
    }

    #[test]
    fn a_process_left_behind_does_not_hold_the_attempt() {
        let t = Instant::now();
        let outcome = run(
            &["sh", "-c", "sleep 5 & echo bye; exit 1"],
            Duration::from_secs(3),
        );
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert_eq!(outcome, Outcome::Failure("bye\n".into()));
    }

    #[test]
    fn a_spawn_failure_is_a_failure() {
        let mut target = target();
        target.exec_program = "/nonexistent/podrun".into();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let outcome = rt.block_on(check(&["true".into()], &target, Duration::from_secs(1)));
        assert!(
            matches!(outcome, Outcome::Failure(ref t) if t.contains("No such file")),
            "{outcome:?}"
        );
    }
}
