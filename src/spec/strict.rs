//! Strictness: (1) typed decoding that fails on unknown fields and names the path of type
//! errors, like `kubectl apply` with server-side strict validation; (2) the whitelist of fields
//! podrun honours. A field that Kubernetes knows but podrun does not implement is refused rather
//! than silently ignored.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{Origin, SpecError};

/// Fields podrun honours in a pod spec, relative to the spec. `[]` stands for any list index;
/// an entry covers everything below it (`resources.limits.cpu` covers the quantity).
const POD_SPEC_FIELDS: &[&str] = &[
    "containers[].name",
    "containers[].image",
    "containers[].imagePullPolicy",
    "containers[].command",
    "containers[].args",
    "containers[].workingDir",
    "containers[].env[].name",
    "containers[].env[].value",
    "containers[].env[].valueFrom.fieldRef.fieldPath",
    "containers[].env[].valueFrom.fieldRef.apiVersion",
    "containers[].ports[].name",
    "containers[].ports[].containerPort",
    "containers[].ports[].protocol",
    "containers[].ports[].hostPort",
    "containers[].ports[].hostIP",
    "containers[].resources.requests.cpu",
    "containers[].resources.requests.memory",
    "containers[].resources.limits.cpu",
    "containers[].resources.limits.memory",
    "containers[].env[].valueFrom.configMapKeyRef.name",
    "containers[].env[].valueFrom.configMapKeyRef.key",
    "containers[].env[].valueFrom.configMapKeyRef.optional",
    "containers[].env[].valueFrom.secretKeyRef.name",
    "containers[].env[].valueFrom.secretKeyRef.key",
    "containers[].env[].valueFrom.secretKeyRef.optional",
    "containers[].envFrom[].configMapRef.name",
    "containers[].envFrom[].configMapRef.optional",
    "containers[].envFrom[].secretRef.name",
    "containers[].envFrom[].secretRef.optional",
    "containers[].envFrom[].prefix",
    "containers[].volumeMounts[].name",
    "containers[].volumeMounts[].mountPath",
    "containers[].volumeMounts[].readOnly",
    "containers[].volumeMounts[].subPath",
    "containers[].securityContext.capabilities.add",
    "containers[].securityContext.capabilities.drop",
    "containers[].securityContext.privileged",
    "containers[].securityContext.allowPrivilegeEscalation",
    "containers[].securityContext.runAsUser",
    "containers[].securityContext.runAsGroup",
    "containers[].securityContext.runAsNonRoot",
    "containers[].securityContext.readOnlyRootFilesystem",
    "containers[].terminationMessagePath",
    "containers[].terminationMessagePolicy",
    "containers[].startupProbe.exec.command",
    "containers[].startupProbe.httpGet.path",
    "containers[].startupProbe.httpGet.port",
    "containers[].startupProbe.httpGet.host",
    "containers[].startupProbe.httpGet.scheme",
    "containers[].startupProbe.httpGet.httpHeaders[].name",
    "containers[].startupProbe.httpGet.httpHeaders[].value",
    "containers[].startupProbe.tcpSocket.port",
    "containers[].startupProbe.tcpSocket.host",
    "containers[].startupProbe.grpc.port",
    "containers[].startupProbe.grpc.service",
    "containers[].startupProbe.initialDelaySeconds",
    "containers[].startupProbe.periodSeconds",
    "containers[].startupProbe.timeoutSeconds",
    "containers[].startupProbe.successThreshold",
    "containers[].startupProbe.failureThreshold",
    "containers[].startupProbe.terminationGracePeriodSeconds",
    "containers[].livenessProbe.exec.command",
    "containers[].livenessProbe.httpGet.path",
    "containers[].livenessProbe.httpGet.port",
    "containers[].livenessProbe.httpGet.host",
    "containers[].livenessProbe.httpGet.scheme",
    "containers[].livenessProbe.httpGet.httpHeaders[].name",
    "containers[].livenessProbe.httpGet.httpHeaders[].value",
    "containers[].livenessProbe.tcpSocket.port",
    "containers[].livenessProbe.tcpSocket.host",
    "containers[].livenessProbe.grpc.port",
    "containers[].livenessProbe.grpc.service",
    "containers[].livenessProbe.initialDelaySeconds",
    "containers[].livenessProbe.periodSeconds",
    "containers[].livenessProbe.timeoutSeconds",
    "containers[].livenessProbe.successThreshold",
    "containers[].livenessProbe.failureThreshold",
    "containers[].livenessProbe.terminationGracePeriodSeconds",
    "containers[].readinessProbe.exec.command",
    "containers[].readinessProbe.httpGet.path",
    "containers[].readinessProbe.httpGet.port",
    "containers[].readinessProbe.httpGet.host",
    "containers[].readinessProbe.httpGet.scheme",
    "containers[].readinessProbe.httpGet.httpHeaders[].name",
    "containers[].readinessProbe.httpGet.httpHeaders[].value",
    "containers[].readinessProbe.tcpSocket.port",
    "containers[].readinessProbe.tcpSocket.host",
    "containers[].readinessProbe.grpc.port",
    "containers[].readinessProbe.grpc.service",
    "containers[].readinessProbe.initialDelaySeconds",
    "containers[].readinessProbe.periodSeconds",
    "containers[].readinessProbe.timeoutSeconds",
    "containers[].readinessProbe.successThreshold",
    "containers[].readinessProbe.failureThreshold",
    "containers[].readinessProbe.terminationGracePeriodSeconds",
    "containers[].lifecycle.postStart.exec.command",
    "containers[].lifecycle.postStart.httpGet.path",
    "containers[].lifecycle.postStart.httpGet.port",
    "containers[].lifecycle.postStart.httpGet.host",
    "containers[].lifecycle.postStart.httpGet.scheme",
    "containers[].lifecycle.postStart.httpGet.httpHeaders[].name",
    "containers[].lifecycle.postStart.httpGet.httpHeaders[].value",
    "containers[].lifecycle.postStart.sleep.seconds",
    "containers[].lifecycle.preStop.exec.command",
    "containers[].lifecycle.preStop.httpGet.path",
    "containers[].lifecycle.preStop.httpGet.port",
    "containers[].lifecycle.preStop.httpGet.host",
    "containers[].lifecycle.preStop.httpGet.scheme",
    "containers[].lifecycle.preStop.httpGet.httpHeaders[].name",
    "containers[].lifecycle.preStop.httpGet.httpHeaders[].value",
    "containers[].lifecycle.preStop.sleep.seconds",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "shareProcessNamespace",
    "dnsPolicy",
    "dnsConfig.nameservers",
    "dnsConfig.searches",
    "dnsConfig.options",
    "hostAliases",
    "imagePullSecrets[].name",
    "securityContext.runAsUser",
    "securityContext.runAsGroup",
    "securityContext.runAsNonRoot",
    "volumes[].name",
    "volumes[].emptyDir.medium",
    "volumes[].emptyDir.sizeLimit",
    "volumes[].hostPath.path",
    "volumes[].hostPath.type",
    "volumes[].configMap.name",
    "volumes[].configMap.items",
    "volumes[].configMap.defaultMode",
    "volumes[].configMap.optional",
    "volumes[].secret.secretName",
    "volumes[].secret.items",
    "volumes[].secret.defaultMode",
    "volumes[].secret.optional",
    "hostname",
    "nodeName",
];

