//! `describe` parts of the workload kinds: a pod template as kubectl prints one
//! (`rollout history --revision`, `describe deployment|replicaset|job`).

use std::fmt::Write;

use crate::spec::workload::PodTemplate;

/// kubectl's `Pod Template:` block.
pub fn pod_template(t: &PodTemplate) -> String {
    let mut o = String::new();
    let p = &t.plan;
    let _ = writeln!(o, "Pod Template:");
    labelled(&mut o, "  Labels:", &p.labels);
    if !p.annotations.is_empty() {
        labelled(&mut o, "  Annotations:", &p.annotations);
    }
    let sections = [
        (
            "Init Containers",
            p.containers.iter().filter(|c| c.init).collect::<Vec<_>>(),
        ),
        (
            "Containers",
            p.containers.iter().filter(|c| !c.init).collect(),
        ),
    ];
    for (title, containers) in sections {
        if containers.is_empty() {
            continue;
        }
        let _ = writeln!(o, "  {title}:");
        for c in containers {
            let _ = writeln!(o, "   {}:", c.name);
            let _ = writeln!(o, "    Image:      {}", c.image);
            if c.ports.is_empty() {
                let _ = writeln!(o, "    Port:       <none>");
            }
            for port in &c.ports {
                let _ = writeln!(
                    o,
                    "    Port:       {}/{}",
                    port.container_port, port.protocol
                );
                let host = port.host_port.unwrap_or(0);
                let _ = writeln!(o, "    Host Port:  {host}/{}", port.protocol);
            }
            for (label, list) in [("Command", &c.command), ("Args", &c.args)] {
                if !list.is_empty() {
                    let _ = writeln!(o, "    {label}:");
                    for a in list {
                        let _ = writeln!(o, "      {}", a.trim_end().replace('\n', "\n      "));
                    }
                }
            }
            if c.env.is_empty() {
                let _ = writeln!(o, "    Environment:  <none>");
            } else {
                let _ = writeln!(o, "    Environment:");
                for e in &c.env {
                    let _ = writeln!(o, "      {}:  {}", e.name, env_shown(e));
                }
            }
            if c.volume_mounts.is_empty() {
                let _ = writeln!(o, "    Mounts:       <none>");
            } else {
                let _ = writeln!(o, "    Mounts:");
                for m in &c.volume_mounts {
                    let mode = if m.read_only { "ro" } else { "rw" };
                    let _ = writeln!(o, "      {} from {} ({mode})", m.mount_path, m.name);
                }
            }
        }
    }
    if p.volumes.is_empty() {
        let _ = writeln!(o, "  Volumes:         <none>");
    } else {
        let _ = writeln!(o, "  Volumes:");
        for v in &p.volumes {
            let _ = writeln!(o, "   {}", v.name);
        }
    }
    o
}

fn labelled(o: &mut String, label: &str, map: &std::collections::BTreeMap<String, String>) {
    if map.is_empty() {
        let _ = writeln!(o, "{label:<14}<none>");
        return;
    }
    for (i, (k, v)) in map.iter().enumerate() {
        let head = if i == 0 { label } else { "" };
        let _ = writeln!(o, "{head:<14}{k}={v}");
    }
}

/// As kubectl: a value as it is, a field reference `(v1:FIELD)`, a Secret's value hidden.
fn env_shown(e: &crate::spec::EnvVar) -> String {
    use crate::spec::EnvSource;
    match &e.source {
        EnvSource::Value(v) => v.clone(),
        EnvSource::FieldRef(path) => format!(" (v1:{path})"),
        EnvSource::KeyRef {
            kind, name, key, ..
        } => {
            format!("<set to the key '{key}' of {kind} '{name}'>")
        }
        EnvSource::Literal(_) => "<set from a ConfigMap or Secret>".to_owned(),
    }
}

/// `describe deployment NAME` and `describe replicaset NAME`, kubectl's layout.
pub fn describe(
    cfg: &crate::config::Config,
    namespace: &str,
    kind: crate::state::WorkloadKind,
    name: &str,
) -> super::Result<i32> {
    use crate::pod::workloads;
    use crate::state::{PodKey, WorkloadKind};
    let store = cfg.store();
    let key = PodKey::new(namespace, name);
    let mut text = match kind {
        WorkloadKind::Deployment => deployment_text(&workloads::deployment(&store, &key)?, &store),
        WorkloadKind::ReplicaSet => {
            let view = workloads::replica_sets(&store, Some(namespace))
                .into_iter()
                .find(|v| v.record.name == name)
                .ok_or_else(|| workloads::not_found(kind, name))?;
            replica_set_text(&view)
        }
        WorkloadKind::Job => return super::jobs::describe(cfg, namespace, name),
    };
    let from = match kind {
        WorkloadKind::Deployment => "deployment-controller",
        WorkloadKind::ReplicaSet => "replicaset-controller",
        WorkloadKind::Job => "job-controller",
    };
    let events = store.workload_events(kind, &key);
    super::describe::event_table(&mut text, &events, |_| from);
    print!("{text}");
    Ok(0)
}

