//! Turning a validated typed Pod into a [`PodPlan`], with the API server's defaults.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{self as core, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use serde_json::{Value, json};

use super::quantity::Quantity;
use super::{
    ContainerPlan, ContainerPort, DnsPlan, EnvFromPlan, EnvSource, EnvVar, HostAlias, Owner,
    PodPlan, ResourceList, Resources, RestartPolicy, SecurityPlan, VolumeMountPlan, VolumePlan,
    VolumeSource,
};

pub const DEFAULT_NAMESPACE: &str = "default";
pub const DEFAULT_GRACE_SECONDS: i64 = 30;

/// Builds the plan of a validated Pod, giving it a fresh uid.
pub fn pod_plan(pod: &Pod) -> PodPlan {
    let meta = &pod.metadata;
    let name = meta.name.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let mut plan = PodPlan {
        hostname: hostname_for(spec.hostname.as_deref(), &name),
        name,
        namespace: namespace_or_default(meta.namespace.as_deref()),
        uid: new_uid(),
        labels: meta.labels.clone().unwrap_or_default(),
        annotations: meta.annotations.clone().unwrap_or_default(),
        owner: None,
        restart_policy: spec
            .restart_policy
            .as_deref()
            .and_then(RestartPolicy::parse)
            .unwrap_or_default(),
        termination_grace_period_seconds: spec
            .termination_grace_period_seconds
            .unwrap_or(DEFAULT_GRACE_SECONDS),
        containers: spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| ContainerPlan {
                init: true,
                sidecar: c.restart_policy.as_deref() == Some("Always"),
                ..container_plan(c, spec.security_context.as_ref())
            })
            .chain(
                spec.containers
                    .iter()
                    .map(|c| container_plan(c, spec.security_context.as_ref())),
            )
            .collect(),
        manifest: Value::Null,
        share_process_namespace: spec.share_process_namespace.unwrap_or(false),
        dns: dns_plan(&spec),
        host_aliases: spec
            .host_aliases
            .iter()
            .flatten()
            .map(|a| HostAlias {
                ip: a.ip.clone(),
                hostnames: a.hostnames.clone().unwrap_or_default(),
            })
            .collect(),
        volumes: spec.volumes.iter().flatten().map(volume_plan).collect(),
        image_pull_secrets: spec
            .image_pull_secrets
            .iter()
            .flatten()
            .map(|s| s.name.clone())
            .filter(|n| !n.is_empty())
            .collect(),
        pull_credentials: Vec::new(),
        last_applied: None,
    };
    plan.manifest = manifest(&plan, &spec);
    plan
}

pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn namespace_or_default(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() => ns.to_string(),
        _ => DEFAULT_NAMESPACE.to_string(),
    }
}

/// `spec.hostname` if set, else the pod name cut to 63 characters without a trailing `-`/`.`.
pub fn hostname_for(explicit: Option<&str>, pod_name: &str) -> String {
    if let Some(hostname) = explicit.filter(|h| !h.is_empty()) {
        return hostname.to_string();
    }
    let cut: String = pod_name.chars().take(63).collect();
    cut.trim_end_matches(['-', '.']).to_string()
}

fn dns_plan(spec: &PodSpec) -> DnsPlan {
    let config = spec.dns_config.clone().unwrap_or_default();
    DnsPlan {
        policy: spec
            .dns_policy
            .clone()
            .unwrap_or_else(|| "ClusterFirst".into()),
        nameservers: config.nameservers.unwrap_or_default(),
        searches: config.searches.unwrap_or_default(),
        options: config
            .options
            .unwrap_or_default()
            .into_iter()
            .map(|o| (o.name.unwrap_or_default(), o.value))
            .collect(),
    }
}

