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
