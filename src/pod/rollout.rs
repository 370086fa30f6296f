//! `rollout history|undo|restart` as library operations on a Deployment's record (the
//! controller carries the rollout out): a Deployment's revisions are its ReplicaSets'
//! `deployment.kubernetes.io/revision`; undo copies a ReplicaSet's template back into the
//! Deployment (`rollback.go`), restart stamps the template with
//! `kubectl.kubernetes.io/restartedAt` (kubectl's `ObjectRestarter`).

use chrono::Utc;
use serde_json::Value;

use super::workloads::{deployment, not_found};
use super::{Result, failed};
use crate::spec::workload::PodTemplate;
use crate::state::workloads::CHANGE_CAUSE_ANNOTATION;
use crate::state::{DeploymentRecord, PodKey, ReplicaSetRecord, Store, WorkloadKind};

pub const RESTARTED_AT_ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";

/// One revision of a Deployment.
pub struct Revision {
    pub number: u64,
    pub change_cause: Option<String>,
    pub replica_set: ReplicaSetRecord,
}

/// The revisions of Deployment `key`, oldest first.
pub fn history(store: &Store, key: &PodKey) -> Result<Vec<Revision>> {
    let view = deployment(store, key)?;
    let mut revisions: Vec<Revision> = view
        .replica_sets
        .into_iter()
        .map(|v| Revision {
            number: v.record.revision(),
            change_cause: v.record.annotations.get(CHANGE_CAUSE_ANNOTATION).cloned(),
            replica_set: v.record,
        })
        .filter(|r| r.number > 0)
        .collect();
    revisions.sort_by_key(|r| r.number);
    Ok(revisions)
}

/// `rollout undo [--to-revision=N]` (0: the revision before the current one): kubectl's
/// line for what it did.
pub fn undo(store: &Store, key: &PodKey, to_revision: u64) -> Result<String> {
    let _lock = store.workloads_lock()?;
    let mut d = load(store, key)?;
    let revisions = history(store, key)?;
    let target = if to_revision == 0 {
        // The newest revision but the current one.
        let current = revisions.iter().map(|r| r.number).max().unwrap_or(0);
        revisions.iter().rev().find(|r| r.number != current)
    } else {
        revisions.iter().find(|r| r.number == to_revision)
    };
    let Some(target) = target else {
        return Err(failed(if to_revision == 0 {
            format!("no rollout history found for deployment \"{}\"", key.name)
        } else {
            format!("unable to find specified revision {to_revision} in history")
        }));
    };
    let rs = &target.replica_set;
    if rs.template_hash.as_ref() == Some(&d.plan.template_hash) {
        return Ok(format!(
            "deployment.apps/{} skipped rollback (current template already matches revision {})",
            key.name, target.number
        ));
    }
    let mut template = rs.template.clone();
    template
        .plan
        .labels
        .remove(crate::spec::TEMPLATE_HASH_LABEL);
    set_template(&mut d, template, rs.template_hash.clone());
    store.save_deployment(&d)?;
    Ok(format!("deployment.apps/{} rolled back", key.name))
}

/// `rollout restart`: a new template (the restartedAt annotation), so a new ReplicaSet.
pub fn restart(store: &Store, key: &PodKey) -> Result<String> {
    let _lock = store.workloads_lock()?;
    let mut d = load(store, key)?;
    let mut template = d.plan.pod_template();
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    template
        .plan
        .annotations
        .insert(RESTARTED_AT_ANNOTATION.to_owned(), now.clone());
    if let Some(meta) = template.json.as_object_mut() {
        let meta = meta
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        meta["annotations"][RESTARTED_AT_ANNOTATION] = Value::String(now);
    }
    set_template(&mut d, template, None);
    store.save_deployment(&d)?;
    Ok(format!("deployment.apps/{} restarted", key.name))
}

fn load(store: &Store, key: &PodKey) -> Result<DeploymentRecord> {
    store
        .load_deployment(key)?
        .ok_or_else(|| not_found(WorkloadKind::Deployment, &key.name))
}

/// The Deployment's template becomes `template` (its hash `hash`, else computed).
fn set_template(d: &mut DeploymentRecord, template: PodTemplate, hash: Option<String>) {
    let hash = hash.unwrap_or_else(|| crate::spec::template_hash_of(&template.json));
    let plan = &mut d.plan;
    plan.template = template.plan;
    plan.template_hostname = template.hostname;
    plan.template_json = template.json;
    plan.replica_set_name = format!("{}-{hash}", plan.name);
    plan.replica_set_uid = uuid::Uuid::new_v4().to_string();
    plan.template_hash = hash;
    d.generation += 1;
}
