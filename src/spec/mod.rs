//! Manifests: Kubernetes Pod and Deployment YAML/JSON turned into validated run plans.
//!
//! Pipeline per document (see `load.rs`): YAML → JSON value → kind dispatch → typed
//! k8s-openapi object with unknown-field and type checks → "supported by podrun" whitelist
//! (`strict.rs`) → API-server style validation (`validate.rs`) → plan (`plan.rs`,
//! `deployment.rs`).

mod deployment;
mod env;
mod error;
mod load;
mod plan;
pub mod quantity;
mod strict;
mod validate;

#[cfg(test)]
mod load_tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use error::{Origin, SpecError};
pub use load::{load_file, load_file_in, load_str, load_str_in};

/// One object of a manifest. Not boxed: objects are few and callers match on the plans directly.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Object {
    Pod(PodPlan),
    Deployment(DeploymentPlan),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeploymentPlan {
    pub name: String,
    pub namespace: String,
    pub replicas: u32,
    /// `pod-template-hash`, as the deployment controller computes it.
    pub template_hash: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// `spec.selector.matchLabels`.
    pub selector: BTreeMap<String, String>,
    /// Name of the ReplicaSet that owns the pods: `<deployment>-<template_hash>`.
    pub replica_set_name: String,
    pub replica_set_uid: String,
    /// The pod template as a plan with an empty name and uid; `pod_plans` fills them in.
    pub template: PodPlan,
    /// `spec.template.spec.hostname` when set (else each pod's hostname is its name).
    pub template_hostname: Option<String>,
}

impl DeploymentPlan {
    /// `replicas` fresh pods, named `<deployment>-<hash>-<5 random chars>`, each with its own uid.
    pub fn pod_plans(&self) -> Vec<PodPlan> {
        deployment::pod_plans(self)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PodPlan {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub owner: Option<Owner>,
    pub hostname: String,
    pub restart_policy: RestartPolicy,
    pub termination_grace_period_seconds: i64,
    pub containers: Vec<ContainerPlan>,
    /// The Pod as `kubectl get -o json` would show it (defaults filled, no status).
    pub manifest: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Owner {
    /// `ReplicaSet`.
    pub kind: String,
    pub name: String,
    /// The deployment that owns the ReplicaSet.
    pub deployment: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub const NAMES: [&'static str; 3] = ["Always", "OnFailure", "Never"];

    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Always => "Always",
            RestartPolicy::OnFailure => "OnFailure",
            RestartPolicy::Never => "Never",
        }
    }

    pub fn parse(text: &str) -> Option<RestartPolicy> {
        match text {
            "Always" => Some(RestartPolicy::Always),
            "OnFailure" => Some(RestartPolicy::OnFailure),
            "Never" => Some(RestartPolicy::Never),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerPlan {
    pub name: String,
    pub image: String,
    pub image_pull_policy: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub working_dir: Option<String>,
    pub env: Vec<EnvVar>,
    pub ports: Vec<ContainerPort>,
    pub resources: Resources,
}

impl ContainerPlan {
    /// The process to exec: env resolved (values, fieldRef from `facts`, `$(VAR)` expanded
    /// against earlier entries, `$$` escapes) and argv = command + args expanded the same way.
    pub fn resolve(&self, facts: &PodFacts) -> ResolvedProcess {
        env::resolve(self, facts)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EnvVar {
    pub name: String,
    pub source: EnvSource,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum EnvSource {
    Value(String),
    /// A `valueFrom.fieldRef.fieldPath` (one of [`SUPPORTED_FIELD_PATHS`]).
    FieldRef(String),
}

/// The `fieldRef.fieldPath` values podrun can fill in.
pub const SUPPORTED_FIELD_PATHS: [&str; 6] = [
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "status.podIP",
    "status.hostIP",
    "spec.nodeName",
];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerPort {
    pub name: Option<String>,
    pub container_port: u16,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Resources {
    pub requests: ResourceList,
    pub limits: ResourceList,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ResourceList {
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
}

/// What the pod knows at container start, for `fieldRef` env values.
#[derive(Debug, Clone, Copy)]
pub struct PodFacts<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: &'a str,
    pub pod_ip: &'a str,
    pub node_name: &'a str,
    pub host_ip: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedProcess {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
}
