//! Pod phase (Kubernetes' PodPhase) and the STATUS word kubectl prints.

use super::Supervisor;
use crate::state::{ContainerState, Phase, PodRecord};

/// Phase from the containers: Pending until every container has started once; Running while
/// any runs or waits to restart; Succeeded/Failed once all have terminated for good.
pub fn pod_phase(record: &PodRecord) -> Phase {
    let sandbox_ready = record.sandbox.as_ref().is_some_and(|s| s.ready);
    let cs = &record.containers;
    if record.start_time.is_none() {
        return Phase::Pending;
    }
    let any_active = cs.iter().any(|c| {
        matches!(
            c.state,
            ContainerState::Running { .. } | ContainerState::Waiting { .. }
        )
    });
    if any_active && sandbox_ready {
        return Phase::Running;
    }
    let all_ok = cs
        .iter()
        .all(|c| matches!(c.state, ContainerState::Terminated { exit_code: 0, .. }));
    if any_active {
        // Waiting for a new sandbox.
        return Phase::Pending;
    }
    if all_ok {
        Phase::Succeeded
    } else {
        Phase::Failed
    }
}

/// kubectl's STATUS column (printPod): the last container's waiting/terminated reason wins over
/// the phase; a pod being deleted shows Terminating; a pod whose supervisor died shows Unknown.
pub fn pod_status_word(record: &PodRecord) -> String {
    if record.deletion.is_some() {
        return "Terminating".into();
    }
    if supervisor_lost(record) {
        return "Unknown".into();
    }
    let mut reason = record
        .reason
        .clone()
        .unwrap_or_else(|| record.phase.to_string());
    let mut has_running = false;
    for c in &record.containers {
        match &c.state {
            ContainerState::Waiting { reason: r, .. } if !r.is_empty() => reason = r.clone(),
            ContainerState::Terminated { reason: r, .. } if !r.is_empty() => reason = r.clone(),
            ContainerState::Terminated {
                signal: Some(s), ..
            } => reason = format!("Signal:{s}"),
            ContainerState::Terminated { exit_code, .. } => {
                reason = format!("ExitCode:{exit_code}")
            }
            ContainerState::Running { .. } => has_running = true,
            ContainerState::Waiting { .. } => {}
        }
    }
    if reason == "Completed" && has_running {
        reason = "Running".into();
    }
    reason
}

/// True when the record says the pod is live but its supervisor process is gone.
pub fn supervisor_lost(record: &PodRecord) -> bool {
    record.supervisor.is_some_and(|s| !s.is_alive())
}

impl Supervisor {
    /// Recompute the phase; once nothing runs and nothing will restart, stop the sandbox as the
    /// kubelet does (the pod keeps its record and logs until deleted).
    pub(super) fn update_phase(&mut self) {
        let phase = pod_phase(&self.record);
        self.record.phase = phase;
        let finished =
            matches!(phase, Phase::Succeeded | Phase::Failed) && self.pending_restarts.is_empty();
        if finished && self.record.sandbox.as_ref().is_some_and(|s| s.ready) && !self.stopping {
            let errors = self.stop_sandbox();
            if !errors.0.is_empty() {
                tracing::error!(errors = %errors, "stop finished pod's sandbox");
            }
            self.record.phase = phase;
        }
    }
}

/// What apply prints for a started pod (kubectl's `pod/NAME created` is printed before it):
/// the sandbox, the network and each container, one line each.
pub fn start_summary(r: &PodRecord) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if let Some(sb) = &r.sandbox {
        let pause = sb.pause.map(|p| p.pid).unwrap_or_default();
        let _ = writeln!(
            out,
            "sandbox    pause pid {pause}, netns {}, hostname {}",
            sb.netns_path.display(),
            r.plan.hostname
        );
        if let Some(n) = &sb.network {
            let _ = writeln!(
                out,
                "network    {}/{} gw {} on bridge {}, veth {} <-> {} (ifindex {} <-> {})",
                n.ip,
                n.prefix_len,
                n.gateway,
                n.bridge,
                n.host_veth,
                n.pod_ifname,
                n.host_ifindex,
                n.pod_ifindex
            );
        }
    }
    for c in &r.containers {
        let pid = c.process.map(|p| p.pid).unwrap_or_default();
        let argv = c
            .resolved
            .as_ref()
            .map(|p| p.argv.join(" "))
            .unwrap_or_default();
        let argv: String = argv.replace('\n', " ").chars().take(60).collect();
        let _ = writeln!(out, "container  {} pid {pid}: {argv}", c.name);
    }
    out
}
