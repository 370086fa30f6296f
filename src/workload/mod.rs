//! The workload controllers' rules, pure: what a ReplicaSet, a Deployment and a Job want
//! done given what exists. The kube-controller-manager's ReplicaSet controller
//! (`replica_set.go`: create or delete the difference, the pods to delete ranked as
//! `getPodsToDelete` ranks them), Deployment controller (`rolling.go`, `recreate.go`,
//! `sync.go`: new ReplicaSets per template, revisions, maxSurge / maxUnavailable, history
//! cleanup) and Job controller (`job_controller.go`: parallelism, completions,
//! backoffLimit, activeDeadlineSeconds). The controller process (`crate::controller`) reads
//! the records into these views and carries the decisions out through the pod layer.

pub mod deployment;
pub mod job;
pub mod replica_set;
mod view;

pub use view::{PodView, pod_views};

use std::collections::{BTreeMap, HashSet};

use chrono::Utc;

use crate::spec::workload::{PodTemplate, pod_name, template_hash_labels};
use crate::spec::{DeploymentPlan, Owner, PodPlan};
use crate::state::{DeploymentRecord, ReplicaSetRecord};

/// The ReplicaSet of Deployment `d`'s current template, at `revision`, with `replicas`.
pub fn new_replica_set(d: &DeploymentRecord, revision: u64, replicas: u32) -> ReplicaSetRecord {
    let plan = &d.plan;
    let hash_labels = template_hash_labels(&plan.template_hash);
    let mut template = plan.pod_template();
    template.plan.labels.extend(hash_labels.clone());
    let mut selector = plan.selector.clone();
    selector.extend(hash_labels.clone());
    let mut labels = template.plan.labels.clone();
    labels.extend(hash_labels);
    // The Deployment's annotations but its own bookkeeping (`skipCopyAnnotation`).
    let annotations: BTreeMap<String, String> = plan
        .annotations
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("kubectl.kubernetes.io/last-applied")
                && !k.starts_with("deployment.kubernetes.io/")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut rs = ReplicaSetRecord {
        namespace: plan.namespace.clone(),
        name: plan.replica_set_name.clone(),
        uid: if plan.replica_set_uid.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            plan.replica_set_uid.clone()
        },
        deployment: Some((d.name.clone(), d.uid.clone())),
        replicas,
        min_ready_seconds: plan.min_ready_seconds,
        labels,
        annotations,
        selector,
        template,
        template_hash: Some(plan.template_hash.clone()),
        last_applied: None,
        created_at: Utc::now(),
    };
    rs.set_revision(revision);
    rs
}

/// A ReplicaSet applied on its own, as recorded.
pub fn replica_set_record(p: &crate::spec::workload::ReplicaSetPlan) -> ReplicaSetRecord {
    ReplicaSetRecord {
        namespace: p.namespace.clone(),
        name: p.name.clone(),
        uid: p.uid.clone(),
        deployment: None,
        replicas: p.replicas,
        min_ready_seconds: p.min_ready_seconds,
        labels: p.labels.clone(),
        annotations: p.annotations.clone(),
        selector: p.selector.clone(),
        template: p.template.clone(),
        template_hash: None,
        last_applied: p.last_applied.clone(),
        created_at: Utc::now(),
    }
}

/// The owner reference of `rs`'s pods.
pub fn replica_set_owner(rs: &ReplicaSetRecord) -> Owner {
    Owner {
        kind: "ReplicaSet".to_owned(),
        name: rs.name.clone(),
        deployment: rs.deployment.as_ref().map(|(name, _)| name.clone()),
        uid: rs.uid.clone(),
    }
}

/// `n` new pods of `rs`, named apart from `taken` (and from each other).
pub fn replica_set_pods(rs: &ReplicaSetRecord, n: usize, taken: &HashSet<String>) -> Vec<PodPlan> {
    new_pods(
        &rs.template,
        &rs.name,
        replica_set_owner(rs),
        &BTreeMap::new(),
        n,
        taken,
    )
}

/// `n` pods of `template` named `<base>-<5 chars>`, none in `taken`.
pub fn new_pods(
    template: &PodTemplate,
    base: &str,
    owner: Owner,
    labels: &BTreeMap<String, String>,
    n: usize,
    taken: &HashSet<String>,
) -> Vec<PodPlan> {
    let mut names: HashSet<String> = HashSet::new();
    let mut pods = Vec::new();
    while pods.len() < n {
        let name = pod_name(base);
        if !taken.contains(&name) && names.insert(name.clone()) {
            pods.push(template.pod(name, owner.clone(), labels));
        }
    }
    pods
}

/// A Deployment's record as first applied.
pub fn deployment_record(plan: &DeploymentPlan) -> DeploymentRecord {
    DeploymentRecord {
        namespace: plan.namespace.clone(),
        name: plan.name.clone(),
        uid: plan.uid.clone(),
        last_applied: plan.last_applied.clone().unwrap_or_default(),
        created_at: Utc::now(),
        generation: 1,
        plan: plan.clone(),
    }
}
