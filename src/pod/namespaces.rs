//! Namespaces made and deleted on purpose (`kubectl create namespace`, `kubectl delete
//! namespace`): a namespace is in use when a pod or workload is in it (as podrun has always
//! listed them) or when it was created, recorded as `<root>/namespaces/<name>.json` (its
//! labels and creation time). Deleting one deletes every pod and workload in it first, as
//! the namespace controller does, then its ConfigMaps and Secrets and its record; `default`
//! may not be deleted.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::PodError;
use crate::config::Config;
use crate::state::{ConfigKind, PodKey, WorkloadKind};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamespaceRecord {
    pub name: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn dir(cfg: &Config) -> std::path::PathBuf {
    cfg.root.join("namespaces")
}

/// Why a namespace could not be made or deleted, in the API server's words.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error(
        "Namespace \"{0}\" is invalid: metadata.name: Invalid value: \"{0}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    )]
    Invalid(String),
    #[error("namespaces \"{0}\" already exists")]
    AlreadyExists(String),
    #[error("namespaces \"{0}\" not found")]
    NotFound(String),
    #[error("namespaces \"{0}\" is forbidden: this namespace may not be deleted")]
    Forbidden(String),
    #[error(transparent)]
    Pod(#[from] PodError),
}

/// An RFC 1123 label: 1-63 of `[a-z0-9-]`, alphanumeric at both ends.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// The namespaces created on purpose.
pub fn recorded(cfg: &Config) -> Vec<NamespaceRecord> {
    let Ok(entries) = std::fs::read_dir(dir(cfg)) else {
        return Vec::new();
    };
    let mut out: Vec<NamespaceRecord> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Whether anything is in namespace `name` (or it was created).
pub fn in_use(cfg: &Config, name: &str) -> bool {
    name == "default"
        || dir(cfg).join(format!("{name}.json")).exists()
        || !super::read::list(cfg, Some(name)).is_empty()
        || {
            let store = cfg.store();
            store.list_deployments().iter().any(|d| d.namespace == name)
                || store
                    .list_replica_sets()
                    .iter()
                    .any(|r| r.namespace == name)
                || store.list_jobs().iter().any(|j| j.namespace == name)
        }
}

pub fn create(
    cfg: &Config,
    name: &str,
    labels: BTreeMap<String, String>,
) -> std::result::Result<NamespaceRecord, NamespaceError> {
    if !valid_name(name) {
        return Err(NamespaceError::Invalid(name.to_owned()));
    }
    if in_use(cfg, name) {
        return Err(NamespaceError::AlreadyExists(name.to_owned()));
    }
    let record = NamespaceRecord {
        name: name.to_owned(),
        created_at: Utc::now(),
        labels,
    };
    let d = dir(cfg);
    std::fs::create_dir_all(&d).map_err(|e| PodError::Io {
        context: format!("create {}", d.display()),
        source: e,
    })?;
    let bytes = serde_json::to_vec(&record).unwrap_or_default();
    crate::state::write_private(&d.join(format!("{name}.json")), &bytes).map_err(PodError::from)?;
    Ok(record)
}

/// Delete every pod and workload in `name`, then the namespace.
pub fn delete(cfg: &Config, name: &str) -> std::result::Result<(), NamespaceError> {
    if name == "default" {
        return Err(NamespaceError::Forbidden(name.to_owned()));
    }
    if !in_use(cfg, name) {
        return Err(NamespaceError::NotFound(name.to_owned()));
    }
    let store = cfg.store();
    let workloads: Vec<(WorkloadKind, PodKey)> = store
        .list_deployments()
        .iter()
        .filter(|d| d.namespace == name)
        .map(|d| (WorkloadKind::Deployment, d.key()))
        .chain(
            store
                .list_replica_sets()
                .iter()
                .filter(|r| r.namespace == name)
                .map(|r| (WorkloadKind::ReplicaSet, r.key())),
        )
        .chain(
            store
                .list_jobs()
                .iter()
                .filter(|j| j.namespace == name)
                .map(|j| (WorkloadKind::Job, j.key())),
        )
        .collect();
    for (kind, key) in workloads {
        // A ReplicaSet forgotten with its Deployment is not found any more: fine.
        let _ = super::workloads::forget(&store, kind, &key);
    }
    let mut stopping = Vec::new();
    for r in super::read::list(cfg, Some(name)) {
        let key = PodKey::new(name, &r.plan.name);
        match super::delete::request_stop(cfg, &key, None) {
            Ok((s, _)) => stopping.push(s),
            Err(crate::state::StateError::NotFound(_)) => {}
            Err(e) => return Err(PodError::from(e).into()),
        }
    }
    for s in stopping {
        super::delete::finish(cfg, s)?;
    }
    // Its ConfigMaps and Secrets, once no pod of it can read them.
    for kind in ConfigKind::ALL {
        for o in store.list_configs(kind, Some(name)) {
            if let Some(n) = o["metadata"]["name"].as_str() {
                store.remove_config(kind, name, n).map_err(PodError::from)?;
            }
        }
    }
    let file = dir(cfg).join(format!("{name}.json"));
    match std::fs::remove_file(&file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PodError::Io {
            context: format!("remove {}", file.display()),
            source: e,
        }
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_rfc_1123_labels() {
        assert!(valid_name("team-a"));
        assert!(valid_name("a1"));
        for bad in ["", "Team", "-a", "a-", "a_b", &"a".repeat(64)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
