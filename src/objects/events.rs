//! `events` (v1 Event): what the pods' supervisors and the controller recorded, as
//! `podrun describe` shows it, served as the API server's Events (`kubectl get events`,
//! `--field-selector involvedObject.name=X`, and `kubectl describe`'s Events section), with
//! kube-apiserver's columns (LAST SEEN TYPE REASON OBJECT MESSAGE; wide SUBOBJECT SOURCE
//! FIRST SEEN COUNT NAME). An event's name is its object's name and its first time in
//! nanoseconds, in hex, as the kubelet's recorder names them (plus a few nanoseconds from a
//! hash of its reason and message, so two events of one instant differ), stable across
//! listings; they are listed in (namespace, name) order, as kube-apiserver lists them from
//! etcd's keys: each object's events oldest first.

use serde_json::{Value, json};

use super::age;
use super::resources::{Column, columns};
use crate::config::Config;
use crate::state::{Event, WorkloadKind};

pub struct Involved<'a> {
    pub kind: &'a str,
    pub api_version: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
}

fn stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn event_object(e: &Event, on: &Involved, component: &str, node: &str) -> Value {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&e.reason, &e.message, on.uid).hash(&mut h);
    let nanos = e.first_timestamp.timestamp_nanos_opt().unwrap_or_default() as u64;
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": format!("{}.{:x}", on.name, nanos + h.finish() % 997),
            "namespace": on.namespace,
            "creationTimestamp": stamp(e.first_timestamp),
        },
        "involvedObject": {
            "kind": on.kind,
            "apiVersion": on.api_version,
            "namespace": on.namespace,
            "name": on.name,
            "uid": on.uid,
        },
        "reason": e.reason,
        "message": e.message,
        "type": e.kind,
        "count": e.count,
        "firstTimestamp": stamp(e.first_timestamp),
        "lastTimestamp": stamp(e.last_timestamp),
        "source": {"component": component, "host": node},
        "reportingComponent": component,
        "reportingInstance": node,
    })
}

fn cells(e: &Event, obj: &Value, on: &Involved, component: &str, node: &str) -> Vec<Value> {
    vec![
        json!(age(e.last_timestamp)),
        json!(e.kind),
        json!(e.reason),
        json!(format!("{}/{}", on.kind.to_lowercase(), on.name)),
        json!(e.message),
        json!(""),
        json!(format!("{component}, {node}")),
        json!(age(e.first_timestamp)),
        json!(e.count),
        obj["metadata"]["name"].clone(),
    ]
}

/// The events of every pod and workload in `namespace` (all with None), in name order.
pub fn collect(cfg: &Config, namespace: Option<&str>) -> (Vec<Column>, Vec<(Vec<Value>, Value)>) {
    let node = cfg.node_name.as_str();
    let mut rows: Vec<(chrono::DateTime<chrono::Utc>, Vec<Value>, Value)> = Vec::new();
    let mut add = |events: &[Event], on: &Involved, component: &dyn Fn(&str) -> &'static str| {
        for e in events {
            let c = component(&e.reason);
            let obj = event_object(e, on, c, node);
            rows.push((e.last_timestamp, cells(e, &obj, on, c, node), obj));
        }
    };
    for r in crate::pod::read::list(cfg, namespace) {
        let on = Involved {
            kind: "Pod",
            api_version: "v1",
            namespace: &r.plan.namespace,
            name: &r.plan.name,
            uid: &r.plan.uid,
        };
        // As `podrun describe` names them.
        add(&r.events, &on, &|reason| {
            if reason == "Scheduled" {
                "podrun-scheduler"
            } else {
                "podrun"
            }
        });
    }
    let store = cfg.store();
    let wanted = |ns: &str| namespace.is_none_or(|n| n == ns);
    for d in store
        .list_deployments()
        .iter()
        .filter(|d| wanted(&d.namespace))
    {
        let on = Involved {
            kind: "Deployment",
            api_version: "apps/v1",
            namespace: &d.namespace,
            name: &d.name,
            uid: &d.uid,
        };
        let events = store.workload_events(WorkloadKind::Deployment, &d.key());
        add(&events, &on, &|_| "deployment-controller");
    }
    for rs in store
        .list_replica_sets()
        .iter()
        .filter(|r| wanted(&r.namespace))
    {
        let on = Involved {
            kind: "ReplicaSet",
            api_version: "apps/v1",
            namespace: &rs.namespace,
            name: &rs.name,
            uid: &rs.uid,
        };
        let events = store.workload_events(WorkloadKind::ReplicaSet, &rs.key());
        add(&events, &on, &|_| "replicaset-controller");
    }
    for j in store.list_jobs().iter().filter(|j| wanted(&j.namespace)) {
        let on = Involved {
            kind: "Job",
            api_version: "batch/v1",
            namespace: &j.namespace,
            name: &j.name,
            uid: &j.uid,
        };
        let events = store.workload_events(WorkloadKind::Job, &j.key());
        add(&events, &on, &|_| "job-controller");
    }
    rows.sort_by(|(_, _, a), (_, _, b)| {
        let key = |o: &Value| {
            (
                o["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        };
        key(a).cmp(&key(b))
    });
    let columns = columns(
        &["Last Seen", "Type", "Reason", "Object", "Message"],
        &["Subobject", "Source", "First Seen", "Count", "Name"],
    );
    (columns, rows.into_iter().map(|(_, c, o)| (c, o)).collect())
}
