//! The first step of an apply: each object of the file compared with what exists
//! ([`super::declarative`]) and sorted into the pods to create, the pods to update, the
//! workload records to write and the objects left unchanged, before anything is checked
//! against the node or made. The first refusal ends the apply.

use chrono::Utc;

use super::Result;
use super::declarative::{self, PodChange, WorkloadChange};
use crate::container::image::ContainerImage;
use crate::spec::workload::{JobPlan, ReplicaSetPlan};
use crate::spec::{DeploymentPlan, Object, PodPlan};
use crate::state::{
    DeploymentRecord, JobRecord, PodKey, PodRecord, ReplicaSetRecord, StateError, Store,
    WorkloadKind,
};

/// The objects of one apply, sorted by what applying them does.
pub(super) struct Sorted {
    /// The pods to create (of new Pods, new Deployments and new ReplicaSets).
    pub pods: Vec<PodPlan>,
    /// Per object, kubectl's line and how many of `pods` are its.
    pub headers: Vec<(String, usize)>,
    /// Pods to update: the record, its new plan, the containers whose image changed.
    pub updates: Vec<(PodRecord, PodPlan, Vec<String>)>,
    /// Workload records to write once the pods have started (ReplicaSets before the
    /// Deployments that own them).
    pub workloads: Vec<WorkloadWrite>,
    /// Pod templates whose pods the controller makes later: their images are checked now.
    pub templates: Vec<PodPlan>,
    /// Events of the workloads made here (what their controllers would have said had they
    /// made the pods): kind, object, reason, message; written with the records.
    pub events: Vec<(WorkloadKind, PodKey, &'static str, String)>,
}

/// A ReplicaSet's `SuccessfulCreate` for each of `plans`, in the replicaset controller's words.
fn created_events(
    events: &mut Vec<(WorkloadKind, PodKey, &'static str, String)>,
    rs: &PodKey,
    plans: &[PodPlan],
) {
    for p in plans {
        events.push((
            WorkloadKind::ReplicaSet,
            rs.clone(),
            "SuccessfulCreate",
            format!("Created pod: {}", p.name),
        ));
    }
}

/// A workload record apply writes.
pub(super) enum WorkloadWrite {
    Deployment(DeploymentRecord),
    ReplicaSet(ReplicaSetRecord),
    Job(JobRecord),
}

impl WorkloadWrite {
    pub fn save(&self, store: &Store) -> std::result::Result<(), StateError> {
        match self {
            WorkloadWrite::Deployment(d) => store.save_deployment(d),
            WorkloadWrite::ReplicaSet(r) => store.save_replica_set(r),
            WorkloadWrite::Job(j) => store.save_job(j),
        }
    }

    fn order(&self) -> u8 {
        match self {
            WorkloadWrite::ReplicaSet(_) => 0,
            _ => 1,
        }
    }
}

/// Compare each object with what exists ([`declarative`]); the first refusal is the error.
pub(super) fn sort(store: &Store, objects: Vec<Object>) -> Result<Sorted> {
    let mut sorted = Sorted {
        pods: Vec::new(),
        headers: Vec::new(),
        updates: Vec::new(),
        workloads: Vec::new(),
        templates: Vec::new(),
        events: Vec::new(),
    };
    for obj in objects {
        match obj {
            Object::Pod(p) => match existing(store, &p)? {
                None => {
                    sorted.headers.push((format!("pod/{} created", p.name), 1));
                    sorted.pods.push(p);
                }
                Some((_, PodChange::Unchanged)) => {
                    sorted
                        .headers
                        .push((format!("pod/{} unchanged", p.name), 0));
                }
                Some((record, PodChange::Update { plan, images })) => {
                    sorted
                        .headers
                        .push((format!("pod/{} configured", p.name), 0));
                    sorted.updates.push((record, plan, images));
                }
            },
            Object::Deployment(d) => sort_deployment(store, d, &mut sorted)?,
            Object::ReplicaSet(r) => sort_replica_set(store, r, &mut sorted)?,
            Object::Job(j) => sort_job(store, j, &mut sorted)?,
        }
    }
    sorted.workloads.sort_by_key(WorkloadWrite::order);
    Ok(sorted)
}

fn sort_deployment(store: &Store, mut d: DeploymentPlan, sorted: &mut Sorted) -> Result<()> {
    let key = PodKey::new(&d.namespace, &d.name);
    let owned = super::owned_by_deployment(store, &d.namespace, &d.name).len();
    let recorded = store.load_deployment(&key)?;
    let applied = d.last_applied.clone().unwrap_or_default();
    let old = recorded.as_ref().map(|r| r.last_applied.as_str());
    let line = |word: &str| format!("deployment.apps/{} {word}", d.name);
    let mut change = declarative::workload_change("Deployment", &d.name, old, owned, &applied)?;
    // Scaled or rolled back since it was applied: the file's replicas and template are put
    // back, as kubectl's three-way merge puts back the fields the file states.
    if let (WorkloadChange::Unchanged, Some(r)) = (&change, &recorded)
        && (r.plan.replicas != d.replicas || r.plan.template_hash != d.template_hash)
    {
        change = WorkloadChange::Configured(Vec::new());
    }
    match change {
        WorkloadChange::Unchanged => sorted.headers.push((line("unchanged"), 0)),
        WorkloadChange::Create => {
            let record = crate::workload::deployment_record(&d);
            let plans = d.pod_plans();
            let rs = crate::workload::new_replica_set(&record, 1, d.replicas);
            sorted.events.push((
                WorkloadKind::Deployment,
                key.clone(),
                "ScalingReplicaSet",
                format!("Scaled up replica set {} from 0 to {}", rs.name, d.replicas),
            ));
            created_events(&mut sorted.events, &rs.key(), &plans);
            sorted.headers.push((line("created"), plans.len()));
            sorted.workloads.push(WorkloadWrite::ReplicaSet(rs));
            sorted.workloads.push(WorkloadWrite::Deployment(record));
            sorted.pods.extend(plans);
        }
        WorkloadChange::Configured(_) => {
            let old = recorded.expect("a configured Deployment is recorded");
            d.uid = old.uid.clone();
            sorted.headers.push((line("configured"), 0));
            sorted
                .templates
                .push(template_check(&d.template, "ReplicaSet", &d));
            sorted
                .workloads
                .push(WorkloadWrite::Deployment(DeploymentRecord {
                    last_applied: applied,
                    generation: old.generation + 1,
                    plan: d,
                    ..old
                }));
        }
    }
    Ok(())
}

/// A template's plan named for the image checks (`deployment.apps/NAME: spec.template...`).
fn template_check(template: &PodPlan, kind: &str, d: &DeploymentPlan) -> PodPlan {
    let mut plan = template.clone();
    plan.name = d.name.clone();
    plan.owner = Some(crate::spec::Owner {
        kind: kind.to_owned(),
        name: d.replica_set_name.clone(),
        deployment: Some(d.name.clone()),
        uid: String::new(),
    });
    plan
}

fn sort_replica_set(store: &Store, r: ReplicaSetPlan, sorted: &mut Sorted) -> Result<()> {
    let key = PodKey::new(&r.namespace, &r.name);
    let recorded = store.load_replica_set(&key)?;
    if let Some(owner) = recorded.as_ref().and_then(|o| o.deployment.as_ref()) {
        return Err(super::failed(format!(
            "replicaset.apps/{}: owned by deployment.apps/{}: change the Deployment instead",
            r.name, owner.0
        )));
    }
    let applied = r.last_applied.clone().unwrap_or_default();
    let old = recorded.as_ref().and_then(|o| o.last_applied.as_deref());
    let name = r.name.clone();
    let line = |word: &str| format!("replicaset.apps/{name} {word}");
    let mut change = declarative::workload_change("ReplicaSet", &r.name, old, 0, &applied)?;
    // Scaled since it was applied: the file's replicas are put back (kubectl's merge).
    if let (WorkloadChange::Unchanged, Some(o)) = (&change, &recorded)
        && o.replicas != r.replicas
    {
        change = WorkloadChange::Configured(Vec::new());
    }
    match change {
        WorkloadChange::Unchanged => sorted.headers.push((line("unchanged"), 0)),
        WorkloadChange::Create => {
            let record = crate::workload::replica_set_record(&r);
            let plans =
                crate::workload::replica_set_pods(&record, r.replicas as usize, &taken(store));
            created_events(&mut sorted.events, &record.key(), &plans);
            sorted.headers.push((line("created"), plans.len()));
            sorted.workloads.push(WorkloadWrite::ReplicaSet(record));
            sorted.pods.extend(plans);
        }
        WorkloadChange::Configured(_) => {
            let old = recorded.expect("a configured ReplicaSet is recorded");
            let mut plan = r;
            plan.uid = old.uid.clone();
            let record = ReplicaSetRecord {
                created_at: old.created_at,
                ..crate::workload::replica_set_record(&plan)
            };
            let mut check = record.template.plan.clone();
            check.name = record.name.clone();
            sorted.templates.push(check);
            sorted.headers.push((line("configured"), 0));
            sorted.workloads.push(WorkloadWrite::ReplicaSet(record));
        }
    }
    Ok(())
}

fn sort_job(store: &Store, j: JobPlan, sorted: &mut Sorted) -> Result<()> {
    let key = PodKey::new(&j.namespace, &j.name);
    let recorded = store.load_job(&key)?;
    let applied = j.last_applied.clone().unwrap_or_default();
    let old = recorded.as_ref().map(|o| o.last_applied.as_str());
    let line = |word: &str| format!("job.batch/{} {word}", j.name);
    let change = declarative::workload_change("Job", &j.name, old, 0, &applied)?;
    let record = match (change, recorded) {
        (WorkloadChange::Unchanged, _) => {
            sorted.headers.push((line("unchanged"), 0));
            return Ok(());
        }
        (WorkloadChange::Configured(_), Some(old)) => {
            sorted.headers.push((line("configured"), 0));
            let mut plan = j;
            plan.uid = old.uid.clone();
            plan.template = old.plan.template.clone();
            JobRecord {
                last_applied: applied,
                plan,
                ..old
            }
        }
        _ => {
            sorted.headers.push((line("created"), 0));
            let mut check = j.template.plan.clone();
            check.name = j.name.clone();
            sorted.templates.push(check);
            JobRecord {
                namespace: j.namespace.clone(),
                name: j.name.clone(),
                uid: j.uid.clone(),
                last_applied: applied,
                created_at: Utc::now(),
                plan: j,
            }
        }
    };
    sorted.workloads.push(WorkloadWrite::Job(record));
    Ok(())
}

/// The pod names in use.
fn taken(store: &Store) -> std::collections::HashSet<String> {
    store.list().into_iter().map(|r| r.plan.name).collect()
}

/// The updates of `updates` checked for their supervisors, each with the new images of its
/// changed containers (`resolved`: every container's image, as `prepare` resolved them).
pub(super) fn checked_updates(
    resolved: Vec<Vec<ContainerImage>>,
    updates: Vec<(PodRecord, PodPlan, Vec<String>)>,
) -> Result<Vec<super::update::PodUpdate>> {
    resolved
        .into_iter()
        .zip(updates)
        .map(|(resolved, (record, plan, changed))| {
            let new_images = plan
                .containers
                .iter()
                .zip(resolved)
                .filter(|(c, _)| changed.contains(&c.name))
                .map(|(c, image)| (c.name.clone(), image))
                .collect();
            super::update::check(&record, plan, new_images)
        })
        .collect()
}

/// Pod `plan` as it exists, and what applying it again does; None if it does not exist.
fn existing(store: &Store, plan: &PodPlan) -> Result<Option<(PodRecord, PodChange)>> {
    let key = PodKey::new(&plan.namespace, &plan.name);
    let record = match store.load(&key) {
        Ok(r) => r,
        Err(StateError::NotFound(_)) if !store.exists(&key) => return Ok(None),
        // A directory without its record yet: another apply is making the pod.
        Err(StateError::NotFound(_)) => {
            return Err(StateError::AlreadyExists(plan.name.clone()).into());
        }
        Err(e) => return Err(e.into()),
    };
    let change = declarative::pod_change(&record.plan, plan)?;
    Ok(Some((record, change)))
}
