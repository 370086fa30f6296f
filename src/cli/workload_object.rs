//! Deployments and ReplicaSets as the API server shows them (`get -o json|yaml`).

use serde_json::{Value, json};

use crate::pod::workloads::{DeploymentView, ReplicaSetView};
use crate::spec::LAST_APPLIED_ANNOTATION;
use crate::spec::workload::Strategy;
use crate::state::workloads::REVISION_ANNOTATION;

fn stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn deployment_object(v: &DeploymentView, store: &crate::state::Store) -> Value {
    let r = &v.record;
    let p = &r.plan;
    let mut annotations = serde_json::Map::new();
    for (k, val) in &p.annotations {
        annotations.insert(k.clone(), json!(val));
    }
    if let Some(new) = v.new_replica_set() {
        annotations.insert(
            REVISION_ANNOTATION.into(),
            json!(new.record.revision().to_string()),
        );
    }
    annotations.insert(LAST_APPLIED_ANNOTATION.into(), json!(r.last_applied));
    let strategy = match p.strategy {
        Strategy::Recreate => json!({"type": "Recreate"}),
        Strategy::RollingUpdate {
            max_surge,
            max_unavailable,
        } => json!({"type": "RollingUpdate", "rollingUpdate": {
            "maxSurge": int_or_percent(max_surge), "maxUnavailable": int_or_percent(max_unavailable)}}),
    };
    let s = &v.status;
    let mut status = json!({
        "observedGeneration": r.generation,
        "replicas": s.replicas,
        "updatedReplicas": s.updated,
        "readyReplicas": s.ready,
        "availableReplicas": s.available,
    });
    let unavailable = s.unavailable(p.replicas);
    if unavailable > 0 {
        status["unavailableReplicas"] = json!(unavailable);
    }
    let condition = |kind: &str, (state, reason): (&str, &str)| json!({"type": kind, "status": state, "reason": reason});
    status["conditions"] = json!([
        condition("Available", v.available()),
        condition("Progressing", v.progressing(store)),
    ]);
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": r.name,
            "namespace": r.namespace,
            "uid": r.uid,
            "generation": r.generation,
            "creationTimestamp": stamp(r.created_at),
            "labels": p.labels,
            "annotations": annotations,
        },
        "spec": {
            "replicas": p.replicas,
            "selector": {"matchLabels": p.selector},
            "template": p.template_json,
            "strategy": strategy,
            "minReadySeconds": p.min_ready_seconds,
            "revisionHistoryLimit": p.revision_history_limit,
            "progressDeadlineSeconds": p.progress_deadline_seconds,
        },
        "status": status,
    })
}

fn int_or_percent(v: crate::spec::workload::IntOrPercent) -> Value {
    match v {
        crate::spec::workload::IntOrPercent::Int(n) => json!(n),
        p => json!(p.to_string()),
    }
}

pub fn replica_set_object(v: &ReplicaSetView) -> Value {
    let r = &v.record;
    let mut meta = json!({
        "name": r.name,
        "namespace": r.namespace,
        "uid": r.uid,
        "creationTimestamp": stamp(r.created_at),
        "labels": r.labels,
        "annotations": r.annotations,
    });
    if let Some((name, uid)) = &r.deployment {
        meta["ownerReferences"] = json!([{
            "apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": uid,
            "controller": true, "blockOwnerDeletion": true,
        }]);
    }
    if let Some(applied) = &r.last_applied {
        meta["annotations"][LAST_APPLIED_ANNOTATION] = json!(applied);
    }
    let c = &v.counts;
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": meta,
        "spec": {
            "replicas": r.replicas,
            "minReadySeconds": r.min_ready_seconds,
            "selector": {"matchLabels": r.selector},
            "template": template_with_labels(r),
        },
        "status": {
            "replicas": c.current,
            "fullyLabeledReplicas": c.current,
            "readyReplicas": c.ready,
            "availableReplicas": c.available,
        },
    })
}

/// A ReplicaSet's template as written, with the labels its pods get.
fn template_with_labels(r: &crate::state::ReplicaSetRecord) -> Value {
    let mut t = r.template.json.clone();
    if t.is_object() {
        t["metadata"]["labels"] = json!(r.template.plan.labels);
    }
    t
}
