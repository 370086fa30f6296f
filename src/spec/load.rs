//! Reading manifests: YAML (or JSON) documents, kind dispatch, and the per-kind pipeline
//! decode → unknown fields → unsupported fields → validation → plan.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use serde_json::Value;

use super::deployment::deployment_plan;
use super::error::{Origin, SpecError};
use super::plan::{namespace_or_default, pod_plan};
use super::refs::{self, DataObject};
use super::strict::{Shape, decode_typed, unsupported_fields};
use super::validate::{
    deployment_problems, job_problems, pod_problems, replica_set_problems, unsupported_values,
};
use super::{Object, PodPlan};

/// Kinds Kubernetes has but podrun does not run yet, with their apiVersion.
const KNOWN_KINDS: &[(&str, &str)] = &[
    ("v1", "Service"),
    ("v1", "Namespace"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "PersistentVolume"),
    ("v1", "ServiceAccount"),
    ("v1", "Endpoints"),
    ("v1", "ReplicationController"),
    ("v1", "LimitRange"),
    ("v1", "ResourceQuota"),
    ("v1", "PodTemplate"),
    ("v1", "List"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "StatefulSet"),
    ("batch/v1", "CronJob"),
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("policy/v1", "PodDisruptionBudget"),
    ("autoscaling/v1", "HorizontalPodAutoscaler"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("storage.k8s.io/v1", "StorageClass"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
];

/// Loads every object of a manifest file; `-` reads standard input.
pub fn load_file(path: &Path) -> Result<Vec<Object>, SpecError> {
    load_file_in(path, None)
}

/// The text of `path` (`-`: stdin) and the name errors give it.
fn read_source(path: &Path) -> Result<(String, String), SpecError> {
    let source_name = if path == Path::new("-") {
        "<stdin>".to_string()
    } else {
        path.display().to_string()
    };
    let text = read_text(path).map_err(|error| SpecError::Read {
        source_name: source_name.clone(),
        error,
    })?;
    Ok((text, source_name))
}

/// As [`load_file`], with kubectl's `--namespace`: objects without a namespace get it, and an
/// object naming another namespace is an error.
pub fn load_file_in(path: &Path, namespace: Option<&str>) -> Result<Vec<Object>, SpecError> {
    let (text, source_name) = read_source(path)?;
    load_str_in(&text, &source_name, namespace)
}

fn read_text(path: &Path) -> std::io::Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        Ok(text)
    } else {
        std::fs::read_to_string(path)
    }
}

/// Loads every object of manifest `text`; `source` names it in messages.
pub fn load_str(text: &str, source: &str) -> Result<Vec<Object>, SpecError> {
    load_str_in(text, source, None)
}

/// As [`load_str`], with kubectl's `--namespace` (see [`load_file_in`]).
pub fn load_str_in(
    text: &str,
    source: &str,
    namespace: Option<&str>,
) -> Result<Vec<Object>, SpecError> {
    load_str_with(text, source, namespace, &|_| Vec::new()).map(|l| l.objects)
}

/// What a manifest holds: the objects podrun runs and the ConfigMaps and Secrets (each
/// validated, in its stored form).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub objects: Vec<Object>,
    pub configs: Vec<DataObject>,
}

/// The ConfigMaps and Secrets stored on the node in a namespace, for the references of the
/// pods of a manifest that its own documents do not satisfy.
pub type Stored<'a> = &'a dyn Fn(&str) -> Vec<DataObject>;

/// As [`load_file_in`], keeping the ConfigMaps and Secrets, with `stored` for references.
pub fn load_file_with(
    path: &Path,
    namespace: Option<&str>,
    stored: Stored,
) -> Result<Loaded, SpecError> {
    let (text, source_name) = read_source(path)?;
    load_str_with(&text, &source_name, namespace, stored)
}

