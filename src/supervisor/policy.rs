//! The kubelet's policy for one pod, as a state machine with no kernel in it: events come in
//! (a container exited or failed to start, the pause died, the sandbox was made or failed, a
//! timer, a stop request), [`Machine::handle`] changes the record as the kubelet changes its pod
//! status (states, restart counts, back-off entries, events) and returns the kernel work to do
//! ([`Action`]s), which the supervisor carries out and answers with further events. Unit tests
//! drive it with no root and no processes.
//!
//! The rules, from the kubelet (`pkg/kubelet/kuberuntime/kuberuntime_manager.go`
//! `computePodActions`, `pkg/kubelet/container/helpers.go` `ShouldContainerBeRestarted`,
//! `pkg/kubelet/kubelet.go` back-off constants):
//! - a container that ended restarts by the restart policy, through the CrashLoopBackOff
//!   ([`super::backoff::decide`]); only that container, in the same sandbox;
//! - a start that failed is a run that ended with `StartError`; it waits as
//!   `RunContainerError` until the next sync (a PLEG relist later), where the back-off decides;
//! - when the pause dies: `SandboxChanged`, every running container is stopped (grace period
//!   at least 2 s), the sandbox is torn down, and unless the policy is Never a new sandbox
//!   (attempt + 1) is made for every container that will start, each through its back-off;
//! - a sandbox that could not be made is removed at once, shown as `FailedCreatePodSandBox`
//!   with the containers `ContainerCreating`, and tried again after the back-off period;
//! - once nothing runs and nothing will restart, the sandbox is stopped (Succeeded / Failed);
//! - a stop request stops everything with the request's grace period (else the pod's
//!   `terminationGracePeriodSeconds`); from then on exits are only recorded.
//!
//! - init containers (listed first) run one at a time, in order, each to completion; after
//!   the last one the app containers start; a failed one restarts through its back-off, or
//!   fails the pod under Never; a new sandbox runs them again from the first.
//!
//! Designed to grow: sidecars, probes and hooks are more events (a probe failed) and more
//! actions (run a hook).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::backoff::{self, Decision};
use crate::spec::RestartPolicy;
use crate::state::{ContainerRecord, ContainerState, Phase, PodRecord};

/// The kubelet's floor for the grace period of a kill (`minimumGracePeriodInSeconds`), used
/// when a sandbox change stops the containers.
pub const SANDBOX_CHANGE_GRACE: Duration = Duration::from_secs(2);

/// A start error shows `RunContainerError` until the kubelet's next sync of the pod, which
/// its PLEG relist (every 1 s, a tenth of the 10 s back-off base) triggers; that sync finds the
/// container in back-off.
const SYNC_AFTER_ERROR_DIVISOR: u32 = 10;

/// The time, on both clocks: the wall clock for the record, the monotonic one for timers.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub wall: DateTime<Utc>,
    pub mono: Instant,
}

impl Now {
    pub fn current() -> Self {
        Self {
            wall: Utc::now(),
            mono: Instant::now(),
        }
    }
}

/// How a container's main process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// The exit code, or 128 + the signal.
    pub code: i32,
    pub signal: Option<i32>,
    /// Killed by the kernel's OOM killer (its cgroup's oom_kill count went up).
    pub oom_killed: bool,
    /// The termination message (`terminationMessagePath`, or the log's tail).
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Container `container`'s process ended.
    Exited { container: usize, exit: Exit },
    /// Container `container` could not be started.
    StartFailed { container: usize, message: String },
    /// Container `container`'s image could not be pulled for a start (`reason`:
    /// `ErrImagePull`, `ErrImageNeverPull`, ...).
    PullFailed {
        container: usize,
        reason: &'static str,
        message: String,
    },
    /// The pause exited while its sandbox was ready.
    PauseDied,
    /// The old sandbox is gone; `killed` are the containers its change stopped.
    SandboxDown { killed: Vec<usize> },
    /// The sandbox of [`Action::CreateSandbox`] is ready and its containers were started.
    SandboxCreated,
    /// The sandbox of [`Action::CreateSandbox`] could not be made.
    SandboxFailed { message: String },
    /// What the failed sandbox had made is removed.
    SandboxCleared,
    /// Time passed: due timers fire.
    Tick,
    /// `delete` asked (the request, if any, is in the record's `deletion`).
    StopRequested,
    /// Look at the init sequence again (a sidecar started, its startup probe passed): start
    /// the next init container, or the app containers after the last.
    Sync,
    /// A probe's result changed for container `container`'s current run.
    Probed {
        container: usize,
        kind: crate::probe::Kind,
        passed: bool,
    },
    /// Container `container`'s postStart hook failed (`message`).
    PostStartFailed { container: usize, message: String },
    /// The pod's first start failed midway: apply fails, nothing of the pod may stay.
    FirstStartFailed,
}