fn volume_plan(volume: &core::Volume) -> VolumePlan {
    let source = if let Some(e) = &volume.empty_dir {
        VolumeSource::EmptyDir {
            memory: e.medium.as_deref() == Some("Memory"),
            size_limit: e
                .size_limit
                .as_ref()
                .and_then(|q| Quantity::parse(&q.0).ok())
                .and_then(|q| u64::try_from(q.value()).ok()),
        }
    } else if let Some(h) = &volume.host_path {
        VolumeSource::HostPath {
            path: h.path.clone(),
            kind: h.type_.clone().unwrap_or_default(),
        }
    } else {
        // configMap / secret: files are filled in from the objects of the same apply.
        let items = |list: &Option<Vec<core::KeyToPath>>| -> Vec<(String, String, Option<i32>)> {
            list.iter()
                .flatten()
                .map(|i| (i.key.clone(), i.path.clone(), i.mode))
                .collect()
        };
        let (kind, name, optional, items, mode) = match (&volume.config_map, &volume.secret) {
            (Some(c), _) => (
                "ConfigMap",
                c.name.clone(),
                c.optional,
                items(&c.items),
                c.default_mode,
            ),
            (_, Some(s)) => (
                "Secret",
                s.secret_name.clone().unwrap_or_default(),
                s.optional,
                items(&s.items),
                s.default_mode,
            ),
            _ => ("", String::new(), None, Vec::new(), None),
        };
        VolumeSource::Files {
            kind: kind.into(),
            name,
            optional: optional.unwrap_or(false),
            items,
            default_mode: mode.map(|m| m as u32).unwrap_or(0o644),
            files: Vec::new(),
        }
    };
    VolumePlan {
        name: volume.name.clone(),
        source,
    }
}

/// Container values win over the pod's `securityContext` (`DetermineEffectiveSecurityContext`).
fn security_plan(
    container: Option<&core::SecurityContext>,
    pod: Option<&core::PodSecurityContext>,
) -> SecurityPlan {
    let c = container.cloned().unwrap_or_default();
    let caps = c.capabilities.clone().unwrap_or_default();
    SecurityPlan {
        privileged: c.privileged.unwrap_or(false),
        allow_privilege_escalation: c.allow_privilege_escalation,
        run_as_user: c.run_as_user.or(pod.and_then(|p| p.run_as_user)),
        run_as_group: c.run_as_group.or(pod.and_then(|p| p.run_as_group)),
        run_as_non_root: c.run_as_non_root.or(pod.and_then(|p| p.run_as_non_root)),
        read_only_root_filesystem: c.read_only_root_filesystem.unwrap_or(false),
        capabilities_add: caps.add.unwrap_or_default(),
        capabilities_drop: caps.drop.unwrap_or_default(),
    }
}

fn container_plan(
    container: &core::Container,
    pod_security: Option<&core::PodSecurityContext>,
) -> ContainerPlan {
    let image = container.image.clone().unwrap_or_default();
    ContainerPlan {
        volume_mounts: container
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| VolumeMountPlan {
                name: m.name.clone(),
                mount_path: m.mount_path.clone(),
                read_only: m.read_only.unwrap_or(false),
                sub_path: m.sub_path.clone().filter(|p| !p.is_empty()),
            })
            .collect(),
        security: security_plan(container.security_context.as_ref(), pod_security),
        env_from: container
            .env_from
            .iter()
            .flatten()
            .filter_map(|e| {
                let prefix = e.prefix.clone().unwrap_or_default();
                if let Some(c) = &e.config_map_ref {
                    return Some(EnvFromPlan {
                        kind: "ConfigMap".into(),
                        name: c.name.clone(),
                        prefix,
                        optional: c.optional.unwrap_or(false),
                    });
                }
                let s = e.secret_ref.as_ref()?;
                Some(EnvFromPlan {
                    kind: "Secret".into(),
                    name: s.name.clone(),
                    prefix,
                    optional: s.optional.unwrap_or(false),
                })
            })
            .collect(),
        name: container.name.clone(),
        image_pull_policy: container
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| default_pull_policy(&image).to_string()),
        image,
        command: container.command.clone().unwrap_or_default(),
        args: container.args.clone().unwrap_or_default(),
        working_dir: container.working_dir.clone().filter(|d| !d.is_empty()),
        env: container.env.iter().flatten().map(env_var).collect(),
        ports: container
            .ports
            .iter()
            .flatten()
            .map(container_port)
            .collect(),
        resources: resources(container.resources.as_ref()),
        init: false,
        sidecar: false,
        probes: super::handlers::probes_plan(container),
        lifecycle: super::handlers::lifecycle_plan(container),
        termination_message_path: container
            .termination_message_path
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| super::handlers::DEFAULT_TERMINATION_MESSAGE_PATH.into()),
        termination_message_fallback_to_logs: container.termination_message_policy.as_deref()
            == Some("FallbackToLogsOnError"),
    }
}

