//! A pod as the controllers see it: whose it is, whether it counts, whether it is ready.

use chrono::{DateTime, Utc};

use crate::state::{Phase, PodKey, PodRecord, Store};

/// One pod of a workload, read from its record.
#[derive(Debug, Clone, PartialEq)]
pub struct PodView {
    pub key: PodKey,
    pub uid: String,
    /// The owner's kind (`ReplicaSet`, `Job`) and name.
    pub owner: Option<(String, String)>,
    pub phase: Phase,
    pub ready: bool,
    /// Asked to stop (a deletion request or the record's `deletion`).
    pub terminating: bool,
    /// Its supervisor is gone (killed, crashed): nothing keeps the pod.
    pub lost: bool,
    pub created_at: DateTime<Utc>,
    pub restarts: u32,
    /// The supervisor's pid while it lives.
    pub supervisor: Option<i32>,
    /// When its last container started (a lower bound of when it became ready).
    pub started_at: Option<DateTime<Utc>>,
}

impl PodView {
    pub fn of(store: &Store, r: &PodRecord) -> Self {
        let key = r.key();
        PodView {
            uid: r.plan.uid.clone(),
            owner: r
                .plan
                .owner
                .as_ref()
                .map(|o| (o.kind.clone(), o.name.clone())),
            phase: r.phase,
            ready: crate::supervisor::pod_ready(r) && r.phase == Phase::Running,
            terminating: r.deletion.is_some() || store.deletion_request(&key).is_some(),
            lost: crate::supervisor::supervisor_lost(r),
            created_at: r.created_at,
            restarts: r.containers.iter().map(|c| c.restart_count).sum(),
            supervisor: r.supervisor.filter(|s| s.is_alive()).map(|s| s.pid),
            started_at: r
                .containers
                .iter()
                .filter_map(|c| match c.state {
                    crate::state::ContainerState::Running { started_at } => Some(started_at),
                    _ => None,
                })
                .max(),
            key,
        }
    }

    /// Counts toward its owner's replicas (`controller.FilterActivePods`): not asked to
    /// stop, not finished, and kept by a supervisor.
    pub fn active(&self) -> bool {
        !self.terminating && !self.lost && !matches!(self.phase, Phase::Succeeded | Phase::Failed)
    }

    /// Ready for at least `min_ready` seconds, as far as the record tells (for readers
    /// without the controller's memory of when it saw the pod become ready).
    pub fn available_since_start(&self, min_ready: u32) -> bool {
        self.ready
            && (min_ready == 0
                || self
                    .started_at
                    .is_some_and(|t| (Utc::now() - t).num_seconds() >= i64::from(min_ready)))
    }

    /// Owned by `kind` `name`.
    pub fn owned_by(&self, kind: &str, name: &str) -> bool {
        self.owner
            .as_ref()
            .is_some_and(|(k, n)| k == kind && n == name)
    }
}

/// Every pod of the store that some workload owns.
pub fn pod_views(store: &Store) -> Vec<PodView> {
    store
        .list()
        .iter()
        .filter(|r| r.plan.owner.is_some())
        .map(|r| PodView::of(store, r))
        .collect()
}
