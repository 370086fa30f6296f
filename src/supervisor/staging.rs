//! Containers made ready ahead: while an init container runs, the next one (or, after the
//! last, every app container) is launched up to its start gate: bundle, log, overlay, init
//! stage with its root filesystem built and the pod's namespaces joined. When the running
//! one completes, the next start only opens the gate (~1 ms) instead of making the container
//! (~10 ms): init containers add no fixed delay beyond their own runs.
//!
//! Only a container's first run is staged (a later one may pull its image at its start, as
//! the kubelet's `EnsureImageExists` does), and none with a `subPath` mount (its path may be
//! made by the init container before it). A staged container that is not started next (the
//! init container failed and restarts, the sandbox changed, the pod stops) is dropped: its
//! init stage reads the end of its channel at the gate and exits.

use super::Supervisor;
use super::lifecycle::StartError;
use crate::container::LaunchedInit;

/// Staged containers: (index, init stage at its gate).
#[derive(Default)]
pub(super) struct Staged(Vec<(usize, LaunchedInit)>);

impl Supervisor {
    /// [`Action::Start`](super::policy::Action) `i`: open a staged container's gate, or make
    /// and start it; then stage what comes after it.
    pub(super) fn start_or_release(&mut self, i: usize) -> Result<(), StartError> {
        let staged = (self.staged.0.iter()).position(|(j, _)| *j == i);
        match staged {
            Some(at) => {
                let (_, launched) = self.staged.0.remove(at);
                self.release_container(i, launched)?;
            }
            None => self.start_container(i)?,
        }
        self.stage_after(i);
        Ok(())
    }

    /// Init container `i` started: launch the next init container, or after the last one the
    /// app containers, up to their gates.
    pub(super) fn stage_after(&mut self, i: usize) {
        if self.record.containers[i].process.is_none() {
            return; // it did not start
        }
        let containers = &self.record.containers;
        if !containers[i].init || self.record.plan.containers[i].sidecar {
            return; // after a sidecar the sequence goes on at once
        }
        let next: Vec<usize> = match containers.get(i + 1) {
            Some(c) if c.init => vec![i + 1],
            _ => (i + 1..containers.len()).collect(),
        };
        let next: Vec<usize> = next
            .into_iter()
            .filter(|&j| self.stageable(j) && !self.staged.0.iter().any(|(k, _)| *k == j))
            .collect();
        for j in next {
            match self.launch_container(j) {
                Ok(launched) => self.staged.0.push((j, launched)),
                Err(e) => tracing::debug!(container = j, error = %e, "not staged"),
            }
        }
    }

    /// Container `j` has never run and mounts no subPath.
    fn stageable(&self, j: usize) -> bool {
        let c = &self.record.containers[j];
        let spec = &self.record.plan.containers[j];
        c.process.is_none()
            && c.restart_count == 0
            && c.last_state.is_none()
            && matches!(c.state, crate::state::ContainerState::Waiting { .. })
            && spec.volume_mounts.iter().all(|m| m.sub_path.is_none())
    }

    /// Drop every staged container (their init stages exit at the gate).
    pub(super) fn drop_staged(&mut self) {
        self.staged.0.clear();
    }
}
