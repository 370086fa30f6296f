//! Manifests: Kubernetes Pod and Deployment YAML/JSON turned into validated run plans.
//!
//! Pipeline per document (see `load.rs`): YAML → JSON value → kind dispatch → typed
//! k8s-openapi object with unknown-field and type checks → "supported by podrun" whitelist
//! (`strict.rs`) → API-server style validation (`validate.rs`) → plan (`plan.rs`,
//! `deployment.rs`).

mod applied;
pub mod config_objects;
mod deployment;
mod env;
mod error;
mod handlers;
mod load;
mod plan;
pub mod quantity;
mod refs;
mod strict;
mod validate;
pub mod workload;

#[cfg(test)]
mod load_tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use applied::{LAST_APPLIED_ANNOTATION, last_applied};
pub use deployment::{TEMPLATE_HASH_LABEL, template_hash_of};
pub use error::{Origin, SpecError};
pub use handlers::LifecyclePlan;
pub use load::{
    Loaded, Stored, load_file, load_file_in, load_file_with, load_str, load_str_in, load_str_with,
};
pub use plan::set_metadata;
pub use refs::DataObject;

/// One object of a manifest. Not boxed: objects are few and callers match on the plans directly.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Object {
    Pod(PodPlan),
    Deployment(DeploymentPlan),
    ReplicaSet(workload::ReplicaSetPlan),
    Job(workload::JobPlan),
}

impl Object {
    /// The kind, as in the manifest.
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Pod(_) => "Pod",
            Object::Deployment(_) => "Deployment",
            Object::ReplicaSet(_) => "ReplicaSet",
            Object::Job(_) => "Job",
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Object::Pod(p) => &p.name,
            Object::Deployment(d) => &d.name,
            Object::ReplicaSet(r) => &r.name,
            Object::Job(j) => &j.name,
        }
    }

    pub fn namespace(&self) -> &str {
        match self {
            Object::Pod(p) => &p.namespace,
            Object::Deployment(d) => &d.namespace,
            Object::ReplicaSet(r) => &r.namespace,
            Object::Job(j) => &j.namespace,
        }
    }

    /// The plan of the pod (a Pod's own, a workload's template).
    pub fn pod_plan_mut(&mut self) -> &mut PodPlan {
        match self {
            Object::Pod(p) => p,
            Object::Deployment(d) => &mut d.template,
            Object::ReplicaSet(r) => &mut r.template.plan,
            Object::Job(j) => &mut j.template.plan,
        }
    }

    pub fn set_last_applied(&mut self, applied: String) {
        let slot = match self {
            Object::Pod(p) => &mut p.last_applied,
            Object::Deployment(d) => &mut d.last_applied,
            Object::ReplicaSet(r) => &mut r.last_applied,
            Object::Job(j) => &mut j.last_applied,
        };
        *slot = Some(applied);
    }
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
    /// `spec.template` as written (its hash, history, undo).
    #[serde(default)]
    pub template_json: serde_json::Value,
    #[serde(default)]
    pub strategy: workload::Strategy,
    #[serde(default)]
    pub min_ready_seconds: u32,
    #[serde(default)]
    pub revision_history_limit: u32,
    #[serde(default)]
    pub progress_deadline_seconds: u32,
    /// The Deployment as written in the manifest (see [`PodPlan::last_applied`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied: Option<String>,
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
    /// `shareProcessNamespace`: the pause is PID 1 of one PID namespace all containers join.
    #[serde(default)]
    pub share_process_namespace: bool,
    #[serde(default)]
    pub dns: DnsPlan,
    #[serde(default)]
    pub host_aliases: Vec<HostAlias>,
    #[serde(default)]
    pub volumes: Vec<VolumePlan>,
    /// `imagePullSecrets[].name`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<String>,
    /// The registry credentials of those secrets found in the same apply (their
    /// `.dockerconfigjson`), for the pulls of this pod's images; never shown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_credentials: Vec<PullCredentials>,
    /// The object as written in the manifest (kubectl's
    /// `kubectl.kubernetes.io/last-applied-configuration`), for a Pod of the file; None for a
    /// Deployment's pods (their Deployment keeps its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied: Option<String>,
}

/// A `kubernetes.io/dockerconfigjson` Secret's content (a Docker config.json). Its `Debug`
/// shows only the secret's name.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PullCredentials {
    pub secret: String,
    pub config_json: String,
}

impl std::fmt::Debug for PullCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PullCredentials({:?}, <redacted>)", self.secret)
    }
}

