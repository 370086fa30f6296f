//! What declarative `apply` keeps besides the pod records:
//!
//! - a [`DeploymentRecord`] per applied Deployment (`<root>/deployments/<ns>_<name>.json`),
//!   its last applied configuration and the ReplicaSet its pods belong to: the Deployment is
//!   an object of its own (its pods are named after it but do not carry its manifest), and a
//!   second apply compares against it;
//! - an [`UpdateRequest`] beside a pod's record (`update.json`): the record is the
//!   supervisor's while it lives, so apply hands it the updated plan there and signals it
//!   (SIGUSR1), as `delete` hands over its deletion request with SIGTERM.

use std::fs;
use std::io;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{PodKey, StateError, Store, io_err};
use crate::container::image::ContainerImage;
use crate::spec::PodPlan;

/// An applied Deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// `kubectl.kubernetes.io/last-applied-configuration`.
    pub last_applied: String,
    pub replicas: u32,
    pub template_hash: String,
    pub replica_set_name: String,
    pub created_at: DateTime<Utc>,
}

impl DeploymentRecord {
    pub fn key(&self) -> PodKey {
        PodKey::new(&self.namespace, &self.name)
    }
}

/// A pod's plan changed by apply, for its supervisor: the new plan (same uid, same
/// containers), and the images apply resolved for the containers whose image changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateRequest {
    pub plan: PodPlan,
    /// (container name, its new image as resolved).
    pub images: Vec<(String, ContainerImage)>,
    pub requested_at: DateTime<Utc>,
}

impl Store {
    pub fn deployments_dir(&self) -> PathBuf {
        self.root().join("deployments")
    }

    /// The file of Deployment `key`.
    pub fn deployment_file(&self, key: &PodKey) -> PathBuf {
        self.deployments_dir()
            .join(format!("{}.json", key.dir_name()))
    }

    /// Deployment `key`'s record, None if it was never applied (or was deleted).
    pub fn load_deployment(&self, key: &PodKey) -> Result<Option<DeploymentRecord>, StateError> {
        let path = self.deployment_file(key);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| StateError::Corrupt { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    /// Write (or replace, atomically) a Deployment's record.
    pub fn save_deployment(&self, record: &DeploymentRecord) -> Result<(), StateError> {
        let dir = self.deployments_dir();
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let path = self.deployment_file(&record.key());
        let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
        let data = serde_json::to_vec_pretty(record).expect("a DeploymentRecord serialises");
        fs::write(&tmp, data).map_err(io_err("write", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))
    }

    /// Forget Deployment `key` (idempotent).
    pub fn remove_deployment(&self, key: &PodKey) -> Result<(), StateError> {
        let path = self.deployment_file(key);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", &path)(e)),
            _ => Ok(()),
        }
    }

    /// Hand pod `key`'s supervisor an update (written aside, then renamed into place: the
    /// supervisor never reads half of one).
    pub fn request_update(&self, key: &PodKey, request: &UpdateRequest) -> Result<(), StateError> {
        let path = self.paths(key).update_request();
        let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
        let data = serde_json::to_vec(request).expect("an UpdateRequest serialises");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            // Owner-only, as the record: the plan holds values of the pod's Secrets.
            let mut file = fs::File::options()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io_err("create", &tmp))?;
            file.write_all(&data).map_err(io_err("write", &tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))
    }

    /// The pending update of pod `key`, taken (the file is removed): for its supervisor.
    pub fn take_update_request(&self, key: &PodKey) -> Option<UpdateRequest> {
        let path = self.paths(key).update_request();
        let bytes = fs::read(&path).ok()?;
        let _ = fs::remove_file(&path);
        serde_json::from_slice(&bytes).ok()
    }

    /// An update of pod `key` is waiting for its supervisor.
    pub fn update_pending(&self, key: &PodKey) -> bool {
        self.paths(key).update_request().exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let key = PodKey::new("default", "web");
        assert_eq!(store.load_deployment(&key).unwrap(), None);
        let record = DeploymentRecord {
            namespace: "default".into(),
            name: "web".into(),
            uid: "u".into(),
            last_applied: "{}\n".into(),
            replicas: 3,
            template_hash: "h".into(),
            replica_set_name: "web-h".into(),
            created_at: Utc::now(),
        };
        store.save_deployment(&record).unwrap();
        assert_eq!(store.load_deployment(&key).unwrap(), Some(record));
        store.remove_deployment(&key).unwrap();
        store.remove_deployment(&key).unwrap();
        assert_eq!(store.load_deployment(&key).unwrap(), None);
    }
}