/// Kernel work for the supervisor.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start container `.0` in the current sandbox (answer with `StartFailed` if it fails).
    Start(usize),
    /// SIGTERM every running container, wait up to `grace`, SIGKILL what is left.
    StopContainers { grace: Duration },
    /// SIGKILL every container process at once.
    KillContainers,
    /// Kill the pause, remove the netns pin, veth and address.
    StopSandbox,
    /// Make sandbox `attempt` and start containers `start` in it (answer with `StartFailed`
    /// per container that fails, then `SandboxCreated` or `SandboxFailed`).
    CreateSandbox { attempt: u32, start: Vec<usize> },
    /// Stop every container with `grace`, remove the sandbox, the cgroups and the state.
    Remove { grace: Duration },
    /// Remove the pod's cgroups (its processes are gone).
    RemoveCgroups,
    /// Remove the pod's state directory, and the node network if no other pod uses it.
    RemoveState,
    /// Stop container `container`'s run (preStop, SIGTERM, SIGKILL after `grace`) without
    /// waiting: its exit comes back as `Exited`.
    Kill { container: usize, grace: Duration },
    /// Handle this event once the actions before it are done.
    Then(Event),
}

/// A sandbox being made: what to undo if it fails, what to do once it is ready.
#[derive(Debug, Clone, PartialEq)]
struct Attempt {
    /// Every container the sandbox is for.
    waiting: Vec<usize>,
    /// Those it starts, with their back-off entries before the start.
    starting: Vec<(usize, u64)>,
    /// Those in back-off: shown as CrashLoopBackOff once the sandbox is ready.
    later: Vec<(usize, Duration, Duration)>,
}

/// The policy's own state beside the record: timers, a sandbox being made, stopping.
#[derive(Debug, Clone)]
pub struct Machine {
    base: Duration,
    /// Containers to look at again (a back-off expires, a sync after a start error): when.
    timers: Vec<(usize, Instant)>,
    /// When to try again to make the sandbox.
    sandbox_retry: Option<Instant>,
    attempt: Option<Attempt>,
    stopping: bool,
    /// Containers whose image pull failed: the failures in a row and when the next pull may
    /// be tried (the kubelet's image back-off: the same 10 s doubling to 300 s).
    pulls: Vec<(usize, PullBackOff)>,
    /// Containers whose restart is not counted while its image pull fails (the kubelet counts
    /// a restart when the container is made): the count is taken back at each failed pull
    /// and given again at the next try.
    uncounted: Vec<usize>,
}

#[derive(Debug, Clone, Copy)]
struct PullBackOff {
    failures: u32,
    until: Instant,
}

impl Machine {
    /// A machine whose back-off base (the kubelet's 10 s) is `base`.
    pub fn new(base: Duration) -> Self {
        Self {
            base,
            timers: Vec::new(),
            sandbox_retry: None,
            attempt: None,
            stopping: false,
            pulls: Vec::new(),
            uncounted: Vec::new(),
        }
    }

    pub fn stopping(&self) -> bool {
        self.stopping
    }

