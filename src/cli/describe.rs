//! `podrun describe pod NAME`: kubectl's layout, plus the sandbox podrun made.

use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::{Result, load_pod, table};
use crate::config::Config;
use crate::spec::EnvSource;
use crate::state::{ContainerState, PodRecord};

pub fn describe(cfg: &Config, namespace: &str, name: &str) -> Result<i32> {
    let r = load_pod(cfg, namespace, name)?;
    print!("{}", render(&r));
    Ok(0)
}

fn date(t: &DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S %z").to_string()
}

fn map_lines(out: &mut String, label: &str, map: &std::collections::BTreeMap<String, String>) {
    if map.is_empty() {
        let _ = writeln!(out, "{label:<18}<none>");
        return;
    }
    for (i, (k, v)) in map.iter().enumerate() {
        let head = if i == 0 { label } else { "" };
        let _ = writeln!(out, "{head:<18}{k}={v}");
    }
}

pub fn render(r: &PodRecord) -> String {
    let mut o = String::new();
    let p = &r.plan;
    let _ = writeln!(o, "{:<18}{}", "Name:", p.name);
    let _ = writeln!(o, "{:<18}{}", "Namespace:", p.namespace);
    let _ = writeln!(
        o,
        "{:<18}{}/{}",
        "Node:",
        r.node_name,
        r.network_config.gateway()
    );
    if let Some(t) = &r.start_time {
        let _ = writeln!(o, "{:<18}{}", "Start Time:", date(t));
    }
    map_lines(&mut o, "Labels:", &p.labels);
    map_lines(&mut o, "Annotations:", &p.annotations);
    // kubectl shows the phase here (the STATUS column's word is `get`'s), or Terminating.
    match &r.deletion {
        Some(d) => {
            let _ = writeln!(
                o,
                "{:<18}Terminating (lasts {})",
                "Status:",
                super::table::age(d.requested_at)
            );
            let _ = writeln!(o, "Termination Grace Period:  {}s", d.grace_period_seconds);
        }
        None => {
            let _ = writeln!(o, "{:<18}{}", "Status:", r.phase);
        }
    }
    if crate::pod::supervisor_lost(r) {
        let _ = writeln!(o, "{:<18}SupervisorLost", "Reason:");
        let message = crate::pod::SUPERVISOR_LOST_MESSAGE;
        let _ = writeln!(o, "{:<18}{message}", "Message:");
    }
    let ip = r.pod_ip().map(|i| i.to_string()).unwrap_or_default();
    let _ = writeln!(o, "{:<18}{}", "IP:", ip);
    let _ = writeln!(o, "IPs:");
    if !ip.is_empty() {
        let _ = writeln!(o, "  IP:  {ip}");
    }
    if let Some(owner) = &p.owner {
        let _ = writeln!(o, "{:<18}{}/{}", "Controlled By:", owner.kind, owner.name);
    }
    sandbox(&mut o, r);
    let pairs = || r.containers.iter().zip(&p.containers);
    let inits: Vec<_> = pairs().filter(|(c, _)| c.init).collect();
    if !inits.is_empty() {
        let _ = writeln!(o, "Init Containers:");
        for (c, spec) in inits {
            container(&mut o, r, c, spec);
        }
    }
    let _ = writeln!(o, "Containers:");
    for (c, spec) in pairs().filter(|(c, _)| !c.init) {
        container(&mut o, r, c, spec);
    }
    let ready = crate::pod::pod_ready(r);
    let containers_ready = crate::pod::containers_ready(r);
    let sandbox_ready = r.sandbox.as_ref().is_some_and(|s| s.ready);
    let _ = writeln!(o, "Conditions:");
    let _ = writeln!(o, "  Type                        Status");
    for (t, s) in [
        ("PodReadyToStartContainers", sandbox_ready),
        ("Initialized", crate::pod::initialized(r)),
        ("Ready", ready),
        ("ContainersReady", containers_ready),
        ("PodScheduled", true),
    ] {
        let _ = writeln!(o, "  {t:<28}{}", if s { "True" } else { "False" });
    }
    volumes(&mut o, r);
    let _ = writeln!(o, "{:<18}{}", "QoS Class:", super::pod_object::qos(r));
    events(&mut o, r);
    o
}

