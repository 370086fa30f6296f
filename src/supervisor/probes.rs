//! The supervisor's side of probes and lifecycle hooks: it starts the [`Prober`] (one thread,
//! one timer wheel) the first time a container needs it, has it watch each new run that has
//! probes, turns its reports into the kubelet's events (`Unhealthy` for every failed attempt)
//! and policy events (a result changed, a postStart failed), and carries out
//! [`Action::Kill`](super::policy::Action) without blocking the event loop: preStop through
//! the prober, then SIGTERM, then SIGKILL at the deadline, the exit coming back as usual.

use std::ffi::OsString;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::Supervisor;
use super::policy::Event;
use crate::probe::{Handler, Outcome, Prober, Report, Target};
use crate::procfs;

/// The kubelet's floor for what is left of a grace period after a preStop hook
/// (`minimumGracePeriodInSeconds`).
const MIN_GRACE_AFTER_HOOK: Duration = Duration::from_secs(2);
/// postStart has no timeout in the kubelet; podrun bounds it by an hour.
const POST_START_BOUND: Duration = Duration::from_secs(3600);

/// What a hook run is for.
#[derive(Debug, Clone)]
pub(super) enum HookRun {
    PostStart { container: usize, id: String },
    PreStop { container: usize, id: String },
}

/// A container being killed by [`Action::Kill`](super::policy::Action).
#[derive(Debug, Clone)]
pub(super) struct PendingKill {
    container: usize,
    id: String,
    pid: i32,
    /// SIGTERM was sent (after the preStop hook, if any).
    terminated: bool,
    deadline: Instant,
}

/// The supervisor's probe and hook state.
#[derive(Default)]
pub(super) struct Probing {
    prober: Option<Prober>,
    hooks: Vec<(u64, HookRun)>,
    next_token: u64,
    kills: Vec<PendingKill>,
}

impl Probing {
    /// The next kill deadline, for the event loop's timeout.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.kills.iter().map(|k| k.deadline).min()
    }
}

impl Supervisor {
    fn prober(&mut self) -> Option<&Prober> {
        if self.probing.prober.is_none() {
            let wake = self.wake.as_ref()?.try_clone().ok()?;
            match Prober::start(wake) {
                Ok(p) => self.probing.prober = Some(p),
                Err(e) => {
                    tracing::error!(error = %e, "start the prober");
                    return None;
                }
            }
        }
        self.probing.prober.as_ref()
    }

    /// Where container `i`'s handlers run: its pod IP, and `podrun exec` into it.
    pub(super) fn handler_target(&self, i: usize) -> Target {
        let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
        let plan = &self.record.plan;
        let args: Vec<OsString> = vec![
            "--root".into(),
            self.store.root().into(),
            "--namespace".into(),
            plan.namespace.clone().into(),
            "exec".into(),
            plan.name.clone().into(),
            "-c".into(),
            plan.containers[i].name.clone().into(),
            "--".into(),
        ];
        Target {
            pod_ip: self
                .record
                .sandbox_ip()
                .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
            exec_program: exe,
            exec_args: args,
        }
    }

    /// Container `i` just started: its probes begin, its postStart hook runs.
    pub(super) fn started_run(&mut self, i: usize) {
        let spec = &self.record.plan.containers[i];
        let probes = spec.probes.clone();
        let post_start = spec.lifecycle.post_start.clone();
        let id = self.record.containers[i].id.clone();
        let target = self.handler_target(i);
        if !probes.is_empty()
            && let Some(prober) = self.prober()
        {
            prober.watch(i, id.clone(), probes, target.clone(), Instant::now());
        }
        if let Some(hook) = post_start {
            self.record.containers[i].post_start_running = true;
            self.run_hook(
                HookRun::PostStart { container: i, id },
                hook,
                target,
                POST_START_BOUND,
            );
        }
    }

    /// Container `i`'s run ended: no more probes for it.
    pub(super) fn ended_run(&mut self, i: usize) {
        if let Some(prober) = &self.probing.prober {
            prober.forget(i);
        }
        self.record.containers[i].post_start_running = false;
        self.probing.kills.retain(|k| k.container != i);
    }

    /// Every probe stops (the pod is being stopped).
    pub(super) fn stop_probing(&mut self) {
        if let Some(prober) = &self.probing.prober {
            for i in 0..self.record.containers.len() {
                prober.forget(i);
            }
        }
        self.probing.kills.clear();
        self.probing.hooks.clear();
    }

    fn run_hook(&mut self, run: HookRun, hook: Handler, target: Target, timeout: Duration) {
        let token = self.probing.next_token;
        self.probing.next_token += 1;
        if let Some(prober) = self.prober() {
            prober.run_hook(token, hook, target, timeout);
            self.probing.hooks.push((token, run));
        }
    }

    /// [`Action::Kill`](super::policy::Action): preStop (through the prober), SIGTERM, and
    /// SIGKILL at the end of `grace`; returns at once.
    pub(super) fn kill(&mut self, i: usize, grace: Duration) {
        let c = &self.record.containers[i];
        let Some(process) = c.process.filter(|p| p.is_alive()) else {
            return;
        };
        let id = c.id.clone();
        let mut kill = PendingKill {
            container: i,
            id: id.clone(),
            pid: process.pid,
            terminated: false,
            deadline: Instant::now() + grace,
        };
        match self.record.plan.containers[i].lifecycle.pre_stop.clone() {
            Some(hook) => {
                let target = self.handler_target(i);
                self.run_hook(HookRun::PreStop { container: i, id }, hook, target, grace);
            }
            None => {
                procfs::signal_group(process.pid, Signal::SIGTERM);
                kill.terminated = true;
            }
        }
        self.probing.kills.push(kill);
    }