/// `Always` for `:latest` or an untagged image, else `IfNotPresent` (as `SetDefaults_Container`).
pub fn default_pull_policy(image: &str) -> &'static str {
    let without_digest = image.split('@').next().unwrap_or("");
    let has_digest = without_digest.len() != image.len();
    let last = without_digest.rsplit('/').next().unwrap_or("");
    match last.split_once(':') {
        Some((_, "latest")) => "Always",
        Some(_) => "IfNotPresent",
        None if has_digest => "IfNotPresent",
        None => "Always",
    }
}

fn env_var(var: &core::EnvVar) -> EnvVar {
    let from = var.value_from.as_ref();
    let source = if let Some(field_ref) = from.and_then(|f| f.field_ref.as_ref()) {
        EnvSource::FieldRef(field_ref.field_path.clone())
    } else if let Some(r) = from.and_then(|f| f.config_map_key_ref.as_ref()) {
        EnvSource::KeyRef {
            kind: "ConfigMap".into(),
            name: r.name.clone(),
            key: r.key.clone(),
            optional: r.optional.unwrap_or(false),
        }
    } else if let Some(r) = from.and_then(|f| f.secret_key_ref.as_ref()) {
        EnvSource::KeyRef {
            kind: "Secret".into(),
            name: r.name.clone(),
            key: r.key.clone(),
            optional: r.optional.unwrap_or(false),
        }
    } else {
        EnvSource::Value(var.value.clone().unwrap_or_default())
    };
    EnvVar {
        name: var.name.clone(),
        source,
    }
}

fn container_port(port: &core::ContainerPort) -> ContainerPort {
    ContainerPort {
        name: port.name.clone().filter(|n| !n.is_empty()),
        container_port: u16::try_from(port.container_port).unwrap_or(0),
        protocol: port.protocol.clone().unwrap_or_else(|| "TCP".to_string()),
        host_port: port
            .host_port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0),
        host_ip: port
            .host_ip
            .as_deref()
            .and_then(|ip| ip.parse().ok())
            .filter(|ip: &std::net::Ipv4Addr| !ip.is_unspecified()),
    }
}

/// Requests default to limits, resource by resource, as the API server does.
fn resources(requirements: Option<&core::ResourceRequirements>) -> Resources {
    let requests = resource_list(requirements.and_then(|r| r.requests.as_ref()));
    let limits = resource_list(requirements.and_then(|r| r.limits.as_ref()));
    Resources {
        requests: ResourceList {
            cpu_millis: requests.cpu_millis.or(limits.cpu_millis),
            memory_bytes: requests.memory_bytes.or(limits.memory_bytes),
        },
        limits,
    }
}

fn resource_list(list: Option<&BTreeMap<String, K8sQuantity>>) -> ResourceList {
    let parse = |name: &str| {
        let quantity = Quantity::parse(&list?.get(name)?.0).ok()?;
        Some(quantity)
    };
    ResourceList {
        cpu_millis: parse("cpu").and_then(|q| u64::try_from(q.milli_value()).ok()),
        memory_bytes: parse("memory").and_then(|q| u64::try_from(q.value()).ok()),
    }
}

/// The Pod as the API server would store it: defaults filled, no status.
fn manifest(plan: &PodPlan, spec: &PodSpec) -> Value {
    let mut spec_json = serde_json::to_value(spec).unwrap_or_else(|_| json!({}));
    fill_spec_defaults(&mut spec_json, plan);
    let mut manifest =
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": spec_json});
    set_metadata(&mut manifest, plan);
    manifest
}

fn fill_spec_defaults(spec: &mut Value, plan: &PodPlan) {
    spec["restartPolicy"] = json!(plan.restart_policy.as_str());
    spec["terminationGracePeriodSeconds"] = json!(plan.termination_grace_period_seconds);
    let (inits, apps): (Vec<_>, Vec<_>) = plan.containers.iter().partition(|c| c.init);
    for (key, planned) in [("initContainers", inits), ("containers", apps)] {
        if let Some(containers) = spec.get_mut(key).and_then(Value::as_array_mut) {
            fill_container_defaults(containers, &planned);
        }
    }
}

