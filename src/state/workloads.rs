//! The workload objects: what a Deployment, a ReplicaSet or a Job is besides its pods.
//!
//! ```text
//! <root>/deployments/<ns>_<name>.json       a Deployment (its spec: apply, scale, rollout write it)
//! <root>/replicasets/<ns>_<name>.json       a ReplicaSet (a Deployment's: the controller writes it)
//! <root>/jobs/<ns>_<name>.json              a Job (apply writes it)
//! <root>/jobs/<ns>_<name>.status.json       its status (the controller writes it)
//! <root>/events/<kind>_<ns>_<name>.json    a workload's events (the controller writes them)
//! <root>/events/<kind>_<ns>_<name>.json    a workload's events (the controller writes them)
//! <root>/workloads.lock                     flock: one writer of workload objects and pods at a time
//! ```
//!
//! Each file is written aside and renamed into place: a reader sees the old or the new one.
//! The verbs and the controller change workload objects only while they hold the workloads
//! lock ([`Store::workloads_lock`]), so a controller pass never sees a Deployment half-applied
//! (its pods made, its ReplicaSet not yet recorded) nor half-deleted.

use std::fs;
use std::io;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{PodKey, StateError, Store, io_err};
use crate::lockfile::LockFile;
use crate::spec::DeploymentPlan;
use crate::spec::workload::{JobPlan, PodTemplate};

/// `deployment.kubernetes.io/revision`.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// `kubernetes.io/change-cause` (shown by `rollout history`).
pub const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";

/// A Deployment: its spec as last applied, scaled or rolled back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// `kubectl.kubernetes.io/last-applied-configuration`.
    pub last_applied: String,
    pub created_at: DateTime<Utc>,
    /// `metadata.generation`: one more at every change of the spec.
    pub generation: u64,
    /// The spec: replicas, strategy, the template and its hash.
    pub plan: DeploymentPlan,
}

impl DeploymentRecord {
    pub fn key(&self) -> PodKey {
        PodKey::new(&self.namespace, &self.name)
    }
}

/// A ReplicaSet: the pods of one template, `replicas` of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaSetRecord {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The Deployment that owns it (name, uid), None for one applied on its own.
    pub deployment: Option<(String, String)>,
    pub replicas: u32,
    pub min_ready_seconds: u32,
    pub labels: std::collections::BTreeMap<String, String>,
    pub annotations: std::collections::BTreeMap<String, String>,
    pub selector: std::collections::BTreeMap<String, String>,
    /// Its pods' template (a Deployment's carries the `pod-template-hash` label).
    pub template: PodTemplate,
    /// `pod-template-hash` of a Deployment's ReplicaSet.
    pub template_hash: Option<String>,
    /// `last-applied-configuration` of one applied on its own.
    pub last_applied: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl ReplicaSetRecord {
    pub fn key(&self) -> PodKey {
        PodKey::new(&self.namespace, &self.name)
    }

    /// `deployment.kubernetes.io/revision` (0 for none).
    pub fn revision(&self) -> u64 {
        self.annotations
            .get(REVISION_ANNOTATION)
            .and_then(|r| r.parse().ok())
            .unwrap_or(0)
    }

    pub fn set_revision(&mut self, revision: u64) {
        self.annotations
            .insert(REVISION_ANNOTATION.to_owned(), revision.to_string());
    }
}

/// A Job: its spec as applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub last_applied: String,
    pub created_at: DateTime<Utc>,
    pub plan: JobPlan,
}

impl JobRecord {
    pub fn key(&self) -> PodKey {
        PodKey::new(&self.namespace, &self.name)
    }
}

/// A Job's status, as the Job controller keeps it (only the controller writes it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    pub start_time: Option<DateTime<Utc>>,
    pub completion_time: Option<DateTime<Utc>>,
    pub active: u32,
    pub succeeded: u32,
    pub failed: u32,
    /// `Complete` or `Failed`, with its reason and message, once the Job finished.
    pub finished: Option<JobCondition>,
    /// When the last pod failed (the back-off before the next one starts).
    pub last_failure: Option<DateTime<Utc>>,
    /// The uids of the finished pods already counted (each counted once), while they exist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counted: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobCondition {
    /// `Complete` or `Failed`.
    pub kind: String,
    pub reason: String,
    pub message: String,
    pub at: DateTime<Utc>,
}

/// The three kinds of workload file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment,
    ReplicaSet,
    Job,
}

impl WorkloadKind {
    fn dir(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployments",
            WorkloadKind::ReplicaSet => "replicasets",
            WorkloadKind::Job => "jobs",
        }
    }

    pub const ALL: [WorkloadKind; 3] = [
        WorkloadKind::Deployment,
        WorkloadKind::ReplicaSet,
        WorkloadKind::Job,
    ];
}

