//! `podrun delete NAME... | -f FILE | --all`: ask each pod's supervisor to stop (SIGTERM after
//! writing the grace period), wait for it, and fall back to stopping and tearing down from the
//! record when the supervisor is gone (crashed or killed): SIGTERM to the containers, the grace
//! period, SIGKILL, then everything the record names, as the supervisor would.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use clap::Args;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::{Result, msg};
use crate::config::Config;
use crate::spec::{self, Object};
use crate::state::{DeletionRequest, PodKey, StateError};
use crate::supervisor::teardown;

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// `pod` (optional) and pod names, or `pod/NAME`.
    #[arg(value_name = "[pod] NAME")]
    pub names: Vec<String>,
    /// Delete the pods of this manifest (Pods by name, Deployments with all their pods).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Every pod in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Seconds to wait after SIGTERM before SIGKILL (default: the pod's terminationGracePeriodSeconds).
    #[arg(long, allow_negative_numbers = true)]
    pub grace_period: Option<i64>,
    /// Shorthand for --grace-period=1.
    #[arg(long)]
    pub now: bool,
    /// Treat a missing pod as deleted.
    #[arg(long)]
    pub ignore_not_found: bool,
}

pub fn delete(
    cfg: &Config,
    namespace: &str,
    explicit_namespace: Option<&str>,
    args: &DeleteArgs,
) -> Result<i32> {
    let keys = targets(cfg, namespace, explicit_namespace, args)?;
    if keys.is_empty() {
        return Err(msg("resource(s) were provided, but no name was specified"));
    }
    let grace = if args.now {
        Some(1)
    } else {
        args.grace_period.filter(|g| *g >= 0)
    };
    let mut missing = Vec::new();
    let mut waiting = Vec::new();
    for key in keys {
        match request_stop(cfg, &key, grace) {
            Ok(w) => waiting.push((key, w)),
            Err(StateError::NotFound(_)) if args.ignore_not_found => {}
            Err(e @ StateError::NotFound(_)) => missing.push(e.to_string()),
            Err(e) => return Err(e.into()),
        }
    }
    let mut failed = Vec::new();
    for (key, w) in waiting {
        match finish(cfg, &key, w) {
            Ok(()) => println!("pod \"{}\" deleted", key.name),
            Err(e) => failed.push(format!("pod \"{}\": {e}", key.name)),
        }
    }
    failed.extend(missing);
    if failed.is_empty() {
        Ok(0)
    } else {
        Err(msg(failed.join("\n")))
    }
}

/// Delete one pod and wait for it (used by apply's rollback too).
pub fn delete_pod(cfg: &Config, key: &PodKey, grace: Option<i64>, _quiet: bool) -> Result<()> {
    let w = request_stop(cfg, key, grace)?;
    finish(cfg, key, w)
}

fn targets(
    cfg: &Config,
    namespace: &str,
    explicit_namespace: Option<&str>,
    args: &DeleteArgs,
) -> Result<Vec<PodKey>> {
    let store = cfg.store();
    if args.all {
        return Ok(store
            .list()
            .into_iter()
            .map(|r| r.key())
            .filter(|k| k.namespace == namespace)
            .collect());
    }
    if let Some(file) = &args.file {
        let mut keys = Vec::new();
        for obj in spec::load_file_in(file, explicit_namespace)? {
            match obj {
                Object::Pod(p) => keys.push(PodKey::new(&p.namespace, &p.name)),
                Object::Deployment(d) => keys.extend(
                    store
                        .list()
                        .into_iter()
                        .filter(|r| {
                            r.plan.namespace == d.namespace
                                && r.plan.owner.as_ref().and_then(|o| o.deployment.as_deref())
                                    == Some(&d.name)
                        })
                        .map(|r| r.key()),
                ),
            }
        }
        return Ok(keys);
    }
    let mut names: &[String] = &args.names;
    if let Some(first) = names.first()
        && matches!(first.as_str(), "pod" | "pods" | "po")
    {
        names = &names[1..];
    }
    Ok(names
        .iter()
        .map(|n| PodKey::new(namespace, n.strip_prefix("pod/").unwrap_or(n)))
        .collect())
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

fn request_stop(
    cfg: &Config,
    key: &PodKey,
    grace: Option<i64>,
) -> std::result::Result<Wait, StateError> {
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
    warn_of_lost_sigterm(&record, grace);
    // Without a supervisor, what it would do first: SIGTERM to the containers (the wait and
    // the SIGKILL follow in `finish`, for every pod deleted at once).
    let gone = || {
        let grace = Duration::from_secs(grace.max(0) as u64);
        Wait::Gone(teardown::GracefulStop::begin(&record, grace))
    };
    let Some(sup) = record.supervisor.filter(|s| s.is_alive()) else {
        return Ok(gone());
    };
    let Ok(pidfd) = crate::sys::pidfd_open(sup.pid) else {
        return Ok(gone());
    };
    // Re-check identity now that the pidfd pins the process.
    if !sup.is_alive() || crate::sys::pidfd_send_signal(&pidfd, libc::SIGTERM).is_err() {
        return Ok(gone());
    }
    let deadline = Instant::now() + Duration::from_secs(grace.max(0) as u64 + 30);
    Ok(Wait::Supervisor { pidfd, deadline })
}

/// Say why a delete is about to wait out the grace period: a container that will not get the
/// SIGTERM (PID 1 of its PID namespace without a handler, often because it has not installed
/// it yet right after apply; or one ignoring it) is killed only when the period ends, as in
/// Kubernetes, where nothing tells the user why `kubectl delete` hangs.
fn warn_of_lost_sigterm(record: &crate::state::PodRecord, grace: i64) {
    use crate::procfs::{SigtermBlind, sigterm_blind};
    if grace <= 1 {
        return;
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
        eprintln!(
            "podrun: container \"{}\" of pod \"{}\" {why}; it is killed when the grace \
             period ends ({grace}s). --now or --grace-period=0 stops it at once.",
            c.name, record.plan.name
        );
    }
}

fn finish(cfg: &Config, key: &PodKey, wait: Wait) -> Result<()> {
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
            teardown::remove_pod_from_record(&store, &record).map_err(|e| msg(e.to_string()))
        }
    }
}
