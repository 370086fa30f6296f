//! A pod updated by a declarative `apply` (the one pod update Kubernetes allows among the
//! fields podrun supports: containers' images; and metadata). The record is the supervisor's
//! while it lives, so apply writes an [`crate::state::UpdateRequest`] beside it and sends
//! SIGUSR1; the event loop takes the request, puts the new plan into the record and, as the
//! kubelet's `computePodActions` does for a container whose spec hash changed, kills every
//! running container whose image changed ("Container C definition changed, will be
//! restarted"). Its exit then goes through the restart rules as under `Always` whatever the
//! pod's policy (`ContainerRecord::restart_for_update`, read by the policy's decision and
//! cleared by the start) with a fresh back-off entry (the kubelet's back-off key includes the
//! container's hash), so it starts again at once, with the new image (pulled or refreshed by
//! the start's `ensure_image`); the other containers are not touched. A container that is
//! not running keeps the new image for its next start by the restart rules.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use signal_hook::consts::SIGUSR1;

use super::Supervisor;
use super::policy::{Action, Kernel as _};
use crate::state::{ContainerState, PodRecord, UpdateRequest};

/// Wake the event loop on SIGUSR1 (through `wake`, the signal pipe) and raise the returned
/// flag, which [`Supervisor::take_update`] lowers.
pub(super) fn register(wake: &std::os::unix::net::UnixStream) -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    if let Ok(tx) = wake.try_clone() {
        let _ = signal_hook::low_level::pipe::register(SIGUSR1, tx);
    }
    let _ = signal_hook::flag::register(SIGUSR1, flag.clone());
    flag
}

impl Supervisor {
    /// If apply asked (`flag` raised): take its update request, apply it to the record and
    /// restart the containers whose image changed.
    pub(super) fn take_update(&mut self, flag: &AtomicBool) {
        if !flag.swap(false, Ordering::SeqCst) {
            return;
        }
        let Some(request) = self.store.take_update_request(&self.record.key()) else {
            return;
        };
        if self.machine.stopping() {
            return;
        }
        let grace =
            Duration::from_secs(request.plan.termination_grace_period_seconds.max(0) as u64);
        for i in update_record(&mut self.record, request) {
            let name = self.record.containers[i].name.clone();
            self.record.event(
                "Normal",
                "Killing",
                format!("Container {name} definition changed, will be restarted"),
            );
            self.perform(Action::Kill {
                container: i,
                grace,
            });
        }
        self.save();
    }
}

/// Put `request`'s plan into `record`: the containers whose image changed get it (and the
/// image as apply resolved it) with a fresh back-off entry. Returns those of them that run
/// (to be killed and so restarted).
pub(super) fn update_record(record: &mut PodRecord, request: UpdateRequest) -> Vec<usize> {
    let mut restart = Vec::new();
    for (i, c) in record.containers.iter_mut().enumerate() {
        let Some(new) = request.plan.containers.get(i).filter(|n| n.name == c.name) else {
            continue;
        };
        if new.image == c.image {
            continue;
        }
        c.image = new.image.clone();
        if let Some((_, image)) = request.images.iter().find(|(n, _)| *n == c.name) {
            c.image_config = Some(image.clone());
        }
        c.backoff_factor = 0;
        if matches!(c.state, ContainerState::Running { .. }) {
            c.restart_for_update = true;
            restart.push(i);
        }
    }
    record.plan = request.plan;
    restart
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> PodRecord {
        record_under("Always")
    }

    fn record_under(policy: &str) -> PodRecord {
        let running = ContainerState::Running {
            started_at: chrono::Utc::now(),
        };
        let states = [(running.clone(), None), (running, None)];
        let mut r = crate::supervisor::status::tests::record(policy, &states);
        let mut sandbox = crate::supervisor::lifecycle::planned_sandbox(&r, 0);
        sandbox.ready = true;
        r.sandbox = Some(sandbox);
        for c in &mut r.containers {
            c.backoff_factor = 3;
        }
        r
    }

    #[test]
    fn only_the_containers_whose_image_changed_restart() {
        let mut r = record();
        let mut plan = r.plan.clone();
        plan.containers[1].image = "podrun.local/python:3.11-slim".into();
        plan.labels.insert("tier".into(), "web".into());
        let request = UpdateRequest {
            plan: plan.clone(),
            images: Vec::new(),
            requested_at: chrono::Utc::now(),
        };
        assert_eq!(update_record(&mut r, request), [1]);
        assert_eq!(r.plan, plan);
        assert_eq!(r.containers[1].image, "podrun.local/python:3.11-slim");
        assert_eq!(r.containers[1].backoff_factor, 0);
        assert_eq!(r.containers[0].image, "debug:1");
        assert_eq!(r.containers[0].backoff_factor, 3);
    }

    /// The container killed for its new image starts again at once, whatever the policy
    /// (here Never, which keeps every other ended container stopped), and only once.
    #[test]
    fn the_killed_container_restarts_whatever_the_restart_policy() {
        use crate::supervisor::policy::{Event, Exit, Machine, Now};
        let mut r = record_under("Never");
        let mut plan = r.plan.clone();
        plan.containers[1].image = "podrun.local/python:3.11-slim".into();
        let request = UpdateRequest {
            plan,
            images: Vec::new(),
            requested_at: chrono::Utc::now(),
        };
        assert_eq!(update_record(&mut r, request), [1]);
        let mut machine = Machine::new(Duration::from_millis(100));
        let killed = Exit {
            code: 143,
            signal: Some(15),
            oom_killed: false,
            message: None,
        };
        let exited = |container| Event::Exited {
            container,
            exit: killed.clone(),
        };
        let actions = machine.handle(&mut r, exited(1), Now::current());
        assert_eq!(actions, [Action::Start(1)]);
        assert_eq!(r.containers[1].restart_count, 1);
        assert!(!r.containers[1].restart_for_update);
        // Its next exit, and the other container's, follow the policy again.
        r.containers[1].state = ContainerState::Running {
            started_at: chrono::Utc::now(),
        };
        assert!(machine.handle(&mut r, exited(1), Now::current()).is_empty());
        assert!(machine.handle(&mut r, exited(0), Now::current()).is_empty());
    }
}
