//! STUB: replaced by the spec branch. Types only, to let the rest compile.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

pub fn load_file(_path: &Path) -> Result<Vec<Object>, SpecError> {
    todo!()
}
pub enum Object {
    Pod(PodPlan),
    Deployment(DeploymentPlan),
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeploymentPlan {
    pub name: String,
    pub namespace: String,
    pub replicas: u32,
    pub template_hash: String,
    pub uid: String,
}
impl DeploymentPlan {
    pub fn pod_plans(&self) -> Vec<PodPlan> {
        todo!()
    }
}
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Owner {
    pub kind: String,
    pub name: String,
    pub deployment: Option<String>,
}
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
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
    pub manifest: serde_json::Value,
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnvVar {
    pub name: String,
    pub source: EnvSource,
}
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum EnvSource {
    Value(String),
    FieldRef(String),
}
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerPort {
    pub name: Option<String>,
    pub container_port: u16,
    pub protocol: String,
}
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Resources {
    pub requests: ResourceList,
    pub limits: ResourceList,
}
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ResourceList {
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
}
pub struct PodFacts<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: &'a str,
    pub pod_ip: &'a str,
    pub node_name: &'a str,
    pub host_ip: &'a str,
}
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResolvedProcess {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
}
impl ContainerPlan {
    pub fn resolve(&self, _facts: &PodFacts) -> ResolvedProcess {
        todo!()
    }
}
