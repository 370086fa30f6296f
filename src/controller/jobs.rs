//! The Job controller's part of a pass: each Job's rules (`crate::workload::job`) carried
//! out through the pod layer; its status written when it changed.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::reconcile::{Pass, log};
use crate::spec::Owner;
use crate::state::{JobRecord, WorkloadKind};
use crate::workload::job;

pub(super) fn sync(pass: &mut Pass<'_>) {
    for record in pass.store.list_jobs() {
        sync_job(pass, &record);
    }
}

fn sync_job(pass: &mut Pass<'_>, record: &JobRecord) {
    let key = record.key();
    let name = format!("job {}/{}", record.namespace, record.name);
    let old = pass.store.job_status(&key);
    let pods: Vec<crate::workload::PodView> = pass
        .pods_of("Job", &record.namespace, &record.name)
        .into_iter()
        .cloned()
        .collect();
    let refs: Vec<&crate::workload::PodView> = pods.iter().collect();
    let now = Utc::now();
    let mut decision = job::sync(&record.plan, &old, &refs, now, job::backoff_base());
    if decision.delete {
        log(&format!(
            "{name}: ttlSecondsAfterFinished passed, deleting it"
        ));
        if let Err(e) = pass.store.remove_workload(WorkloadKind::Job, &key) {
            log(&format!("{name}: {e}"));
            return;
        }
        for p in &pods {
            if !p.terminating {
                pass.stop(&p.key, None);
            }
        }
        pass.changed = true;
        return;
    }
    for key in &decision.remove {
        pass.remove(key);
    }
    for key in &decision.stop {
        pass.stop(key, None);
        event(
            pass,
            record,
            "Normal",
            "SuccessfulDelete",
            format!("Deleted pod: {}", key.name),
        );
    }
    if decision.create > 0 {
        let taken: HashSet<String> = pass.store.list().into_iter().map(|r| r.plan.name).collect();
        let owner = Owner {
            kind: "Job".to_owned(),
            name: record.name.clone(),
            deployment: None,
            uid: record.uid.clone(),
        };
        let plans = crate::workload::new_pods(
            &record.plan.template,
            &record.name,
            owner,
            &record.plan.pod_labels(),
            decision.create,
            &taken,
        );
        match pass.create(&name, &plans) {
            Some(made) => {
                for pod in made {
                    event(
                        pass,
                        record,
                        "Normal",
                        "SuccessfulCreate",
                        format!("Created pod: {}", pod.name),
                    );
                }
            }
            None => decision.status.active -= decision.create as u32,
        }
    }
    if let Some(at) = decision.wake {
        let wait = (at - now).to_std().unwrap_or(Duration::ZERO);
        pass.wake_at(Instant::now() + wait);
    }
    if decision.status != old {
        if let Some(done) = &decision.status.finished
            && old.finished.is_none()
        {
            log(&format!("{name}: {} ({})", done.kind, done.reason));
            // The job controller's events: `Completed`, or the failure's reason as a warning.
            if done.kind == "Complete" {
                event(
                    pass,
                    record,
                    "Normal",
                    "Completed",
                    "Job completed".to_owned(),
                );
            } else {
                let (reason, message) = (done.reason.clone(), done.message.clone());
                event(pass, record, "Warning", &reason, message);
            }
        }
        if let Err(e) = pass.store.save_job_status(&key, &decision.status) {
            log(&format!("{name}: status: {e}"));
        }
        pass.changed = true;
    }
}

fn event(pass: &Pass<'_>, record: &JobRecord, kind: &str, reason: &str, message: String) {
    pass.store
        .add_workload_event(WorkloadKind::Job, &record.key(), kind, reason, message);
}
