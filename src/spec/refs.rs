//! ConfigMaps and Secrets of the same apply (as `podman kube play` takes them): their data is
//! copied into the pods that reference them, for `env[].valueFrom.{configMapKeyRef,
//! secretKeyRef}`, `envFrom` and `configMap` / `secret` volumes. A missing object or key is an
//! error of the apply with the kubelet's wording; `optional: true` references are skipped.

use std::collections::BTreeMap;

use super::{EnvSource, EnvVar, PodPlan, ProjectedFile, VolumeSource};

/// One ConfigMap or Secret: its entries as bytes.
#[derive(Debug, Clone)]
pub struct DataObject {
    /// `ConfigMap` or `Secret`.
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub entries: BTreeMap<String, Vec<u8>>,
    /// The object as it is stored on the node (`spec::config_objects`), without the server's
    /// metadata.
    pub document: serde_json::Value,
    /// Its last applied configuration (kubectl's annotation), made from the manifest.
    pub last_applied: String,
    /// The manifest document it came from (several documents).
    pub document_number: Option<usize>,
}

impl DataObject {
    pub fn from_config_map(cm: &k8s_openapi::api::core::v1::ConfigMap) -> Self {
        let mut entries: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (k, v) in cm.data.iter().flatten() {
            entries.insert(k.clone(), v.clone().into_bytes());
        }
        for (k, v) in cm.binary_data.iter().flatten() {
            entries.insert(k.clone(), v.0.clone());
        }
        Self::with_namespace(Self {
            kind: "ConfigMap",
            namespace: super::plan::namespace_or_default(cm.metadata.namespace.as_deref()),
            name: cm.metadata.name.clone().unwrap_or_default(),
            entries,
            document: super::config_objects::stored_config_map(cm),
            last_applied: String::new(),
            document_number: None,
        })
    }

    pub fn from_secret(secret: &k8s_openapi::api::core::v1::Secret) -> Self {
        let mut entries: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (k, v) in secret.data.iter().flatten() {
            entries.insert(k.clone(), v.0.clone());
        }
        // stringData wins over data, as the API server merges it.
        for (k, v) in secret.string_data.iter().flatten() {
            entries.insert(k.clone(), v.clone().into_bytes());
        }
        Self::with_namespace(Self {
            kind: "Secret",
            namespace: super::plan::namespace_or_default(secret.metadata.namespace.as_deref()),
            name: secret.metadata.name.clone().unwrap_or_default(),
            entries,
            document: super::config_objects::stored_secret(secret),
            last_applied: String::new(),
            document_number: None,
        })
    }

    /// The stored form names its namespace (the default one when the manifest names none).
    fn with_namespace(mut self) -> Self {
        self.document["metadata"]["namespace"] = serde_json::json!(self.namespace);
        self
    }

    /// A stored object (as [`Self::document`] holds it), back as its entries.
    pub fn from_stored(object: &serde_json::Value) -> Option<Self> {
        match object["kind"].as_str()? {
            "ConfigMap" => serde_json::from_value(object.clone())
                .ok()
                .map(|cm| Self::from_config_map(&cm)),
            "Secret" => serde_json::from_value(object.clone())
                .ok()
                .map(|s| Self::from_secret(&s)),
            _ => None,
        }
    }
}

/// The Docker config.json of each `imagePullSecrets` Secret of the apply: its
/// `.dockerconfigjson` (type `kubernetes.io/dockerconfigjson`), or a legacy `.dockercfg` (the
/// `auths` map alone) wrapped as one. A secret that is missing is not an error, as in the
/// kubelet: the pull goes on without it (and fails as unauthorized if it needed it).
fn pull_credentials(pod: &PodPlan, objects: &[DataObject]) -> Vec<super::PullCredentials> {
    pod.image_pull_secrets
        .iter()
        .filter_map(|name| {
            let secret = find(objects, "Secret", &pod.namespace, name)?;
            let config_json = match (
                secret.entries.get(".dockerconfigjson"),
                secret.entries.get(".dockercfg"),
            ) {
                (Some(json), _) => String::from_utf8_lossy(json).into_owned(),
                (None, Some(cfg)) => {
                    format!("{{\"auths\": {}}}", String::from_utf8_lossy(cfg))
                }
                (None, None) => return None,
            };
            Some(super::PullCredentials {
                secret: name.clone(),
                config_json,
            })
        })
        .collect()
}

