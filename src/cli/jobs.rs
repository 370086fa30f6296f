//! `podrun get jobs`: kubectl 1.32's columns (NAME STATUS COMPLETIONS DURATION AGE; wide:
//! CONTAINERS IMAGES SELECTOR) and the Job as the API server shows it (`-o json|yaml`).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::workloads::{Listing, containers_images};
use super::{Result, table};
use crate::config::Config;
use crate::pod::workloads::not_found;
use crate::spec::LAST_APPLIED_ANNOTATION;
use crate::spec::workload::CONTROLLER_UID_LABEL;
use crate::state::{JobRecord, JobStatus, WorkloadKind};

/// A Job with its status.
struct JobView {
    record: JobRecord,
    status: JobStatus,
    /// Its pods that are ready now.
    ready: u32,
}

pub fn listing(
    cfg: &Config,
    namespace: Option<&str>,
    names: &[String],
    wide: bool,
) -> Result<Listing> {
    let store = cfg.store();
    let mut records: Vec<JobRecord> = store
        .list_jobs()
        .into_iter()
        .filter(|j| namespace.is_none_or(|ns| j.namespace == ns))
        .collect();
    records.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    if let Some(missing) = names
        .iter()
        .find(|n| !records.iter().any(|r| &r.name == *n))
    {
        return Err(not_found(WorkloadKind::Job, missing).into());
    }
    if !names.is_empty() {
        records.retain(|r| names.contains(&r.name));
    }
    let pods = crate::workload::pod_views(&store);
    let views: Vec<JobView> = records
        .into_iter()
        .map(|record| JobView {
            status: store.job_status(&record.key()),
            ready: pods
                .iter()
                .filter(|p| {
                    p.key.namespace == record.namespace
                        && p.owned_by("Job", &record.name)
                        && p.ready
                        && p.active()
                })
                .count() as u32,
            record,
        })
        .collect();
    let mut header = vec!["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"];
    if wide {
        header.extend(["CONTAINERS", "IMAGES", "SELECTOR"]);
    }
    let mut rows = vec![header.into_iter().map(str::to_owned).collect::<Vec<_>>()];
    for v in &views {
        let mut row = Vec::new();
        if namespace.is_none() {
            row.push(v.record.namespace.clone());
        }
        row.extend([
            v.record.name.clone(),
            status_word(&v.status).to_owned(),
            completions(&v.record, &v.status),
            duration(&v.status, Utc::now()),
            table::age(v.record.created_at),
        ]);
        if wide {
            let (c, i) = containers_images(&v.record.plan.template.plan);
            row.extend([c, i, format!("{CONTROLLER_UID_LABEL}={}", v.record.uid)]);
        }
        rows.push(row);
    }
    Ok(Listing {
        rows,
        objects: views.iter().map(job_object).collect(),
        names: views.iter().map(|v| v.record.name.clone()).collect(),
    })
}

/// STATUS: `Complete`, `Failed` or `Running` (`printJob`).
fn status_word(s: &JobStatus) -> &str {
    match &s.finished {
        Some(c) if c.kind == "Complete" || c.kind == "Failed" => &c.kind,
        _ => "Running",
    }
}

/// COMPLETIONS: `succeeded/completions`; a work queue `succeeded/1`, `succeeded/1 of P` with
/// parallelism over 1.
fn completions(r: &JobRecord, s: &JobStatus) -> String {
    match r.plan.completions {
        Some(c) => format!("{}/{c}", s.succeeded),
        None if r.plan.parallelism > 1 => {
            format!("{}/1 of {}", s.succeeded, r.plan.parallelism)
        }
        None => format!("{}/1", s.succeeded),
    }
}

