//! The workload kinds beside Deployment: `apps/v1` ReplicaSet and `batch/v1` Job, their pod
//! templates, and the rollout strategy and its `IntOrString` fenceposts, as the API server
//! defaults them (`SetDefaults_Deployment`, `SetDefaults_Job`, `SetDefaults_ReplicaSet`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DeploymentStrategy, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::deployment::{TEMPLATE_HASH_LABEL, random_suffix};
use super::plan::{hostname_for, namespace_or_default, new_uid, pod_plan, set_metadata};
use super::{Owner, PodPlan};

/// A compiled pod template: the plan its pods start from (no name, no uid), the template's
/// own `spec.hostname`, and the template as written (`PodTemplateSpec` JSON: the
/// pod-template-hash, `rollout history --revision`, `rollout undo`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PodTemplate {
    pub plan: PodPlan,
    pub hostname: Option<String>,
    pub json: Value,
}

impl PodTemplate {
    /// The template of a validated object in `namespace`.
    pub fn compile(namespace: &str, template: &PodTemplateSpec) -> Self {
        let meta = template.metadata.clone().unwrap_or_default();
        let pod = Pod {
            metadata: ObjectMeta {
                namespace: Some(namespace.to_owned()),
                labels: meta.labels,
                annotations: meta.annotations,
                ..ObjectMeta::default()
            },
            spec: template.spec.clone(),
            status: None,
        };
        let mut plan = pod_plan(&pod);
        plan.uid.clear();
        PodTemplate {
            plan,
            hostname: template
                .spec
                .as_ref()
                .and_then(|s| s.hostname.clone())
                .filter(|h| !h.is_empty()),
            json: serde_json::to_value(template).unwrap_or(Value::Null),
        }
    }

    /// A pod of this template named `name`, owned by `owner`, with `labels` added (the
    /// ReplicaSet's pod-template-hash, a Job's job-name).
    pub fn pod(&self, name: String, owner: Owner, labels: &BTreeMap<String, String>) -> PodPlan {
        let mut pod = self.plan.clone();
        pod.hostname = hostname_for(self.hostname.as_deref(), &name);
        pod.name = name;
        pod.uid = new_uid();
        pod.labels.extend(labels.clone());
        pod.owner = Some(owner);
        let mut manifest = std::mem::take(&mut pod.manifest);
        set_metadata(&mut manifest, &pod);
        pod.manifest = manifest;
        pod
    }

    /// The template's labels (as written, without what the controllers add).
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.plan.labels
    }
}

/// A fresh pod name for a workload named `base`: `<base>-<5 safe characters>`.
pub fn pod_name(base: &str) -> String {
    format!("{base}-{}", random_suffix())
}

/// `maxSurge` / `maxUnavailable`: a count or a percentage of the replicas.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum IntOrPercent {
    Int(i32),
    Percent(i32),
}

impl IntOrPercent {
    /// `intstr.GetScaledValueFromIntOrPercent`: a percentage of `total`, rounded up or down.
    pub fn scaled(self, total: i32, round_up: bool) -> i32 {
        match self {
            IntOrPercent::Int(n) => n,
            IntOrPercent::Percent(p) => {
                let x = i64::from(p) * i64::from(total);
                let v = if round_up { (x + 99) / 100 } else { x / 100 };
                v as i32
            }
        }
    }

    fn parse(value: &IntOrString) -> Option<Self> {
        match value {
            IntOrString::Int(n) => Some(IntOrPercent::Int(*n)),
            IntOrString::String(s) => {
                let p = s.strip_suffix('%')?.parse().ok()?;
                Some(IntOrPercent::Percent(p))
            }
        }
    }
}

impl std::fmt::Display for IntOrPercent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IntOrPercent::Int(n) => write!(f, "{n}"),
            IntOrPercent::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// A Deployment's `spec.strategy`, defaulted (RollingUpdate 25% / 25%).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Strategy {
    Recreate,
    RollingUpdate {
        max_surge: IntOrPercent,
        max_unavailable: IntOrPercent,
    },
}

impl Default for Strategy {
    fn default() -> Self {
        Strategy::RollingUpdate {
            max_surge: IntOrPercent::Percent(25),
            max_unavailable: IntOrPercent::Percent(25),
        }
    }
}

