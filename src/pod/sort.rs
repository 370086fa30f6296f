//! The first step of an apply: each object of the file compared with what exists
//! ([`super::declarative`]) and sorted into the pods to create, the pods to update and the
//! objects left unchanged, before anything is checked against the node or made. The first
//! refusal ends the apply.

use chrono::Utc;

use super::Result;
use super::declarative::{self, DeploymentChange, PodChange};
use crate::container::image::ContainerImage;
use crate::spec::{DeploymentPlan, Object, PodPlan};
use crate::state::{DeploymentRecord, PodKey, PodRecord, StateError, Store};

/// The objects of one apply, sorted by what applying them does.
pub(super) struct Sorted {
    /// The pods to create (of new Pods and new Deployments).
    pub pods: Vec<PodPlan>,
    /// Per object, kubectl's line and how many of `pods` are its.
    pub headers: Vec<(String, usize)>,
    /// Pods to update: the record, its new plan, the containers whose image changed.
    pub updates: Vec<(PodRecord, PodPlan, Vec<String>)>,
    /// The records of the Deployments created, saved once their pods have started.
    pub deployments: Vec<DeploymentRecord>,
}

/// Compare each object with what exists ([`declarative`]); the first refusal is the error.
pub(super) fn sort(store: &Store, objects: Vec<Object>) -> Result<Sorted> {
    let mut pods: Vec<PodPlan> = Vec::new();
    let mut headers: Vec<(String, usize)> = Vec::new(); // (kubectl line, number of pods)
    let mut updates: Vec<(PodRecord, PodPlan, Vec<String>)> = Vec::new();
    let mut deployments: Vec<DeploymentRecord> = Vec::new();
    for obj in objects {
        match obj {
            Object::Pod(p) => match existing(store, &p)? {
                None => {
                    headers.push((format!("pod/{} created", p.name), 1));
                    pods.push(p);
                }
                Some((_, PodChange::Unchanged)) => {
                    headers.push((format!("pod/{} unchanged", p.name), 0));
                }
                Some((record, PodChange::Update { plan, images })) => {
                    headers.push((format!("pod/{} configured", p.name), 0));
                    updates.push((record, plan, images));
                }
            },
            Object::Deployment(d) => {
                let key = PodKey::new(&d.namespace, &d.name);
                let owned = super::owned_by_deployment(store, &d.namespace, &d.name).len();
                let recorded = store.load_deployment(&key)?;
                match declarative::deployment_change(recorded.as_ref(), owned, &d)? {
                    DeploymentChange::Unchanged => {
                        headers.push((format!("deployment.apps/{} unchanged", d.name), 0));
                    }
                    DeploymentChange::Create => {
                        let plans = d.pod_plans();
                        headers.push((format!("deployment.apps/{} created", d.name), plans.len()));
                        deployments.push(deployment_record(&d));
                        pods.extend(plans);
                    }
                }
            }
        }
    }
    Ok(Sorted {
        pods,
        headers,
        updates,
        deployments,
    })
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

/// What is kept of an applied Deployment.
fn deployment_record(d: &DeploymentPlan) -> DeploymentRecord {
    DeploymentRecord {
        namespace: d.namespace.clone(),
        name: d.name.clone(),
        uid: d.uid.clone(),
        last_applied: d.last_applied.clone().unwrap_or_default(),
        replicas: d.replicas,
        template_hash: d.template_hash.clone(),
        replica_set_name: d.replica_set_name.clone(),
        created_at: Utc::now(),
    }
}