fn fill_container_defaults(containers: &mut [Value], planned: &[&ContainerPlan]) {
    for (container, planned) in containers.iter_mut().zip(planned) {
        container["imagePullPolicy"] = json!(planned.image_pull_policy);
        if let Some(ports) = container.get_mut("ports").and_then(Value::as_array_mut) {
            for port in ports.iter_mut().filter(|p| p["protocol"].is_null()) {
                port["protocol"] = json!("TCP");
            }
        }
        default_requests_to_limits(container);
        container["terminationMessagePath"] = json!(planned.termination_message_path);
        container["terminationMessagePolicy"] =
            json!(if planned.termination_message_fallback_to_logs {
                "FallbackToLogsOnError"
            } else {
                "File"
            });
        for kind in ["livenessProbe", "readinessProbe", "startupProbe"] {
            if let Some(probe) = container.get_mut(kind).filter(|p| p.is_object()) {
                fill_probe_defaults(probe);
            }
        }
        for hook in ["postStart", "preStop"] {
            let http = container.get_mut("lifecycle").and_then(|l| l.get_mut(hook));
            if let Some(http) = http.and_then(|h| h.get_mut("httpGet")) {
                fill_http_defaults(http);
            }
        }
    }
}

/// `SetDefaults_Probe` and `SetDefaults_HTTPGetAction`.
fn fill_probe_defaults(probe: &mut Value) {
    for (field, default) in [
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ] {
        if probe.get(field).is_none_or(Value::is_null) {
            probe[field] = json!(default);
        }
    }
    if let Some(http) = probe.get_mut("httpGet") {
        fill_http_defaults(http);
    }
}

fn fill_http_defaults(http: &mut Value) {
    if !http.is_object() {
        return;
    }
    if http.get("path").is_none_or(Value::is_null) {
        http["path"] = json!("/");
    }
    if http.get("scheme").is_none_or(Value::is_null) {
        http["scheme"] = json!("HTTP");
    }
}

fn default_requests_to_limits(container: &mut Value) {
    let Some(limits) = container["resources"]["limits"].as_object().cloned() else {
        return;
    };
    let requests = &mut container["resources"]["requests"];
    if requests.is_null() {
        *requests = json!({});
    }
    for (name, value) in limits {
        if requests.get(&name).is_none() {
            requests[name] = value;
        }
    }
}

/// Writes `metadata` (name, namespace, uid, labels, annotations, ownerReferences) from the plan.
pub fn set_metadata(manifest: &mut Value, plan: &PodPlan) {
    let mut metadata = json!({"name": plan.name, "namespace": plan.namespace, "uid": plan.uid});
    if !plan.labels.is_empty() {
        metadata["labels"] = json!(plan.labels);
    }
    if !plan.annotations.is_empty() {
        metadata["annotations"] = json!(plan.annotations);
    }
    if let Some(owner) = &plan.owner {
        metadata["ownerReferences"] = json!([owner_reference(owner)]);
    }
    manifest["metadata"] = metadata;
}

fn owner_reference(owner: &Owner) -> Value {
    json!({
        "apiVersion": owner.api_version(),
        "kind": owner.kind,
        "name": owner.name,
        "uid": owner.uid,
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_defaults() {
        assert_eq!(default_pull_policy("busybox"), "Always");
        assert_eq!(default_pull_policy("busybox:latest"), "Always");
        assert_eq!(default_pull_policy("busybox:1.36"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost:5000/busybox"), "Always");
        assert_eq!(
            default_pull_policy("localhost:5000/busybox:1"),
            "IfNotPresent"
        );
        assert_eq!(default_pull_policy("busybox@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn hostname_rules() {
        assert_eq!(hostname_for(Some("db"), "web"), "db");
        assert_eq!(hostname_for(None, "web"), "web");
        assert_eq!(hostname_for(Some(""), "web"), "web");
        let long = format!("{}-x", "a".repeat(62));
        assert_eq!(hostname_for(None, &long), "a".repeat(62));
        let dotted = format!("{}.-b", "a".repeat(61));
        assert_eq!(hostname_for(None, &dotted), "a".repeat(61));
    }
}