impl Strategy {
    /// `spec.strategy` as written, defaulted; validated before (`strategy_problems`).
    pub fn of(strategy: Option<&DeploymentStrategy>) -> Self {
        let Some(s) = strategy else {
            return Strategy::default();
        };
        if s.type_.as_deref() == Some("Recreate") {
            return Strategy::Recreate;
        }
        let rolling = s.rolling_update.as_ref();
        let field = |v: Option<&IntOrString>, default| {
            v.and_then(IntOrPercent::parse)
                .unwrap_or(IntOrPercent::Percent(default))
        };
        Strategy::RollingUpdate {
            max_surge: field(rolling.and_then(|r| r.max_surge.as_ref()), 25),
            max_unavailable: field(rolling.and_then(|r| r.max_unavailable.as_ref()), 25),
        }
    }

    /// `deploymentutil.ResolveFenceposts`: (maxSurge, maxUnavailable) in pods for `replicas`;
    /// both zero makes maxUnavailable 1, so a rollout can progress.
    pub fn fenceposts(self, replicas: i32) -> (i32, i32) {
        match self {
            Strategy::Recreate => (0, replicas),
            Strategy::RollingUpdate {
                max_surge,
                max_unavailable,
            } => {
                let surge = max_surge.scaled(replicas, true);
                let unavailable = max_unavailable.scaled(replicas, false);
                if surge == 0 && unavailable == 0 {
                    (0, 1)
                } else {
                    (surge, unavailable)
                }
            }
        }
    }

    /// kubectl's words (`RollingUpdate`, `Recreate`).
    pub fn type_name(self) -> &'static str {
        match self {
            Strategy::Recreate => "Recreate",
            Strategy::RollingUpdate { .. } => "RollingUpdate",
        }
    }
}

/// The API server's checks of `spec.strategy` (`ValidateDeploymentStrategy`).
pub fn strategy_problems(strategy: Option<&DeploymentStrategy>, problems: &mut Vec<String>) {
    let Some(s) = strategy else { return };
    match s.type_.as_deref() {
        None | Some("RollingUpdate") => {}
        Some("Recreate") => {
            if s.rolling_update.is_some() {
                problems.push(
                    "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"
                        .to_owned(),
                );
            }
            return;
        }
        Some(other) => {
            problems.push(format!(
                "spec.strategy.type: Unsupported value: \"{other}\": supported values: \"Recreate\", \"RollingUpdate\""
            ));
            return;
        }
    }
    let Some(r) = &s.rolling_update else { return };
    let mut parsed = Vec::new();
    for (name, value) in [
        ("maxSurge", r.max_surge.as_ref()),
        ("maxUnavailable", r.max_unavailable.as_ref()),
    ] {
        let Some(value) = value else {
            parsed.push(None);
            continue;
        };
        let path = format!("spec.strategy.rollingUpdate.{name}");
        match IntOrPercent::parse(value) {
            None => {
                let IntOrString::String(text) = value else {
                    unreachable!()
                };
                problems.push(format!(
                    "{path}: Invalid value: \"{text}\": a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"
                ));
                parsed.push(None);
            }
            Some(v @ (IntOrPercent::Int(n) | IntOrPercent::Percent(n))) if n < 0 => {
                problems.push(format!(
                    "{path}: Invalid value: {}: must be greater than or equal to 0",
                    shown(v)
                ));
                parsed.push(None);
            }
            Some(v @ IntOrPercent::Percent(n)) if n > 100 && name == "maxUnavailable" => {
                problems.push(format!(
                    "{path}: Invalid value: {}: must not be greater than 100%",
                    shown(v)
                ));
                parsed.push(None);
            }
            Some(v) => parsed.push(Some(v)),
        }
    }
    let zero = |v: &Option<IntOrPercent>| {
        matches!(v, Some(IntOrPercent::Int(0) | IntOrPercent::Percent(0)))
    };
    if zero(&parsed[0]) && zero(&parsed[1]) {
        problems.push(
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"
                .to_owned(),
        );
    }
}

fn shown(v: IntOrPercent) -> String {
    match v {
        IntOrPercent::Int(n) => n.to_string(),
        IntOrPercent::Percent(_) => format!("\"{v}\""),
    }
}

/// A ReplicaSet applied on its own (one a Deployment owns is made by the controller).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReplicaSetPlan {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub replicas: u32,
    pub min_ready_seconds: u32,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub selector: BTreeMap<String, String>,
    pub template: PodTemplate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied: Option<String>,
}