/// Top-level fields podrun honours on every kind (besides the kind's own below); `status` is
/// accepted and ignored. A Pod has only these, beside `spec.` + [`POD_SPEC_FIELDS`].
const OBJECT_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "status",
    "metadata.name",
    "metadata.namespace",
    "metadata.labels",
    "metadata.annotations",
];

/// Deployment fields podrun honours (besides [`OBJECT_FIELDS`] and `spec.template.spec.` +
/// [`POD_SPEC_FIELDS`]).
const DEPLOYMENT_FIELDS: &[&str] = &[
    "spec.replicas",
    "spec.selector.matchLabels",
    "spec.template.metadata.labels",
    "spec.template.metadata.annotations",
    "spec.strategy.type",
    "spec.strategy.rollingUpdate.maxSurge",
    "spec.strategy.rollingUpdate.maxUnavailable",
    "spec.minReadySeconds",
    "spec.revisionHistoryLimit",
    "spec.progressDeadlineSeconds",
];

/// ReplicaSet fields podrun honours.
const REPLICA_SET_FIELDS: &[&str] = &[
    "spec.replicas",
    "spec.selector.matchLabels",
    "spec.template.metadata.labels",
    "spec.template.metadata.annotations",
    "spec.minReadySeconds",
];

/// Job fields podrun honours.
const JOB_FIELDS: &[&str] = &[
    "spec.completions",
    "spec.parallelism",
    "spec.backoffLimit",
    "spec.activeDeadlineSeconds",
    "spec.ttlSecondsAfterFinished",
    "spec.template.metadata.labels",
    "spec.template.metadata.annotations",
];

