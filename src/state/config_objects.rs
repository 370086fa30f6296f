//! ConfigMaps and Secrets stored on the node, as the API server keeps them:
//!
//! ```text
//! <root>/configmaps/<ns>/<name>.json   one ConfigMap, the object as the API returns it
//! <root>/secrets/<ns>/<name>.json      one Secret (its data base64, as the API returns it)
//! ```
//! Every file is written aside and renamed into place ([`super::write_private`], mode 0600:
//! a reader sees the old or the new object, and a Secret's values are root's alone); the
//! directories are 0700.

use std::fs;
use std::io;
use std::path::PathBuf;

use serde_json::Value;

use super::{StateError, Store, io_err};

/// The two kinds stored here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigKind {
    ConfigMap,
    Secret,
}

impl ConfigKind {
    pub const ALL: [ConfigKind; 2] = [ConfigKind::ConfigMap, ConfigKind::Secret];

    /// The resource's plural (and its directory's name): `configmaps`, `secrets`.
    pub fn plural(self) -> &'static str {
        match self {
            ConfigKind::ConfigMap => "configmaps",
            ConfigKind::Secret => "secrets",
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            ConfigKind::ConfigMap => "ConfigMap",
            ConfigKind::Secret => "Secret",
        }
    }

    /// `configmap`, `secret` (kubectl's `configmap/NAME created`).
    pub fn singular(self) -> &'static str {
        match self {
            ConfigKind::ConfigMap => "configmap",
            ConfigKind::Secret => "secret",
        }
    }

    pub fn from_kind(kind: &str) -> Option<ConfigKind> {
        match kind {
            "ConfigMap" => Some(ConfigKind::ConfigMap),
            "Secret" => Some(ConfigKind::Secret),
            _ => None,
        }
    }

    /// The resource words kubectl takes: `configmaps`, `configmap`, `cm`, `secrets`, `secret`.
    pub fn from_word(word: &str) -> Option<ConfigKind> {
        match word {
            "configmaps" | "configmap" | "cm" => Some(ConfigKind::ConfigMap),
            "secrets" | "secret" => Some(ConfigKind::Secret),
            _ => None,
        }
    }
}

