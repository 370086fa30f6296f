//! The kubelet's restart rule for one container, as one pure decision ([`decide`]): the
//! restart policy (`ShouldContainerBeRestarted`), then the CrashLoopBackOff (`doBackOff` with
//! client-go's `flowcontrol.Backoff`, keyed by container). Every start that follows a run goes
//! through it, whatever ended the run: an exit, an OOM kill, a start error, the sandbox being
//! re-made.
//!
//! The back-off entry is counted in units of the base (10 s; `PODRUN_BACKOFF_BASE_MS` in
//! tests): 0 = no entry yet. A start after a run is refused while less than the entry's delay
//! has passed since the run ended; otherwise it proceeds and the entry becomes 1 (none yet, or
//! expired: the run lasted over 10 minutes) or doubles, up to 30 (300 s). So the delays
//! between runs are 0, 10, 20, 40, 80, 160, 300, 300 ... s. A first start has no back-off.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::spec::RestartPolicy;
use crate::state::ContainerState;

/// The kubelet's cap (300 s, `MaxContainerBackOff`), in units of the 10 s base.
pub const MAX_FACTOR: u64 = 30;
/// An entry older than twice the cap (600 s) is reset (client-go's `hasExpired`).
pub const RESET_AFTER_FACTOR: u32 = 2 * MAX_FACTOR as u32;

/// What to do with a container that is not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The restart policy keeps it stopped.
    Stay,
    /// Start it now; its back-off entry becomes `next`.
    Start { next: u64 },
    /// In back-off (CrashLoopBackOff): `delay` after its last run ended, `remaining` from now.
    BackOff {
        delay: Duration,
        remaining: Duration,
    },
}

/// The kubelet's decision for a container that is not running, whose last run is `last` (a
/// `Terminated` state; `None` if it never ran), with back-off entry `entry`, at `now`.
pub fn decide(
    policy: RestartPolicy,
    last: Option<&ContainerState>,
    entry: u64,
    now: DateTime<Utc>,
    base: Duration,
) -> Decision {
    let Some(ContainerState::Terminated {
        exit_code,
        started_at,
        finished_at,
        ..
    }) = last
    else {
        // Never ran (or never ended): no back-off, and no entry is made.
        return Decision::Start { next: entry };
    };
    if !policy_restarts(policy, *exit_code) {
        return Decision::Stay;
    }
    let ran = (*finished_at - *started_at).to_std().unwrap_or_default();
    let entry = if ran > base * RESET_AFTER_FACTOR {
        0
    } else {
        entry
    };
    let delay = base * entry.min(MAX_FACTOR) as u32;
    let since_end = (now - *finished_at).to_std().unwrap_or_default();
    if since_end < delay {
        return Decision::BackOff {
            delay,
            remaining: delay - since_end,
        };
    }
    let next = if entry == 0 {
        1
    } else {
        (entry * 2).min(MAX_FACTOR)
    };
    Decision::Start { next }
}

/// The kubelet's `ShouldContainerBeRestarted` for a run that exited with `exit_code`.
pub fn policy_restarts(policy: RestartPolicy, exit_code: i32) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => exit_code != 0,
        RestartPolicy::Never => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(10);

    fn ended(code: i32, reason: &str, start: DateTime<Utc>, ran: Duration) -> ContainerState {
        ContainerState::Terminated {
            exit_code: code,
            signal: None,
            reason: reason.into(),
            message: None,
            started_at: start,
            finished_at: start + chrono::Duration::from_std(ran).unwrap(),
        }
    }

    /// Run a container that ends like `run` does (exit code, reason, how long it runs) `n`
    /// times under `policy`, restarting as soon as [`decide`] lets it: the waits between runs.
    fn waits(policy: RestartPolicy, n: usize, code: i32, reason: &str, ran: Duration) -> Vec<u64> {
        let mut now = Utc::now();
        let mut entry = 0;
        let mut out = Vec::new();
        for _ in 0..n {
            let last = ended(code, reason, now, ran);
            now += chrono::Duration::from_std(ran).unwrap();
            let mut waited = Duration::ZERO;
            loop {
                match decide(policy, Some(&last), entry, now, BASE) {
                    Decision::Stay => return out,
                    Decision::Start { next } => {
                        entry = next;
                        break;
                    }
                    Decision::BackOff { delay, remaining } => {
                        assert_eq!(delay, waited + remaining);
                        now += chrono::Duration::from_std(remaining).unwrap();
                        waited += remaining;
                    }
                }
            }
            out.push(waited.as_secs());
        }
        out
    }

    #[test]
    fn a_start_error_backs_off_like_a_crash() {
        let start_error = waits(RestartPolicy::Always, 9, 128, "StartError", Duration::ZERO);
        assert_eq!(start_error, [0, 10, 20, 40, 80, 160, 300, 300, 300]);
        let crash = waits(RestartPolicy::Always, 5, 1, "Error", Duration::from_secs(1));
        assert_eq!(crash, [0, 10, 20, 40, 80]);
        let oom = waits(
            RestartPolicy::OnFailure,
            4,
            137,
            "OOMKilled",
            Duration::ZERO,
        );
        assert_eq!(oom, [0, 10, 20, 40]);
    }

    #[test]
    fn a_long_run_resets_the_back_off() {
        // Ran over 10 minutes each time: every restart is immediate.
        let long = waits(
            RestartPolicy::Always,
            4,
            1,
            "Error",
            Duration::from_secs(601),
        );
        assert_eq!(long, [0, 0, 0, 0]);
        // Part of the delay may already have passed (the sandbox was being re-made).
        let now = Utc::now();
        let last = ended(
            1,
            "Error",
            now - chrono::Duration::seconds(4),
            Duration::ZERO,
        );
        assert_eq!(
            decide(RestartPolicy::Always, Some(&last), 2, now, BASE),
            Decision::BackOff {
                delay: Duration::from_secs(20),
                remaining: Duration::from_secs(16)
            }
        );
    }

    #[test]
    fn the_policy_decides_first() {
        let now = Utc::now();
        let ok = ended(0, "Completed", now, Duration::ZERO);
        let failed = ended(128, "StartError", now, Duration::ZERO);
        use Decision::*;
        assert_eq!(
            decide(RestartPolicy::Never, Some(&failed), 0, now, BASE),
            Stay
        );
        assert_eq!(
            decide(RestartPolicy::OnFailure, Some(&ok), 0, now, BASE),
            Stay
        );
        assert_eq!(
            decide(RestartPolicy::OnFailure, Some(&failed), 0, now, BASE),
            Start { next: 1 }
        );
        assert_eq!(
            decide(RestartPolicy::Always, Some(&ok), 0, now, BASE),
            Start { next: 1 }
        );
        // Never ran: started without a back-off entry.
        assert_eq!(
            decide(RestartPolicy::Never, None, 0, now, BASE),
            Start { next: 0 }
        );
    }
}
