//! The Job controller's rules (`job_controller.go` `syncJob`), pure: given a Job's spec, its
//! status and its pods, what to do and what its status becomes.
//!
//! - Each finished pod is counted once, by its phase (Succeeded, Failed), and the counts are
//!   kept in the status, so a pod removed later does not change them; a pod nothing keeps any
//!   more (its supervisor gone before it finished) counts as failed and is removed.
//! - Active pods: `min(parallelism, completions - succeeded)` with completions; a work queue
//!   (no completions) runs `parallelism` pods until one succeeded, then makes no more and is
//!   Complete once none is left running.
//! - Failed with `BackoffLimitExceeded` once more pods failed than `backoffLimit`
//!   (restartPolicy Never), or once the restarts of its running pods reach it (OnFailure, as
//!   `pastBackoffLimitOnFailure`); with `DeadlineExceeded` once `activeDeadlineSeconds` have
//!   passed since `startTime`. Its active pods are then stopped (and counted as failed).
//! - After a pod failed, the next is made only after the pod-failure back-off:
//!   `10 s * 2^(failed-1)`, at most 6 min (the base is `PODRUN_JOB_BACKOFF_BASE_MS` in tests).
//! - `ttlSecondsAfterFinished` after it finished, the Job is deleted with its pods. Until
//!   then its finished pods stay (Completed, Error), as in Kubernetes.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::PodView;
use crate::spec::RestartPolicy;
use crate::spec::workload::JobPlan;
use crate::state::{JobCondition, JobStatus, Phase, PodKey};

/// Environment variable scaling the 10 s pod-failure back-off (tests use a short one).
pub const BACKOFF_BASE_ENV: &str = "PODRUN_JOB_BACKOFF_BASE_MS";

/// The default pod-failure back-off (`DefaultJobPodFailureBackOff`).
const DEFAULT_BACKOFF: Duration = Duration::from_secs(10);
/// Its cap (`MaxJobBackOff`), in units of the default base: 360 s.
const MAX_BACKOFF_FACTOR: u32 = 36;

pub const REASON_BACKOFF: &str = "BackoffLimitExceeded";
pub const MESSAGE_BACKOFF: &str = "Job has reached the specified backoff limit";
pub const REASON_DEADLINE: &str = "DeadlineExceeded";
pub const MESSAGE_DEADLINE: &str = "Job was active longer than specified deadline";
pub const REASON_COMPLETE: &str = "CompletionsReached";
pub const MESSAGE_COMPLETE: &str = "Reached expected number of succeeded pods";

/// The pod-failure back-off base: `PODRUN_JOB_BACKOFF_BASE_MS` if set (read once), else 10 s.
pub fn backoff_base() -> Duration {
    static BASE: OnceLock<Duration> = OnceLock::new();
    *BASE.get_or_init(|| {
        std::env::var(BACKOFF_BASE_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_BACKOFF)
    })
}

/// The delay before a new pod after `failures` failed ones: `base * 2^(failures-1)`, capped
/// at 36 bases (6 min with the 10 s default); none without a failure.
pub fn failure_backoff(failures: u32, base: Duration) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32
        .checked_shl(failures - 1)
        .unwrap_or(u32::MAX)
        .min(MAX_BACKOFF_FACTOR);
    base * factor
}

/// What a Job wants done.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Its status after this sync.
    pub status: JobStatus,
    /// New pods to make.
    pub create: usize,
    /// Active pods to stop gracefully (the Job finished, or parallelism went down).
    pub stop: Vec<PodKey>,
    /// Pods to remove at once: their supervisor is gone before they finished.
    pub remove: Vec<PodKey>,
    /// ttlSecondsAfterFinished has passed: delete the Job and its pods.
    pub delete: bool,
    /// When a sync is due without any change (deadline, back-off, ttl).
    pub wake: Option<DateTime<Utc>>,
}

fn seconds(s: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000))
}

fn earliest(a: Option<DateTime<Utc>>, b: DateTime<Utc>) -> Option<DateTime<Utc>> {
    Some(a.map_or(b, |a| a.min(b)))
}

fn condition(kind: &str, reason: &str, message: &str, at: DateTime<Utc>) -> JobCondition {
    JobCondition {
        kind: kind.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        at,
    }
}

