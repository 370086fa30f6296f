//! The kubelet's rules (section 2 of the pod semantics: sandbox death, container death,
//! restarts, back-off), one test or more each, driving [`Machine`] as the supervisor does: the
//! test plays the kernel side, carrying out the actions it gets back.

use std::time::Duration;

use super::*;
use crate::state::DeletionRequest;
use crate::supervisor::status::tests::{States, record};

const BASE: Duration = Duration::from_secs(10);

fn running(at: DateTime<Utc>) -> ContainerState {
    ContainerState::Running { started_at: at }
}

/// A pod under `policy` whose containers are in `states`, in a ready sandbox (attempt 0).
fn pod(policy: &str, states: &[States]) -> PodRecord {
    let mut r = record(policy, states);
    let mut sandbox = super::super::lifecycle::planned_sandbox(&r, 0);
    sandbox.ready = true;
    r.sandbox = Some(sandbox);
    r
}

fn all_running(policy: &str, n: usize, now: Now) -> PodRecord {
    let states: Vec<States> = (0..n).map(|_| (running(now.wall), None)).collect();
    pod(policy, &states)
}

fn later(now: Now, d: Duration) -> Now {
    Now {
        wall: now.wall + chrono::Duration::from_std(d).unwrap(),
        mono: now.mono + d,
    }
}

fn code(code: i32) -> Exit {
    Exit {
        code,
        signal: None,
        oom_killed: false,
        message: None,
    }
}

/// Container `container`'s process ended with `exit`.
fn exited(container: usize, exit: Exit) -> Event {
    Event::Exited { container, exit }
}

fn killed() -> Exit {
    Exit {
        code: 137,
        signal: Some(9),
        oom_killed: false,
        message: None,
    }
}

/// The kernel side of [`Action::Start`]: the container runs from `now`.
fn start(r: &mut PodRecord, i: usize, now: Now) {
    r.containers[i].state = running(now.wall);
}

fn reason(r: &PodRecord, i: usize) -> String {
    match &r.containers[i].state {
        ContainerState::Waiting { reason, .. } | ContainerState::Terminated { reason, .. } => {
            reason.clone()
        }
        ContainerState::Running { .. } => "Running".into(),
    }
}

fn has_event(r: &PodRecord, kind: &str, reason: &str, message: &str) -> bool {
    r.events
        .iter()
        .any(|e| e.kind == kind && e.reason == reason && e.message == message)
}

// 2.3: an app container exits while the sandbox is alive.

#[test]
fn always_restarts_only_the_container_that_ended() {
    let now = Now::current();
    let mut r = all_running("Always", 2, now);
    let mut m = Machine::new(BASE);
    let exited = exited(0, code(0));
    assert_eq!(m.handle(&mut r, exited, now), [Action::Start(0)]);
    let c0 = &r.containers[0];
    assert_eq!(c0.restart_count, 1);
    assert_eq!(
        c0.backoff_factor, 1,
        "the first restart makes the 10 s entry"
    );
    assert!(matches!(
        &c0.last_state,
        Some(ContainerState::Terminated { exit_code: 0, reason, .. }) if reason == "Completed"
    ));
    assert_eq!(r.containers[1].restart_count, 0);
    assert_eq!(reason(&r, 1), "Running", "the sibling is untouched");
    assert_eq!(m.settle(&mut r), vec![], "the sandbox stays");
}

#[test]
fn on_failure_restarts_failures_only_and_never_restarts_nothing() {
    let now = Now::current();
    let exit = |policy: &str, exit: Exit| {
        let mut r = all_running(policy, 1, now);
        let mut m = Machine::new(BASE);
        let actions = m.handle(&mut r, exited(0, exit), now);
        let settle = m.settle(&mut r);
        (actions, r.phase, settle)
    };
    let stop = vec![Action::StopSandbox];
    assert_eq!(
        exit("OnFailure", code(0)),
        (vec![], Phase::Succeeded, stop.clone())
    );
    assert_eq!(
        exit("OnFailure", code(1)),
        (vec![Action::Start(0)], Phase::Running, vec![])
    );
    assert_eq!(
        exit("Never", code(1)),
        (vec![], Phase::Failed, stop.clone())
    );
    assert_eq!(exit("Never", code(0)), (vec![], Phase::Succeeded, stop));
    assert_eq!(
        exit("Always", code(0)),
        (vec![Action::Start(0)], Phase::Running, vec![])
    );
}

#[test]
fn nothing_running_and_nothing_to_restart_stops_the_sandbox_once() {
    let now = Now::current();
    let mut r = all_running("Never", 2, now);
    let mut m = Machine::new(BASE);
    m.handle(&mut r, exited(0, code(0)), now);
    assert_eq!(m.settle(&mut r), vec![], "one still runs");
    assert_eq!(r.phase, Phase::Running);
    m.handle(&mut r, exited(1, code(2)), now);
    assert_eq!(m.settle(&mut r), vec![Action::StopSandbox]);
    assert_eq!(r.phase, Phase::Failed);
    r.sandbox.as_mut().unwrap().ready = false;
    assert_eq!(m.settle(&mut r), vec![]);
}