fn find<'a>(
    objects: &'a [DataObject],
    kind: &str,
    namespace: &str,
    name: &str,
) -> Option<&'a DataObject> {
    objects
        .iter()
        .find(|o| o.kind == kind && o.namespace == namespace && o.name == name)
}

/// `configmap "x" not found` / `secret "x" not found`, as the API server says it.
fn not_found(kind: &str, name: &str) -> String {
    format!("{} \"{name}\" not found", kind.to_ascii_lowercase())
}

fn is_env_name(name: &str) -> bool {
    let ok_first = |c: char| c.is_ascii_alphabetic() || "-._".contains(c);
    let mut chars = name.chars();
    chars.next().is_some_and(ok_first) && chars.all(|c| ok_first(c) || c.is_ascii_digit())
}

/// Resolve every reference of `pod` against `objects`; the first problem is returned.
pub fn resolve(pod: &mut PodPlan, objects: &[DataObject]) -> Result<(), String> {
    let namespace = pod.namespace.clone();
    pod.pull_credentials = pull_credentials(pod, objects);
    for container in &mut pod.containers {
        let mut env: Vec<EnvVar> = Vec::new();
        // envFrom first, then env (which wins), as the kubelet builds the environment.
        for from in &container.env_from {
            let Some(obj) = find(objects, &from.kind, &namespace, &from.name) else {
                if from.optional {
                    continue;
                }
                return Err(not_found(&from.kind, &from.name));
            };
            for (key, value) in &obj.entries {
                let name = format!("{}{key}", from.prefix);
                if !is_env_name(&name) {
                    continue; // the kubelet skips these (event InvalidEnvironmentVariableNames)
                }
                env.push(EnvVar {
                    name,
                    source: EnvSource::Literal(String::from_utf8_lossy(value).into_owned()),
                });
            }
        }
        for var in &container.env {
            let EnvSource::KeyRef {
                kind,
                name,
                key,
                optional,
            } = &var.source
            else {
                env.push(var.clone());
                continue;
            };
            let value = match find(objects, kind, &namespace, name) {
                None if *optional => continue,
                None => return Err(not_found(kind, name)),
                Some(obj) => match obj.entries.get(key) {
                    Some(v) => v,
                    None if *optional => continue,
                    None => {
                        return Err(format!(
                            "couldn't find key {key} in {kind} {namespace}/{name}"
                        ));
                    }
                },
            };
            env.push(EnvVar {
                name: var.name.clone(),
                source: EnvSource::Literal(String::from_utf8_lossy(value).into_owned()),
            });
        }
        container.env = env;
    }
    for volume in &mut pod.volumes {
        let VolumeSource::Files {
            kind,
            name,
            optional,
            items,
            default_mode,
            files,
        } = &mut volume.source
        else {
            continue;
        };
        let Some(obj) = find(objects, kind, &namespace, name) else {
            if *optional {
                continue;
            }
            return Err(not_found(kind, name));
        };
        files.clear();
        if items.is_empty() {
            for (key, data) in &obj.entries {
                files.push(ProjectedFile {
                    path: key.clone(),
                    data: k8s_openapi::ByteString(data.clone()),
                    mode: *default_mode,
                });
            }
        } else {
            for (key, path, mode) in items.iter() {
                let Some(data) = obj.entries.get(key) else {
                    if *optional {
                        continue;
                    }
                    let what = if kind == "Secret" { "secret" } else { "config" };
                    return Err(format!(
                        "{} \"{name}\": references non-existent {what} key: {key}",
                        kind.to_ascii_lowercase()
                    ));
                };
                files.push(ProjectedFile {
                    path: path.clone(),
                    data: k8s_openapi::ByteString(data.clone()),
                    mode: mode.map(|m| m as u32).unwrap_or(*default_mode),
                });
            }
        }
    }
    Ok(())
}
