//! The workload objects as the verbs see them: find one by kind and name, forget one (and
//! find the pods its deletion takes with it), scale one. The controller does the rest.

use super::{Result, failed};
use crate::state::{PodKey, PodRecord, Store, WorkloadKind};

/// The resource words kubectl takes for each workload kind.
pub fn workload_kind(word: &str) -> Option<WorkloadKind> {
    match word.to_ascii_lowercase().as_str() {
        "deployment" | "deployments" | "deploy" | "deployment.apps" | "deployments.apps" => {
            Some(WorkloadKind::Deployment)
        }
        "replicaset" | "replicasets" | "rs" | "replicaset.apps" | "replicasets.apps" => {
            Some(WorkloadKind::ReplicaSet)
        }
        "job" | "jobs" | "job.batch" | "jobs.batch" => Some(WorkloadKind::Job),
        _ => None,
    }
}

/// kubectl's `deployment.apps`, `replicaset.apps`, `job.batch`.
pub fn qualified(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Deployment => "deployment.apps",
        WorkloadKind::ReplicaSet => "replicaset.apps",
        WorkloadKind::Job => "job.batch",
    }
}

/// The API server's NotFound: `deployments.apps "web" not found`.
pub fn not_found(kind: WorkloadKind, name: &str) -> super::PodError {
    let plural = match kind {
        WorkloadKind::Deployment => "deployments.apps",
        WorkloadKind::ReplicaSet => "replicasets.apps",
        WorkloadKind::Job => "jobs.batch",
    };
    failed(format!("{plural} \"{name}\" not found"))
}

/// Whether workload `kind` `key` is recorded.
pub fn exists(store: &Store, kind: WorkloadKind, key: &PodKey) -> Result<bool> {
    Ok(match kind {
        WorkloadKind::Deployment => store.load_deployment(key)?.is_some(),
        WorkloadKind::ReplicaSet => store.load_replica_set(key)?.is_some(),
        WorkloadKind::Job => store.load_job(key)?.is_some(),
    })
}

/// The pods workload `kind` `key` owns (a Deployment's through its ReplicaSets).
pub fn owned_pods(store: &Store, kind: WorkloadKind, key: &PodKey) -> Vec<PodRecord> {
    store
        .list()
        .into_iter()
        .filter(|r| r.plan.namespace == key.namespace)
        .filter(|r| {
            let Some(o) = &r.plan.owner else {
                return false;
            };
            match kind {
                WorkloadKind::Deployment => o.deployment.as_deref() == Some(key.name.as_str()),
                WorkloadKind::ReplicaSet => o.kind == "ReplicaSet" && o.name == key.name,
                WorkloadKind::Job => o.kind == "Job" && o.name == key.name,
            }
        })
        .collect()
}

/// Forget workload `kind` `key` (a Deployment with its ReplicaSets), under the workloads
/// lock so that no controller pass makes a pod for it after: the pods it owned, which the
/// caller deletes (kubectl's background cascade). Not found is an error.
pub fn forget(store: &Store, kind: WorkloadKind, key: &PodKey) -> Result<Vec<PodKey>> {
    let _lock = store.workloads_lock()?;
    let pods = owned_pods(store, kind, key);
    // Pods of a Deployment whose record is gone (a delete that did not finish) go too.
    if !exists(store, kind, key)? && (pods.is_empty() || kind != WorkloadKind::Deployment) {
        return Err(not_found(kind, &key.name));
    }
    if kind == WorkloadKind::Deployment {
        for rs in store.list_replica_sets() {
            let owned = rs.deployment.as_ref().is_some_and(|(d, _)| d == &key.name);
            if owned && rs.namespace == key.namespace {
                store.remove_workload(WorkloadKind::ReplicaSet, &rs.key())?;
            }
        }
    }
    store.remove_workload(kind, key)?;
    Ok(pods.iter().map(PodRecord::key).collect())
}

/// `podrun scale KIND/NAME --replicas=N` (a Deployment or a ReplicaSet of its own).
pub fn scale(store: &Store, kind: WorkloadKind, key: &PodKey, replicas: u32) -> Result<()> {
    let _lock = store.workloads_lock()?;
    match kind {
        WorkloadKind::Deployment => {
            let mut d = store
                .load_deployment(key)?
                .ok_or_else(|| not_found(kind, &key.name))?;
            if d.plan.replicas != replicas {
                d.plan.replicas = replicas;
                d.generation += 1;
                store.save_deployment(&d)?;
            }
        }
        WorkloadKind::ReplicaSet => {
            let mut rs = store
                .load_replica_set(key)?
                .ok_or_else(|| not_found(kind, &key.name))?;
            if let Some((owner, _)) = &rs.deployment {
                // The Deployment controller would scale it straight back.
                return Err(failed(format!(
                    "replicaset.apps/{}: owned by deployment.apps/{owner}: scale the Deployment instead",
                    key.name
                )));
            }
            rs.replicas = replicas;
            store.save_replica_set(&rs)?;
        }
        WorkloadKind::Job => {
            return Err(failed(format!(
                "job.batch/{}: a Job is not scaled (change spec.parallelism)",
                key.name
            )));
        }
    }
    Ok(())
}