#[test]
fn an_oom_kill_is_recorded_as_oom_killed() {
    let now = Now::current();
    let mut r = all_running("Always", 1, now);
    let mut m = Machine::new(BASE);
    let exit = Exit {
        code: 137,
        signal: Some(9),
        oom_killed: true,
        message: None,
    };
    assert_eq!(m.handle(&mut r, exited(0, exit), now), [Action::Start(0)]);
    assert!(matches!(
        &r.containers[0].last_state,
        Some(ContainerState::Terminated { reason, exit_code: 137, .. }) if reason == "OOMKilled"
    ));
    assert!(
        r.events
            .iter()
            .any(|e| e.reason == "OOMKilled" && e.kind == "Warning")
    );
}

// 2.4: CrashLoopBackOff.

/// A container that ends `ran` after each start, under `policy`: the waits between its runs,
/// driven through exits, the CrashLoopBackOff and the timer ticks.
fn crash_loop(policy: &str, runs: usize, exit: Exit, ran: Duration) -> Vec<u64> {
    let mut now = Now::current();
    let mut r = all_running(policy, 1, now);
    let mut m = Machine::new(BASE);
    let mut waits = Vec::new();
    for _ in 0..runs {
        now = later(now, ran);
        let ended_at = now;
        let mut actions = m.handle(&mut r, exited(0, exit.clone()), now);
        while actions.is_empty() {
            let Some(deadline) = m.next_deadline() else {
                return waits; // the policy keeps it stopped
            };
            assert_eq!(reason(&r, 0), "CrashLoopBackOff");
            // Not a moment early.
            let early = later(now, deadline - now.mono - Duration::from_millis(1));
            assert_eq!(m.handle(&mut r, Event::Tick, early), []);
            now = later(now, deadline - now.mono);
            actions = m.handle(&mut r, Event::Tick, now);
        }
        assert_eq!(actions, [Action::Start(0)]);
        waits.push((now.wall - ended_at.wall).num_seconds() as u64);
        start(&mut r, 0, now);
    }
    waits
}

#[test]
fn crash_loop_back_off_doubles_from_10s_to_300s() {
    let crash = crash_loop("Always", 9, code(1), Duration::from_secs(1));
    assert_eq!(crash, [0, 10, 20, 40, 80, 160, 300, 300, 300]);
    let completes = crash_loop("Always", 4, code(0), Duration::ZERO);
    assert_eq!(completes, [0, 10, 20, 40], "Always backs off exits 0 too");
    assert!(crash_loop("Never", 3, code(1), Duration::ZERO).is_empty());
}

#[test]
fn a_run_of_over_ten_minutes_resets_the_back_off() {
    let long = crash_loop("OnFailure", 4, code(1), Duration::from_secs(601));
    assert_eq!(long, [0, 0, 0, 0]);
    let short = crash_loop("OnFailure", 4, code(1), Duration::from_secs(599));
    assert_eq!(short, [0, 10, 20, 40]);
}

