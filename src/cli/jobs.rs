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

/// `podrun describe job NAME`, kubectl's layout.
pub fn describe(cfg: &Config, namespace: &str, name: &str) -> Result<i32> {
    let store = cfg.store();
    let key = crate::state::PodKey::new(namespace, name);
    let record = store
        .load_job(&key)?
        .ok_or_else(|| not_found(WorkloadKind::Job, name))?;
    let status = store.job_status(&key);
    let pods: Vec<crate::workload::PodView> = crate::workload::pod_views(&store)
        .into_iter()
        .filter(|p| p.key.namespace == namespace && p.owned_by("Job", name))
        .collect();
    let ready = pods.iter().filter(|p| p.ready && p.active()).count();
    let mut text = describe_text(&record, &status, ready);
    let events = store.workload_events(WorkloadKind::Job, &key);
    super::describe::event_table(&mut text, &events, |_| "job-controller");
    print!("{text}");
    Ok(0)
}

fn describe_text(r: &JobRecord, s: &JobStatus, ready: usize) -> String {
    use std::fmt::Write;
    let p = &r.plan;
    let when = |t: DateTime<Utc>| t.format("%a, %d %b %Y %H:%M:%S %z").to_string();
    let mut lines: Vec<(String, String)> = Vec::new();
    let mut line = |k: &str, v: String| lines.push((k.to_owned(), v));
    line("Name:", r.name.clone());
    line("Namespace:", r.namespace.clone());
    line("Selector:", format!("{CONTROLLER_UID_LABEL}={}", r.uid));
    let block = |lines: &mut Vec<(String, String)>,
                 k: &str,
                 map: &std::collections::BTreeMap<String, String>,
                 sep: &str| {
        if map.is_empty() {
            lines.push((k.to_owned(), "<none>".to_owned()));
        }
        for (i, (key, v)) in map.iter().enumerate() {
            let head = if i == 0 { k } else { "" };
            lines.push((head.to_owned(), format!("{key}{sep}{v}")));
        }
    };
    block(&mut lines, "Labels:", &p.labels, "=");
    block(&mut lines, "Annotations:", &p.annotations, ": ");
    let mut line = |k: &str, v: String| lines.push((k.to_owned(), v));
    line("Parallelism:", p.parallelism.to_string());
    line(
        "Completions:",
        p.completions
            .map_or("<unset>".to_owned(), |c| c.to_string()),
    );
    line("Completion Mode:", "NonIndexed".to_owned());
    line("Suspend:", "false".to_owned());
    line("Backoff Limit:", p.backoff_limit.to_string());
    if let Some(ttl) = p.ttl_seconds_after_finished {
        line("TTL Seconds After Finished:", ttl.to_string());
    }
    if let Some(t) = s.start_time {
        line("Start Time:", when(t));
    }
    if let (Some(_), Some(end)) = (s.start_time, s.completion_time) {
        line("Completed At:", when(end));
        line("Duration:", duration(s, Utc::now()));
    }
    if let Some(d) = p.active_deadline_seconds {
        line("Active Deadline Seconds:", format!("{d}s"));
    }
    line(
        "Pods Statuses:",
        format!(
            "{} Active ({ready} Ready) / {} Succeeded / {} Failed",
            s.active, s.succeeded, s.failed
        ),
    );
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 2;
    let mut o = String::new();
    for (k, v) in lines {
        let _ = writeln!(o, "{k:<width$}{v}");
    }
    o.push_str(&super::describe_workload::pod_template(&p.template));
    o
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
