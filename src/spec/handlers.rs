//! Probes and lifecycle hooks of a container: the API server's validation
//! (`validateProbe`, `validateHandler`, `validateLifecycle`) and their plan with the
//! defaults (`SetDefaults_Probe`, `SetDefaults_HTTPGetAction`), a named port resolved against
//! the container's own ports.

use k8s_openapi::api::core::v1::{
    Container, GRPCAction, HTTPGetAction, LifecycleHandler, Probe as K8sProbe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::error::{invalid, invalid_raw, required, unsupported};
use crate::probe::{ContainerProbes, Handler, Kind, Probe, Scheme};

pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
const SCHEMES: [&str; 2] = ["HTTP", "HTTPS"];

/// A container's lifecycle hooks.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LifecyclePlan {
    pub post_start: Option<Handler>,
    pub pre_stop: Option<Handler>,
}

/// The probes and hooks of `container` at `path`: every problem.
pub fn check(container: &Container, path: &str, restartable: bool, problems: &mut Vec<String>) {
    let probes = [
        ("startupProbe", &container.startup_probe, Kind::Startup),
        ("livenessProbe", &container.liveness_probe, Kind::Liveness),
        (
            "readinessProbe",
            &container.readiness_probe,
            Kind::Readiness,
        ),
    ];
    for (field, probe, kind) in probes {
        let Some(probe) = probe else { continue };
        let p = format!("{path}.{field}");
        if !restartable {
            problems.push(format!(
                "{p}: Forbidden: may not be set for init containers without restartPolicy=Always"
            ));
            continue;
        }
        check_probe(container, probe, &p, kind, problems);
    }
    if let Some(lifecycle) = &container.lifecycle {
        let p = format!("{path}.lifecycle");
        if !restartable {
            problems.push(format!(
                "{p}: Forbidden: may not be set for init containers without restartPolicy=Always"
            ));
            return;
        }
        for (field, hook) in [
            ("postStart", &lifecycle.post_start),
            ("preStop", &lifecycle.pre_stop),
        ] {
            if let Some(hook) = hook {
                check_hook(container, hook, &format!("{p}.{field}"), problems);
            }
        }
    }
    if let Some(policy) = container.termination_message_policy.as_deref() {
        let supported = ["File", "FallbackToLogsOnError"];
        if !supported.contains(&policy) {
            problems.push(unsupported(
                &format!("{path}.terminationMessagePolicy"),
                policy,
                &supported,
            ));
        }
    }
    if let Some(tmp) = container.termination_message_path.as_deref()
        && !tmp.is_empty()
        && !tmp.starts_with('/')
    {
        problems.push(invalid(
            &format!("{path}.terminationMessagePath"),
            tmp,
            "must be an absolute path",
        ));
    }
}