    /// The next timer, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers
            .iter()
            .map(|(_, t)| *t)
            .chain(self.sandbox_retry)
            .min()
    }

    /// True when a timer is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        !self.stopping && self.next_deadline().is_some_and(|t| t <= now)
    }

    /// Handle `event`: change `record`, return the kernel work in order.
    pub fn handle(&mut self, record: &mut PodRecord, event: Event, now: Now) -> Vec<Action> {
        let mut actions = Vec::new();
        match event {
            Event::Exited { container, exit } => {
                // It ran: its image was there.
                self.pulls.retain(|(i, _)| *i != container);
                self.uncounted.retain(|i| *i != container);
                record_exit(record, container, &exit, now.wall);
                if self.stopping {
                } else if record.containers[container].init {
                    self.init_exited(record, container, exit, now, &mut actions);
                } else {
                    self.restart_or_back_off(record, container, now, &mut actions);
                }
            }
            Event::StartFailed { container, message } => {
                self.start_failed(record, container, message, now)
            }
            Event::PullFailed {
                container,
                reason,
                message,
            } => self.pull_failed(record, container, reason, message, now),
            Event::PauseDied if !self.stopping => {
                record.event(
                    "Normal",
                    "SandboxChanged",
                    "Pod sandbox changed, it will be killed and re-created.".into(),
                );
                self.timers.clear();
                let killed = (0..record.containers.len())
                    .filter(|&i| is_running(&record.containers[i]))
                    .collect();
                actions.extend([
                    Action::StopContainers {
                        grace: SANDBOX_CHANGE_GRACE,
                    },
                    Action::StopSandbox,
                    Action::Then(Event::SandboxDown { killed }),
                ]);
            }
            Event::SandboxDown { killed } if !self.stopping => {
                if record.plan.restart_policy != RestartPolicy::Never {
                    self.plan_sandbox(record, &killed, now, &mut actions);
                }
            }
            Event::SandboxCreated => {
                if let Some(attempt) = self.attempt.take() {
                    for (i, delay, remaining) in attempt.later {
                        self.back_off(record, i, delay, remaining, now);
                    }
                }
                if record.containers.first().is_some_and(|c| c.init) {
                    self.advance_init(record, &mut actions);
                }
            }
            Event::Sync if !self.stopping && sandbox_ready(record) => {
                self.advance_init(record, &mut actions)
            }
            Event::Probed {
                container,
                kind,
                passed,
            } if !self.stopping && is_running(&record.containers[container]) => {
                self.probed(record, container, kind, passed, &mut actions)
            }
            Event::PostStartFailed { container, message } if !self.stopping => {
                record.event("Warning", "FailedPostStartHook", message);
                record.event("Normal", "Killing", "FailedPostStartHook".into());
                actions.push(Action::Kill {
                    container,
                    grace: pod_grace(record),
                });
            }
            Event::SandboxFailed { message } => {
                record.event(
                    "Warning",
                    "FailedCreatePodSandBox",
                    format!("Failed to create pod sandbox: {message}"),
                );
                self.timers.clear();
                // The kubelet consults the back-off only once the sandbox exists: the entries
                // are taken back with the attempt.
                if let Some(attempt) = &self.attempt {
                    for &(i, entry) in &attempt.starting {
                        record.containers[i].backoff_factor = entry;
                    }
                }
                actions.extend([
                    Action::KillContainers,
                    Action::StopSandbox,
                    Action::Then(Event::SandboxCleared),
                ]);
            }
            Event::SandboxCleared => {
                if let Some(attempt) = self.attempt.take() {
                    self.sandbox_cleared(record, attempt, now);
                }
            }
            Event::Tick if !self.stopping => {
                if self.sandbox_retry.is_some_and(|t| t <= now.mono) {
                    // The containers' timers wait for the next tick (the sandbox first).
                    self.plan_sandbox(record, &[], now, &mut actions);
                } else {
                    let due: Vec<usize> = self
                        .timers
                        .iter()
                        .filter(|(_, t)| *t <= now.mono)
                        .map(|(i, _)| *i)
                        .collect();
                    self.timers.retain(|(_, t)| *t > now.mono);
                    for i in due {
                        if !self.pull_back_off(record, i, now, &mut actions) {
                            self.restart_or_back_off(record, i, now, &mut actions);
                        }
                    }
                }
            }
            Event::StopRequested if !self.stopping => {
                self.stopping = true;
                self.timers.clear();
                self.sandbox_retry = None;
                let seconds = record
                    .deletion
                    .as_ref()
                    .map(|d| d.grace_period_seconds)
                    .unwrap_or(record.plan.termination_grace_period_seconds);
                actions.push(Action::Remove {
                    grace: Duration::from_secs(seconds.max(0) as u64),
                });
            }
            Event::FirstStartFailed => {
                // The rollback, in the order that leaves nothing: processes first (they hold
                // the cgroups), then the sandbox (pause, netns pin, veth, address), the
                // cgroups, and last the record that named it all.
                self.stopping = true;
                self.timers.clear();
                actions.extend([
                    Action::KillContainers,
                    Action::StopSandbox,
                    Action::RemoveCgroups,
                    Action::RemoveState,
                ]);
            }
            Event::PauseDied
            | Event::SandboxDown { .. }
            | Event::Tick
            | Event::StopRequested
            | Event::Sync
            | Event::Probed { .. }
            | Event::PostStartFailed { .. } => {}
        }
        actions
    }

    /// After the actions of an event are done: the phase; once nothing runs and nothing will
    /// restart, the sandbox is stopped (the pod keeps its record and logs until deleted).
    /// Sidecars are stopped then (they never keep a pod from completing), as the kubelet
    /// stops them once every app container has exited for good.
    pub fn settle(&mut self, record: &mut PodRecord) -> Vec<Action> {
        let phase = super::status::pod_phase(record);
        record.phase = phase;
        let terminal = matches!(phase, Phase::Succeeded | Phase::Failed);
        if terminal {
            // A sidecar waiting for its back-off will not start again.
            let sidecars: Vec<usize> = (0..record.containers.len())
                .filter(|&i| record.plan.containers[i].sidecar)
                .collect();
            self.timers.retain(|(i, _)| !sidecars.contains(i));
        }
        let finished = terminal && self.timers.is_empty() && self.attempt.is_none();
        if !(finished && sandbox_ready(record) && !self.stopping) {
            return Vec::new();
        }
        let mut actions = Vec::new();
        if record.containers.iter().any(is_running) {
            actions.push(Action::StopContainers {
                grace: pod_grace(record),
            });
        }
        actions.push(Action::StopSandbox);
        actions
    }

    /// A probe's result changed for container `i` (running): startup passed, the init
    /// sequence may go on; readiness is recorded; liveness or startup failed, the container
    /// is killed (its exit then goes through the restart rules), as the kubelet's
    /// `computePodActions` does, with the probe's own grace period if it has one.
    fn probed(
        &mut self,
        record: &mut PodRecord,
        i: usize,
        kind: crate::probe::Kind,
        passed: bool,
        actions: &mut Vec<Action>,
    ) {
        use crate::probe::Kind;
        match (kind, passed) {
            (Kind::Startup, true) => {
                record.containers[i].probed.startup = true;
                self.advance_init(record, actions);
            }
            (Kind::Readiness, passed) => record.containers[i].probed.readiness = passed,
            (Kind::Liveness, true) => {}
            (Kind::Liveness | Kind::Startup, false) => {
                let probe = record.plan.containers[i].probes.get(kind);
                let grace = probe
                    .and_then(|p| p.termination_grace_period_seconds)
                    .map(|s| Duration::from_secs(s.max(0) as u64))
                    .unwrap_or_else(|| pod_grace(record));
                let name = record.containers[i].name.clone();
                let restarts = record.plan.containers[i].sidecar
                    || record.plan.restart_policy != RestartPolicy::Never;
                let word = kind.title().to_lowercase();
                let then = if restarts { ", will be restarted" } else { "" };
                record.event(
                    "Normal",
                    "Killing",
                    format!("Container {name} failed {word} probe{then}"),
                );
                actions.push(Action::Kill {
                    container: i,
                    grace,
                });
            }
        }
    }

    /// Init container `i` ended (`computeInitContainerActions`): completed, the next init
    /// container starts, or after the last one every app container, at the next sync (a PLEG
    /// relist later: PodInitializing until then); failed, it restarts
    /// through its back-off (Always and OnFailure alike: an init container that completed
    /// never restarts), or under Never it stays failed and so does the pod (its sandbox is
    /// stopped when the phase settles).
    fn init_exited(
        &mut self,
        record: &mut PodRecord,
        i: usize,
        exit: Exit,
        now: Now,
        actions: &mut Vec<Action>,
    ) {
        if record.plan.containers[i].sidecar {
            // Restarted whatever the pod's policy, until the app containers are done.
            if !apps_finished(record) {
                self.restart_or_back_off(record, i, now, actions);
            }
            return;
        }
        if exit.code != 0 {
            if record.plan.restart_policy != RestartPolicy::Never {
                self.restart_or_back_off(record, i, now, actions);
            }
            return;
        }
        self.advance_init(record, actions);
    }

    /// The kubelet's `computeInitContainerActions` for a pod whose sandbox is ready: the first
    /// init container that has neither completed nor (a sidecar) started is started unless it
    /// runs or waits for its back-off; once there is none, the app containers that never
    /// started are started at once (the first sync after the last init container's exit).
    /// A sidecar without a startup probe counts as started once it runs: the sequence goes on
    /// right after its start.
    fn advance_init(&mut self, record: &mut PodRecord, actions: &mut Vec<Action>) {
        for i in 0..record.containers.len() {
            let c = &record.containers[i];
            if !c.init {
                break;
            }
            let sidecar = record.plan.containers[i].sidecar;
            let completed =
                !sidecar && matches!(c.state, ContainerState::Terminated { exit_code: 0, .. });
            if completed || (sidecar && super::status::started(record, i)) {
                continue;
            }
            let fresh = matches!(&c.state, ContainerState::Waiting { reason, .. } if reason == "PodInitializing");
            if fresh && !self.timers.iter().any(|(j, _)| *j == i) {
                begin_run(&mut record.containers[i]);
                actions.push(Action::Start(i));
                if sidecar && record.plan.containers[i].probes.startup.is_none() {
                    actions.push(Action::Then(Event::Sync));
                }
            }
            return;
        }
        let apps: Vec<usize> = (0..record.containers.len())
            .filter(|&j| !record.containers[j].init)
            .filter(|&j| {
                let c = &record.containers[j];
                c.process.is_none()
                    && matches!(&c.state, ContainerState::Waiting { reason, .. } if reason == "PodInitializing")
            })
            .collect();
        for &j in &apps {
            begin_run(&mut record.containers[j]);
        }
        actions.extend(apps.into_iter().map(Action::Start));
    }

    /// A new sandbox for a pod with init containers: they run again from the first one, at
    /// once (the kubelet purges them with the old sandbox); every other container waits
    /// (PodInitializing) for them, its run before kept as its lastState.
    fn plan_init_sandbox(
        &mut self,
        record: &mut PodRecord,
        attempt: u32,
        actions: &mut Vec<Action>,
    ) {
        for c in record.containers.iter_mut().skip(1) {
            if let ContainerState::Terminated { .. } = c.state {
                c.last_state = Some(c.state.clone());
            }
            c.process = None;
            c.state = ContainerState::Waiting {
                reason: "PodInitializing".into(),
                message: None,
            };
        }
        let first = &mut record.containers[0];
        let before = first.backoff_factor;
        begin_run(first);
        self.attempt = Some(Attempt {
            waiting: (0..record.containers.len()).collect(),
            starting: vec![(0, before)],
            later: Vec::new(),
        });
        actions.push(Action::CreateSandbox {
            attempt,
            start: vec![0],
        });
    }

    /// The kubelet's rule for container `i`, which is not running, in a ready sandbox: start it
    /// now, or once its back-off has passed, or leave it stopped.
    fn restart_or_back_off(
        &mut self,
        record: &mut PodRecord,
        i: usize,
        now: Now,
        actions: &mut Vec<Action>,
    ) {
        match self.decision(record, i, last_run(&record.containers[i]), now) {
            Decision::Stay => {}
            Decision::BackOff { delay, remaining } => {
                self.back_off(record, i, delay, remaining, now)
            }
            Decision::Start { next } => {
                begin_restart(&mut record.containers[i], next);
                actions.push(Action::Start(i));
                if record.plan.containers[i].sidecar {
                    actions.push(Action::Then(Event::Sync));
                }
            }
        }
    }

    fn decision(
        &self,
        record: &PodRecord,
        i: usize,
        last: Option<&ContainerState>,
        now: Now,
    ) -> Decision {
        let updated = record.containers[i].restart_for_update;
        let policy = if record.plan.containers[i].sidecar || updated {
            RestartPolicy::Always
        } else {
            record.plan.restart_policy
        };
        backoff::decide(
            policy,
            last,
            record.containers[i].backoff_factor,
            now.wall,
            self.base,
        )
    }

    /// Plan a new sandbox for every container that will start. The containers the sandbox
    /// change stopped (`killed`, running until then) are judged by their run before, as the
    /// kubelet's sync judges them by the pod status it started with, where they still ran:
    /// without one they start at once. No container to start: no sandbox.
    fn plan_sandbox(
        &mut self,
        record: &mut PodRecord,
        killed: &[usize],
        now: Now,
        actions: &mut Vec<Action>,
    ) {
        self.sandbox_retry = None;
        let attempt = record.sandbox.as_ref().map(|s| s.attempt + 1).unwrap_or(1);
        if record.containers.first().is_some_and(|c| c.init) {
            return self.plan_init_sandbox(record, attempt, actions);
        }
        let (mut starting, mut later) = (Vec::new(), Vec::new());
        for i in 0..record.containers.len() {
            let c = &record.containers[i];
            let last = if killed.contains(&i) {
                c.last_state
                    .as_ref()
                    .filter(|s| matches!(s, ContainerState::Terminated { .. }))
            } else {
                last_run(c)
            };
            match self.decision(record, i, last, now) {
                Decision::Stay => {}
                Decision::Start { next } => starting.push((i, next)),
                Decision::BackOff { delay, remaining } => later.push((i, delay, remaining)),
            }
        }
        if starting.is_empty() && later.is_empty() {
            return;
        }
        let waiting = starting
            .iter()
            .map(|(i, _)| *i)
            .chain(later.iter().map(|(i, _, _)| *i))
            .collect();
        let start: Vec<usize> = starting.iter().map(|(i, _)| *i).collect();
        let mut before = Vec::new();
        for (i, next) in starting {
            let c = &mut record.containers[i];
            before.push((i, c.backoff_factor));
            begin_restart(c, next);
        }
        self.attempt = Some(Attempt {
            waiting,
            starting: before,
            later,
        });
        actions.push(Action::CreateSandbox { attempt, start });
    }

    /// The failed sandbox is gone: its containers wait in ContainerCreating (PodInitializing
    /// with init containers) with their restart
    /// counts taken back, and the next attempt comes after the back-off period.
    fn sandbox_cleared(&mut self, record: &mut PodRecord, attempt: Attempt, now: Now) {
        for (i, _) in &attempt.starting {
            let c = &mut record.containers[*i];
            c.restart_count = c.restart_count.saturating_sub(1);
        }
        // The kubelet's default waiting reason: PodInitializing in a pod with init containers.
        let reason = match record.containers.first() {
            Some(c) if c.init => "PodInitializing",
            _ => "ContainerCreating",
        };
        for &i in &attempt.waiting {
            let c = &mut record.containers[i];
            if let ContainerState::Terminated { .. } = c.state {
                c.last_state = Some(c.state.clone());
            }
            c.process = None;
            c.state = ContainerState::Waiting {
                reason: reason.into(),
                message: None,
            };
        }
        if !attempt.waiting.is_empty() {
            self.sandbox_retry = Some(now.mono + self.base);
        }
    }

    /// A start that failed (the command is gone, a mount failed, ...): recorded as containerd
    /// and the kubelet show it, a run that ended at once with `StartError` (exit code 128, the
    /// error as its message) and a `Failed` event; the container waits with
    /// `RunContainerError` until the next sync, when the back-off decides (CrashLoopBackOff).
    fn start_failed(&mut self, record: &mut PodRecord, i: usize, message: String, now: Now) {
        record.event("Warning", "Failed", format!("Error: {message}"));
        let policy = record.plan.restart_policy;
        let c = &mut record.containers[i];
        c.process = None;
        c.state = ContainerState::Terminated {
            exit_code: 128,
            signal: None,
            reason: "StartError".into(),
            message: Some(message.clone()),
            started_at: now.wall,
            finished_at: now.wall,
        };
        if backoff::policy_restarts(policy, 128) {
            c.last_state = Some(c.state.clone());
            c.state = ContainerState::Waiting {
                reason: "RunContainerError".into(),
                message: Some(message),
            };
            self.schedule(i, now.mono + self.base / SYNC_AFTER_ERROR_DIVISOR);
        }
    }

    /// A pull that failed: the kubelet's `Failed` events and `ErrImagePull` (or the reason
    /// given) until the next sync, then `ImagePullBackOff` until the image back-off has passed,
    /// when the start (and its pull) is tried again. No container ran, so no run is recorded.
    fn pull_failed(
        &mut self,
        record: &mut PodRecord,
        i: usize,
        reason: &'static str,
        message: String,
        now: Now,
    ) {
        let image = record.containers[i].image.clone();
        if reason == "ErrImageNeverPull" {
            record.event("Warning", reason, message.clone());
        } else {
            record.event(
                "Warning",
                "Failed",
                format!("Failed to pull image \"{image}\": {message}"),
            );
        }
        record.event("Warning", "Failed", format!("Error: {reason}"));
        let failures = self
            .pulls
            .iter()
            .find(|(j, _)| *j == i)
            .map_or(0, |(_, b)| b.failures)
            + 1;
        let delay = (self.base * 2u32.saturating_pow(failures - 1)).min(self.base * 30);
        self.pulls.retain(|(j, _)| *j != i);
        self.pulls.push((
            i,
            PullBackOff {
                failures,
                until: now.mono + delay,
            },
        ));
        let c = &mut record.containers[i];
        c.process = None;
        // A restart whose container was not made: not counted (yet).
        let restarting = matches!(c.state, ContainerState::Terminated { .. })
            && matches!(c.last_state, Some(ContainerState::Terminated { .. }));
        if (restarting || self.uncounted.contains(&i)) && c.restart_count > 0 {
            c.restart_count -= 1;
            if !self.uncounted.contains(&i) {
                self.uncounted.push(i);
            }
        }
        c.state = ContainerState::Waiting {
            reason: reason.into(),
            message: Some(message),
        };
        self.schedule(i, now.mono + self.base / SYNC_AFTER_ERROR_DIVISOR);
    }

    /// Container `i`'s timer, when its image pull failed: `ImagePullBackOff` while the image
    /// back-off lasts (true), a start (and pull) again once it passed (true); false when no
    /// pull failed (the restart rules decide).
    fn pull_back_off(
        &mut self,
        record: &mut PodRecord,
        i: usize,
        now: Now,
        actions: &mut Vec<Action>,
    ) -> bool {
        let Some(&(_, backoff)) = self.pulls.iter().find(|(j, _)| *j == i) else {
            return false;
        };
        if backoff.until > now.mono {
            let image = record.containers[i].image.clone();
            record.event(
                "Normal",
                "BackOff",
                format!("Back-off pulling image \"{image}\""),
            );
            record.event("Warning", "Failed", "Error: ImagePullBackOff".into());
            record.containers[i].state = ContainerState::Waiting {
                reason: "ImagePullBackOff".into(),
                message: Some(format!("Back-off pulling image \"{image}\"")),
            };
            self.schedule(i, backoff.until);
        } else {
            if self.uncounted.contains(&i) {
                record.containers[i].restart_count += 1;
            }
            actions.push(Action::Start(i));
        }
        true
    }

    /// Container `i` is in back-off: shown as CrashLoopBackOff (with the kubelet's message and
    /// a BackOff event), and looked at again in `remaining`.
    fn back_off(
        &mut self,
        record: &mut PodRecord,
        i: usize,
        delay: Duration,
        remaining: Duration,
        now: Now,
    ) {
        self.schedule(i, now.mono + remaining);
        let plan = &record.plan;
        let name = record.containers[i].name.clone();
        let message = format!(
            "back-off {}s restarting failed container={name} pod={}_{}({})",
            delay.as_secs(),
            plan.name,
            plan.namespace,
            plan.uid
        );
        let event = format!(
            "Back-off restarting failed container {name} in pod {}",
            plan.name
        );
        let c = &mut record.containers[i];
        if let ContainerState::Terminated { .. } = c.state {
            c.last_state = Some(c.state.clone());
        }
        c.state = ContainerState::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: Some(message),
        };
        record.event("Warning", "BackOff", event);
    }

    fn schedule(&mut self, i: usize, at: Instant) {
        self.timers.retain(|(j, _)| *j != i);
        self.timers.push((i, at));
    }
}

