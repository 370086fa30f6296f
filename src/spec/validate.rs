//! API-server style validation (`pkg/apis/core/validation`), collecting every problem of an
//! object as `<path>: <what>` strings.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, Pod, PodSpec, SecurityContext, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::error::{duplicate, invalid, invalid_raw, required, required_because, unsupported};
use super::quantity::{Quantity, format_bytes, format_cpu_millis};
use super::{HOST_PATH_TYPES, RestartPolicy, SUPPORTED_FIELD_PATHS};

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case \
    alphanumeric characters or '-', and must start and end with an alphanumeric character \
    (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case \
    alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character \
    (e.g. 'example.com', regex used for validation is \
    '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const ENV_NAME_MSG: &str = "a valid environment variable name must consist of alphabetic \
    characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  \
    or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric \
    characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. \
    'MyValue',  or 'my_value',  or '12345', regex used for validation is \
    '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or \
    '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  \
    or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
/// The API server's cap on an object's annotations, keys and values together
/// (`TotalAnnotationSizeLimitB`).
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;
/// podrun's limit on the containers of one pod: its supervisor starts them all at once, with a
/// few descriptors and a process each (checked with 250 under a 1024 soft RLIMIT_NOFILE).
pub const MAX_CONTAINERS_PER_POD: usize = 250;
/// The largest CFS quota the kernel takes (`max_cfs_runtime`, 2^44-1 us), at the kubelet's
/// period of 100000 us, in whole cores: `limits.cpu` above it ends in EINVAL at the cgroup write.
const MAX_CPU_LIMIT_MILLIS: i64 = ((1 << 44) - 1) / 100 / 1000 * 1000;
const PULL_POLICIES: [&str; 3] = ["Always", "IfNotPresent", "Never"];
const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns1123_label(text: &str) -> bool {
    text.len() <= 63 && has_label_shape(text)
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`, at most 253 characters
/// (the parts between dots may be longer than 63).
pub fn is_dns1123_subdomain(text: &str) -> bool {
    text.len() <= 253 && text.split('.').all(has_label_shape)
}

fn has_label_shape(text: &str) -> bool {
    let bytes = text.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && alnum(&bytes[0])
        && alnum(&bytes[bytes.len() - 1])
        && bytes.iter().all(|b| alnum(b) || *b == b'-')
}

fn is_env_name(text: &str) -> bool {
    let ok_first = |c: char| c.is_ascii_alphabetic() || "-._".contains(c);
    let mut chars = text.chars();
    chars.next().is_some_and(ok_first) && chars.all(|c| ok_first(c) || c.is_ascii_digit())
}

fn check_label(path: &str, value: &str, problems: &mut Vec<String>) {
    if value.len() > 63 {
        problems.push(invalid(path, value, "must be no more than 63 characters"));
    } else if !is_dns1123_label(value) {
        problems.push(invalid(path, value, DNS1123_LABEL_MSG));
    }
}

fn check_subdomain(path: &str, value: &str, problems: &mut Vec<String>) {
    if value.len() > 253 {
        problems.push(invalid(path, value, "must be no more than 253 characters"));
    } else if !is_dns1123_subdomain(value) {
        problems.push(invalid(path, value, DNS1123_SUBDOMAIN_MSG));
    }
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63 characters (empty allowed here).
fn is_label_value(text: &str) -> bool {
    let bytes = text.as_bytes();
    let inner = |b: &u8| b.is_ascii_alphanumeric() || b"-_.".contains(b);
    bytes.is_empty()
        || (bytes.len() <= 63
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && bytes.iter().all(inner))
}

/// A label key: `[prefix/]name`, prefix a DNS-1123 subdomain, name a non-empty label value.
fn label_key_problem(key: &str) -> Option<&'static str> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if prefix.is_some_and(|p| !is_dns1123_subdomain(p)) {
        return Some("prefix part must be a lowercase RFC 1123 subdomain");
    }
    if name.is_empty() {
        return Some("name part must be non-empty");
    }
    if name.len() > 63 {
        return Some("name part must be no more than 63 characters");
    }
    (!is_label_value(name)).then_some(QUALIFIED_NAME_MSG)
}

/// Label keys and values, as `ValidateLabels` does (`<path>: Invalid value: ...`).
pub fn check_labels(
    labels: Option<&BTreeMap<String, String>>,
    path: &str,
    problems: &mut Vec<String>,
) {
    for (key, value) in labels.into_iter().flatten() {
        if let Some(why) = label_key_problem(key) {
            problems.push(invalid(path, key, why));
        }
        if value.len() > 63 {
            problems.push(invalid(path, value, "must be no more than 63 characters"));
        } else if !is_label_value(value) {
            problems.push(invalid(path, value, LABEL_VALUE_MSG));
        }
    }
}

/// `metadata.name` (a DNS-1123 subdomain), `metadata.namespace` (a DNS-1123 label), labels.
pub(super) fn check_object_meta(meta: &ObjectMeta, problems: &mut Vec<String>) {
    match meta.name.as_deref().unwrap_or("") {
        "" => problems.push(required_because(
            "metadata.name",
            "name or generateName is required",
        )),
        name => check_subdomain("metadata.name", name, problems),
    }
    if let Some(namespace) = meta.namespace.as_deref().filter(|n| !n.is_empty()) {
        check_label("metadata.namespace", namespace, problems);
    }
    check_labels(meta.labels.as_ref(), "metadata.labels", problems);
    check_annotations(meta.annotations.as_ref(), "metadata.annotations", problems);
}

/// The annotations' total size (keys and values), as the API server caps it.
fn check_annotations(
    annotations: Option<&BTreeMap<String, String>>,
    path: &str,
    problems: &mut Vec<String>,
) {
    let size: usize = annotations
        .into_iter()
        .flatten()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if size > TOTAL_ANNOTATION_SIZE_LIMIT {
        problems.push(format!(
            "{path}: Too long: may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"
        ));
    }
}

/// All problems of a Pod.
pub fn pod_problems(pod: &Pod) -> Vec<String> {
    let mut problems = Vec::new();
    check_object_meta(&pod.metadata, &mut problems);
    match &pod.spec {
        Some(spec) => check_pod_spec(spec, "spec", &RestartPolicy::NAMES, &mut problems),
        None => problems.push(required("spec")),
    }
    problems
}

/// All problems of a Deployment, its pod template included.
pub fn deployment_problems(deployment: &Deployment) -> Vec<String> {
    let mut problems = Vec::new();
    check_object_meta(&deployment.metadata, &mut problems);
    let spec = &deployment.spec;
    if let Some(replicas) = spec.replicas.filter(|r| *r < 0) {
        let text = replicas.to_string();
        problems.push(invalid_raw(
            "spec.replicas",
            &text,
            "must be greater than or equal to 0",
        ));
    }
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref());
    check_annotations(
        spec.template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.as_ref()),
        "spec.template.metadata.annotations",
        &mut problems,
    );
    check_labels(
        template_labels,
        "spec.template.metadata.labels",
        &mut problems,
    );
    let selector = spec.selector.match_labels.as_ref();
    check_labels(selector, "spec.selector.matchLabels", &mut problems);
    check_selector(selector, &spec.template.metadata, &mut problems);
    super::workload::strategy_problems(spec.strategy.as_ref(), &mut problems);
    for (path, value) in [
        ("spec.minReadySeconds", spec.min_ready_seconds),
        ("spec.revisionHistoryLimit", spec.revision_history_limit),
        (
            "spec.progressDeadlineSeconds",
            spec.progress_deadline_seconds,
        ),
    ] {
        non_negative(path, value, &mut problems);
    }
    if let (Some(deadline), min_ready) = (
        spec.progress_deadline_seconds,
        spec.min_ready_seconds.unwrap_or(0),
    ) && deadline <= min_ready
    {
        problems.push(invalid_raw(
            "spec.progressDeadlineSeconds",
            &deadline.to_string(),
            "must be greater than minReadySeconds",
        ));
    }
    match &spec.template.spec {
        Some(pod_spec) => {
            check_pod_spec(pod_spec, "spec.template.spec", &["Always"], &mut problems)
        }
        None => problems.push(required("spec.template.spec.containers")),
    }
    problems
}

fn non_negative<T: Into<i64> + Copy>(path: &str, value: Option<T>, problems: &mut Vec<String>) {
    if let Some(v) = value.map(Into::into).filter(|v| *v < 0) {
        problems.push(invalid_raw(
            path,
            &v.to_string(),
            "must be greater than or equal to 0",
        ));
    }
}

/// All problems of a ReplicaSet, its pod template included.
pub fn replica_set_problems(rs: &ReplicaSet) -> Vec<String> {
    let mut problems = Vec::new();
    check_object_meta(&rs.metadata, &mut problems);
    let spec = rs.spec.clone();
    non_negative("spec.replicas", spec.replicas, &mut problems);
    non_negative(
        "spec.minReadySeconds",
        spec.min_ready_seconds,
        &mut problems,
    );
    let template = spec.template.unwrap_or_default();
    template_problems(&template, &["Always"], &mut problems);
    let selector = spec.selector.match_labels.as_ref();
    check_labels(selector, "spec.selector.matchLabels", &mut problems);
    check_selector(selector, &template.metadata, &mut problems);
    problems
}

/// All problems of a Job, its pod template included (`restartPolicy` Never or OnFailure).
pub fn job_problems(job: &Job) -> Vec<String> {
    let mut problems = Vec::new();
    check_object_meta(&job.metadata, &mut problems);
    let spec = job.spec.clone().unwrap_or_default();
    for (path, value) in [
        ("spec.completions", spec.completions),
        ("spec.parallelism", spec.parallelism),
        ("spec.backoffLimit", spec.backoff_limit),
        (
            "spec.ttlSecondsAfterFinished",
            spec.ttl_seconds_after_finished,
        ),
    ] {
        non_negative(path, value, &mut problems);
    }
    if let Some(d) = spec.active_deadline_seconds.filter(|d| *d <= 0) {
        problems.push(invalid_raw(
            "spec.activeDeadlineSeconds",
            &d.to_string(),
            "must be greater than 0",
        ));
    }
    let restart = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref());
    if restart.is_none() && spec.template.spec.is_some() {
        // Defaulted to Always first, as the API server does, which a Job refuses.
        problems.push(unsupported(
            "spec.template.spec.restartPolicy",
            "Always",
            &["OnFailure", "Never"],
        ));
    }
    template_problems(&spec.template, &["OnFailure", "Never"], &mut problems);
    problems
}

fn template_problems(template: &PodTemplateSpec, policies: &[&str], problems: &mut Vec<String>) {
    let meta = template.metadata.as_ref();
    check_annotations(
        meta.and_then(|m| m.annotations.as_ref()),
        "spec.template.metadata.annotations",
        problems,
    );
    check_labels(
        meta.and_then(|m| m.labels.as_ref()),
        "spec.template.metadata.labels",
        problems,
    );
    match &template.spec {
        Some(pod_spec) => check_pod_spec(pod_spec, "spec.template.spec", policies, problems),
        None => problems.push(required("spec.template.spec.containers")),
    }
}

fn check_selector(
    selector: Option<&BTreeMap<String, String>>,
    template: &Option<ObjectMeta>,
    problems: &mut Vec<String>,
) {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        problems.push(required("spec.selector"));
        return;
    };
    let empty = BTreeMap::new();
    let labels = template
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .unwrap_or(&empty);
    if selector.iter().any(|(k, v)| labels.get(k) != Some(v)) {
        problems.push(invalid_raw(
            "spec.template.metadata.labels",
            &go_map(labels),
            "selector does not match template labels",
        ));
    }
}

/// A label map the way the API server prints it: `map[string]string{"app":"web"}`.
fn go_map(map: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = map.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
    format!("map[string]string{{{}}}", pairs.join(", "))
}

fn check_pod_spec(spec: &PodSpec, path: &str, policies: &[&str], problems: &mut Vec<String>) {
    if spec.containers.is_empty() {
        problems.push(required(&format!("{path}.containers")));
    }
    if spec.containers.len() > MAX_CONTAINERS_PER_POD {
        problems.push(format!(
            "{path}.containers: Too many: {}: must have at most {MAX_CONTAINERS_PER_POD} items \
             (podrun's limit for one pod: its supervisor starts every container at once)",
            spec.containers.len()
        ));
    }
    let mut names = HashSet::new();
    let mut ports = PortRegistry::default();
    let volumes = check_volumes(spec.volumes.as_deref().unwrap_or(&[]), path, problems);
    check_dns(spec, path, problems);
    let inits = spec.init_containers.iter().flatten().enumerate();
    let inits = inits.map(|(i, c)| (format!("{path}.initContainers[{i}]"), c, true));
    let apps = spec.containers.iter().enumerate();
    let apps = apps.map(|(i, c)| (format!("{path}.containers[{i}]"), c, false));
    for (cpath, container, init) in inits.chain(apps) {
        check_container(container, &cpath, problems);
        let sidecar = init && check_init_restart_policy(container, &cpath, problems);
        super::handlers::check(container, &cpath, !init || sidecar, problems);
        if init && !sidecar && container.ports.as_ref().is_some_and(|p| !p.is_empty()) {
            problems.push(format!(
                "{cpath}.ports: Forbidden: may not be set for init containers without restartPolicy=Always (podrun: they run to completion)"
            ));
        }
        check_volume_mounts(container, &volumes, &cpath, problems);
        if !container.name.is_empty() && !names.insert(container.name.as_str()) {
            problems.push(duplicate(&format!("{cpath}.name"), &container.name));
        }
        for (j, port) in container.ports.iter().flatten().enumerate() {
            ports.check(port, &format!("{cpath}.ports[{j}]"), problems);
        }
    }
    if let Some(policy) = spec.restart_policy.as_deref()
        && !policies.contains(&policy)
    {
        problems.push(unsupported(
            &format!("{path}.restartPolicy"),
            policy,
            policies,
        ));
    }
    if let Some(grace) = spec.termination_grace_period_seconds.filter(|g| *g < 0) {
        let p = format!("{path}.terminationGracePeriodSeconds");
        problems.push(invalid_raw(
            &p,
            &grace.to_string(),
            "must be greater than or equal to 0",
        ));
    }
    if let Some(hostname) = spec.hostname.as_deref().filter(|h| !h.is_empty()) {
        check_label(&format!("{path}.hostname"), hostname, problems);
    }
}

/// An init container's `restartPolicy`: absent, or `Always` (a native sidecar: true).
fn check_init_restart_policy(
    container: &Container,
    path: &str,
    problems: &mut Vec<String>,
) -> bool {
    match container.restart_policy.as_deref() {
        None => false,
        Some("Always") => true,
        Some(other) => {
            problems.push(unsupported(
                &format!("{path}.restartPolicy"),
                other,
                &["Always"],
            ));
            false
        }
    }
}

fn check_container(container: &Container, path: &str, problems: &mut Vec<String>) {
    let p = |field: &str| format!("{path}.{field}");
    match container.name.as_str() {
        "" => problems.push(required(&p("name"))),
        name => check_label(&p("name"), name, problems),
    }
    if container.image.as_deref().unwrap_or("").trim().is_empty() {
        problems.push(required(&p("image")));
    }
    if let Some(policy) = container.image_pull_policy.as_deref()
        && !PULL_POLICIES.contains(&policy)
    {
        problems.push(unsupported(&p("imagePullPolicy"), policy, &PULL_POLICIES));
    }
    for (k, var) in container.env.iter().flatten().enumerate() {
        check_env_var(var, &format!("{path}.env[{k}]"), problems);
    }
    if let Some(resources) = &container.resources {
        check_resources(resources, &p("resources"), problems);
    }
    if let Some(sc) = &container.security_context {
        check_security_context(sc, &p("securityContext"), problems);
    }
}

fn check_security_context(sc: &SecurityContext, path: &str, problems: &mut Vec<String>) {
    let caps = sc.capabilities.clone().unwrap_or_default();
    for (list, names) in [("add", caps.add), ("drop", caps.drop)] {
        for (i, name) in names.iter().flatten().enumerate() {
            if !name.eq_ignore_ascii_case("ALL") && crate::container::caps::parse(name).is_none() {
                problems.push(format!(
                    "{path}.capabilities.{list}[{i}]: unknown capability \"{name}\""
                ));
            }
        }
    }
    for (field, value) in [
        ("runAsUser", sc.run_as_user),
        ("runAsGroup", sc.run_as_group),
    ] {
        if let Some(v) = value.filter(|v| !(0..=i64::from(i32::MAX)).contains(v)) {
            problems.push(invalid_raw(
                &format!("{path}.{field}"),
                &v.to_string(),
                "must be between 0 and 2147483647, inclusive",
            ));
        }
    }
    if sc.privileged == Some(true) && sc.allow_privilege_escalation == Some(false) {
        problems.push(invalid_raw(
            path,
            "",
            "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
        ));
    }
}

/// Volume names, one source each, hostPath/emptyDir details. Returns the volume names.
fn check_volumes(volumes: &[Volume], path: &str, problems: &mut Vec<String>) -> HashSet<String> {
    let mut names = HashSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let vpath = format!("{path}.volumes[{i}]");
        if v.name.is_empty() {
            problems.push(required(&format!("{vpath}.name")));
        } else {
            check_label(&format!("{vpath}.name"), &v.name, problems);
            if !names.insert(v.name.clone()) {
                problems.push(duplicate(&format!("{vpath}.name"), &v.name));
            }
        }
        let sources = [
            v.empty_dir.is_some(),
            v.host_path.is_some(),
            v.config_map.is_some(),
            v.secret.is_some(),
        ];
        match sources.iter().filter(|s| **s).count() {
            0 => problems.push(required_because(&vpath, "must specify a volume type")),
            1 => {}
            _ => problems.push(format!(
                "{vpath}: Forbidden: may not specify more than 1 volume type"
            )),
        }
        if let Some(h) = &v.host_path {
            if h.path.is_empty() {
                problems.push(required(&format!("{vpath}.hostPath.path")));
            } else if !h.path.starts_with('/') {
                problems.push(invalid(
                    &format!("{vpath}.hostPath.path"),
                    &h.path,
                    "must be an absolute path",
                ));
            }
            if let Some(t) = h.type_.as_deref()
                && !HOST_PATH_TYPES.contains(&t)
            {
                problems.push(unsupported(
                    &format!("{vpath}.hostPath.type"),
                    t,
                    &HOST_PATH_TYPES[1..],
                ));
            }
        }
        if let Some(e) = &v.empty_dir {
            if let Some(m) = e.medium.as_deref().filter(|m| !["", "Memory"].contains(m)) {
                problems.push(unsupported(
                    &format!("{vpath}.emptyDir.medium"),
                    m,
                    &["", "Memory"],
                ));
            }
            checked_quantity(
                e.size_limit.clone(),
                &format!("{vpath}.emptyDir.sizeLimit"),
                false,
                problems,
            );
        }
        if let Some(c) = &v.config_map
            && c.name.is_empty()
        {
            problems.push(required(&format!("{vpath}.configMap.name")));
        }
        if let Some(s) = &v.secret
            && s.secret_name.as_deref().unwrap_or("").is_empty()
        {
            problems.push(required(&format!("{vpath}.secret.secretName")));
        }
    }
    names
}

fn check_volume_mounts(
    container: &Container,
    volumes: &HashSet<String>,
    path: &str,
    problems: &mut Vec<String>,
) {
    let mut paths = HashSet::new();
    for (i, m) in container.volume_mounts.iter().flatten().enumerate() {
        let mpath = format!("{path}.volumeMounts[{i}]");
        if m.name.is_empty() {
            problems.push(required(&format!("{mpath}.name")));
        } else if !volumes.contains(&m.name) {
            problems.push(format!("{mpath}.name: Not found: \"{}\"", m.name));
        }
        if m.mount_path.is_empty() {
            problems.push(required(&format!("{mpath}.mountPath")));
        } else if let Some(why) = proc_mount_problem(&m.mount_path) {
            problems.push(invalid(&format!("{mpath}.mountPath"), &m.mount_path, why));
        } else if !paths.insert(m.mount_path.clone()) {
            problems.push(invalid(
                &format!("{mpath}.mountPath"),
                &m.mount_path,
                "must be unique",
            ));
        }
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            if sub.starts_with('/') {
                problems.push(invalid(
                    &format!("{mpath}.subPath"),
                    sub,
                    "must be a relative path",
                ));
            } else if sub.split('/').any(|part| part == "..") {
                problems.push(invalid(
                    &format!("{mpath}.subPath"),
                    sub,
                    "must not contain '..'",
                ));
            }
        }
    }
}

/// A volume at or inside `/proc` would hide or replace the container's procfs: runc refuses
/// such mounts when it creates the container; podrun refuses them at validation, in runc's words.
fn proc_mount_problem(mount_path: &str) -> Option<&'static str> {
    let parts: Vec<&str> = mount_path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    match parts.as_slice() {
        ["proc"] => Some("cannot be mounted because it is not of type proc (runc refuses it)"),
        ["proc", ..] => Some("cannot be mounted because it is inside /proc (runc refuses it)"),
        _ => None,
    }
}

const DNS_POLICIES: [&str; 4] = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];

fn check_dns(spec: &PodSpec, path: &str, problems: &mut Vec<String>) {
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    if !DNS_POLICIES.contains(&policy) {
        problems.push(unsupported(
            &format!("{path}.dnsPolicy"),
            policy,
            &DNS_POLICIES,
        ));
    }
    let config = spec.dns_config.clone().unwrap_or_default();
    let servers = config.nameservers.unwrap_or_default();
    if policy == "None" && servers.is_empty() {
        problems.push(required_because(
            &format!("{path}.dnsConfig.nameservers"),
            "must provide at least one DNS nameserver when DNSPolicy is None",
        ));
    }
    if servers.len() > 3 {
        problems.push(invalid_raw(
            &format!("{path}.dnsConfig.nameservers"),
            &format!("{servers:?}"),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, server) in servers.iter().enumerate() {
        if server.parse::<std::net::IpAddr>().is_err() {
            problems.push(invalid(
                &format!("{path}.dnsConfig.nameservers[{i}]"),
                server,
                "must be a valid IP address",
            ));
        }
    }
}

fn check_env_var(var: &EnvVar, path: &str, problems: &mut Vec<String>) {
    if var.name.is_empty() {
        problems.push(required(&format!("{path}.name")));
    } else if !is_env_name(&var.name) {
        problems.push(invalid(&format!("{path}.name"), &var.name, ENV_NAME_MSG));
    }
    let has_value = var.value.as_deref().is_some_and(|v| !v.is_empty());
    if let Some(from) = &var.value_from {
        let count = [
            from.field_ref.is_some(),
            from.config_map_key_ref.is_some(),
            from.secret_key_ref.is_some(),
            from.resource_field_ref.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if count > 1 {
            problems.push(invalid(
                &format!("{path}.valueFrom"),
                "",
                "may not have more than one field specified at a time",
            ));
        }
        if let Some(r) = &from.config_map_key_ref
            && r.key.is_empty()
        {
            problems.push(required(&format!("{path}.valueFrom.configMapKeyRef.key")));
        }
        if let Some(r) = &from.secret_key_ref
            && r.key.is_empty()
        {
            problems.push(required(&format!("{path}.valueFrom.secretKeyRef.key")));
        }
    }
    let field_ref = var.value_from.as_ref().and_then(|f| f.field_ref.as_ref());
    if let Some(field_ref) = field_ref {
        if has_value {
            let why = "may not be specified when `value` is not empty";
            problems.push(invalid(&format!("{path}.valueFrom"), "", why));
        }
        if field_ref.field_path.is_empty() {
            problems.push(required(&format!("{path}.valueFrom.fieldRef.fieldPath")));
        }
        if let Some(version) = field_ref.api_version.as_deref().filter(|v| *v != "v1") {
            let p = format!("{path}.valueFrom.fieldRef.apiVersion");
            problems.push(unsupported(&p, version, &["v1"]));
        }
    }
}

/// Duplicate `containerPort`+`protocol` pairs and port names across the pod's containers.
#[derive(Default)]
struct PortRegistry {
    seen: HashSet<(i32, String)>,
    names: HashSet<String>,
}

impl PortRegistry {
    fn check(&mut self, port: &ContainerPort, path: &str, problems: &mut Vec<String>) {
        let number = port.container_port;
        if !(1..=65535).contains(&number) {
            let p = format!("{path}.containerPort");
            problems.push(invalid_raw(
                &p,
                &number.to_string(),
                "must be between 1 and 65535, inclusive",
            ));
        }
        let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".to_string());
        if !PROTOCOLS.contains(&protocol.as_str()) {
            problems.push(unsupported(
                &format!("{path}.protocol"),
                &protocol,
                &PROTOCOLS,
            ));
        }
        if let Some(host_port) = port.host_port
            && !(0..=65535).contains(&host_port)
        {
            problems.push(invalid_raw(
                &format!("{path}.hostPort"),
                &host_port.to_string(),
                "must be between 1 and 65535, inclusive",
            ));
        }
        if let Some(ip) = port.host_ip.as_deref().filter(|ip| !ip.is_empty()) {
            match ip.parse::<std::net::IpAddr>() {
                Err(_) => problems.push(invalid(
                    &format!("{path}.hostIP"),
                    ip,
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                )),
                Ok(std::net::IpAddr::V6(_)) => problems.push(format!(
                    "{path}.hostIP: Unsupported value: \"{ip}\": an IPv6 hostIP is not supported by podrun yet (its pod network is IPv4)"
                )),
                Ok(_) => {}
            }
        }
        if !self.seen.insert((number, protocol.clone())) {
            problems.push(duplicate(path, &format!("{number}/{protocol}")));
        }
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            check_port_name(&format!("{path}.name"), name, problems);
            if !self.names.insert(name.to_string()) {
                problems.push(duplicate(&format!("{path}.name"), name));
            }
        }
    }
}

/// IANA_SVC_NAME: at most 15 characters, `[a-z0-9-]`, a letter somewhere, no `--`, no edge `-`.
fn check_port_name(path: &str, name: &str, problems: &mut Vec<String>) {
    let why = if name.len() > 15 {
        "must be no more than 15 characters"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"
    } else if name.contains("--") {
        "must not contain consecutive hyphens"
    } else if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        "must contain at least one letter (a-z)"
    } else if name.starts_with('-') || name.ends_with('-') {
        "must not begin or end with a hyphen"
    } else {
        return;
    };
    problems.push(invalid(path, name, why));
}

/// Which amounts the two resource kinds use, and how they print.
#[derive(Clone, Copy)]
enum Kind {
    Cpu,
    Memory,
}

impl Kind {
    fn amount(self, quantity: &Quantity) -> i64 {
        match self {
            Kind::Cpu => quantity.milli_value(),
            Kind::Memory => quantity.value(),
        }
    }

    fn format(self, amount: i64) -> String {
        let amount = u64::try_from(amount).unwrap_or(0);
        match self {
            Kind::Cpu => format_cpu_millis(amount),
            Kind::Memory => format_bytes(amount),
        }
    }
}

fn check_resources(
    resources: &k8s_openapi::api::core::v1::ResourceRequirements,
    path: &str,
    problems: &mut Vec<String>,
) {
    for (name, kind) in [("cpu", Kind::Cpu), ("memory", Kind::Memory)] {
        let get = |list: &Option<BTreeMap<String, K8sQuantity>>| list.as_ref()?.get(name).cloned();
        let request_path = format!("{path}.requests.{name}");
        let limit_path = format!("{path}.limits.{name}");
        let request = checked_quantity(get(&resources.requests), &request_path, false, problems);
        let limit = checked_quantity(get(&resources.limits), &limit_path, true, problems);
        if let (Kind::Cpu, Some(limit)) = (kind, &limit)
            && limit.milli_value() > MAX_CPU_LIMIT_MILLIS
        {
            let text = get(&resources.limits).map(|q| q.0).unwrap_or_default();
            let why = format!(
                "must be less than or equal to {} (the largest CFS quota the kernel accepts)",
                kind.format(MAX_CPU_LIMIT_MILLIS)
            );
            problems.push(invalid(&limit_path, &text, &why));
        }
        if let (Some(request), Some(limit)) = (request, limit) {
            let (wanted, cap) = (kind.amount(&request), kind.amount(&limit));
            if wanted > cap {
                let why = format!(
                    "must be less than or equal to {name} limit of {}",
                    kind.format(cap)
                );
                problems.push(invalid(&request_path, &kind.format(wanted), &why));
            }
        }
    }
}

/// Parses one quantity, reporting syntax, sign and (for limits) zero problems.
fn checked_quantity(
    value: Option<K8sQuantity>,
    path: &str,
    is_limit: bool,
    problems: &mut Vec<String>,
) -> Option<Quantity> {
    let text = value?.0;
    let quantity = match Quantity::parse(&text) {
        Ok(q) => q,
        Err(e) => {
            problems.push(invalid(path, &text, &e.to_string()));
            return None;
        }
    };
    if quantity.is_negative() {
        problems.push(invalid(path, &text, "must be greater than or equal to 0"));
        return None;
    }
    if is_limit && quantity.is_zero() {
        problems.push(invalid(path, &text, "must be greater than 0"));
        return None;
    }
    Some(quantity)
}

/// Supported-by-Kubernetes values podrun cannot honour yet (for the "not supported" error).
pub fn unsupported_values(spec: &PodSpec, path: &str) -> Vec<String> {
    let mut found = Vec::new();
    let inits = spec.init_containers.iter().flatten().enumerate();
    let inits = inits.map(|(i, c)| (format!("initContainers[{i}]"), c));
    let apps = spec.containers.iter().enumerate();
    let apps = apps.map(|(i, c)| (format!("containers[{i}]"), c));
    for (cpath, container) in inits.chain(apps) {
        for (k, var) in container.env.iter().flatten().enumerate() {
            let field_ref = var.value_from.as_ref().and_then(|f| f.field_ref.as_ref());
            let Some(field_path) = field_ref.map(|f| f.field_path.as_str()) else {
                continue;
            };
            if !field_path.is_empty() && !SUPPORTED_FIELD_PATHS.contains(&field_path) {
                found.push(format!(
                    "field \"{path}.{cpath}.env[{k}].valueFrom.fieldRef.fieldPath\" \
                     value \"{field_path}\" is not supported by podrun yet (supported: {})",
                    SUPPORTED_FIELD_PATHS.join(", ")
                ));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert!(is_dns1123_label("web-1"));
        assert!(!is_dns1123_label("Web"));
        assert!(!is_dns1123_label("-web"));
        assert!(!is_dns1123_label("web-"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_dns1123_subdomain("a.b-c.d"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(!is_dns1123_subdomain("a_b"));
        assert!(is_dns1123_subdomain(&"a".repeat(100)));
        assert!(!is_dns1123_subdomain(&"a".repeat(254)));
    }

    #[test]
    fn env_names() {
        assert!(is_env_name("POD_IP"));
        assert!(is_env_name("my.env-name"));
        assert!(is_env_name("_x1"));
        assert!(!is_env_name("1X"));
        assert!(!is_env_name("A B"));
        assert!(!is_env_name(""));
    }

    #[test]
    fn port_names() {
        let check = |name: &str| {
            let mut problems = Vec::new();
            check_port_name("p", name, &mut problems);
            problems
        };
        assert!(check("http").is_empty());
        assert!(check("web-8080").is_empty());
        assert_eq!(check("8080").len(), 1);
        assert_eq!(check("a--b").len(), 1);
        assert_eq!(check("Http").len(), 1);
        assert_eq!(check("a-very-long-port-name").len(), 1);
    }

    #[test]
    fn labels() {
        let check = |key: &str, value: &str| {
            let map = BTreeMap::from([(key.to_string(), value.to_string())]);
            let mut problems = Vec::new();
            check_labels(Some(&map), "metadata.labels", &mut problems);
            problems
        };
        assert!(check("app", "web").is_empty());
        assert!(check("app.kubernetes.io/name", "My_App.1").is_empty());
        assert!(check("app", "").is_empty());
        assert_eq!(
            check("app", "bad value"),
            [format!(
                "metadata.labels: Invalid value: \"bad value\": {LABEL_VALUE_MSG}"
            )]
        );
        assert_eq!(check("Bad_Prefix/x", "v").len(), 1);
        assert_eq!(check("x/", "v").len(), 1);
        assert_eq!(check("-x", "v").len(), 1);
        assert_eq!(check("a", &"v".repeat(64)).len(), 1);
    }

    #[test]
    fn go_map_format() {
        let map = BTreeMap::from([("app".to_string(), "web".to_string())]);
        assert_eq!(go_map(&map), "map[string]string{\"app\":\"web\"}");
    }
}