fn header(o: &mut String, name: &str, namespace: &str, created: chrono::DateTime<chrono::Utc>) {
    let _ = writeln!(o, "{:<24}{name}", "Name:");
    let _ = writeln!(o, "{:<24}{namespace}", "Namespace:");
    let _ = writeln!(
        o,
        "{:<24}{}",
        "CreationTimestamp:",
        created.format("%a, %d %b %Y %H:%M:%S %z")
    );
}

fn map_block(
    o: &mut String,
    label: &str,
    map: &std::collections::BTreeMap<String, String>,
    sep: &str,
) {
    if map.is_empty() {
        let _ = writeln!(o, "{label:<24}<none>");
    }
    for (i, (k, v)) in map.iter().enumerate() {
        let head = if i == 0 { label } else { "" };
        let _ = writeln!(o, "{head:<24}{k}{sep}{v}");
    }
}

fn deployment_text(
    v: &crate::pod::workloads::DeploymentView,
    store: &crate::state::Store,
) -> String {
    use crate::spec::workload::Strategy;
    let mut o = String::new();
    let r = &v.record;
    let p = &r.plan;
    header(&mut o, &r.name, &r.namespace, r.created_at);
    map_block(&mut o, "Labels:", &p.labels, "=");
    let mut annotations = p.annotations.clone();
    if let Some(new) = v.new_replica_set() {
        annotations.insert(
            crate::state::workloads::REVISION_ANNOTATION.to_owned(),
            new.record.revision().to_string(),
        );
    }
    map_block(&mut o, "Annotations:", &annotations, ": ");
    let _ = writeln!(
        o,
        "{:<24}{}",
        "Selector:",
        super::workloads::selector(&p.selector)
    );
    let s = &v.status;
    let _ = writeln!(
        o,
        "{:<24}{} desired | {} updated | {} total | {} available | {} unavailable",
        "Replicas:",
        p.replicas,
        s.updated,
        s.replicas,
        s.available,
        s.unavailable(p.replicas)
    );
    let _ = writeln!(o, "{:<24}{}", "StrategyType:", p.strategy.type_name());
    let _ = writeln!(o, "{:<24}{}", "MinReadySeconds:", p.min_ready_seconds);
    if let Strategy::RollingUpdate {
        max_surge,
        max_unavailable,
    } = p.strategy
    {
        let _ = writeln!(
            o,
            "{:<24}{max_unavailable} max unavailable, {max_surge} max surge",
            "RollingUpdateStrategy:"
        );
    }
    o.push_str(&pod_template(&p.pod_template()));
    let (available, reason) = v.available();
    let (progressing, why) = v.progressing(store);
    let _ = writeln!(o, "Conditions:");
    let _ = writeln!(o, "  Type           Status  Reason");
    let _ = writeln!(o, "  ----           ------  ------");
    let _ = writeln!(o, "  Available      {available:<8}{reason}");
    let _ = writeln!(o, "  Progressing    {progressing:<8}{why}");
    let new = v.new_replica_set();
    let old: Vec<String> = v
        .replica_sets
        .iter()
        .filter(|rs| Some(rs.record.name.as_str()) != new.map(|n| n.record.name.as_str()))
        .filter(|rs| rs.record.replicas > 0 || rs.counts.current > 0)
        .map(|rs| {
            format!(
                "{} ({}/{} replicas created)",
                rs.record.name, rs.counts.current, rs.record.replicas
            )
        })
        .collect();
    let old = if old.is_empty() {
        "<none>".to_owned()
    } else {
        old.join(", ")
    };
    let _ = writeln!(o, "{:<17}{old}", "OldReplicaSets:");
    let new = new
        .map(|n| {
            format!(
                "{} ({}/{} replicas created)",
                n.record.name, n.counts.current, n.record.replicas
            )
        })
        .unwrap_or_else(|| "<none>".to_owned());
    let _ = writeln!(o, "{:<17}{new}", "NewReplicaSet:");
    o
}

fn replica_set_text(v: &crate::pod::workloads::ReplicaSetView) -> String {
    let mut o = String::new();
    let r = &v.record;
    let _ = writeln!(o, "{:<14}{}", "Name:", r.name);
    let _ = writeln!(o, "{:<14}{}", "Namespace:", r.namespace);
    let _ = writeln!(
        o,
        "{:<14}{}",
        "Selector:",
        super::workloads::selector(&r.selector)
    );
    labelled(&mut o, "Labels:", &r.labels);
    labelled(&mut o, "Annotations:", &r.annotations);
    let controlled = r
        .deployment
        .as_ref()
        .map(|(d, _)| format!("Deployment/{d}"))
        .unwrap_or_else(|| "<none>".to_owned());
    let _ = writeln!(o, "{:<14}{controlled}", "Controlled By:");
    let _ = writeln!(
        o,
        "{:<14}{} current / {} desired",
        "Replicas:", v.counts.current, r.replicas
    );
    let c = &v.counts;
    let waiting = c.present.saturating_sub(c.ready);
    let _ = writeln!(
        o,
        "{:<14}{} Running / {waiting} Waiting / 0 Succeeded / 0 Failed",
        "Pods Status:", c.ready
    );
    o.push_str(&pod_template(&r.template));
    o
}