    /// At a kill's deadline: SIGKILL; or, if its preStop hook used up the grace period, the
    /// SIGTERM now and the kubelet's 2 s floor before the SIGKILL.
    pub(super) fn fire_kill_deadlines(&mut self, now: Instant) {
        let (due, rest): (Vec<_>, Vec<_>) = self
            .probing
            .kills
            .drain(..)
            .partition(|k| k.deadline <= now);
        self.probing.kills = rest;
        for mut k in due {
            if self.record.containers[k.container].id != k.id {
                continue;
            }
            if k.terminated {
                procfs::signal_group(k.pid, Signal::SIGKILL);
            } else {
                procfs::signal_group(k.pid, Signal::SIGTERM);
                k.terminated = true;
                k.deadline = now + MIN_GRACE_AFTER_HOOK;
                self.probing.kills.push(k);
            }
        }
    }

    /// The prober's reports: `Unhealthy` events, and the policy's events.
    pub(super) fn take_probe_reports(&mut self) {
        let Some(prober) = &self.probing.prober else {
            return;
        };
        let reports = prober.take_reports();
        let mut changed = false;
        for report in reports {
            match report {
                Report::Probe {
                    container,
                    container_id,
                    kind,
                    outcome,
                    changed: result,
                } => {
                    let Some(c) = self.record.containers.get(container) else {
                        continue;
                    };
                    if c.id != container_id || c.process.is_none() {
                        continue; // an earlier run's
                    }
                    if let Outcome::Failure(output) = &outcome {
                        let message =
                            format!("{} probe failed: {}", kind.title(), output.trim_end());
                        self.record.event("Warning", "Unhealthy", message);
                        changed = true;
                    }
                    if let Some(passed) = result {
                        self.dispatch(Event::Probed {
                            container,
                            kind,
                            passed,
                        });
                        changed = false;
                    }
                }
                Report::Hook { token, outcome } => {
                    let Some(at) = self.probing.hooks.iter().position(|(t, _)| *t == token) else {
                        continue;
                    };
                    let (_, run) = self.probing.hooks.remove(at);
                    changed |= self.hook_ended(run, outcome);
                }
            }
        }
        if changed {
            self.save();
        }
    }

    /// A hook ended; true when the record changed and was not saved.
    fn hook_ended(&mut self, run: HookRun, outcome: Outcome) -> bool {
        match run {
            HookRun::PostStart { container, id } => {
                if self.record.containers[container].id != id {
                    return false;
                }
                self.record.containers[container].post_start_running = false;
                let Outcome::Failure(error) = outcome else {
                    return true;
                };
                let message = self.hook_failure("PostStart", container, &error);
                self.dispatch(Event::PostStartFailed { container, message });
                false
            }
            HookRun::PreStop { container, id } => {
                let failed = if let Outcome::Failure(error) = &outcome {
                    let message = self.hook_failure("PreStop", container, error);
                    self.record.event("Warning", "FailedPreStopHook", message);
                    true
                } else {
                    false
                };
                let now = Instant::now();
                for k in self.probing.kills.iter_mut() {
                    if k.container == container && k.id == id && !k.terminated {
                        procfs::signal_group(k.pid, Signal::SIGTERM);
                        k.terminated = true;
                        k.deadline = k.deadline.max(now + MIN_GRACE_AFTER_HOOK);
                    }
                }
                failed
            }
        }
    }

    /// The kubelet's message for a failed hook (`handlers.go`).
    fn hook_failure(&self, which: &str, i: usize, error: &str) -> String {
        hook_failure_message(&self.record, which, i, error)
    }
}

/// `Exec lifecycle hook ([sh -c exit 1]) for Container "web" in Pod "p_default(uid)" failed -
/// error: ..., message: "..."`, as the kubelet's handler runner words it.
pub(super) fn hook_failure_message(
    record: &crate::state::PodRecord,
    which: &str,
    i: usize,
    error: &str,
) -> String {
    let plan = &record.plan;
    let spec = &plan.containers[i];
    let hook = match which {
        "PostStart" => spec.lifecycle.post_start.as_ref(),
        _ => spec.lifecycle.pre_stop.as_ref(),
    };
    let pod = format!("{}_{}({})", plan.name, plan.namespace, plan.uid);
    let name = &spec.name;
    match hook {
        Some(Handler::Exec { command }) => format!(
            "Exec lifecycle hook ([{}]) for Container {name:?} in Pod {pod:?} failed - error: command '{}' exited with an error, message: {:?}",
            command.join(" "),
            command.join(" "),
            error.trim_end()
        ),
        Some(Handler::HttpGet { path, .. }) => format!(
            "HTTP lifecycle hook ({path}) for Container {name:?} in Pod {pod:?} failed - error: {}",
            error.trim_end()
        ),
        _ => format!(
            "{which} hook for Container {name:?} in Pod {pod:?} failed - error: {}",
            error.trim_end()
        ),
    }
}