/// The kinds the whitelist knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Pod,
    Deployment,
    ReplicaSet,
    Job,
}

fn whitelist(shape: Shape) -> Vec<String> {
    let (own, spec_prefix): (&[&str], _) = match shape {
        Shape::Pod => (&[], "spec."),
        Shape::Deployment => (DEPLOYMENT_FIELDS, "spec.template.spec."),
        Shape::ReplicaSet => (REPLICA_SET_FIELDS, "spec.template.spec."),
        Shape::Job => (JOB_FIELDS, "spec.template.spec."),
    };
    // Init containers take the fields of app containers and their own restartPolicy (native
    // sidecars); validation refuses what only a sidecar may have (ports, probes, hooks).
    let init = POD_SPEC_FIELDS
        .iter()
        .filter_map(|f| f.strip_prefix("containers[]."))
        .chain(["restartPolicy"])
        .map(|f| format!("initContainers[].{f}"));
    let nested = POD_SPEC_FIELDS
        .iter()
        .map(|f| f.to_string())
        .chain(init)
        .map(|f| format!("{spec_prefix}{f}"));
    OBJECT_FIELDS
        .iter()
        .chain(own)
        .map(|f| f.to_string())
        .chain(nested)
        .collect()
}

/// Decodes `value` into `T`, failing on unknown fields (all listed) and on type errors (with path).
pub fn decode_typed<T: DeserializeOwned>(value: Value, origin: &Origin) -> Result<T, SpecError> {
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path| unknown.push(ignored_path(&path));
    let ignoring = serde_ignored::Deserializer::new(value, &mut record);
    let decoded = serde_path_to_error::deserialize(ignoring);
    if !unknown.is_empty() {
        unknown.sort();
        unknown.dedup();
        return Err(SpecError::UnknownFields {
            origin: origin.clone(),
            paths: unknown,
        });
    }
    decoded.map_err(|e| SpecError::InvalidType {
        origin: origin.clone(),
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

/// Formats a `serde_ignored` path kubectl's way: `spec.containers[0].resoures`.
fn ignored_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        Path::Map { parent, key } => {
            let prefix = ignored_path(parent);
            if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_path(parent),
    }
}

/// Every present field of `value` not covered by the whitelist, as sorted messages.
pub fn unsupported_fields(value: &Value, shape: Shape) -> Vec<String> {
    let allowed = whitelist(shape);
    let mut found = Vec::new();
    walk(value, &mut Vec::new(), &allowed, &mut found);
    found.sort();
    found
        .into_iter()
        .map(|path| format!("field \"{path}\" is not supported by podrun yet"))
        .collect()
}

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn walk(value: &Value, path: &mut Vec<Step>, allowed: &[String], found: &mut Vec<String>) {
    let pattern = render(path, true);
    if !path.is_empty() && is_covered(&pattern, allowed) {
        return;
    }
    if !path.is_empty() && !leads_to_allowed(&pattern, allowed) {
        if is_present(value) {
            found.push(render(path, false));
        }
        return;
    }
    walk_children(value, path, allowed, found);
}

fn walk_children(value: &Value, path: &mut Vec<Step>, allowed: &[String], found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                path.push(Step::Key(key.clone()));
                walk(child, path, allowed, found);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                path.push(Step::Index(index));
                walk(child, path, allowed, found);
                path.pop();
            }
        }
        _ => {}
    }
}