/// One container of the `Init Containers:` or `Containers:` section.
fn container(
    o: &mut String,
    r: &PodRecord,
    c: &crate::state::ContainerRecord,
    spec: &crate::spec::ContainerPlan,
) {
    let _ = writeln!(o, "  {}:", c.name);
    let _ = writeln!(o, "    Container ID:   podrun://{}", c.id);
    let _ = writeln!(o, "    Image:          {}", c.image);
    for port in &spec.ports {
        let _ = writeln!(
            o,
            "    Port:           {}/{}",
            port.container_port, port.protocol
        );
    }
    if !spec.command.is_empty() {
        let _ = writeln!(o, "    Command:");
        spec.command.iter().for_each(|a| {
            let _ = writeln!(o, "      {}", a.trim_end().replace('\n', "\n      "));
        });
    }
    if !spec.args.is_empty() {
        let _ = writeln!(o, "    Args:");
        spec.args.iter().for_each(|a| {
            let _ = writeln!(o, "      {}", a.trim_end().replace('\n', "\n      "));
        });
    }
    state(o, "State:", &crate::pod::shown_state(r, c));
    if let Some(last) = &c.last_state {
        state(o, "Last State:", last);
    }
    let index = r.containers.iter().position(|x| x.name == c.name);
    let ready = index.is_some_and(|i| crate::pod::ready(r, i));
    let _ = writeln!(
        o,
        "    Ready:          {}",
        if ready { "True" } else { "False" }
    );
    let _ = writeln!(o, "    Restart Count:  {}", c.restart_count);
    if let Some(pid) = c.process.map(|p| p.pid) {
        let _ = writeln!(o, "    PID:            {pid}");
    }
    resources(o, &spec.resources);
    for (label, probe) in [
        ("Liveness:", &spec.probes.liveness),
        ("Readiness:", &spec.probes.readiness),
        ("Startup:", &spec.probes.startup),
    ] {
        if let Some(p) = probe {
            let _ = writeln!(o, "    {label:<16}{}", describe_probe(p));
        }
    }
    if spec.env.is_empty() {
        let _ = writeln!(o, "    Environment:    <none>");
    } else {
        let _ = writeln!(o, "    Environment:");
        for e in &spec.env {
            match &e.source {
                EnvSource::Value(v) => {
                    let _ = writeln!(o, "      {}:  {}", e.name, v);
                }
                EnvSource::FieldRef(f) => {
                    let _ = writeln!(o, "      {}:   (v1:{})", e.name, f);
                }
                // Values from a ConfigMap/Secret (kubectl shows the reference; the plan
                // keeps only the value, which for a Secret must not be printed).
                EnvSource::Literal(_) | EnvSource::KeyRef { .. } => {
                    let _ = writeln!(o, "      {}:  <set from a ConfigMap or Secret>", e.name);
                }
            }
        }
    }
    if spec.volume_mounts.is_empty() {
        let _ = writeln!(o, "    Mounts:         <none>");
    } else {
        let _ = writeln!(o, "    Mounts:");
        for m in &spec.volume_mounts {
            let projected = r.plan.volumes.iter().any(|v| {
                v.name == m.name && matches!(v.source, crate::spec::VolumeSource::Files { .. })
            });
            let mode = if m.read_only || projected { "ro" } else { "rw" };
            let sub = m
                .sub_path
                .as_ref()
                .map(|p| format!(",path=\"{p}\""))
                .unwrap_or_default();
            let _ = writeln!(o, "      {} from {} ({mode}{sub})", m.mount_path, m.name);
        }
    }
}

