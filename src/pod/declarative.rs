//! Declarative apply, as kubectl's: what a second `apply` of an object does, decided before
//! anything is made. An object that does not exist is created; one whose last applied
//! configuration (kept in its record) is the file's is `unchanged`; a changed Pod is
//! updated where the API server's `ValidatePodUpdate` allows it among the fields podrun
//! supports (containers' `image`; labels and annotations are metadata, free to change) and
//! refused with its message otherwise. A changed Deployment or ReplicaSet is `configured`:
//! its record takes the new spec and the controller scales or rolls it out. A Job's spec is
//! immutable but for what the API server lets change (parallelism, activeDeadlineSeconds,
//! ttlSecondsAfterFinished, labels and annotations). Pure: the callers load the records and
//! carry the decision out.

use serde_json::Value;

use crate::spec::PodPlan;

/// The API server's words for a pod update outside what it allows (`ValidatePodUpdate`).
pub const POD_UPDATE_FORBIDDEN: &str = "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Why apply refused to change an existing object; each names the object and what changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "The Pod \"{name}\" is invalid: {POD_UPDATE_FORBIDDEN}\n{}",
        lines(changes)
    )]
    PodUpdate { name: String, changes: Vec<String> },
    #[error(
        "The Job \"{name}\" is invalid: {}: field is immutable",
        changes.join(", ")
    )]
    JobUpdate { name: String, changes: Vec<String> },
    #[error(
        "deployments.apps \"{0}\" already exists without a record of how it was applied (its pods were made by an older podrun, or a delete of it did not finish): delete it (podrun delete -f FILE) and apply it again"
    )]
    DeploymentWithoutRecord(String),
}

fn lines(changes: &[String]) -> String {
    changes
        .iter()
        .map(|c| format!("  {c}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What apply does with a Pod that exists. Not boxed: one per object of a file.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum PodChange {
    /// Applied as it is: nothing to do.
    Unchanged,
    /// Changed where allowed: the record's plan becomes `plan`; the containers named in
    /// `images` have a new image and restart with it.
    Update { plan: PodPlan, images: Vec<String> },
}

/// What apply does with a workload object (Deployment, ReplicaSet, Job).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkloadChange {
    /// Not applied yet.
    Create,
    Unchanged,
    /// Changed: the record takes the new spec; the paths that changed.
    Configured(Vec<String>),
}

/// A pod planned as `old_plan` applied again as `new` (a freshly loaded plan of the same name).
pub fn pod_change(old_plan: &PodPlan, new: &PodPlan) -> Result<PodChange, Refused> {
    if old_plan.last_applied.is_some() && old_plan.last_applied == new.last_applied {
        return Ok(PodChange::Unchanged);
    }
    let stated = stated_pull_policies(new);
    let mut changes = Vec::new();
    let (mut before, mut after) = (
        old_plan.manifest["spec"].clone(),
        new.manifest["spec"].clone(),
    );
    for spec in [&mut before, &mut after] {
        erase_images(spec, &stated);
    }
    if old_plan.containers.len() != new.containers.len() {
        changes.push(format!("containers: {} -> {}", names(old_plan), names(new)));
    }
    diff(&before, &after, "spec", &mut changes);
    if !changes.is_empty() {
        return Err(Refused::PodUpdate {
            name: new.name.clone(),
            changes,
        });
    }
    let mut plan = old_plan.clone();
    plan.labels = new.labels.clone();
    plan.annotations = new.annotations.clone();
    plan.last_applied = new.last_applied.clone();
    let mut images = Vec::new();
    for (i, (c, n)) in plan.containers.iter_mut().zip(&new.containers).enumerate() {
        if c.image != n.image {
            c.image = n.image.clone();
            images.push(c.name.clone());
        }
        if stated[i] {
            c.image_pull_policy = n.image_pull_policy.clone();
        }
    }
    let same = images.is_empty()
        && plan.labels == old_plan.labels
        && plan.annotations == old_plan.annotations;
    if same && old_plan.last_applied.is_none() {
        // Recorded by an older podrun, without its last applied configuration: nothing to
        // change (its supervisor may not take updates). Otherwise, as kubectl's patch of the
        // annotation, a file written another way is `configured` (its new configuration kept).
        return Ok(PodChange::Unchanged);
    }
    plan.manifest = updated_manifest(old_plan, new, &plan);
    Ok(PodChange::Update { plan, images })
}

/// A workload applied as `new` (its last-applied configuration) while `old` is recorded;
/// `pods`: how many pods it owns (a Deployment's pods without its record were made by an
/// older podrun, or a delete of it did not finish).
pub fn workload_change(
    kind: &str,
    name: &str,
    old: Option<&str>,
    pods: usize,
    new: &str,
) -> Result<WorkloadChange, Refused> {
    let Some(old) = old else {
        if pods > 0 {
            return Err(Refused::DeploymentWithoutRecord(name.to_owned()));
        }
        return Ok(WorkloadChange::Create);
    };
    if old == new {
        return Ok(WorkloadChange::Unchanged);
    }
    let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
    let mut changes = Vec::new();
    diff(&parse(old), &parse(new), "", &mut changes);
    if changes.is_empty() {
        // Same object, written another way (key order, a number's form): nothing changed.
        return Ok(WorkloadChange::Unchanged);
    }
    if kind == "Job" {
        const MUTABLE: [&str; 5] = [
            "spec.parallelism",
            "spec.activeDeadlineSeconds",
            "spec.ttlSecondsAfterFinished",
            "metadata.labels",
            "metadata.annotations",
        ];
        let immutable: Vec<String> = changes
            .iter()
            .filter_map(|c| c.split(':').next())
            .filter(|path| !MUTABLE.iter().any(|m| path.starts_with(m)))
            .map(str::to_owned)
            .collect();
        if !immutable.is_empty() {
            return Err(Refused::JobUpdate {
                name: name.to_owned(),
                changes: immutable,
            });
        }
    }
    Ok(WorkloadChange::Configured(changes))
}

/// Per container of `plan`, whether the file states its `imagePullPolicy` (else the default
/// came with the image's tag, and the API server keeps the one the pod has).
fn stated_pull_policies(plan: &PodPlan) -> Vec<bool> {
    let written: Value = plan
        .last_applied
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null);
    let (inits, apps) = (
        written["spec"]["initContainers"].as_array(),
        written["spec"]["containers"].as_array(),
    );
    let n_init = plan.containers.iter().filter(|c| c.init).count();
    (0..plan.containers.len())
        .map(|i| {
            let c = match i.checked_sub(n_init) {
                None => inits.and_then(|l| l.get(i)),
                Some(j) => apps.and_then(|l| l.get(j)),
            };
            c.is_some_and(|c| c.get("imagePullPolicy").is_some())
        })
        .collect()
}