/// The kernel side of the policy: whatever carries its actions out (the supervisor; a
/// recording fake in tests), holding the machine and the record they share.
pub trait Kernel {
    /// The policy's state and the record it changes.
    fn state(&mut self) -> (&mut Machine, &mut PodRecord);
    /// Carry out `action`; the events it answers with.
    fn perform(&mut self, action: Action) -> Vec<Event>;
    fn now(&self) -> Now {
        Now::current()
    }
}

/// Hand `event` to the policy and carry out its actions, and the events they answer with, in
/// order; then settle the phase (stopping a finished pod's sandbox). False once the pod is
/// being removed (its record goes with it: nothing to save).
pub fn dispatch(kernel: &mut impl Kernel, event: Event) -> bool {
    let mut events = std::collections::VecDeque::from([event]);
    while let Some(event) = events.pop_front() {
        tracing::debug!(?event, "policy event");
        let now = kernel.now();
        let (machine, record) = kernel.state();
        for action in machine.handle(record, event, now) {
            tracing::debug!(?action, "policy action");
            events.extend(kernel.perform(action));
        }
    }
    let (machine, record) = kernel.state();
    if machine.stopping() {
        return false;
    }
    for action in machine.settle(record) {
        kernel.perform(action);
    }
    true
}

/// Record the end of container `i`'s run (and an OOMKilled event for a kill by the OOM
/// killer); no decision. Used while stopping too.
pub fn record_exit(record: &mut PodRecord, i: usize, exit: &Exit, now: DateTime<Utc>) {
    let limit = record.plan.containers[i]
        .resources
        .limits
        .memory_bytes
        .map(|b| format!(" (memory limit {b} bytes)"))
        .unwrap_or_default();
    let c = &mut record.containers[i];
    let started_at = match &c.state {
        ContainerState::Running { started_at } => *started_at,
        _ => now,
    };
    let reason = match exit.code {
        _ if exit.oom_killed => "OOMKilled",
        0 => "Completed",
        _ => "Error",
    };
    c.state = ContainerState::Terminated {
        exit_code: exit.code,
        signal: exit.signal,
        reason: reason.into(),
        message: exit.message.clone(),
        started_at,
        finished_at: now,
    };
    c.process = None;
    if exit.oom_killed {
        let name = c.name.clone();
        record.event(
            "Warning",
            "OOMKilled",
            format!("Container {name} was killed by the kernel OOM killer{limit}"),
        );
    }
}