/// `dnsPolicy` + `dnsConfig`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DnsPlan {
    /// `ClusterFirst` (the default), `ClusterFirstWithHostNet`, `Default` or `None`.
    pub policy: String,
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    /// `options`: name and optional value.
    pub options: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostAlias {
    pub ip: String,
    pub hostnames: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VolumePlan {
    pub name: String,
    pub source: VolumeSource,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum VolumeSource {
    /// A directory (or with `memory` a tmpfs) that lives as long as the pod.
    EmptyDir {
        memory: bool,
        size_limit: Option<u64>,
    },
    /// `hostPath` with its `type` ("" = no check).
    HostPath { path: String, kind: String },
    /// A `configMap` or `secret` volume, its files resolved from the objects of the same apply.
    Files {
        /// `ConfigMap` or `Secret`.
        kind: String,
        name: String,
        optional: bool,
        /// `items`: (key, path, mode); empty = every key as a file named after it.
        items: Vec<(String, String, Option<i32>)>,
        default_mode: u32,
        /// Filled when the manifest is loaded.
        files: Vec<ProjectedFile>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProjectedFile {
    pub path: String,
    pub data: k8s_openapi::ByteString,
    pub mode: u32,
}

/// hostPath `type` values.
pub const HOST_PATH_TYPES: [&str; 8] = [
    "",
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VolumeMountPlan {
    pub name: String,
    pub mount_path: String,
    pub read_only: bool,
    pub sub_path: Option<String>,
}

/// The effective security context of a container (pod-level values filled in, as the kubelet's
/// `DetermineEffectiveSecurityContext`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SecurityPlan {
    pub privileged: bool,
    pub allow_privilege_escalation: Option<bool>,
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub run_as_non_root: Option<bool>,
    pub read_only_root_filesystem: bool,
    /// `capabilities.add` / `drop` as written (`NET_RAW`, `ALL`).
    pub capabilities_add: Vec<String>,
    pub capabilities_drop: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Owner {
    /// `ReplicaSet` or `Job`.
    pub kind: String,
    pub name: String,
    /// The deployment that owns the ReplicaSet.
    pub deployment: Option<String>,
    /// The owner's uid (`ownerReferences[0].uid`).
    #[serde(default)]
    pub uid: String,
}

impl Owner {
    /// The owner's apiVersion.
    pub fn api_version(&self) -> &'static str {
        match self.kind.as_str() {
            "Job" => "batch/v1",
            _ => "apps/v1",
        }
    }
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

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
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
    #[serde(default)]
    pub volume_mounts: Vec<VolumeMountPlan>,
    #[serde(default)]
    pub security: SecurityPlan,
    /// `envFrom`, resolved at load time into literal variables placed before `env`.
    #[serde(default)]
    pub env_from: Vec<EnvFromPlan>,
    /// An init container (`spec.initContainers`): runs to completion, in order, before the app
    /// containers. The plan lists them first.
    #[serde(default)]
    pub init: bool,
    /// A native sidecar: an init container with `restartPolicy: Always` (started in order with
    /// the init containers, kept running and restarted whatever the pod's policy).
    #[serde(default)]
    pub sidecar: bool,
    #[serde(default)]
    pub probes: crate::probe::ContainerProbes,
    #[serde(default)]
    pub lifecycle: LifecyclePlan,
    /// `terminationMessagePath` (default `/dev/termination-log`).
    #[serde(default = "default_termination_message_path")]
    pub termination_message_path: String,
    /// `terminationMessagePolicy: FallbackToLogsOnError` (else `File`).
    #[serde(default)]
    pub termination_message_fallback_to_logs: bool,
}

fn default_termination_message_path() -> String {
    handlers::DEFAULT_TERMINATION_MESSAGE_PATH.into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EnvFromPlan {
    /// `ConfigMap` or `Secret`.
    pub kind: String,
    pub name: String,
    pub prefix: String,
    pub optional: bool,
}

impl PodPlan {
    /// Where container `i` of [`PodPlan::containers`] is in the manifest's spec:
    /// `spec.initContainers[0]` or `spec.containers[1]` (init containers are listed first).
    pub fn container_field(&self, i: usize) -> String {
        let inits = self.containers.iter().filter(|c| c.init).count();
        match i.checked_sub(inits) {
            None => format!("spec.initContainers[{i}]"),
            Some(j) => format!("spec.containers[{j}]"),
        }
    }
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
    /// `valueFrom.configMapKeyRef` / `secretKeyRef` (kind `ConfigMap` or `Secret`), replaced by
    /// a `Literal` when the manifest is loaded.
    KeyRef {
        kind: String,
        name: String,
        key: String,
        optional: bool,
    },
    /// A value taken from a ConfigMap or Secret: never `$(VAR)`-expanded.
    Literal(String),
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
    /// `hostPort` (absent or 0: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    /// `hostIP` (absent, empty or `0.0.0.0`: every node address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<std::net::Ipv4Addr>,
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
