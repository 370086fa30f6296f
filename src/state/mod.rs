//! On-disk state under the podrun root (default `/run/podrun`):
//!
//! ```text
//! <root>/pods/<ns>_<name>/                one pod's state: every file in [`PodPaths`]
//! <root>/deployments/, replicasets/, jobs/ the workload objects (see `workloads.rs`)
//! <root>/configmaps/<ns>/, secrets/<ns>/ stored ConfigMaps and Secrets (`config_objects.rs`)
//! <root>/networks/<bridge>/               host-local style IPAM (see net::ipam)
//! <root>/podrun.lock                      flock serialising network teardown decisions
//! <root>/id                               the root's id (see [`root_id`])
//! ```
//! A pod name is reserved by `mkdir` of its directory, which is atomic, so two concurrent applies
//! of the same name cannot both succeed.

mod applied;
pub mod config_objects;
mod paths;
mod record;
pub mod record_cache;
mod watch;
pub mod workloads;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::lockfile::LockFile;

pub use applied::UpdateRequest;
pub use config_objects::ConfigKind;
pub use paths::{PodPaths, bundle_config};
pub use record::*;
pub use watch::StateWatch;
pub use workloads::{
    DeploymentRecord, JobCondition, JobRecord, JobStatus, ReplicaSetRecord, WorkloadKind,
};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("pods \"{0}\" already exists")]
    AlreadyExists(String),
    #[error("pods \"{0}\" not found")]
    NotFound(String),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("read {path}: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Write `data` to `path` atomically and owner-only (records hold values of Secrets): into a
/// file beside it first, then renamed into place, so a reader sees the old or the new one.
pub(crate) fn write_private(path: &Path, data: &[u8]) -> Result<(), StateError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(name);
    let mut file = File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err("create", &tmp))?;
    file.write_all(data).map_err(io_err("write", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("rename", &tmp))
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StateError + use<> {
    let path = path.to_owned();
    move |source| StateError::Io {
        action,
        path,
        source,
    }
}

/// The id of state root `root`, kept in `<root>/id` and made on first use: two roots at the
/// same path in different mount namespaces (two containers sharing the host's network, each
/// with `/run/podrun`) are two roots. None when the root cannot be written.
pub fn root_id(root: &Path) -> Option<String> {
    let file = root.join("id");
    let read = || {
        fs::read_to_string(&file)
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
    };
    if let Some(id) = read() {
        return Some(id);
    }
    // Written aside, then linked into place: a reader never sees a half-written id, and of two
    // first pods making it at once, one id wins.
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let aside = root.join(format!("id.{}.tmp", std::process::id()));
    fs::write(&aside, format!("{id}\n")).ok()?;
    let _ = fs::hard_link(&aside, &file);
    let _ = fs::remove_file(&aside);
    read()
}

/// Of the file names in a container's directory, the `<restart>.log` files of runs before the
/// previous one of run `current`.
pub fn stale_logs<'a>(names: impl IntoIterator<Item = &'a str>, current: u32) -> Vec<&'a str> {
    let keep_from = current.saturating_sub(1);
    names
        .into_iter()
        .filter(|n| {
            n.strip_suffix(".log")
                .and_then(|run| run.parse::<u32>().ok())
                .is_some_and(|run| run < keep_from)
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// Holds the root flock until dropped.
pub struct RootLock(#[allow(dead_code)] LockFile);

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn pods_dir(&self) -> PathBuf {
        self.root.join("pods")
    }

    pub fn pod_dir(&self, key: &PodKey) -> PathBuf {
        self.pods_dir().join(key.dir_name())
    }

    /// Every file of pod `key`'s state.
    pub fn paths(&self, key: &PodKey) -> PodPaths {
        PodPaths::new(self.pod_dir(key))
    }

    /// Before run `current` of a container starts: remove the logs of its runs before the
    /// previous one. As the kubelet, podrun keeps the current and the previous run's log (what
    /// `logs` and `logs -p` show), so a container in a restart loop keeps two files.
    pub fn prune_container_logs(&self, key: &PodKey, container: &str, current: u32) {
        let dir = self.paths(key).bundle(container);
        let Ok(entries) = fs::read_dir(&dir) else {
            return;
        };
        let names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        for name in stale_logs(names.iter().map(String::as_str), current) {
            let _ = fs::remove_file(dir.join(name));
        }
    }

    /// Serialise decisions that look at all pods (e.g. "is this the last pod on the bridge?").
    pub fn lock(&self) -> Result<RootLock, StateError> {
        fs::create_dir_all(&self.root).map_err(io_err("create", &self.root))?;
        let path = self.root.join("podrun.lock");
        let file = LockFile::exclusive(&path, 0o666).map_err(|e| io_err(e.op, &path)(e.source))?;
        Ok(RootLock(file))
    }

    /// Reserve the pod's name by creating its directory, and write its first record.
    pub fn create(&self, record: &PodRecord) -> Result<(), StateError> {
        let key = record.key();
        let pods = self.pods_dir();
        fs::create_dir_all(&pods).map_err(io_err("create", &pods))?;
        let dir = self.pod_dir(&key);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(StateError::AlreadyExists(key.name.clone()));
            }
            Err(e) => return Err(io_err("create", &dir)(e)),
        }
        self.save(record)
    }

    pub fn exists(&self, key: &PodKey) -> bool {
        self.pod_dir(key).exists()
    }

    pub fn load(&self, key: &PodKey) -> Result<PodRecord, StateError> {
        let path = self.paths(key).record();
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StateError::NotFound(key.name.clone()));
            }
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        serde_json::from_slice(&text).map_err(|source| StateError::Corrupt { path, source })
    }

    /// Atomic replace: readers see the old or the new record, never half of one.
    pub fn save(&self, record: &PodRecord) -> Result<(), StateError> {
        let path = self.paths(&record.key()).record();
        let data = serde_json::to_vec_pretty(record).expect("a PodRecord always serialises");
        write_private(&path, &data)
    }

    /// Every pod record, sorted by namespace and name. Unreadable entries are skipped.
    pub fn list(&self) -> Vec<PodRecord> {
        let paths: Vec<PathBuf> = fs::read_dir(self.pods_dir())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| PodPaths::new(e.path()).record())
            .collect();
        let mut out: Vec<PodRecord> = paths.iter().filter_map(|p| record_cache::read(p)).collect();
        record_cache::retain(&paths);
        out.sort_by_key(|r: &PodRecord| r.key());
        out
    }

    /// Ask the supervisor to stop the pod: written beside the record (which only the
    /// supervisor writes while it lives), read by the supervisor when it gets SIGTERM.
    pub fn request_deletion(
        &self,
        key: &PodKey,
        request: &DeletionRequest,
    ) -> Result<(), StateError> {
        let path = self.paths(key).deletion_request();
        let data = serde_json::to_vec(request).expect("a DeletionRequest always serialises");
        fs::write(&path, data).map_err(io_err("write", &path))
    }

    pub fn deletion_request(&self, key: &PodKey) -> Option<DeletionRequest> {
        let bytes = fs::read(self.paths(key).deletion_request()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Remove the pod's directory (record and logs). Idempotent.
    pub fn remove(&self, key: &PodKey) -> Result<(), StateError> {
        let dir = self.pod_dir(key);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", &dir)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_retention_keeps_the_current_and_the_previous_run() {
        let names = [
            "0.log",
            "1.log",
            "2.log",
            "3.log",
            "config.json",
            "upper",
            "x.log",
            "10.log",
        ];
        let mut stale = stale_logs(names, 3);
        stale.sort();
        assert_eq!(stale, ["0.log", "1.log"]);
        assert_eq!(stale_logs(names, 11).len(), 4);
        assert!(stale_logs(names, 1).is_empty());
        assert!(stale_logs(names, 0).is_empty());
        // Pruned before each run's log is opened: two files at any time.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let key = PodKey::new("default", "p");
        for run in 0..5 {
            store.prune_container_logs(&key, "c", run);
            let path = store.paths(&key).container_log("c", run);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, "").unwrap();
        }
        let mut left: Vec<String> = fs::read_dir(store.paths(&key).bundle("c"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["3.log", "4.log"]);
    }
}