fn check_probe(
    container: &Container,
    probe: &K8sProbe,
    path: &str,
    kind: Kind,
    problems: &mut Vec<String>,
) {
    let handlers = [
        probe.exec.is_some(),
        probe.http_get.is_some(),
        probe.tcp_socket.is_some(),
        probe.grpc.is_some(),
    ];
    let count = handlers.iter().filter(|h| **h).count();
    check_common(
        container,
        count,
        &probe.exec,
        &probe.http_get,
        path,
        problems,
    );
    if let Some(tcp) = &probe.tcp_socket {
        check_port(
            container,
            &tcp.port,
            &format!("{path}.tcpSocket.port"),
            problems,
        );
    }
    if let Some(grpc) = &probe.grpc
        && !(1..=65535).contains(&grpc.port)
    {
        problems.push(invalid_raw(
            &format!("{path}.grpc.port"),
            &grpc.port.to_string(),
            "must be between 1 and 65535, inclusive",
        ));
    }
    for (field, value) in [
        ("initialDelaySeconds", probe.initial_delay_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("periodSeconds", probe.period_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ] {
        if let Some(v) = value.filter(|v| *v < 0) {
            problems.push(invalid_raw(
                &format!("{path}.{field}"),
                &v.to_string(),
                "must be greater than or equal to 0",
            ));
        }
    }
    if kind != Kind::Readiness
        && let Some(v) = probe.success_threshold.filter(|v| *v != 1)
    {
        problems.push(invalid_raw(
            &format!("{path}.successThreshold"),
            &v.to_string(),
            "must be 1",
        ));
    }
    if let Some(grace) = probe.termination_grace_period_seconds {
        let p = format!("{path}.terminationGracePeriodSeconds");
        if kind == Kind::Readiness {
            problems.push(invalid_raw(
                &p,
                &grace.to_string(),
                "must not be set for readinessProbes",
            ));
        } else if grace <= 0 {
            problems.push(invalid_raw(
                &p,
                &grace.to_string(),
                "must be greater than 0",
            ));
        }
    }
}

fn check_hook(
    container: &Container,
    hook: &LifecycleHandler,
    path: &str,
    problems: &mut Vec<String>,
) {
    if hook.tcp_socket.is_some() {
        problems.push(format!(
            "{path}.tcpSocket: Forbidden: may not be set for lifecycle hooks (deprecated, never run by the kubelet)"
        ));
    }
    let handlers = [
        hook.exec.is_some(),
        hook.http_get.is_some(),
        hook.sleep.is_some(),
    ];
    // A tcpSocket hook was refused above: it counts as the handler.
    let count = handlers.iter().filter(|h| **h).count() + usize::from(hook.tcp_socket.is_some());
    check_common(container, count, &hook.exec, &hook.http_get, path, problems);
    if let Some(sleep) = &hook.sleep
        && sleep.seconds < 0
    {
        problems.push(invalid_raw(
            &format!("{path}.sleep.seconds"),
            &sleep.seconds.to_string(),
            "must be greater than or equal to 0",
        ));
    }
}

/// What probes and hooks share: one handler (`count` of them set), an exec with a command,
/// an httpGet with a valid port, scheme and headers.
fn check_common(
    container: &Container,
    count: usize,
    exec: &Option<k8s_openapi::api::core::v1::ExecAction>,
    http: &Option<HTTPGetAction>,
    path: &str,
    problems: &mut Vec<String>,
) {
    match count {
        0 => problems.push(format!(
            "{path}: Required value: must specify a handler type"
        )),
        1 => {}
        _ => problems.push(format!(
            "{path}: Forbidden: may not specify more than 1 handler type"
        )),
    }
    if let Some(exec) = exec
        && exec.command.as_ref().is_none_or(|c| c.is_empty())
    {
        problems.push(required(&format!("{path}.exec.command")));
    }
    if let Some(http) = http {
        check_http(container, http, &format!("{path}.httpGet"), problems);
    }
}

fn check_http(container: &Container, http: &HTTPGetAction, path: &str, problems: &mut Vec<String>) {
    check_port(container, &http.port, &format!("{path}.port"), problems);
    if let Some(scheme) = http.scheme.as_deref()
        && !SCHEMES.contains(&scheme)
    {
        problems.push(unsupported(&format!("{path}.scheme"), scheme, &SCHEMES));
    }
    for (k, h) in http.http_headers.iter().flatten().enumerate() {
        let valid = !h.name.is_empty()
            && h.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid {
            problems.push(invalid(
                &format!("{path}.httpHeaders[{k}].name"),
                &h.name,
                "a valid HTTP header must consist of alphanumeric characters or '-' (e.g. 'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')",
            ));
        }
    }
}

fn check_port(container: &Container, port: &IntOrString, path: &str, problems: &mut Vec<String>) {
    match port {
        IntOrString::Int(n) if !(1..=65535).contains(n) => problems.push(invalid_raw(
            path,
            &n.to_string(),
            "must be between 1 and 65535, inclusive",
        )),
        IntOrString::Int(_) => {}
        IntOrString::String(name) if resolve_port(container, port).is_none() => {
            problems.push(invalid(
                path,
                name,
                "must be a port number or the name of one of this container's ports (podrun resolves it at apply)",
            ))
        }
        IntOrString::String(_) => {}
    }
}

/// A port by number, by a number written as a string, or by the name of one of the
/// container's ports (the kubelet's `findPortByName`).
fn resolve_port(container: &Container, port: &IntOrString) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok().filter(|n| *n > 0),
        IntOrString::String(s) => s.parse::<u16>().ok().filter(|n| *n > 0).or_else(|| {
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(s.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
        }),
    }
}

/// The probes of a validated container, with the defaults.
pub fn probes_plan(container: &Container) -> ContainerProbes {
    let plan = |p: &Option<K8sProbe>| p.as_ref().and_then(|p| probe_plan(container, p));
    ContainerProbes {
        startup: plan(&container.startup_probe),
        liveness: plan(&container.liveness_probe),
        readiness: plan(&container.readiness_probe),
    }
}

fn probe_plan(container: &Container, p: &K8sProbe) -> Option<Probe> {
    let positive =
        |v: Option<i32>, default: u32| v.filter(|v| *v > 0).map(|v| v as u32).unwrap_or(default);
    let handler = if let Some(exec) = &p.exec {
        Handler::Exec {
            command: exec.command.clone().unwrap_or_default(),
        }
    } else if let Some(http) = &p.http_get {
        http_handler(container, http)?
    } else if let Some(tcp) = &p.tcp_socket {
        tcp_handler(container, tcp)?
    } else {
        grpc_handler(p.grpc.as_ref()?)
    };
    Some(Probe {
        handler,
        initial_delay_seconds: p.initial_delay_seconds.unwrap_or(0).max(0) as u32,
        period_seconds: positive(p.period_seconds, 10),
        timeout_seconds: positive(p.timeout_seconds, 1),
        success_threshold: positive(p.success_threshold, 1),
        failure_threshold: positive(p.failure_threshold, 3),
        termination_grace_period_seconds: p.termination_grace_period_seconds,
    })
}

fn http_handler(container: &Container, http: &HTTPGetAction) -> Option<Handler> {
    let path = http.path.clone().filter(|p| !p.is_empty());
    Some(Handler::HttpGet {
        scheme: match http.scheme.as_deref() {
            Some("HTTPS") => Scheme::Https,
            _ => Scheme::Http,
        },
        host: http.host.clone().filter(|h| !h.is_empty()),
        port: resolve_port(container, &http.port)?,
        path: match path {
            Some(p) if p.starts_with('/') => p,
            Some(p) => format!("/{p}"),
            None => "/".into(),
        },
        headers: http
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect(),
    })
}

fn tcp_handler(container: &Container, tcp: &TCPSocketAction) -> Option<Handler> {
    Some(Handler::TcpSocket {
        host: tcp.host.clone().filter(|h| !h.is_empty()),
        port: resolve_port(container, &tcp.port)?,
    })
}

fn grpc_handler(grpc: &GRPCAction) -> Handler {
    Handler::Grpc {
        port: grpc.port as u16,
        service: grpc.service.clone().filter(|s| !s.is_empty()),
    }
}

/// The hooks of a validated container.
pub fn lifecycle_plan(container: &Container) -> LifecyclePlan {
    let hook = |h: &Option<LifecycleHandler>| -> Option<Handler> {
        let h = h.as_ref()?;
        if let Some(exec) = &h.exec {
            Some(Handler::Exec {
                command: exec.command.clone().unwrap_or_default(),
            })
        } else if let Some(http) = &h.http_get {
            http_handler(container, http)
        } else {
            h.sleep.as_ref().map(|s| Handler::Sleep {
                seconds: s.seconds.max(0) as u64,
            })
        }
    };
    let lifecycle = container.lifecycle.clone().unwrap_or_default();
    LifecyclePlan {
        post_start: hook(&lifecycle.post_start),
        pre_stop: hook(&lifecycle.pre_stop),
    }
}