/// The workloads lock, held while workload objects (and the pods they make) change.
pub struct WorkloadsLock(#[allow(dead_code)] LockFile);

impl Store {
    /// The directory of `kind`'s files.
    pub fn workload_dir(&self, kind: WorkloadKind) -> PathBuf {
        self.root().join(kind.dir())
    }

    fn workload_file(&self, kind: WorkloadKind, key: &PodKey, suffix: &str) -> PathBuf {
        self.workload_dir(kind)
            .join(format!("{}{suffix}.json", key.dir_name()))
    }

    /// Serialise changes of workload objects between the verbs and the controller.
    pub fn workloads_lock(&self) -> Result<WorkloadsLock, StateError> {
        fs::create_dir_all(self.root()).map_err(io_err("create", self.root()))?;
        let path = self.root().join("workloads.lock");
        let file = LockFile::exclusive(&path, 0o600).map_err(|e| io_err(e.op, &path)(e.source))?;
        Ok(WorkloadsLock(file))
    }

    pub fn load_deployment(&self, key: &PodKey) -> Result<Option<DeploymentRecord>, StateError> {
        read_json(self.workload_file(WorkloadKind::Deployment, key, ""))
    }

    pub fn save_deployment(&self, record: &DeploymentRecord) -> Result<(), StateError> {
        let path = self.workload_file(WorkloadKind::Deployment, &record.key(), "");
        write_json(path, record)
    }

    pub fn list_deployments(&self) -> Vec<DeploymentRecord> {
        list_json(self.workload_dir(WorkloadKind::Deployment))
    }

    pub fn load_replica_set(&self, key: &PodKey) -> Result<Option<ReplicaSetRecord>, StateError> {
        read_json(self.workload_file(WorkloadKind::ReplicaSet, key, ""))
    }

    pub fn save_replica_set(&self, record: &ReplicaSetRecord) -> Result<(), StateError> {
        let path = self.workload_file(WorkloadKind::ReplicaSet, &record.key(), "");
        write_json(path, record)
    }

    pub fn list_replica_sets(&self) -> Vec<ReplicaSetRecord> {
        list_json(self.workload_dir(WorkloadKind::ReplicaSet))
    }

    pub fn load_job(&self, key: &PodKey) -> Result<Option<JobRecord>, StateError> {
        read_json(self.workload_file(WorkloadKind::Job, key, ""))
    }

    pub fn save_job(&self, record: &JobRecord) -> Result<(), StateError> {
        write_json(
            self.workload_file(WorkloadKind::Job, &record.key(), ""),
            record,
        )
    }

    pub fn list_jobs(&self) -> Vec<JobRecord> {
        list_json(self.workload_dir(WorkloadKind::Job))
    }

    /// Job `key`'s status (default: not started yet).
    pub fn job_status(&self, key: &PodKey) -> JobStatus {
        read_json(self.workload_file(WorkloadKind::Job, key, ".status"))
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    pub fn save_job_status(&self, key: &PodKey, status: &JobStatus) -> Result<(), StateError> {
        write_json(
            self.workload_file(WorkloadKind::Job, key, ".status"),
            status,
        )
    }

    fn events_file(&self, kind: WorkloadKind, key: &PodKey) -> PathBuf {
        self.root()
            .join("events")
            .join(format!("{}_{}.json", kind.dir(), key.dir_name()))
    }

    /// Workload `key`'s events, oldest first.
    pub fn workload_events(&self, kind: WorkloadKind, key: &PodKey) -> Vec<super::Event> {
        read_json(self.events_file(kind, key))
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Add an event to workload `key` (a repeat counts up; the last 50 are kept). Outside the
    /// directories the controller watches: writing one wakes nothing.
    pub fn add_workload_event(
        &self,
        kind: WorkloadKind,
        key: &PodKey,
        event_type: &str,
        reason: &str,
        message: String,
    ) {
        let mut events = self.workload_events(kind, key);
        super::record::record_event(&mut events, event_type, reason, message, Utc::now());
        let excess = events.len().saturating_sub(50);
        events.drain(..excess);
        let _ = write_json(self.events_file(kind, key), &events);
    }

    /// Forget workload `key` of `kind` (idempotent; a Job's status and its events with it).
    pub fn remove_workload(&self, kind: WorkloadKind, key: &PodKey) -> Result<(), StateError> {
        let _ = fs::remove_file(self.events_file(kind, key));
        for suffix in ["", ".status"] {
            let path = self.workload_file(kind, key, suffix);
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_err("remove", &path)(e));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether any workload object is recorded (a controller has work).
    pub fn has_workloads(&self) -> bool {
        WorkloadKind::ALL.iter().any(|k| {
            fs::read_dir(self.workload_dir(*k))
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".json"))
        })
    }
}

fn read_json<T: DeserializeOwned>(path: PathBuf) -> Result<Option<T>, StateError> {
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StateError::Corrupt { path, source }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", &path)(e)),
    }
}

/// Written aside (owner-only: templates hold values of Secrets), then renamed into place.
fn write_json<T: Serialize>(path: PathBuf, value: &T) -> Result<(), StateError> {
    let dir = path.parent().expect("a workload file has a directory");
    fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    let data = serde_json::to_vec(value).expect("a workload record serialises");
    super::write_private(&path, &data)
}

/// Every record in `dir` (not the `.status` files), sorted by key; unreadable ones skipped.
fn list_json<T: DeserializeOwned>(dir: PathBuf) -> Vec<T> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.ends_with(".json") && !name.ends_with(".status.json")
        })
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| fs::read(p).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_status_round_trips_beside_its_job() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let key = PodKey::new("default", "pi");
        assert_eq!(store.job_status(&key), JobStatus::default());
        let status = JobStatus {
            succeeded: 2,
            ..JobStatus::default()
        };
        store.save_job_status(&key, &status).unwrap();
        assert_eq!(store.job_status(&key), status);
        assert!(store.list_jobs().is_empty(), "a status file is not a Job");
        store.remove_workload(WorkloadKind::Job, &key).unwrap();
        store.remove_workload(WorkloadKind::Job, &key).unwrap();
        assert_eq!(store.job_status(&key), JobStatus::default());
    }
}