/// Remove from a manifest's `spec` what an update may change: every container's `image`,
/// and its `imagePullPolicy` where the file does not state it.
fn erase_images(spec: &mut Value, stated: &[bool]) {
    let mut i = 0;
    for key in ["initContainers", "containers"] {
        for c in spec
            .get_mut(key)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(c) = c.as_object_mut() {
                c.remove("image");
                if !stated.get(i).copied().unwrap_or(false) {
                    c.remove("imagePullPolicy");
                }
            }
            i += 1;
        }
    }
}

/// The manifest of the updated `plan`: the new spec with the pull policies kept, the old
/// metadata (uid, owner) with the new labels and annotations.
fn updated_manifest(old: &PodPlan, new: &PodPlan, plan: &PodPlan) -> Value {
    let mut manifest = new.manifest.clone();
    manifest["metadata"] = old.manifest["metadata"].clone();
    if let Some(meta) = manifest["metadata"].as_object_mut() {
        for (key, map) in [("labels", &plan.labels), ("annotations", &plan.annotations)] {
            if map.is_empty() {
                meta.remove(key);
            } else {
                meta.insert(key.into(), serde_json::json!(map));
            }
        }
    }
    let n_init = plan.containers.iter().filter(|c| c.init).count();
    for (i, c) in plan.containers.iter().enumerate() {
        let at = match i.checked_sub(n_init) {
            None => format!("/spec/initContainers/{i}/imagePullPolicy"),
            Some(j) => format!("/spec/containers/{j}/imagePullPolicy"),
        };
        if let Some(policy) = manifest.pointer_mut(&at) {
            *policy = Value::String(c.image_pull_policy.clone());
        }
    }
    manifest
}

fn names(plan: &PodPlan) -> String {
    let names: Vec<&str> = plan.containers.iter().map(|c| c.name.as_str()).collect();
    format!("[{}]", names.join(", "))
}

/// Every field that differs between `a` and `b`, as `path: old -> new` (JSON values, long
/// ones shortened).
fn diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    let at = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let none = Value::Null;
                diff(
                    x.get(k).unwrap_or(&none),
                    y.get(k).unwrap_or(&none),
                    &at(k),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y))
            if x.len() == y.len() && x.iter().any(Value::is_object) =>
        {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff(p, q, &format!("{path}[{i}]"), out);
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{path}: {} -> {}", shown(a), shown(b))),
    }
}

fn shown(v: &Value) -> String {
    let text = match v {
        Value::Null => "(unset)".to_owned(),
        other => other.to_string(),
    };
    if text.chars().count() > 80 {
        format!("{}...", text.chars().take(77).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
#[path = "declarative_tests.rs"]
mod tests;