/// kubectl's `Volumes:` section.
fn volumes(o: &mut String, r: &PodRecord) {
    use crate::spec::VolumeSource;
    if r.plan.volumes.is_empty() {
        let _ = writeln!(o, "Volumes:                    <none>");
        return;
    }
    let _ = writeln!(o, "Volumes:");
    for v in &r.plan.volumes {
        let _ = writeln!(o, "  {}:", v.name);
        match &v.source {
            VolumeSource::EmptyDir { memory, size_limit } => {
                let _ = writeln!(
                    o,
                    "    Type:       EmptyDir (a temporary directory that shares a pod's lifetime)"
                );
                let _ = writeln!(o, "    Medium:     {}", if *memory { "Memory" } else { "" });
                let limit = size_limit
                    .map(format_bytes)
                    .unwrap_or_else(|| "<unset>".into());
                let _ = writeln!(o, "    SizeLimit:  {limit}");
            }
            VolumeSource::HostPath { path, kind } => {
                let _ = writeln!(
                    o,
                    "    Type:          HostPath (bare host directory volume)"
                );
                let _ = writeln!(o, "    Path:          {path}");
                let _ = writeln!(o, "    HostPathType:  {kind}");
            }
            VolumeSource::Files {
                kind,
                name,
                optional,
                ..
            } => {
                let what = if kind == "Secret" {
                    "Secret (a volume populated by a Secret)"
                } else {
                    "ConfigMap (a volume populated by a ConfigMap)"
                };
                let label = if kind == "Secret" {
                    "SecretName"
                } else {
                    "Name"
                };
                let _ = writeln!(o, "    Type:        {what}");
                let _ = writeln!(
                    o,
                    "    {label}:{:>width$}{name}",
                    "",
                    width = 12 - label.len()
                );
                let _ = writeln!(o, "    Optional:    {optional}");
            }
        }
    }
}

fn sandbox(o: &mut String, r: &PodRecord) {
    let Some(sb) = &r.sandbox else { return };
    let _ = writeln!(o, "Sandbox:");
    let _ = writeln!(o, "  ID:             {}", sb.id);
    let _ = writeln!(o, "  Attempt:        {}", sb.attempt);
    let _ = writeln!(
        o,
        "  Ready:          {}",
        if sb.ready { "True" } else { "False" }
    );
    if let Some(p) = sb.pause {
        let _ = writeln!(o, "  Pause PID:      {}", p.pid);
    }
    let _ = writeln!(o, "  Netns:          {}", sb.netns_path.display());
    if let Some(n) = &sb.network {
        let _ = writeln!(
            o,
            "  Network:        {}/{} via {} on {} ({} <-> {})",
            n.ip, n.prefix_len, n.gateway, n.bridge, n.host_veth, n.pod_ifname
        );
    }
}

fn state(o: &mut String, label: &str, s: &ContainerState) {
    match s {
        ContainerState::Running { started_at } => {
            let _ = writeln!(o, "    {label:<16}Running");
            let _ = writeln!(o, "      Started:      {}", date(started_at));
        }
        ContainerState::Waiting { reason, message } => {
            let _ = writeln!(o, "    {label:<16}Waiting");
            let _ = writeln!(o, "      Reason:       {reason}");
            if let Some(m) = message {
                let _ = writeln!(o, "      Message:      {m}");
            }
        }
        ContainerState::Terminated {
            exit_code,
            reason,
            started_at,
            finished_at,
            signal,
            message,
        } => {
            let _ = writeln!(o, "    {label:<16}Terminated");
            let _ = writeln!(o, "      Reason:       {reason}");
            if let Some(m) = message {
                let _ = writeln!(o, "      Message:      {m}");
            }
            let _ = writeln!(o, "      Exit Code:    {exit_code}");
            if let Some(sig) = signal {
                let _ = writeln!(o, "      Signal:       {sig}");
            }
            let _ = writeln!(o, "      Started:      {}", date(started_at));
            let _ = writeln!(o, "      Finished:     {}", date(finished_at));
        }
    }
}