pub fn replica_set_plan(rs: &ReplicaSet) -> ReplicaSetPlan {
    let meta = &rs.metadata;
    let spec = rs.spec.clone();
    let namespace = namespace_or_default(meta.namespace.as_deref());
    ReplicaSetPlan {
        name: meta.name.clone().unwrap_or_default(),
        uid: new_uid(),
        replicas: u32::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0),
        min_ready_seconds: u32::try_from(spec.min_ready_seconds.unwrap_or(0)).unwrap_or(0),
        labels: meta.labels.clone().unwrap_or_default(),
        annotations: meta.annotations.clone().unwrap_or_default(),
        selector: spec.selector.match_labels.clone().unwrap_or_default(),
        template: PodTemplate::compile(&namespace, &spec.template.unwrap_or_default()),
        namespace,
        last_applied: None,
    }
}

/// A Job, defaulted as `SetDefaults_Job` (completions and parallelism 1 when neither is
/// set, backoffLimit 6).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobPlan {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// None: a work queue (done once one pod succeeded and none is left running).
    pub completions: Option<u32>,
    pub parallelism: u32,
    pub backoff_limit: u32,
    pub active_deadline_seconds: Option<u64>,
    pub ttl_seconds_after_finished: Option<u64>,
    pub template: PodTemplate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied: Option<String>,
}

pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";

impl JobPlan {
    /// The labels the Job controller gives its pods (and its selector matches).
    pub fn pod_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (CONTROLLER_UID_LABEL.to_owned(), self.uid.clone()),
            (JOB_NAME_LABEL.to_owned(), self.name.clone()),
            ("controller-uid".to_owned(), self.uid.clone()),
            ("job-name".to_owned(), self.name.clone()),
        ])
    }
}

pub fn job_plan(job: &Job) -> JobPlan {
    let meta = &job.metadata;
    let spec = job.spec.clone().unwrap_or_default();
    let namespace = namespace_or_default(meta.namespace.as_deref());
    let count = |v: Option<i32>| v.map(|n| u32::try_from(n).unwrap_or(0));
    let (completions, parallelism) = match (count(spec.completions), count(spec.parallelism)) {
        (None, None) => (Some(1), 1),
        (c, p) => (c, p.unwrap_or(1)),
    };
    let seconds = |v: Option<i64>| v.map(|n| u64::try_from(n).unwrap_or(0));
    let mut plan = JobPlan {
        name: meta.name.clone().unwrap_or_default(),
        uid: new_uid(),
        labels: meta.labels.clone().unwrap_or_default(),
        annotations: meta.annotations.clone().unwrap_or_default(),
        completions,
        parallelism,
        backoff_limit: count(spec.backoff_limit).unwrap_or(6),
        active_deadline_seconds: seconds(spec.active_deadline_seconds),
        ttl_seconds_after_finished: count(spec.ttl_seconds_after_finished).map(u64::from),
        template: PodTemplate::compile(&namespace, &spec.template),
        namespace,
        last_applied: None,
    };
    // A Job's labels default to its pods' (SetDefaults_Job).
    if plan.labels.is_empty() {
        plan.labels = plan.template.labels().clone();
        plan.labels.extend(plan.pod_labels());
        plan.labels
            .retain(|k, _| k != CONTROLLER_UID_LABEL && k != "controller-uid");
    }
    plan
}

/// Helper for the template hash label: `pod-template-hash=<hash>`.
pub fn template_hash_labels(hash: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(TEMPLATE_HASH_LABEL.to_owned(), hash.to_owned())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_as_kubernetes() {
        let s = Strategy::default();
        assert_eq!(s.fenceposts(3), (1, 0));
        assert_eq!(s.fenceposts(4), (1, 1));
        assert_eq!(s.fenceposts(10), (3, 2));
        let r = Strategy::RollingUpdate {
            max_surge: IntOrPercent::Int(0),
            max_unavailable: IntOrPercent::Percent(10),
        };
        // 10% of 3 rounds down to 0: both zero gives maxUnavailable 1.
        assert_eq!(r.fenceposts(3), (0, 1));
        assert_eq!(Strategy::Recreate.fenceposts(3), (0, 3));
    }

    #[test]
    fn strategy_validation_names_the_field() {
        use k8s_openapi::api::apps::v1::RollingUpdateDeployment;
        let mut problems = Vec::new();
        let s = DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::Int(0)),
                max_unavailable: Some(IntOrString::String("0%".into())),
            }),
        };
        strategy_problems(Some(&s), &mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("may not be 0 when `maxSurge` is 0"));
        problems.clear();
        let bad = DeploymentStrategy {
            type_: Some("Canary".into()),
            rolling_update: None,
        };
        strategy_problems(Some(&bad), &mut problems);
        assert!(problems[0].starts_with("spec.strategy.type: Unsupported value: \"Canary\""));
    }
}