/// One sync of Job `plan` with status `status` and its pods `pods`, at `now`, with the
/// pod-failure back-off base `base`.
pub fn sync(
    plan: &JobPlan,
    status: &JobStatus,
    pods: &[&PodView],
    now: DateTime<Utc>,
    base: Duration,
) -> Decision {
    let mut status = status.clone();
    let mut decision = Decision {
        status: JobStatus::default(),
        create: 0,
        stop: Vec::new(),
        remove: Vec::new(),
        delete: false,
        wake: None,
    };
    // Forget the counted pods that are gone (the counts stay).
    status
        .counted
        .retain(|uid| pods.iter().any(|p| &p.uid == uid));
    let mut active: Vec<&PodView> = Vec::new();
    let mut new_failures = 0;
    for p in pods {
        let finished = matches!(p.phase, Phase::Succeeded | Phase::Failed);
        if status.counted.contains(&p.uid) {
            continue;
        }
        if finished {
            if p.phase == Phase::Succeeded {
                status.succeeded += 1;
            } else {
                status.failed += 1;
                new_failures += 1;
            }
            status.counted.push(p.uid.clone());
        } else if p.lost && !p.terminating {
            status.failed += 1;
            new_failures += 1;
            status.counted.push(p.uid.clone());
            decision.remove.push(p.key.clone());
        } else if p.active() {
            active.push(p);
        }
    }
    if new_failures > 0 {
        status.last_failure = Some(now);
    }

    if let Some(done) = &status.finished {
        // Finished: nothing more runs; the ttl deletes it.
        let at = done.at;
        for p in &active {
            decision.stop.push(p.key.clone());
            if done.kind == "Failed" {
                status.failed += 1;
                status.counted.push(p.uid.clone());
            }
        }
        status.active = 0;
        if let Some(ttl) = plan.ttl_seconds_after_finished {
            let expires = at + seconds(ttl);
            if now >= expires {
                decision.delete = true;
            } else {
                decision.wake = Some(expires);
            }
        }
        decision.status = status;
        return decision;
    }

    let start = *status.start_time.get_or_insert(now);
    let failed = if plan.template.plan.restart_policy == RestartPolicy::OnFailure {
        let restarts: u32 = active
            .iter()
            .filter(|p| matches!(p.phase, Phase::Running | Phase::Pending))
            .map(|p| p.restarts)
            .sum();
        let past = if plan.backoff_limit == 0 {
            restarts > 0
        } else {
            restarts >= plan.backoff_limit
        };
        // A pod that failed for good (its own restartPolicy reached) counts too.
        past || status.failed > plan.backoff_limit
    } else {
        status.failed > plan.backoff_limit
    };
    let deadline = plan
        .active_deadline_seconds
        .map(|s| (start + seconds(s), s));
    let failure = if failed {
        Some((REASON_BACKOFF, MESSAGE_BACKOFF))
    } else if deadline.is_some_and(|(at, _)| now >= at) {
        Some((REASON_DEADLINE, MESSAGE_DEADLINE))
    } else {
        None
    };
    if let Some((reason, message)) = failure {
        for p in &active {
            decision.stop.push(p.key.clone());
            status.failed += 1;
            status.counted.push(p.uid.clone());
        }
        status.active = 0;
        status.finished = Some(condition("Failed", reason, message, now));
        if let Some(ttl) = plan.ttl_seconds_after_finished {
            decision.wake = Some(now + seconds(ttl));
        }
        decision.status = status;
        return decision;
    }

    let complete = match plan.completions {
        Some(c) => status.succeeded >= c,
        None => status.succeeded > 0 && active.is_empty(),
    };
    if complete {
        status.active = 0;
        status.completion_time = Some(now);
        status.finished = Some(condition(
            "Complete",
            REASON_COMPLETE,
            MESSAGE_COMPLETE,
            now,
        ));
        for p in &active {
            decision.stop.push(p.key.clone());
        }
        if let Some(ttl) = plan.ttl_seconds_after_finished {
            decision.wake = Some(now + seconds(ttl));
        }
        decision.status = status;
        return decision;
    }
    if let Some((at, _)) = deadline {
        decision.wake = earliest(decision.wake, at);
    }

    let want = match plan.completions {
        Some(c) => plan.parallelism.min(c.saturating_sub(status.succeeded)),
        // A work queue makes no more pods once one succeeded.
        None if status.succeeded > 0 => plan.parallelism.min(active.len() as u32),
        None => plan.parallelism,
    } as usize;
    if active.len() > want {
        // Parallelism went down: the newest go first.
        active.sort_by_key(|p| std::cmp::Reverse(p.created_at));
        let surplus = active.len() - want;
        decision.stop = active[..surplus].iter().map(|p| p.key.clone()).collect();
        active.drain(..surplus);
    } else if active.len() < want {
        let ready_at = status.last_failure.map(|t| {
            t + chrono::Duration::from_std(failure_backoff(status.failed, base)).unwrap_or_default()
        });
        match ready_at {
            Some(at) if at > now => decision.wake = earliest(decision.wake, at),
            _ => decision.create = want - active.len(),
        }
    }
    status.active = (active.len() + decision.create) as u32;
    decision.status = status;
    decision
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(10);

    fn plan(spec: &str, policy: &str) -> JobPlan {
        let text = format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: j}}\nspec:\n{spec}  template:\n    spec:\n      restartPolicy: {policy}\n      containers: [{{name: c, image: 'podrun.local/debug:1'}}]\n"
        );
        let Some(crate::spec::Object::Job(p)) = crate::spec::load_str(&text, "t")
            .unwrap()
            .into_iter()
            .next()
        else {
            panic!("not a job: {text}")
        };
        p
    }

    fn pod(name: &str, phase: Phase) -> PodView {
        PodView {
            key: PodKey::new("default", name),
            uid: format!("uid-{name}"),
            owner: Some(("Job".into(), "j".into())),
            phase,
            ready: phase == Phase::Running,
            terminating: false,
            lost: false,
            created_at: Utc::now(),
            restarts: 0,
            supervisor: Some(1),
            started_at: None,
        }
    }

    fn run(plan: &JobPlan, status: &JobStatus, pods: &[PodView], now: DateTime<Utc>) -> Decision {
        let refs: Vec<&PodView> = pods.iter().collect();
        sync(plan, status, &refs, now, BASE)
    }

    #[test]
    fn parallelism_bounds_the_pods_and_completions_end_it() {
        let p = plan("  completions: 3\n  parallelism: 2\n", "Never");
        let now = Utc::now();
        let d = run(&p, &JobStatus::default(), &[], now);
        assert_eq!(d.create, 2);
        assert_eq!(d.status.start_time, Some(now));
        assert_eq!(d.status.active, 2);
        // One succeeded: one more (3 - 1 = 2 wanted, one running).
        let pods = [pod("a", Phase::Succeeded), pod("b", Phase::Running)];
        let d = run(&p, &d.status, &pods, now);
        assert_eq!((d.create, d.status.succeeded, d.status.active), (1, 1, 2));
        // Counted once.
        let d = run(&p, &d.status, &pods, now);
        assert_eq!((d.create, d.status.succeeded), (1, 1));
        // Two done, one running: nothing more.
        let pods = [
            pod("a", Phase::Succeeded),
            pod("b", Phase::Succeeded),
            pod("c", Phase::Running),
        ];
        let d = run(&p, &d.status, &pods, now);
        assert_eq!((d.create, d.status.succeeded, d.status.active), (0, 2, 1));
        assert!(d.status.finished.is_none());
        let pods = [pod("b", Phase::Succeeded), pod("c", Phase::Succeeded)];
        let d = run(&p, &d.status, &pods, now);
        assert_eq!(d.status.succeeded, 3, "a pod removed later keeps its count");
        let done = d.status.finished.clone().unwrap();
        assert_eq!(
            (done.kind.as_str(), done.reason.as_str()),
            ("Complete", REASON_COMPLETE)
        );
        assert_eq!(d.status.completion_time, Some(now));
        assert_eq!(d.create, 0);
        // Finished: stays finished.
        let again = run(&p, &d.status, &pods, now + chrono::Duration::seconds(5));
        assert_eq!(again.status, d.status);
        assert_eq!(again.create, 0);
    }

    #[test]
    fn a_work_queue_ends_when_one_succeeded_and_none_runs() {
        let p = plan("  parallelism: 2\n", "Never");
        assert_eq!(p.completions, None);
        let now = Utc::now();
        let d = run(&p, &JobStatus::default(), &[], now);
        assert_eq!(d.create, 2);
        let pods = [pod("a", Phase::Succeeded), pod("b", Phase::Running)];
        let d = run(&p, &d.status, &pods, now);
        assert_eq!((d.create, d.status.active), (0, 1));
        assert!(d.status.finished.is_none());
        let pods = [pod("a", Phase::Succeeded), pod("b", Phase::Succeeded)];
        let d = run(&p, &d.status, &pods, now);
        assert_eq!(d.status.finished.unwrap().kind, "Complete");
        assert_eq!(d.status.succeeded, 2);
    }

    #[test]
    fn failures_back_off_then_exceed_the_limit() {
        let p = plan("  backoffLimit: 1\n", "Never");
        let t0 = Utc::now();
        let d = run(&p, &JobStatus::default(), &[], t0);
        assert_eq!(d.create, 1);
        let pods = [pod("a", Phase::Failed)];
        let d = run(&p, &d.status, &pods, t0);
        assert_eq!((d.create, d.status.failed, d.status.active), (0, 1, 0));
        assert_eq!(d.wake, Some(t0 + chrono::Duration::seconds(10)));
        assert!(d.status.finished.is_none());
        let later = t0 + chrono::Duration::seconds(10);
        let d = run(&p, &d.status, &pods, later);
        assert_eq!(d.create, 1, "after the back-off");
        let pods = [pod("a", Phase::Failed), pod("b", Phase::Failed)];
        let d = run(&p, &d.status, &pods, later);
        assert_eq!(d.status.failed, 2);
        let f = d.status.finished.clone().unwrap();
        assert_eq!(
            (f.kind.as_str(), f.reason.as_str(), f.message.as_str()),
            ("Failed", REASON_BACKOFF, MESSAGE_BACKOFF)
        );
        assert_eq!(d.create, 0);
        assert_eq!(d.status.completion_time, None);
    }

    #[test]
    fn on_failure_counts_restarts() {
        let p = plan("  backoffLimit: 2\n", "OnFailure");
        let mut a = pod("a", Phase::Running);
        a.restarts = 1;
        let d = run(&p, &JobStatus::default(), &[a.clone()], Utc::now());
        assert!(d.status.finished.is_none());
        a.restarts = 2;
        let d = run(&p, &d.status, &[a.clone()], Utc::now());
        assert_eq!(d.status.finished.unwrap().reason, REASON_BACKOFF);
        assert_eq!(d.stop, [a.key.clone()]);
        assert_eq!(d.status.failed, 1, "the stopped pod counts as failed");
    }

    #[test]
    fn the_deadline_fails_it_and_stops_its_pods() {
        let p = plan("  activeDeadlineSeconds: 3\n", "Never");
        let t0 = Utc::now();
        let d = run(&p, &JobStatus::default(), &[], t0);
        assert_eq!(d.wake, Some(t0 + chrono::Duration::seconds(3)));
        let a = pod("a", Phase::Running);
        let d = run(
            &p,
            &d.status,
            std::slice::from_ref(&a),
            t0 + chrono::Duration::seconds(1),
        );
        assert!(d.status.finished.is_none());
        let d = run(
            &p,
            &d.status,
            std::slice::from_ref(&a),
            t0 + chrono::Duration::seconds(3),
        );
        let f = d.status.finished.clone().unwrap();
        assert_eq!(
            (f.reason.as_str(), f.message.as_str()),
            (REASON_DEADLINE, MESSAGE_DEADLINE)
        );
        assert_eq!(d.stop, std::slice::from_ref(&a.key));
        assert_eq!((d.status.active, d.status.failed), (0, 1));
        // The stopped pod's end is not counted again.
        let mut gone = a.clone();
        gone.phase = Phase::Failed;
        let again = run(&p, &d.status, &[gone], t0 + chrono::Duration::seconds(4));
        assert_eq!(again.status.failed, 1);
        assert!(again.stop.is_empty());
    }

    #[test]
    fn ttl_deletes_it_after_it_finished() {
        let p = plan("  ttlSecondsAfterFinished: 2\n", "Never");
        let t0 = Utc::now();
        let d = run(&p, &JobStatus::default(), &[pod("a", Phase::Succeeded)], t0);
        assert_eq!(d.status.finished.as_ref().unwrap().kind, "Complete");
        assert_eq!(d.wake, Some(t0 + chrono::Duration::seconds(2)));
        let pods = [pod("a", Phase::Succeeded)];
        let d1 = run(&p, &d.status, &pods, t0 + chrono::Duration::seconds(1));
        assert!(!d1.delete);
        let d2 = run(&p, &d.status, &pods, t0 + chrono::Duration::seconds(2));
        assert!(d2.delete);
    }

    #[test]
    fn a_lower_parallelism_stops_the_newest() {
        let p = plan("  completions: 5\n  parallelism: 1\n", "Never");
        let mut old = pod("old", Phase::Running);
        old.created_at = Utc::now() - chrono::Duration::seconds(30);
        let new = pod("new", Phase::Running);
        let d = run(&p, &JobStatus::default(), &[old, new.clone()], Utc::now());
        assert_eq!(d.stop, std::slice::from_ref(&new.key));
        assert_eq!((d.create, d.status.active), (0, 1));
    }

    #[test]
    fn a_lost_pod_fails_and_is_removed() {
        let p = plan("", "Never");
        let mut a = pod("a", Phase::Running);
        a.lost = true;
        let d = run(&p, &JobStatus::default(), &[a.clone()], Utc::now());
        assert_eq!(d.remove, [a.key.clone()]);
        assert_eq!(d.status.failed, 1);
        assert_eq!(d.create, 0, "backing off");
    }

    #[test]
    fn the_backoff_doubles_up_to_six_minutes() {
        assert_eq!(failure_backoff(0, BASE), Duration::ZERO);
        assert_eq!(failure_backoff(1, BASE), Duration::from_secs(10));
        assert_eq!(failure_backoff(3, BASE), Duration::from_secs(40));
        assert_eq!(failure_backoff(6, BASE), Duration::from_secs(320));
        assert_eq!(failure_backoff(7, BASE), Duration::from_secs(360));
        assert_eq!(failure_backoff(40, BASE), Duration::from_secs(360));
    }
}