/// kubectl's `describeProbe`: `http-get http://:8080/healthz delay=0s timeout=1s period=10s
/// #success=1 #failure=3`.
fn describe_probe(p: &crate::probe::Probe) -> String {
    use crate::probe::{Handler, Scheme};
    let what = match &p.handler {
        Handler::Exec { command } => format!("exec [{}]", command.join(" ")),
        Handler::HttpGet {
            scheme,
            host,
            port,
            path,
            ..
        } => {
            let scheme = if *scheme == Scheme::Https {
                "https"
            } else {
                "http"
            };
            let host = host.as_deref().unwrap_or("");
            format!("http-get {scheme}://{host}:{port}{path}")
        }
        Handler::TcpSocket { host, port } => {
            format!("tcp-socket {}:{port}", host.as_deref().unwrap_or(""))
        }
        Handler::Grpc { port, service } => {
            format!("grpc <pod>:{port} {}", service.as_deref().unwrap_or(""))
        }
        Handler::Sleep { seconds } => format!("sleep {seconds}s"),
    };
    format!(
        "{what} delay={}s timeout={}s period={}s #success={} #failure={}",
        p.initial_delay_seconds,
        p.timeout_seconds,
        p.period_seconds,
        p.success_threshold,
        p.failure_threshold
    )
}

fn resources(o: &mut String, r: &crate::spec::Resources) {
    for (label, list) in [("Limits", &r.limits), ("Requests", &r.requests)] {
        if list.cpu_millis.is_none() && list.memory_bytes.is_none() {
            continue;
        }
        let _ = writeln!(o, "    {label}:");
        if let Some(m) = list.cpu_millis {
            let _ = writeln!(o, "      cpu:     {m}m");
        }
        if let Some(b) = list.memory_bytes {
            let _ = writeln!(o, "      memory:  {}", format_bytes(b));
        }
    }
}

fn events(o: &mut String, r: &PodRecord) {
    event_table(o, &r.events, |reason| {
        if reason == "Scheduled" {
            "podrun-scheduler"
        } else {
            "podrun"
        }
    });
}

/// kubectl's `Events:` table; `from` names the component that reported each reason.
pub(super) fn event_table(
    o: &mut String,
    events: &[crate::state::Event],
    from: impl Fn(&str) -> &'static str,
) {
    if events.is_empty() {
        let _ = writeln!(o, "Events:            <none>");
        return;
    }
    let _ = writeln!(o, "Events:");
    let mut rows = vec![
        ["Type", "Reason", "Age", "From", "Message"]
            .map(String::from)
            .to_vec(),
        ["----", "------", "----", "----", "-------"]
            .map(String::from)
            .to_vec(),
    ];
    for e in events {
        let age = if e.count > 1 {
            format!(
                "{} (x{} over {})",
                table::age(e.last_timestamp),
                e.count,
                table::age(e.first_timestamp)
            )
        } else {
            table::age(e.first_timestamp)
        };
        let from = from(&e.reason);
        rows.push(vec![
            e.kind.clone(),
            e.reason.clone(),
            age,
            from.into(),
            e.message.clone(),
        ]);
    }
    let mut buf = String::new();
    let cols = 5;
    let widths: Vec<usize> = (0..cols)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let _ = write!(buf, "  ");
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == cols {
                let _ = writeln!(buf, "{cell}");
            } else {
                let _ = write!(buf, "{cell:<w$}  ", w = widths[i]);
            }
        }
    }
    o.push_str(&buf);
}

/// Bytes in Kubernetes' canonical binary form when exact (209715200 -> 200Mi).
fn format_bytes(b: u64) -> String {
    for (suffix, unit) in [
        ("Ei", 1u64 << 60),
        ("Pi", 1 << 50),
        ("Ti", 1 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if b >= unit && b.is_multiple_of(unit) {
            return format!("{}{suffix}", b / unit);
        }
    }
    b.to_string()
}