/// `spec.containers[0].name`, or with `wildcard` the whitelist form `spec.containers[].name`.
fn render(path: &[Step], wildcard: bool) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(key) if out.is_empty() => out.push_str(key),
            Step::Key(key) => {
                out.push('.');
                out.push_str(key);
            }
            Step::Index(_) if wildcard => out.push_str("[]"),
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The path is a whitelist entry or lies below one.
fn is_covered(pattern: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|entry| is_at_or_below(pattern, entry))
}

/// Some whitelist entry lies below this path.
fn leads_to_allowed(pattern: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|entry| is_at_or_below(entry, pattern))
}

fn is_at_or_below(path: &str, ancestor: &str) -> bool {
    match path.strip_prefix(ancestor) {
        Some(rest) => rest.is_empty() || rest.starts_with('.') || rest.starts_with('['),
        None => false,
    }
}

/// Empty values (null, `{}`, `[]`, `""`, `false`) do not count as set.
fn is_present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Number(_) => true,
        Value::Array(items) => items.iter().any(is_present),
        Value::Object(map) => map.values().any(is_present),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn origin() -> Origin {
        Origin {
            source: "pod.yaml".into(),
            document: None,
        }
    }

    #[test]
    fn unknown_fields_are_named_with_kubectl_paths() {
        let value = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "nmae": "x"},
            "spec": {"containers": [{"name": "c", "resoures": {}}]}
        });
        let err = decode_typed::<Pod>(value, &origin()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pod.yaml: strict decoding error: unknown field \"metadata.nmae\", \
             unknown field \"spec.containers[0].resoures\""
        );
    }

    #[test]
    fn type_errors_name_the_path() {
        let value = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
            "spec": {"containers": [{"name": "c", "ports": [{"containerPort": "http"}]}]}
        });
        let err = decode_typed::<Pod>(value, &origin()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pod.yaml: spec.containers[0].ports[0].containerPort: \
             invalid type: string \"http\", expected i32"
        );
    }

    #[test]
    fn whitelist_reports_smallest_unsupported_paths_sorted() {
        let value = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "x"}},
            "status": {"phase": "Running"},
            "spec": {
                "volumes": [{"name": "v", "nfs": {"server": "s", "path": "/"}}],
                "hostNetwork": false,
                "containers": [{
                    "name": "c",
                    "tty": true,
                    "env": [{"name": "X", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}],
                    "resources": {"limits": {"cpu": "1", "nvidia.com/gpu": "1"}},
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}
                }]
            }
        });
        assert_eq!(
            unsupported_fields(&value, Shape::Pod),
            [
                "field \"spec.containers[0].env[0].valueFrom.resourceFieldRef\" is not supported by podrun yet",
                "field \"spec.containers[0].resources.limits.nvidia.com/gpu\" is not supported by podrun yet",
                "field \"spec.containers[0].securityContext.seccompProfile\" is not supported by podrun yet",
                "field \"spec.containers[0].tty\" is not supported by podrun yet",
                "field \"spec.volumes[0].nfs\" is not supported by podrun yet",
            ]
        );
    }

    #[test]
    fn deployment_whitelist_nests_the_pod_spec() {
        let value = json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {
                "replicas": 2,
                "strategy": {"type": "Recreate"},
                "paused": true,
                "selector": {"matchLabels": {"app": "d"}, "matchExpressions": []},
                "template": {
                    "metadata": {"labels": {"app": "d"}, "name": "x"},
                    "spec": {"containers": [{"name": "c", "image": "i"}], "nodeName": "n"}
                }
            }
        });
        assert_eq!(
            unsupported_fields(&value, Shape::Deployment),
            [
                "field \"spec.paused\" is not supported by podrun yet",
                "field \"spec.template.metadata.name\" is not supported by podrun yet",
            ]
        );
    }
}