/// As [`load_str_in`], keeping the ConfigMaps and Secrets: a pod's references are resolved
/// against the manifest's own first, then against `stored` (the node's).
pub fn load_str_with(
    text: &str,
    source: &str,
    namespace: Option<&str>,
    stored: Stored,
) -> Result<Loaded, SpecError> {
    let mut documents = parse_documents(text, source)?;
    if let Some(namespace) = namespace {
        for document in &mut documents {
            set_namespace(document, namespace)?;
        }
    }
    let several = documents.len() > 1;
    let mut seen: HashMap<(&'static str, String, String), Origin> = HashMap::new();
    let mut objects = Vec::with_capacity(documents.len());
    let mut data: Vec<DataObject> = Vec::new();
    for (index, document) in documents.into_iter().enumerate() {
        let origin = Origin {
            source: source.to_string(),
            document: several.then_some(index + 1),
        };
        if let Some(object) = load_data_object(&document, &origin)? {
            if let Some(first) = data.iter().position(|d| {
                (d.kind, &d.namespace, &d.name) == (object.kind, &object.namespace, &object.name)
            }) {
                return Err(SpecError::DuplicateObject {
                    origin,
                    kind: object.kind,
                    namespace: object.namespace,
                    name: object.name,
                    first_document: data[first].document_number,
                });
            }
            data.push(DataObject {
                document_number: origin.document,
                ..object
            });
            continue;
        }
        let applied = super::last_applied(&document);
        let mut object = load_object(document, &origin)?;
        object.set_last_applied(applied);
        check_unique(&object, &origin, &mut seen)?;
        objects.push((object, origin));
    }
    let mut by_namespace: HashMap<String, Vec<DataObject>> = HashMap::new();
    let objects = objects
        .into_iter()
        .map(|(mut object, origin)| {
            let kind = object.kind();
            let ns = namespace_or_default(Some(object.namespace()));
            let known = by_namespace.entry(ns.clone()).or_insert_with(|| {
                // The manifest's own first: `find` takes the first match.
                let mut all = data.clone();
                all.extend(stored(&ns));
                all
            });
            match refs::resolve(object.pod_plan_mut(), known) {
                Ok(()) => Ok(object),
                Err(message) => Err(SpecError::Reference {
                    origin,
                    kind,
                    name: object.name().to_owned(),
                    message,
                }),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Loaded {
        objects,
        configs: data,
    })
}

/// A ConfigMap or Secret document (validated, kept for the pods of the same apply and to be
/// stored), else `None`.
fn load_data_object(document: &Value, origin: &Origin) -> Result<Option<DataObject>, SpecError> {
    let kind = document["kind"].as_str().unwrap_or("");
    if document["apiVersion"].as_str() != Some("v1") || !matches!(kind, "ConfigMap" | "Secret") {
        return Ok(None);
    }
    let mut document = document.clone();
    if let Some(map) = document.as_object_mut() {
        map.remove("status");
    }
    let encoded = if kind == "ConfigMap" {
        "binaryData"
    } else {
        "data"
    };
    let base64_problems = super::config_objects::base64_problems(&document[encoded], encoded);
    if !base64_problems.is_empty() {
        let name = document["metadata"]["name"].as_str();
        return Err(check_valid(kind, name, base64_problems, origin).unwrap_err());
    }
    let (mut object, name, problems) = if kind == "ConfigMap" {
        let cm: ConfigMap = decode_typed(document.clone(), origin)?;
        let problems = super::config_objects::config_map_problems(&cm);
        (DataObject::from_config_map(&cm), cm.metadata.name, problems)
    } else {
        let secret: Secret = decode_typed(document.clone(), origin)?;
        let problems = super::config_objects::secret_problems(&secret);
        (
            DataObject::from_secret(&secret),
            secret.metadata.name,
            problems,
        )
    };
    check_valid(kind, name.as_deref(), problems, origin)?;
    object.last_applied = super::last_applied(&document);
    Ok(Some(object))
}

/// kubectl's rule for `--namespace` with a manifest: fill in a missing namespace, refuse a
/// different one.
fn set_namespace(document: &mut Value, namespace: &str) -> Result<(), SpecError> {
    let Some(meta) = document.get_mut("metadata").and_then(Value::as_object_mut) else {
        return Ok(()); // validation reports the missing metadata
    };
    match meta.get("namespace").and_then(Value::as_str) {
        Some(own) if !own.is_empty() && own != namespace => Err(SpecError::NamespaceMismatch {
            object: own.to_string(),
            flag: namespace.to_string(),
        }),
        _ => {
            meta.insert("namespace".into(), Value::String(namespace.to_string()));
            Ok(())
        }
    }
}

/// All non-empty YAML documents, as JSON values.
fn parse_documents(text: &str, source: &str) -> Result<Vec<Value>, SpecError> {
    // kubectl reads YAML 1.1 (sigs.k8s.io/yaml): `defaultMode: 0400` is octal 256 there.
    let options = serde_saphyr::options! { legacy_octal_numbers: true };
    let documents: Vec<Value> = serde_saphyr::from_multiple_with_options(text, options)
        .map_err(|e| yaml_error(&e, source))?;
    Ok(documents.into_iter().filter(|d| !d.is_null()).collect())
}

fn yaml_error(error: &serde_saphyr::Error, source: &str) -> SpecError {
    let (line, column) = error
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    SpecError::Yaml {
        source_name: source.to_string(),
        line,
        column,
        message: tidy_yaml_message(&error.without_snippet().to_string(), line, column),
    }
}

/// Drops the parser's own position suffix (the message already starts with it) and its
/// advice meant for programmers.
fn tidy_yaml_message(message: &str, line: u64, column: u64) -> String {
    let position = format!(" at line {line}, column {column}");
    message
        .trim_end()
        .trim_end_matches(&position)
        .replace(", set DuplicateKeyPolicy in Options if acceptable", "")
}

fn load_object(mut document: Value, origin: &Origin) -> Result<Object, SpecError> {
    let (api_version, kind) = type_meta(&document, origin)?;
    match (api_version.as_str(), kind.as_str()) {
        ("v1", "Pod") => {
            prepare(&mut document, "/spec");
            load_pod(document, origin).map(Object::Pod)
        }
        ("apps/v1", "Deployment") => {
            prepare(&mut document, "/spec/template/spec");
            load_deployment(document, origin).map(Object::Deployment)
        }
        ("apps/v1", "ReplicaSet") => {
            prepare(&mut document, "/spec/template/spec");
            load_replica_set(document, origin).map(Object::ReplicaSet)
        }
        ("batch/v1", "Job") => {
            prepare(&mut document, "/spec/template/spec");
            load_job(document, origin).map(Object::Job)
        }
        pair if KNOWN_KINDS.contains(&pair) => Err(SpecError::UnsupportedKind {
            origin: origin.clone(),
            kind,
            api_version,
        }),
        _ => Err(SpecError::NoMatchForKind {
            origin: origin.clone(),
            kind,
            api_version,
        }),
    }
}

/// `apiVersion` and `kind`, both required.
fn type_meta(document: &Value, origin: &Origin) -> Result<(String, String), SpecError> {
    if !document.is_object() {
        return Err(SpecError::NotAnObject {
            origin: origin.clone(),
            message: format!(
                "expected a mapping with apiVersion, kind, metadata and spec, found {}",
                describe(document)
            ),
        });
    }
    let text = |key: &str| document[key].as_str().unwrap_or("").to_string();
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    if kind.is_empty() {
        return Err(SpecError::MissingKind {
            origin: origin.clone(),
        });
    }
    if api_version.is_empty() {
        return Err(SpecError::MissingApiVersion {
            origin: origin.clone(),
            kind,
        });
    }
    Ok((api_version, kind))
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "a sequence",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        _ => "something else",
    }
}

/// Drops `status` (ignored) and turns numeric quantities (`cpu: 1`) into strings.
fn prepare(document: &mut Value, pod_spec_pointer: &str) {
    if let Some(map) = document.as_object_mut() {
        map.remove("status");
    }
    let containers = document
        .pointer_mut(&format!("{pod_spec_pointer}/containers"))
        .and_then(Value::as_array_mut);
    for container in containers.into_iter().flatten() {
        for list in ["requests", "limits"] {
            if let Some(map) = container
                .pointer_mut(&format!("/resources/{list}"))
                .and_then(Value::as_object_mut)
            {
                map.values_mut().for_each(stringify_number);
            }
        }
    }
}

fn stringify_number(value: &mut Value) {
    if let Value::Number(number) = value {
        *value = Value::String(number.to_string());
    }
}

fn load_pod(document: Value, origin: &Origin) -> Result<PodPlan, SpecError> {
    let pod: Pod = decode_typed(document, origin)?;
    let spec = pod.spec.clone().unwrap_or_default();
    check_supported(&pod, Shape::Pod, unsupported_values(&spec, "spec"), origin)?;
    check_valid(
        "Pod",
        pod.metadata.name.as_deref(),
        pod_problems(&pod),
        origin,
    )?;
    Ok(pod_plan(&pod))
}

fn load_deployment(document: Value, origin: &Origin) -> Result<super::DeploymentPlan, SpecError> {
    let deployment: Deployment = decode_typed(document, origin)?;
    let pod_spec = deployment.spec.template.spec.clone().unwrap_or_default();
    let values = unsupported_values(&pod_spec, "spec.template.spec");
    check_supported(&deployment, Shape::Deployment, values, origin)?;
    let problems = deployment_problems(&deployment);
    check_valid(
        "Deployment",
        deployment.metadata.name.as_deref(),
        problems,
        origin,
    )?;
    Ok(deployment_plan(&deployment))
}

fn load_replica_set(
    document: Value,
    origin: &Origin,
) -> Result<super::workload::ReplicaSetPlan, SpecError> {
    let rs: ReplicaSet = decode_typed(document, origin)?;
    let spec = rs.spec.clone();
    let pod_spec = spec.template.and_then(|t| t.spec).unwrap_or_default();
    let values = unsupported_values(&pod_spec, "spec.template.spec");
    check_supported(&rs, Shape::ReplicaSet, values, origin)?;
    let problems = replica_set_problems(&rs);
    check_valid("ReplicaSet", rs.metadata.name.as_deref(), problems, origin)?;
    Ok(super::workload::replica_set_plan(&rs))
}

fn load_job(document: Value, origin: &Origin) -> Result<super::workload::JobPlan, SpecError> {
    let job: Job = decode_typed(document, origin)?;
    let spec = job.spec.clone().unwrap_or_default();
    let pod_spec = spec.template.spec.unwrap_or_default();
    let values = unsupported_values(&pod_spec, "spec.template.spec");
    check_supported(&job, Shape::Job, values, origin)?;
    check_valid(
        "Job",
        job.metadata.name.as_deref(),
        job_problems(&job),
        origin,
    )?;
    Ok(super::workload::job_plan(&job))
}

/// Fields (and field values) Kubernetes knows but podrun does not honour yet.
fn check_supported<T: serde::Serialize>(
    object: &T,
    shape: Shape,
    mut problems: Vec<String>,
    origin: &Origin,
) -> Result<(), SpecError> {
    let value = serde_json::to_value(object).unwrap_or(Value::Null);
    problems.splice(0..0, unsupported_fields(&value, shape));
    if problems.is_empty() {
        return Ok(());
    }
    Err(SpecError::NotSupported {
        origin: origin.clone(),
        problems,
    })
}

fn check_valid(
    kind: &str,
    name: Option<&str>,
    causes: Vec<String>,
    origin: &Origin,
) -> Result<(), SpecError> {
    if causes.is_empty() {
        return Ok(());
    }
    Err(SpecError::Invalid {
        origin: origin.clone(),
        kind: kind.to_string(),
        name: name.unwrap_or("").to_string(),
        causes,
    })
}

/// Two objects of the same kind, namespace and name in one apply are an error.
fn check_unique(
    object: &Object,
    origin: &Origin,
    seen: &mut HashMap<(&'static str, String, String), Origin>,
) -> Result<(), SpecError> {
    let (kind, namespace, name) = (
        object.kind(),
        object.namespace().to_owned(),
        object.name().to_owned(),
    );
    let key = (kind, namespace_or_default(Some(&namespace)), name);
    if let Some(first) = seen.get(&key) {
        return Err(SpecError::DuplicateObject {
            origin: origin.clone(),
            kind,
            namespace: key.1,
            name: key.2,
            first_document: first.document,
        });
    }
    seen.insert(key, origin.clone());
    Ok(())
}