/// DURATION: from startTime to completionTime (or now); empty before it started.
fn duration(s: &JobStatus, now: DateTime<Utc>) -> String {
    let Some(start) = s.start_time else {
        return String::new();
    };
    let end = s.completion_time.unwrap_or(now);
    table::age(now - (end - start))
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The Job as the API server shows it, defaults included.
fn job_object(v: &JobView) -> Value {
    let r = &v.record;
    let p = &r.plan;
    let mut annotations = serde_json::Map::new();
    for (k, val) in &p.annotations {
        annotations.insert(k.clone(), json!(val));
    }
    if !r.last_applied.is_empty() {
        annotations.insert(LAST_APPLIED_ANNOTATION.into(), json!(r.last_applied));
    }
    let mut template = p.template.json.clone();
    if template.is_object() {
        let mut labels = p.template.labels().clone();
        labels.extend(p.pod_labels());
        template["metadata"]["labels"] = json!(labels);
    }
    let mut spec = json!({
        "parallelism": p.parallelism,
        "backoffLimit": p.backoff_limit,
        "completionMode": "NonIndexed",
        "suspend": false,
        "podReplacementPolicy": "TerminatingOrFailed",
        "manualSelector": false,
        "selector": {"matchLabels": {CONTROLLER_UID_LABEL: r.uid}},
        "template": template,
    });
    if let Some(c) = p.completions {
        spec["completions"] = json!(c);
    }
    if let Some(s) = p.active_deadline_seconds {
        spec["activeDeadlineSeconds"] = json!(s);
    }
    if let Some(s) = p.ttl_seconds_after_finished {
        spec["ttlSecondsAfterFinished"] = json!(s);
    }
    let s = &v.status;
    let mut status = json!({});
    if let Some(t) = s.start_time {
        status["startTime"] = json!(stamp(t));
    }
    if let Some(t) = s.completion_time {
        status["completionTime"] = json!(stamp(t));
    }
    for (field, n) in [
        ("active", s.active),
        ("succeeded", s.succeeded),
        ("failed", s.failed),
    ] {
        if n > 0 {
            status[field] = json!(n);
        }
    }
    if s.start_time.is_some() {
        status["ready"] = json!(v.ready);
        status["terminating"] = json!(0);
        status["uncountedTerminatedPods"] = json!({});
    }
    if let Some(c) = &s.finished {
        // The interim condition first (SuccessCriteriaMet, FailureTarget), as 1.32 writes them.
        let interim = if c.kind == "Complete" {
            "SuccessCriteriaMet"
        } else {
            "FailureTarget"
        };
        let cond = |kind: &str| {
            json!({
                "type": kind,
                "status": "True",
                "reason": c.reason,
                "message": c.message,
                "lastProbeTime": stamp(c.at),
                "lastTransitionTime": stamp(c.at),
            })
        };
        status["conditions"] = json!([cond(interim), cond(&c.kind)]);
    }
    let mut meta = json!({
        "name": r.name,
        "namespace": r.namespace,
        "uid": r.uid,
        "generation": 1,
        "creationTimestamp": stamp(r.created_at),
        "labels": p.labels,
    });
    if !annotations.is_empty() {
        meta["annotations"] = Value::Object(annotations);
    }
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": spec,
        "status": status,
    })
}

pub fn describe(_cfg: &Config, _namespace: &str, name: &str) -> Result<i32> {
    Err(super::msg(format!(
        "podrun describe job {name}: not described yet"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::JobCondition;

    #[test]
    fn duration_runs_from_start_to_completion() {
        let now = Utc::now();
        let mut s = JobStatus::default();
        assert_eq!(duration(&s, now), "");
        s.start_time = Some(now - chrono::Duration::seconds(75));
        assert_eq!(duration(&s, now), "75s");
        s.completion_time = Some(now - chrono::Duration::seconds(70));
        assert_eq!(duration(&s, now), "5s");
        assert_eq!(status_word(&s), "Running");
        s.finished = Some(JobCondition {
            kind: "Complete".into(),
            reason: "CompletionsReached".into(),
            message: String::new(),
            at: now,
        });
        assert_eq!(status_word(&s), "Complete");
    }
}