/// A ReplicaSet with the counts of its pods, as `get replicasets` shows it.
pub struct ReplicaSetView {
    pub record: crate::state::ReplicaSetRecord,
    pub counts: crate::workload::replica_set::Counts,
}

/// A Deployment with its ReplicaSets and status, as `get deployments` shows it.
pub struct DeploymentView {
    pub record: crate::state::DeploymentRecord,
    pub replica_sets: Vec<ReplicaSetView>,
    pub status: crate::workload::deployment::Status,
}

impl DeploymentView {
    /// Its ReplicaSets as the rollout sees them.
    pub fn states(&self) -> Vec<crate::workload::deployment::RsState> {
        self.replica_sets
            .iter()
            .map(|v| crate::workload::deployment::RsState {
                name: v.record.name.clone(),
                hash: v.record.template_hash.clone(),
                replicas: v.record.replicas,
                counts: v.counts,
                revision: v.record.revision(),
                created_at: v.record.created_at,
            })
            .collect()
    }

    /// The rollout is done: every replica updated and available, no old pod left.
    pub fn complete(&self) -> bool {
        let replicas = self.record.plan.replicas;
        crate::workload::deployment::rollout_status(&self.record.name, replicas, &self.status).1
    }

    /// The `Progressing` condition's status and reason, as the deployment controller sets it:
    /// `ProgressDeadlineExceeded` once the rollout made no progress (no ReplicaSet scaled) for
    /// `progressDeadlineSeconds`.
    pub fn progressing(&self, store: &Store) -> (&'static str, &'static str) {
        if self.complete() {
            return ("True", "NewReplicaSetAvailable");
        }
        let last = store
            .workload_events(WorkloadKind::Deployment, &self.record.key())
            .iter()
            .filter(|e| e.reason == "ScalingReplicaSet")
            .map(|e| e.last_timestamp)
            .max()
            .unwrap_or(self.record.created_at);
        let deadline = i64::from(self.record.plan.progress_deadline_seconds);
        if (chrono::Utc::now() - last).num_seconds() > deadline {
            ("False", "ProgressDeadlineExceeded")
        } else {
            ("True", "ReplicaSetUpdated")
        }
    }

    /// The `Available` condition: at least replicas - maxUnavailable available.
    pub fn available(&self) -> (&'static str, &'static str) {
        let p = &self.record.plan;
        let (_, unavailable) = p.strategy.fenceposts(p.replicas as i32);
        if self.status.available >= p.replicas.saturating_sub(unavailable.max(0) as u32) {
            ("True", "MinimumReplicasAvailable")
        } else {
            ("False", "MinimumReplicasUnavailable")
        }
    }

    /// The ReplicaSet of the current template, if made yet.
    pub fn new_replica_set(&self) -> Option<&ReplicaSetView> {
        let hash = &self.record.plan.template_hash;
        self.replica_sets
            .iter()
            .find(|v| v.record.template_hash.as_ref() == Some(hash))
    }
}

/// Every ReplicaSet in `namespace` (all with None), with its counts.
pub fn replica_sets(store: &Store, namespace: Option<&str>) -> Vec<ReplicaSetView> {
    let pods = crate::workload::pod_views(store);
    store
        .list_replica_sets()
        .into_iter()
        .filter(|r| namespace.is_none_or(|n| r.namespace == n))
        .map(|record| {
            let mine: Vec<&crate::workload::PodView> = pods
                .iter()
                .filter(|p| {
                    p.key.namespace == record.namespace && p.owned_by("ReplicaSet", &record.name)
                })
                .collect();
            let min_ready = record.min_ready_seconds;
            let counts =
                crate::workload::replica_set::counts(&mine, |p| p.available_since_start(min_ready));
            ReplicaSetView { record, counts }
        })
        .collect()
}

/// Every Deployment in `namespace` (all with None), with its ReplicaSets and status.
pub fn deployments(store: &Store, namespace: Option<&str>) -> Vec<DeploymentView> {
    let mut sets = replica_sets(store, namespace);
    store
        .list_deployments()
        .into_iter()
        .filter(|d| namespace.is_none_or(|n| d.namespace == n))
        .map(|record| {
            let (mine, rest): (Vec<_>, Vec<_>) = sets.drain(..).partition(|v| {
                v.record.namespace == record.namespace
                    && v.record
                        .deployment
                        .as_ref()
                        .is_some_and(|(n, _)| n == &record.name)
            });
            sets = rest;
            let mut view = DeploymentView {
                record,
                replica_sets: mine,
                status: Default::default(),
            };
            view.status =
                crate::workload::deployment::Status::of(&view.record.plan, &view.states());
            view
        })
        .collect()
}

/// Deployment `key` with its ReplicaSets; NotFound as the API server says it.
pub fn deployment(store: &Store, key: &PodKey) -> Result<DeploymentView> {
    deployments(store, Some(&key.namespace))
        .into_iter()
        .find(|d| d.record.name == key.name)
        .ok_or_else(|| not_found(WorkloadKind::Deployment, &key.name))
}
