//! Termination messages, as the kubelet makes them (`kuberuntime_container.go`
//! `getTerminationMessage`, `makeMounts`): a fresh host file per run, bind-mounted at the
//! container's `terminationMessagePath` and writable by any user (0666); after the run its first
//! 4 KiB are the message; with `FallbackToLogsOnError`, an empty file and a failed run, the
//! log's last 80 lines, at most 2 KiB, are.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::Supervisor;

/// The kubelet's `maxMsgSize`.
const MAX_MESSAGE_BYTES: u64 = 4 * 1024;
/// `MaxContainerTerminationMessageLogLines` and `MaxContainerTerminationMessageLogLength`.
const FALLBACK_LINES: usize = 80;
const FALLBACK_BYTES: usize = 2 * 1024;

/// An empty termination-message file for a new run, writable by the container's user.
pub(super) fn fresh_termination_log(path: &Path) -> Result<(), String> {
    std::fs::write(path, b"")
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)))
        .map_err(|e| format!("create termination message file {}: {e}", path.display()))
}

impl Supervisor {
    /// The message of container `i`'s run that just ended with exit code `code`.
    pub(super) fn termination_message(&self, i: usize, code: i32) -> Option<String> {
        let spec = &self.record.plan.containers[i];
        let pod = self.store.paths(&self.record.key());
        let mut message = Vec::new();
        if let Ok(file) = std::fs::File::open(pod.termination_log(&spec.name)) {
            let _ = file.take(MAX_MESSAGE_BYTES).read_to_end(&mut message);
        }
        if message.is_empty() && spec.termination_message_fallback_to_logs && code != 0 {
            let restart = self.record.containers[i].restart_count;
            let log = std::fs::read(pod.container_log(&spec.name, restart)).unwrap_or_default();
            message = log_tail(&log).to_vec();
        }
        (!message.is_empty()).then(|| String::from_utf8_lossy(&message).into_owned())
    }
}

/// The last [`FALLBACK_LINES`] lines of `log`, cut to its last [`FALLBACK_BYTES`].
fn log_tail(log: &[u8]) -> &[u8] {
    let body = log.strip_suffix(b"\n").unwrap_or(log);
    let mut start = 0;
    let mut lines = 0;
    for (at, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            lines += 1;
            if lines == FALLBACK_LINES {
                start = at + 1;
                break;
            }
        }
    }
    let tail = &log[start..];
    &tail[tail.len().saturating_sub(FALLBACK_BYTES)..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_is_the_last_80_lines_within_2_kib() {
        let log: String = (0..100).map(|n| format!("line {n}\n")).collect();
        let tail = String::from_utf8(log_tail(log.as_bytes()).to_vec()).unwrap();
        assert!(
            tail.starts_with("line 20\n") && tail.ends_with("line 99\n"),
            "{tail}"
        );
        let long = "x".repeat(5000);
        assert_eq!(log_tail(long.as_bytes()).len(), FALLBACK_BYTES);
        assert_eq!(log_tail(b"one\ntwo"), b"one\ntwo");
    }
}