#[test]
fn back_off_is_shown_with_the_kubelets_words() {
    let now = Now::current();
    let mut r = all_running("Always", 1, now);
    r.containers[0].backoff_factor = 2;
    let mut m = Machine::new(BASE);
    let exited = exited(0, code(1));
    assert_eq!(m.handle(&mut r, exited, now), []);
    let (pod, uid) = (r.plan.name.clone(), r.plan.uid.clone());
    match &r.containers[0].state {
        ContainerState::Waiting { reason, message } => {
            assert_eq!(reason, "CrashLoopBackOff");
            assert_eq!(
                message.as_deref(),
                Some(
                    format!("back-off 20s restarting failed container=c0 pod={pod}_default({uid})")
                        .as_str()
                )
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(has_event(
        &r,
        "Warning",
        "BackOff",
        &format!("Back-off restarting failed container c0 in pod {pod}")
    ));
    assert_eq!(m.next_deadline(), Some(now.mono + Duration::from_secs(20)));
    assert_eq!(
        m.settle(&mut r),
        vec![],
        "a pod in back-off keeps its sandbox"
    );
    assert_eq!(r.phase, Phase::Running);
}

#[test]
fn a_start_error_waits_as_run_container_error_then_backs_off() {
    let now = Now::current();
    let mut r = all_running("Always", 1, now);
    let mut m = Machine::new(BASE);
    let failed = Event::StartFailed {
        container: 0,
        message: "exec: \"x\": not found".into(),
    };
    assert_eq!(m.handle(&mut r, failed.clone(), now), []);
    assert_eq!(reason(&r, 0), "RunContainerError");
    assert!(matches!(
        &r.containers[0].last_state,
        Some(ContainerState::Terminated { exit_code: 128, reason, .. }) if reason == "StartError"
    ));
    assert!(has_event(
        &r,
        "Warning",
        "Failed",
        "Error: exec: \"x\": not found"
    ));
    // The next sync (a PLEG relist, a tenth of the base later) starts it: no entry yet.
    assert_eq!(m.next_deadline(), Some(now.mono + BASE / 10));
    let sync = later(now, BASE / 10);
    assert_eq!(m.handle(&mut r, Event::Tick, sync), [Action::Start(0)]);
    assert_eq!(r.containers[0].restart_count, 1);
    // It fails again: now the back-off holds it (CrashLoopBackOff, 10 s).
    assert_eq!(m.handle(&mut r, failed, sync), []);
    let sync = later(sync, BASE / 10);
    assert_eq!(m.handle(&mut r, Event::Tick, sync), []);
    assert_eq!(reason(&r, 0), "CrashLoopBackOff");
    assert_eq!(m.next_deadline(), Some(sync.mono + BASE - BASE / 10));
}

#[test]
fn a_start_error_under_never_ends_the_pod() {
    let now = Now::current();
    let mut r = all_running("Never", 1, now);
    let mut m = Machine::new(BASE);
    let failed = Event::StartFailed {
        container: 0,
        message: "no such file".into(),
    };
    assert_eq!(m.handle(&mut r, failed, now), []);
    assert_eq!(reason(&r, 0), "StartError");
    assert_eq!(m.next_deadline(), None);
    assert_eq!(m.settle(&mut r), vec![Action::StopSandbox]);
    assert_eq!(r.phase, Phase::Failed);
}

// 2.1 and 2.2: the pause dies.

/// The kernel side of a sandbox change's stop: every running container killed, the sandbox
/// torn down.
fn kill_and_tear_down(r: &mut PodRecord, now: Now) {
    for i in 0..r.containers.len() {
        if is_running(&r.containers[i]) {
            record_exit(r, i, &killed(), now.wall);
        }
    }
    r.sandbox.as_mut().unwrap().ready = false;
}

/// The kernel side of [`Action::CreateSandbox`] that succeeds.
fn create(r: &mut PodRecord, attempt: u32, start: &[usize], now: Now) {
    r.sandbox = Some(super::super::lifecycle::planned_sandbox(r, attempt));
    r.sandbox.as_mut().unwrap().ready = true;
    for &i in start {
        self::start(r, i, now);
    }
}

#[test]
fn pause_death_stops_every_container_and_makes_a_new_sandbox() {
    let now = Now::current();
    let mut r = all_running("Always", 2, now);
    r.containers[1].restart_count = 3;
    let mut m = Machine::new(BASE);
    let actions = m.handle(&mut r, Event::PauseDied, now);
    assert_eq!(
        actions,
        [
            Action::StopContainers {
                grace: Duration::from_secs(2)
            },
            Action::StopSandbox,
            Action::Then(Event::SandboxDown { killed: vec![0, 1] }),
        ]
    );
    assert!(has_event(
        &r,
        "Normal",
        "SandboxChanged",
        "Pod sandbox changed, it will be killed and re-created."
    ));
    kill_and_tear_down(&mut r, now);
    let down = Event::SandboxDown { killed: vec![0, 1] };
    assert_eq!(
        m.handle(&mut r, down, now),
        [Action::CreateSandbox {
            attempt: 1,
            start: vec![0, 1]
        }]
    );
    // Every container's RESTARTS goes +1; the killed run is its lastState.
    assert_eq!(r.containers[0].restart_count, 1);
    assert_eq!(r.containers[1].restart_count, 4);
    assert!(matches!(
        r.containers[0].last_state,
        Some(ContainerState::Terminated { exit_code: 137, .. })
    ));
    create(&mut r, 1, &[0, 1], now);
    assert_eq!(m.handle(&mut r, Event::SandboxCreated, now), []);
    assert_eq!(m.settle(&mut r), vec![]);
    assert_eq!(r.phase, Phase::Running);
}

#[test]
fn pause_death_under_never_only_kills_the_pod() {
    let now = Now::current();
    let mut r = all_running("Never", 1, now);
    let mut m = Machine::new(BASE);
    assert_eq!(m.handle(&mut r, Event::PauseDied, now).len(), 3);
    kill_and_tear_down(&mut r, now);
    let down = Event::SandboxDown { killed: vec![0] };
    assert_eq!(m.handle(&mut r, down, now), []);
    assert_eq!(m.settle(&mut r), vec![], "the sandbox is gone already");
    assert_eq!(r.phase, Phase::Failed);
}

#[test]
fn a_new_sandbox_skips_containers_that_succeeded_under_on_failure() {
    let now = Now::current();
    let done = ContainerState::Terminated {
        exit_code: 0,
        signal: None,
        reason: "Completed".into(),
        message: None,
        started_at: now.wall,
        finished_at: now.wall,
    };
    let mut r = pod("OnFailure", &[(done, None), (running(now.wall), None)]);
    let mut m = Machine::new(BASE);
    m.handle(&mut r, Event::PauseDied, now);
    kill_and_tear_down(&mut r, now);
    let down = Event::SandboxDown { killed: vec![1] };
    assert_eq!(
        m.handle(&mut r, down, now),
        [Action::CreateSandbox {
            attempt: 1,
            start: vec![1]
        }]
    );
    assert_eq!(r.containers[0].restart_count, 0);
    // With no container to start, no sandbox is made.
    let mut r = pod("OnFailure", &[(r.containers[0].state.clone(), None)]);
    r.sandbox.as_mut().unwrap().ready = false;
    let down = Event::SandboxDown { killed: vec![] };
    assert_eq!(Machine::new(BASE).handle(&mut r, down, now), []);
}

#[test]
fn a_container_in_back_off_waits_it_out_in_the_new_sandbox() {
    let now = Now::current();
    let ended = ContainerState::Terminated {
        exit_code: 1,
        signal: None,
        reason: "Error".into(),
        message: None,
        started_at: now.wall - chrono::Duration::seconds(6),
        finished_at: now.wall - chrono::Duration::seconds(5),
    };
    let backing_off = ContainerState::Waiting {
        reason: "CrashLoopBackOff".into(),
        message: None,
    };
    let mut r = pod(
        "Always",
        &[(running(now.wall), None), (backing_off, Some(ended))],
    );
    r.containers[1].backoff_factor = 2;
    let mut m = Machine::new(BASE);
    m.handle(&mut r, Event::PauseDied, now);
    kill_and_tear_down(&mut r, now);
    let down = Event::SandboxDown { killed: vec![0] };
    assert_eq!(
        m.handle(&mut r, down, now),
        [Action::CreateSandbox {
            attempt: 1,
            start: vec![0]
        }]
    );
    create(&mut r, 1, &[0], now);
    assert_eq!(m.handle(&mut r, Event::SandboxCreated, now), []);
    assert_eq!(reason(&r, 1), "CrashLoopBackOff");
    // 20 s after its run ended, 5 s ago.
    assert_eq!(m.next_deadline(), Some(now.mono + Duration::from_secs(15)));
    let due = later(now, Duration::from_secs(15));
    assert_eq!(m.handle(&mut r, Event::Tick, due), [Action::Start(1)]);
}

#[test]
fn a_failed_re_creation_leaves_nothing_and_is_retried_every_back_off_period() {
    let now = Now::current();
    let mut r = all_running("Always", 2, now);
    let mut m = Machine::new(BASE);
    m.handle(&mut r, Event::PauseDied, now);
    kill_and_tear_down(&mut r, now);
    let mut actions = m.handle(&mut r, Event::SandboxDown { killed: vec![0, 1] }, now);
    let mut t = now;
    for attempt in 1..4 {
        assert_eq!(
            actions,
            [Action::CreateSandbox {
                attempt,
                start: vec![0, 1]
            }],
            "attempt {attempt}"
        );
        assert_eq!(
            r.containers[0].restart_count, 1,
            "counted while it is tried"
        );
        r.sandbox = Some(super::super::lifecycle::planned_sandbox(&r, attempt));
        let failed = Event::SandboxFailed {
            message: "no free address".into(),
        };
        assert_eq!(
            m.handle(&mut r, failed, t),
            [
                Action::KillContainers,
                Action::StopSandbox,
                Action::Then(Event::SandboxCleared)
            ]
        );
        assert_eq!(m.handle(&mut r, Event::SandboxCleared, t), []);
        assert!(has_event(
            &r,
            "Warning",
            "FailedCreatePodSandBox",
            "Failed to create pod sandbox: no free address"
        ));
        for i in 0..2 {
            assert_eq!(reason(&r, i), "ContainerCreating");
            assert_eq!(r.containers[i].restart_count, 0, "taken back");
            assert_eq!(r.containers[i].backoff_factor, 0, "taken back");
        }
        assert_eq!(m.settle(&mut r), vec![]);
        assert_eq!(r.phase, Phase::Running, "waiting after a run");
        assert_eq!(m.next_deadline(), Some(t.mono + BASE));
        assert_eq!(m.handle(&mut r, Event::Tick, later(t, BASE / 2)), []);
        t = later(t, BASE);
        actions = m.handle(&mut r, Event::Tick, t);
    }
}

// Stop (delete).

#[test]
fn a_stop_uses_the_requested_grace_period_and_then_only_records() {
    let now = Now::current();
    let mut r = all_running("Always", 1, now);
    let mut m = Machine::new(BASE);
    // A container in back-off: the stop cancels its restart.
    m.handle(&mut r, exited(0, code(1)), now);
    start(&mut r, 0, now);
    m.handle(&mut r, exited(0, code(1)), now);
    assert!(m.next_deadline().is_some());
    r.deletion = Some(DeletionRequest {
        grace_period_seconds: 5,
        requested_at: now.wall,
    });
    assert_eq!(
        m.handle(&mut r, Event::StopRequested, now),
        [Action::Remove {
            grace: Duration::from_secs(5)
        }]
    );
    assert!(m.stopping());
    assert_eq!(m.next_deadline(), None);
    assert!(!m.due(later(now, Duration::from_secs(600)).mono));
    for event in [Event::Tick, Event::PauseDied, Event::StopRequested] {
        assert_eq!(m.handle(&mut r, event, now), []);
    }
    // Without a request: the pod's terminationGracePeriodSeconds.
    let mut r = all_running("Always", 1, now);
    r.plan.termination_grace_period_seconds = 7;
    let mut m = Machine::new(BASE);
    assert_eq!(
        m.handle(&mut r, Event::StopRequested, now),
        [Action::Remove {
            grace: Duration::from_secs(7)
        }]
    );
    let exited = exited(0, killed());
    assert_eq!(
        m.handle(&mut r, exited, now),
        [],
        "no restart while stopping"
    );
    assert_eq!(reason(&r, 0), "Error");
}

// The kernel side through the trait: a recording fake that answers as the supervisor would.

struct FakeKernel {
    machine: Machine,
    record: PodRecord,
    now: Now,
    performed: Vec<Action>,
    /// Sandbox creations to fail, before one succeeds.
    failing_creations: usize,
}

impl FakeKernel {
    fn new(record: PodRecord, now: Now) -> Self {
        Self {
            machine: Machine::new(BASE),
            record,
            now,
            performed: Vec::new(),
            failing_creations: 0,
        }
    }
}

impl Kernel for FakeKernel {
    fn state(&mut self) -> (&mut Machine, &mut PodRecord) {
        (&mut self.machine, &mut self.record)
    }

    fn perform(&mut self, action: Action) -> Vec<Event> {
        self.performed.push(action.clone());
        let now = self.now;
        let r = &mut self.record;
        match action {
            Action::Start(i) => start(r, i, now),
            Action::StopContainers { .. } | Action::KillContainers => {
                for i in 0..r.containers.len() {
                    if is_running(&r.containers[i]) {
                        record_exit(r, i, &killed(), now.wall);
                    }
                }
            }
            Action::StopSandbox => r.sandbox.as_mut().unwrap().ready = false,
            Action::Kill { container, .. } => {
                return vec![Event::Exited {
                    container,
                    exit: killed(),
                }];
            }
            Action::CreateSandbox { attempt, start } => {
                if self.failing_creations > 0 {
                    self.failing_creations -= 1;
                    r.sandbox = Some(super::super::lifecycle::planned_sandbox(r, attempt));
                    return vec![Event::SandboxFailed {
                        message: "no free address".into(),
                    }];
                }
                create(r, attempt, &start, now);
                return vec![Event::SandboxCreated];
            }
            Action::Then(event) => return vec![event],
            Action::Remove { .. } | Action::RemoveCgroups | Action::RemoveState => {}
        }
        vec![]
    }

    fn now(&self) -> Now {
        self.now
    }
}

#[test]
fn a_first_start_that_fails_midway_is_rolled_back_processes_first_record_last() {
    let now = Now::current();
    let mut k = FakeKernel::new(all_running("Always", 2, now), now);
    assert!(
        !dispatch(&mut k, Event::FirstStartFailed),
        "nothing to save"
    );
    assert_eq!(
        k.performed,
        [
            Action::KillContainers,
            Action::StopSandbox,
            Action::RemoveCgroups,
            Action::RemoveState
        ]
    );
}

#[test]
fn a_pause_death_runs_the_kernel_work_in_the_kubelets_order() {
    let now = Now::current();
    let mut k = FakeKernel::new(all_running("Always", 2, now), now);
    k.failing_creations = 1;
    assert!(dispatch(&mut k, Event::PauseDied));
    assert_eq!(
        k.performed,
        [
            Action::StopContainers {
                grace: SANDBOX_CHANGE_GRACE
            },
            Action::StopSandbox,
            Action::Then(Event::SandboxDown { killed: vec![0, 1] }),
            Action::CreateSandbox {
                attempt: 1,
                start: vec![0, 1]
            },
            Action::KillContainers,
            Action::StopSandbox,
            Action::Then(Event::SandboxCleared),
        ]
    );
    assert_eq!(reason(&k.record, 0), "ContainerCreating");
    // Retried after the back-off period, in a new attempt.
    k.performed.clear();
    k.now = later(now, BASE);
    assert!(k.machine.due(k.now.mono));
    assert!(dispatch(&mut k, Event::Tick));
    assert_eq!(
        k.performed,
        [Action::CreateSandbox {
            attempt: 2,
            start: vec![0, 1]
        }]
    );
    assert!((0..2).all(|i| reason(&k.record, i) == "Running"));
    assert!(k.record.containers.iter().all(|c| c.restart_count == 1));
    assert_eq!(k.record.phase, Phase::Running);
}

#[test]
fn a_finished_pod_has_its_sandbox_stopped_after_the_exit_is_handled() {
    let now = Now::current();
    let mut k = FakeKernel::new(all_running("Never", 1, now), now);
    let exited = exited(0, code(0));
    assert!(dispatch(&mut k, exited));
    assert_eq!(k.performed, [Action::StopSandbox]);
    assert_eq!(k.record.phase, Phase::Succeeded);
    // A stop afterwards removes what is left, and nothing is saved after it.
    k.performed.clear();
    assert!(!dispatch(&mut k, Event::StopRequested));
    assert!(matches!(k.performed[..], [Action::Remove { .. }]));
}

// A pull at a later start (Always, or an image gone from the store) that fails.

#[test]
fn a_failed_pull_is_err_image_pull_then_image_pull_back_off_doubling_until_it_pulls() {
    let now = Now::current();
    let mut r = all_running("Always", 1, now);
    let mut m = Machine::new(BASE);
    let failed = || Event::PullFailed {
        container: 0,
        reason: "ErrImagePull",
        message: "127.0.0.1:5000/x: connection refused".into(),
    };
    let image = r.containers[0].image.clone();
    assert_eq!(m.handle(&mut r, failed(), now), []);
    assert_eq!(reason(&r, 0), "ErrImagePull");
    assert!(has_event(
        &r,
        "Warning",
        "Failed",
        &format!("Failed to pull image \"{image}\": 127.0.0.1:5000/x: connection refused")
    ));
    assert!(has_event(&r, "Warning", "Failed", "Error: ErrImagePull"));
    assert_eq!(r.containers[0].last_state, None, "no container ran");
    // The next sync: in the image back-off (10 s).
    let sync = later(now, BASE / 10);
    assert_eq!(m.handle(&mut r, Event::Tick, sync), []);
    assert_eq!(reason(&r, 0), "ImagePullBackOff");
    assert!(has_event(
        &r,
        "Normal",
        "BackOff",
        &format!("Back-off pulling image \"{image}\"")
    ));
    assert_eq!(m.next_deadline(), Some(now.mono + BASE));
    // It passed: start (and pull) again; a second failure doubles the back-off.
    let retry = later(now, BASE);
    assert_eq!(m.handle(&mut r, Event::Tick, retry), [Action::Start(0)]);
    assert_eq!(m.handle(&mut r, failed(), retry), []);
    let sync = later(retry, BASE / 10);
    assert_eq!(m.handle(&mut r, Event::Tick, sync), []);
    assert_eq!(m.next_deadline(), Some(retry.mono + 2 * BASE));
    // Pulled and ran, then exited: the ordinary restart rules again.
    let ran = later(retry, 2 * BASE);
    assert_eq!(m.handle(&mut r, Event::Tick, ran), [Action::Start(0)]);
    start(&mut r, 0, ran);
    let ended = later(ran, Duration::from_secs(700));
    assert_eq!(
        m.handle(&mut r, exited(0, code(1)), ended),
        [Action::Start(0)]
    );
}

// Init containers: one at a time, in order, before the app containers.

fn creating() -> ContainerState {
    ContainerState::Waiting {
        reason: "PodInitializing".into(),
        message: None,
    }
}

/// A pod under `policy` with `inits` init containers (`i0` ... at 0..inits) and `apps` app
/// containers after them, just started: the first init container runs, the rest waits.
fn initializing(policy: &str, inits: usize, apps: usize, now: Now) -> PodRecord {
    let waiting = |n: usize| -> Vec<States> { (0..n).map(|_| (creating(), None)).collect() };
    let mut init_states = waiting(inits);
    init_states[0] = (running(now.wall), None);
    let mut r =
        crate::supervisor::status::tests::record_with_inits(policy, &init_states, &waiting(apps));
    let mut sandbox = super::super::lifecycle::planned_sandbox(&r, 0);
    sandbox.ready = true;
    r.sandbox = Some(sandbox);
    r
}

#[test]
fn a_first_start_runs_only_the_first_init_container() {
    let now = Now::current();
    let r = initializing("Always", 2, 2, now);
    assert_eq!(first_starts(&r), [0]);
    assert_eq!(first_starts(&all_running("Always", 3, now)), [0, 1, 2]);
}

#[test]
fn init_containers_run_in_order_then_the_app_containers_all_at_once() {
    let now = Now::current();
    let mut k = FakeKernel::new(initializing("Always", 2, 2, now), now);
    k.machine.settle(&mut k.record);
    assert_eq!(k.record.phase, Phase::Pending);
    assert_eq!(crate::supervisor::pod_status_word(&k.record), "Init:0/2");
    assert!(dispatch(&mut k, exited(0, code(0))));
    assert_eq!(k.performed, [Action::Start(1)], "the second, not the apps");
    assert_eq!(k.record.phase, Phase::Pending);
    assert_eq!(crate::supervisor::pod_status_word(&k.record), "Init:1/2");
    assert_eq!(reason(&k.record, 0), "Completed");
    k.performed.clear();
    assert!(dispatch(&mut k, exited(1, code(0))));
    // The apps start at once: no fixed delay after the last init container.
    assert_eq!(k.performed, [Action::Start(2), Action::Start(3)]);
    assert_eq!(k.record.phase, Phase::Running);
    assert_eq!(crate::supervisor::pod_status_word(&k.record), "Running");
    // First runs: no restart counted; the init containers stay Completed.
    assert!(k.record.containers.iter().all(|c| c.restart_count == 0));
    assert!(crate::supervisor::initialized(&k.record));
    // An app container that ends restarts alone; the init containers do not run again.
    k.performed.clear();
    assert!(dispatch(&mut k, exited(2, code(0))));
    assert_eq!(k.performed, [Action::Start(2)]);
}

#[test]
fn app_containers_waiting_after_the_init_containers_show_pod_initializing() {
    let now = Now::current();
    let mut r = initializing("Always", 1, 1, now);
    record_exit(&mut r, 0, &code(0), now.wall);
    assert_eq!(crate::supervisor::pod_status_word(&r), "PodInitializing");
    assert_eq!(crate::supervisor::pod_phase(&r), Phase::Pending);
}

#[test]
fn a_failed_init_container_restarts_through_its_back_off_and_the_apps_wait() {
    for policy in ["Always", "OnFailure"] {
        let mut now = Now::current();
        let mut r = initializing(policy, 2, 1, now);
        let mut m = Machine::new(BASE);
        // The first failure restarts at once, the next waits 10 s as CrashLoopBackOff.
        assert_eq!(
            m.handle(&mut r, exited(0, code(1)), now),
            [Action::Start(0)]
        );
        assert_eq!(r.containers[0].restart_count, 1);
        start(&mut r, 0, now);
        now = later(now, Duration::from_secs(1));
        assert_eq!(m.handle(&mut r, exited(0, code(1)), now), []);
        assert_eq!(reason(&r, 0), "CrashLoopBackOff");
        m.settle(&mut r);
        assert_eq!(r.phase, Phase::Pending, "{policy}");
        assert_eq!(
            crate::supervisor::pod_status_word(&r),
            "Init:CrashLoopBackOff"
        );
        assert_eq!(crate::supervisor::pod_restarts(&r), 1);
        assert_eq!(reason(&r, 2), "PodInitializing", "the app never started");
        now = later(now, BASE);
        assert_eq!(m.handle(&mut r, Event::Tick, now), [Action::Start(0)]);
        assert_eq!(r.containers[0].restart_count, 2);
        // It completes at last: the next init container runs, once.
        start(&mut r, 0, now);
        assert_eq!(
            m.handle(&mut r, exited(0, code(0)), now),
            [Action::Start(1)]
        );
    }
}

#[test]
fn a_failed_init_container_under_never_fails_the_pod_and_no_app_starts() {
    let now = Now::current();
    let mut k = FakeKernel::new(initializing("Never", 2, 1, now), now);
    assert!(dispatch(&mut k, exited(0, code(3))));
    assert_eq!(k.performed, [Action::StopSandbox]);
    assert_eq!(k.record.phase, Phase::Failed);
    assert_eq!(crate::supervisor::pod_status_word(&k.record), "Init:Error");
    assert_eq!(reason(&k.record, 1), "PodInitializing");
    assert_eq!(reason(&k.record, 2), "PodInitializing");
    assert_eq!(k.machine.next_deadline(), None);
    // Without a reason: the exit code or the signal.
    let mut r = initializing("Never", 1, 1, now);
    r.containers[0].state = ContainerState::Terminated {
        exit_code: 2,
        signal: None,
        reason: String::new(),
        message: None,
        started_at: now.wall,
        finished_at: now.wall,
    };
    assert_eq!(crate::supervisor::pod_status_word(&r), "Init:ExitCode:2");
}

#[test]
fn a_new_sandbox_runs_the_init_containers_again_from_the_first() {
    let now = Now::current();
    let mut k = FakeKernel::new(initializing("Always", 2, 1, now), now);
    dispatch(&mut k, exited(0, code(0)));
    dispatch(&mut k, exited(1, code(0)));
    k.now = later(now, BASE / 10);
    dispatch(&mut k, Event::Tick);
    assert_eq!(reason(&k.record, 2), "Running");
    k.performed.clear();
    assert!(dispatch(&mut k, Event::PauseDied));
    assert_eq!(
        k.performed,
        [
            Action::StopContainers {
                grace: SANDBOX_CHANGE_GRACE
            },
            Action::StopSandbox,
            Action::Then(Event::SandboxDown { killed: vec![2] }),
            Action::CreateSandbox {
                attempt: 1,
                start: vec![0]
            },
        ]
    );
    let r = &k.record;
    assert_eq!(reason(r, 0), "Running");
    assert_eq!(r.containers[0].restart_count, 1);
    assert_eq!(reason(r, 1), "PodInitializing");
    assert_eq!(reason(r, 2), "PodInitializing", "the app waits for them");
    assert!(matches!(
        r.containers[2].last_state,
        Some(ContainerState::Terminated { exit_code: 137, .. })
    ));
    assert_eq!(crate::supervisor::pod_status_word(r), "Init:0/2");
    let mut counted = r.clone();
    counted.containers[1].restart_count = 5;
    assert_eq!(
        crate::supervisor::pod_restarts(&counted),
        1,
        "RESTARTS stops at the init container that runs"
    );
    // They complete again, in order; the app restarts (count + 1).
    k.performed.clear();
    dispatch(&mut k, exited(0, code(0)));
    assert_eq!(k.performed, [Action::Start(1)]);
    assert_eq!(k.record.containers[1].restart_count, 1);
    k.performed.clear();
    dispatch(&mut k, exited(1, code(0)));
    k.now = later(k.now, BASE / 10);
    dispatch(&mut k, Event::Tick);
    assert_eq!(k.performed, [Action::Start(2)]);
    assert_eq!(k.record.containers[2].restart_count, 1);
    assert_eq!(k.record.phase, Phase::Running);
}

#[test]
fn a_stop_while_an_init_container_runs_starts_nothing_more() {
    let now = Now::current();
    let mut r = initializing("Always", 2, 1, now);
    let mut m = Machine::new(BASE);
    record_exit(&mut r, 0, &code(0), now.wall);
    r.containers[1].state = running(now.wall);
    assert!(matches!(
        m.handle(&mut r, Event::StopRequested, now)[..],
        [Action::Remove { .. }]
    ));
    // The second init container ends under the stop's SIGTERM: recorded, nothing started.
    assert_eq!(m.handle(&mut r, exited(1, code(0)), now), []);
    assert_eq!(reason(&r, 1), "Completed");
    assert_eq!(reason(&r, 2), "PodInitializing");
    assert_eq!(m.next_deadline(), None, "no app start pending");
}

#[test]
fn a_failed_re_creation_of_an_initializing_pod_is_retried_from_the_first_init_container() {
    let now = Now::current();
    let mut k = FakeKernel::new(initializing("Always", 2, 1, now), now);
    k.failing_creations = 1;
    assert!(dispatch(&mut k, Event::PauseDied));
    assert!((0..3).all(|i| reason(&k.record, i) == "PodInitializing"));
    assert_eq!(crate::supervisor::pod_status_word(&k.record), "Init:0/2");
    assert_eq!(k.record.containers[0].restart_count, 0, "taken back");
    k.performed.clear();
    k.now = later(now, BASE);
    assert!(dispatch(&mut k, Event::Tick));
    assert_eq!(
        k.performed,
        [Action::CreateSandbox {
            attempt: 2,
            start: vec![0]
        }]
    );
    assert_eq!(reason(&k.record, 0), "Running");
    assert_eq!(k.record.containers[0].restart_count, 1);
}

fn a_probe() -> crate::probe::Probe {
    crate::probe::Probe {
        handler: crate::probe::Handler::TcpSocket {
            host: None,
            port: 80,
        },
        initial_delay_seconds: 0,
        period_seconds: 1,
        timeout_seconds: 1,
        success_threshold: 1,
        failure_threshold: 3,
        termination_grace_period_seconds: Some(1),
    }
}

#[test]
fn a_sidecar_with_a_startup_probe_holds_the_next_init_container_until_it_passes() {
    let now = Now::current();
    let mut r = initializing("Never", 2, 1, now);
    r.plan.containers[0].sidecar = true;
    r.plan.containers[0].probes.startup = Some(a_probe());
    let mut k = FakeKernel::new(r, now);
    assert!(dispatch(&mut k, Event::Sync));
    assert_eq!(k.performed, [], "the sidecar runs but has not started");
    assert_eq!(crate::supervisor::pod_status_word(&k.record), "Init:0/2");
    let startup = crate::probe::Kind::Startup;
    let passed = |passed| Event::Probed {
        container: 0,
        kind: startup,
        passed,
    };
    assert!(dispatch(&mut k, passed(true)));
    assert_eq!(k.performed, [Action::Start(1)]);
    assert_eq!(crate::supervisor::pod_status_word(&k.record), "Init:1/2");
    k.performed.clear();
    assert!(dispatch(&mut k, exited(1, code(0))));
    assert_eq!(k.performed, [Action::Start(2)], "the app, at once");
    assert_eq!(k.record.phase, Phase::Running);
    // Under Never the sidecar is restarted all the same.
    k.performed.clear();
    assert!(dispatch(&mut k, exited(0, code(1))));
    assert_eq!(k.performed, [Action::Start(0), Action::Then(Event::Sync)]);
    // The app completes: the pod too, and the sidecar is stopped, not restarted.
    k.performed.clear();
    assert!(dispatch(&mut k, exited(2, code(0))));
    assert_eq!(k.record.phase, Phase::Succeeded);
    assert!(
        matches!(
            k.performed.as_slice(),
            [Action::StopContainers { .. }, Action::StopSandbox]
        ),
        "{:?}",
        k.performed
    );
}

#[test]
fn a_failed_liveness_probe_kills_with_the_probes_grace_and_the_exit_restarts() {
    let now = Now::current();
    let mut r = all_running("Always", 1, now);
    r.plan.containers[0].probes.liveness = Some(a_probe());
    let mut k = FakeKernel::new(r, now);
    assert!(dispatch(
        &mut k,
        Event::Probed {
            container: 0,
            kind: crate::probe::Kind::Liveness,
            passed: false,
        }
    ));
    assert_eq!(
        k.performed,
        [
            Action::Kill {
                container: 0,
                grace: Duration::from_secs(1)
            },
            Action::Start(0)
        ],
        "killed (the fake answers with its exit), then restarted at once"
    );
    assert!(k.record.events.iter().any(|e| e.reason == "Killing"
        && e.message == "Container c0 failed liveness probe, will be restarted"));
    assert_eq!(k.record.containers[0].restart_count, 1);
}

#[test]
fn a_restart_whose_pull_fails_is_not_counted_until_the_container_is_made() {
    let now = Now::current();
    let mut r = all_running("Always", 1, now);
    let mut m = Machine::new(BASE);
    let ended = later(now, Duration::from_secs(700));
    assert_eq!(
        m.handle(&mut r, exited(0, code(1)), ended),
        [Action::Start(0)]
    );
    assert_eq!(r.containers[0].restart_count, 1);
    let failed = Event::PullFailed {
        container: 0,
        reason: "ErrImagePull",
        message: "connection refused".into(),
    };
    assert_eq!(m.handle(&mut r, failed.clone(), ended), []);
    assert_eq!(r.containers[0].restart_count, 0, "no container was made");
    assert!(matches!(
        r.containers[0].last_state,
        Some(ContainerState::Terminated { .. })
    ));
    // The pull is tried again after its back-off: counted again; a second failure takes it back.
    let retry = later(ended, BASE);
    assert_eq!(m.handle(&mut r, Event::Tick, retry), [Action::Start(0)]);
    assert_eq!(r.containers[0].restart_count, 1);
    assert_eq!(m.handle(&mut r, failed, retry), []);
    assert_eq!(r.containers[0].restart_count, 0);
    let again = later(retry, 2 * BASE);
    assert_eq!(m.handle(&mut r, Event::Tick, again), [Action::Start(0)]);
    start(&mut r, 0, again);
    assert_eq!(
        r.containers[0].restart_count, 1,
        "made at last: one restart"
    );
}
