//! Delete: ask each pod's supervisor to stop (SIGTERM after writing the grace period into
//! the deletion request), wait for it, and fall back to stopping and tearing down from the
//! record when the supervisor is gone (crashed or killed): SIGTERM to the containers, the grace
//! period, SIGKILL, then everything the record names, as the supervisor would.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use chrono::Utc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::{Result, failed};
use crate::config::Config;
use crate::state::{DeletionRequest, PodKey, PodRecord, StateError, Store};
use crate::supervisor::teardown;

/// Delete one pod and wait until it is gone.
pub fn delete_pod(cfg: &Config, key: &PodKey, grace: Option<i64>) -> Result<()> {
    let (stopping, _) = request_stop(cfg, key, grace)?;
    finish(cfg, stopping)
}

/// The pods of Deployment `name` in `namespace`.
pub fn owned_by_deployment(store: &Store, namespace: &str, name: &str) -> Vec<PodRecord> {
    store
        .list()
        .into_iter()
        .filter(|r| {
            r.plan.namespace == namespace
                && r.plan.owner.as_ref().and_then(|o| o.deployment.as_deref()) == Some(name)
        })
        .collect()
}

/// A pod asked to stop ([`request_stop`]); [`finish`] waits for it to be gone.
pub struct Stopping {
    key: PodKey,
    wait: Wait,
}

impl Stopping {
    /// A supervisor stops the pod (else [`finish`] does, from the record).
    pub fn supervised(&self) -> bool {
        matches!(self.wait, Wait::Supervisor { .. })
    }
}

/// How to learn that the supervisor is done.
enum Wait {
    Supervisor {
        pidfd: std::os::fd::OwnedFd,
        deadline: Instant,
    },
    /// No supervisor (killed, crashed): delete stops the containers itself (SIGTERM sent;
    /// SIGKILL once they have not exited by the end of the grace period).
    Gone(teardown::GracefulStop),
}

/// Ask pod `key` to stop with `grace` seconds (default: its terminationGracePeriodSeconds):
/// the deletion request, then SIGTERM to its supervisor (or, without one, to its containers).
/// Returns warnings for the user: containers that will not get the SIGTERM.
pub fn request_stop(
    cfg: &Config,
    key: &PodKey,
    grace: Option<i64>,
) -> std::result::Result<(Stopping, Vec<String>), StateError> {
    let store = cfg.store();
    let record = store.load(key)?;
    let grace = grace.unwrap_or(record.plan.termination_grace_period_seconds);
    store.request_deletion(
        key,
        &DeletionRequest {
            grace_period_seconds: grace,
            requested_at: Utc::now(),
        },
    )?;
    let warnings = lost_sigterm_warnings(&record, grace);
    let stopping = |wait| {
        let key = key.clone();
        (Stopping { key, wait }, warnings.clone())
    };
    // Without a supervisor, what it would do first: SIGTERM to the containers (the wait and
    // the SIGKILL follow in `finish`, for every pod deleted at once).
    let gone = || {
        let grace = Duration::from_secs(grace.max(0) as u64);
        Wait::Gone(teardown::GracefulStop::begin(&record, grace))
    };
    let Some(sup) = record.supervisor.filter(|s| s.is_alive()) else {
        return Ok(stopping(gone()));
    };
    let Ok(pidfd) = crate::sys::pidfd_open(sup.pid) else {
        return Ok(stopping(gone()));
    };
    // Re-check identity now that the pidfd pins the process.
    if !sup.is_alive() || crate::sys::pidfd_send_signal(&pidfd, libc::SIGTERM).is_err() {
        return Ok(stopping(gone()));
    }
    let deadline = Instant::now() + Duration::from_secs(grace.max(0) as u64 + 30);
    Ok(stopping(Wait::Supervisor { pidfd, deadline }))
}

/// Say why a delete is about to wait out the grace period: a container that will not get the
/// SIGTERM (PID 1 of its PID namespace without a handler, often because it has not installed
/// it yet right after apply; or one ignoring it) is killed only when the period ends, as in
/// Kubernetes, where nothing tells the user why `kubectl delete` hangs.
fn lost_sigterm_warnings(record: &PodRecord, grace: i64) -> Vec<String> {
    use crate::procfs::{SigtermBlind, sigterm_blind};
    let mut warnings = Vec::new();
    if grace <= 1 {
        return warnings;
    }
    for c in &record.containers {
        let Some(p) = c.process.filter(|p| p.is_alive()) else {
            continue;
        };
        let why = match sigterm_blind(p.pid) {
            None => continue,
            Some(SigtermBlind::Ignores) => "ignores SIGTERM",
            Some(SigtermBlind::InitWithoutHandler) => {
                "is PID 1 of its PID namespace with no \
                SIGTERM handler (yet), so the kernel drops the signal"
            }
        };
        warnings.push(format!(
            "container \"{}\" of pod \"{}\" {why}; it is killed when the grace \
             period ends ({grace}s). --now or --grace-period=0 stops it at once.",
            c.name, record.plan.name
        ));
    }
    warnings
}

/// Wait until the pod of `stopping` is gone; remove from its record whatever is left.
pub fn finish(cfg: &Config, stopping: Stopping) -> Result<()> {
    let Stopping { key, wait } = stopping;
    let key = &key;
    let store = cfg.store();
    match wait {
        Wait::Gone(stop) => stop.finish(),
        Wait::Supervisor { pidfd, deadline } => {
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
                .unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, timeout);
            // Still there after the grace period and a margin: stop waiting for it.
            let _ = crate::sys::pidfd_send_signal(&pidfd, libc::SIGKILL);
        }
    }
    // The supervisor removes the state as its last act; whatever is still recorded is removed
    // here, from the record (supervisor killed, crashed, or timed out).
    match store.load(key) {
        Err(StateError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
        Ok(record) => {
            teardown::remove_pod_from_record(&store, &record).map_err(|e| failed(e.to_string()))
        }
    }
}