/// A name that is safe as a file name (the API server's DNS subdomain rule is checked at
/// load; this only keeps a path out of the store).
fn safe(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

impl Store {
    /// `<root>/configmaps` or `<root>/secrets`.
    pub fn config_dir(&self, kind: ConfigKind) -> PathBuf {
        self.root().join(kind.plural())
    }

    fn config_path(&self, kind: ConfigKind, namespace: &str, name: &str) -> Option<PathBuf> {
        (safe(namespace) && safe(name)).then(|| {
            self.config_dir(kind)
                .join(namespace)
                .join(format!("{name}.json"))
        })
    }

    /// Store `object` (its `metadata.namespace` and `metadata.name` say where), replacing
    /// the one stored before.
    pub fn save_config(&self, kind: ConfigKind, object: &Value) -> Result<(), StateError> {
        use std::os::unix::fs::DirBuilderExt;
        let meta = &object["metadata"];
        let (ns, name) = (
            meta["namespace"].as_str().unwrap_or_default(),
            meta["name"].as_str().unwrap_or_default(),
        );
        let path = self
            .config_path(kind, ns, name)
            .ok_or_else(|| StateError::Io {
                action: "name",
                path: self.config_dir(kind),
                source: io::Error::new(io::ErrorKind::InvalidInput, format!("{ns}/{name}")),
            })?;
        let dir = path.parent().expect("a namespace directory");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err("create", dir))?;
        let data = serde_json::to_vec_pretty(object).expect("a JSON value always serialises");
        super::write_private(&path, &data)
    }

    /// The object stored as `namespace/name`, if any (an unreadable file is none).
    pub fn load_config(&self, kind: ConfigKind, namespace: &str, name: &str) -> Option<Value> {
        let path = self.config_path(kind, namespace, name)?;
        serde_json::from_slice(&fs::read(path).ok()?).ok()
    }

    /// The objects of `namespace` (every namespace: None), sorted by namespace and name.
    pub fn list_configs(&self, kind: ConfigKind, namespace: Option<&str>) -> Vec<Value> {
        let dir = self.config_dir(kind);
        let namespaces: Vec<PathBuf> = match namespace {
            Some(ns) if safe(ns) => vec![dir.join(ns)],
            Some(_) => Vec::new(),
            None => fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .collect(),
        };
        let mut out: Vec<Value> = namespaces
            .iter()
            .flat_map(|d| fs::read_dir(d).into_iter().flatten().flatten())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .filter_map(|e| fs::read(e.path()).ok())
            .filter_map(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .collect();
        let key = |v: &Value| {
            (
                v["metadata"]["namespace"].as_str().unwrap_or("").to_owned(),
                v["metadata"]["name"].as_str().unwrap_or("").to_owned(),
            )
        };
        out.sort_by_key(key);
        out
    }

    /// Remove `namespace/name`; false if there was none.
    pub fn remove_config(
        &self,
        kind: ConfigKind,
        namespace: &str,
        name: &str,
    ) -> Result<bool, StateError> {
        let Some(path) = self.config_path(kind, namespace, name) else {
            return Ok(false);
        };
        match fs::remove_file(&path) {
            // The namespace's directory stays: the state's inotify watches keep hearing it.
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("remove", &path)(e)),
        }
    }

    /// The namespace directories of both kinds (for the state's inotify watches).
    pub fn config_watch_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        for kind in ConfigKind::ALL {
            let dir = self.config_dir(kind);
            dirs.extend(
                fs::read_dir(&dir)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path()),
            );
            dirs.push(dir);
        }
        dirs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    fn cm(ns: &str, name: &str, a: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns}, "data": {"a": a}})
    }

    #[test]
    fn stored_listed_replaced_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let kind = ConfigKind::ConfigMap;
        assert!(store.list_configs(kind, None).is_empty());
        store.save_config(kind, &cm("default", "b", "1")).unwrap();
        store.save_config(kind, &cm("default", "a", "1")).unwrap();
        store.save_config(kind, &cm("other", "a", "2")).unwrap();
        let names = |ns| {
            store
                .list_configs(kind, ns)
                .iter()
                .map(|v| {
                    format!(
                        "{}/{}",
                        v["metadata"]["namespace"].as_str().unwrap(),
                        v["metadata"]["name"].as_str().unwrap()
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(names(None), ["default/a", "default/b", "other/a"]);
        assert_eq!(names(Some("other")), ["other/a"]);
        assert!(names(Some("none")).is_empty());
        store.save_config(kind, &cm("default", "a", "3")).unwrap();
        assert_eq!(
            store.load_config(kind, "default", "a").unwrap()["data"]["a"],
            "3"
        );
        // Secrets are another directory: the names do not meet.
        assert!(
            store
                .load_config(ConfigKind::Secret, "default", "a")
                .is_none()
        );
        assert!(store.remove_config(kind, "default", "a").unwrap());
        assert!(!store.remove_config(kind, "default", "a").unwrap());
        assert!(store.remove_config(kind, "other", "a").unwrap());
        assert!(store.list_configs(kind, Some("other")).is_empty());
        // No temporary file is left beside the objects.
        let left: Vec<_> = fs::read_dir(dir.path().join("configmaps/default"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["b.json"]);
    }

    #[test]
    fn secrets_are_private_and_names_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "pw", "namespace": "default"}, "data": {"pw": "aHVudGVyMg=="}});
        store.save_config(ConfigKind::Secret, &secret).unwrap();
        let file = dir.path().join("secrets/default/pw.json");
        let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(file.parent().unwrap()), 0o700);
        assert_eq!(
            store
                .load_config(ConfigKind::Secret, "default", "pw")
                .unwrap(),
            secret
        );
        let bad = cm("default", "../x", "1");
        assert!(store.save_config(ConfigKind::ConfigMap, &bad).is_err());
        assert!(
            store
                .load_config(ConfigKind::ConfigMap, "..", "x")
                .is_none()
        );
    }

    #[test]
    fn kind_words() {
        assert_eq!(ConfigKind::from_word("cm"), Some(ConfigKind::ConfigMap));
        assert_eq!(ConfigKind::from_word("secrets"), Some(ConfigKind::Secret));
        assert_eq!(ConfigKind::from_word("pods"), None);
        assert_eq!(ConfigKind::Secret.plural(), "secrets");
    }
}