/// The pod's grace period (`terminationGracePeriodSeconds`).
fn pod_grace(record: &PodRecord) -> Duration {
    Duration::from_secs(record.plan.termination_grace_period_seconds.max(0) as u64)
}

fn sandbox_ready(record: &PodRecord) -> bool {
    record.sandbox.as_ref().is_some_and(|s| s.ready)
}

/// Every app container has ended and none will run again (their phase is terminal): a
/// sidecar is then not restarted.
fn apps_finished(record: &PodRecord) -> bool {
    matches!(
        super::status::pod_phase(record),
        Phase::Succeeded | Phase::Failed
    )
}

/// The containers a pod's first start starts: the first init container, or without any, all.
pub fn first_starts(record: &PodRecord) -> Vec<usize> {
    match record.containers.first() {
        Some(c) if c.init => vec![0],
        _ => (0..record.containers.len()).collect(),
    }
}

/// A container is about to start as the step after another (the next init container, the
/// app containers after the last one): a restart (count + 1, lastState) if it ran before.
fn begin_run(c: &mut ContainerRecord) {
    if last_run(c).is_some() {
        let factor = c.backoff_factor;
        begin_restart(c, factor);
    }
}

/// A new run of a container is about to start after a run that ended: its back-off entry
/// becomes `next`, the last run becomes its lastState, and its restart count goes up.
fn begin_restart(c: &mut ContainerRecord, next: u64) {
    c.backoff_factor = next;
    c.restart_for_update = false;
    if let ContainerState::Terminated { .. } = c.state {
        c.last_state = Some(c.state.clone());
    }
    c.restart_count += 1;
}

fn is_running(c: &ContainerRecord) -> bool {
    matches!(c.state, ContainerState::Running { .. })
}

/// The container's last run (a `Terminated` state): its state, or the lastState of a
/// container waiting after it (a back-off, a start error, a sandbox being re-made).
fn last_run(c: &ContainerRecord) -> Option<&ContainerState> {
    match (&c.state, &c.last_state) {
        (ContainerState::Terminated { .. }, _) => Some(&c.state),
        (ContainerState::Waiting { .. }, Some(last @ ContainerState::Terminated { .. })) => {
            Some(last)
        }
        _ => None,
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
