//! The objects each served resource lists, with their Table cells: pods from the pod records
//! (`pod_object`, and the status words `podrun get pods` prints), Deployments, ReplicaSets and
//! Jobs from the CLI's own listing (its objects and its rows), the node itself and the
//! namespaces in use.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::age;
use crate::cli::pod_object::pod_object;
use crate::config::Config;
use crate::state::{ConfigKind, PodRecord};

/// One column: its name as kube-apiserver spells it, and 0 (always shown) or 1 (wide).
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub priority: u8,
}

pub fn columns(narrow: &[&str], wide: &[&str]) -> Vec<Column> {
    let col = |priority| {
        move |n: &&str| Column {
            name: (*n).to_owned(),
            priority,
        }
    };
    narrow
        .iter()
        .map(col(0))
        .chain(wide.iter().map(col(1)))
        .collect()
}

/// What a list request finds: the columns of its Table and each object with its cells.
pub struct Collection {
    pub columns: Vec<Column>,
    pub rows: Vec<(Vec<Value>, Value)>,
}

/// The objects of `res` in `namespace` (every namespace, or a cluster-scoped resource: None).
pub fn collect(cfg: &Config, plural: &str, namespace: Option<&str>) -> Result<Collection, String> {
    Ok(match plural {
        "pods" => pods(cfg, namespace),
        "nodes" => node(cfg),
        "namespaces" => namespaces(cfg),
        "configmaps" => super::config::collect(cfg, ConfigKind::ConfigMap, namespace),
        "secrets" => super::config::collect(cfg, ConfigKind::Secret, namespace),
        "events" => {
            let (columns, rows) = super::events::collect(cfg, namespace);
            Collection { columns, rows }
        }
        plural => workloads(cfg, plural, namespace)?,
    })
}

/// The object `name` of `res` in `namespace`, as a get shows it; None if there is none.
pub fn object(cfg: &Config, plural: &str, namespace: &str, name: &str) -> Option<Value> {
    if plural == "pods" {
        return crate::pod::read::get(cfg, namespace, name)
            .ok()
            .map(|r| pod_object(&r));
    }
    collect(cfg, plural, Some(namespace))
        .ok()?
        .rows
        .into_iter()
        .map(|(_, obj)| obj)
        .find(|obj| obj["metadata"]["name"] == name)
}

fn pods(cfg: &Config, namespace: Option<&str>) -> Collection {
    let store = cfg.store();
    let rows = crate::pod::read::list(cfg, namespace)
        .iter()
        .map(|r| {
            let mut obj = pod_object(r);
            if let Some(rv) = record_version(&store.paths(&r.key()).record()) {
                obj["metadata"]["resourceVersion"] = json!(rv);
            }
            (pod_cells(r), obj)
        })
        .collect();
    Collection {
        columns: columns(
            &["Name", "Ready", "Status", "Restarts", "Age"],
            &["IP", "Node", "Nominated Node", "Readiness Gates"],
        ),
        rows,
    }
}

/// A pod's resourceVersion: its record file's modification time in microseconds (the
/// supervisor renames a new record into place for every change), on the clock a list's
/// resourceVersion is read from, so a change after a list has a greater one.
fn record_version(path: &std::path::Path) -> Option<String> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    let micros = modified
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_micros();
    Some(micros.to_string())
}

/// kube-apiserver's pod columns, with the values `podrun get pods -o wide` prints.
fn pod_cells(r: &PodRecord) -> Vec<Value> {
    let (ready, total) = crate::pod::ready_counts(r);
    let ip = r
        .pod_ip()
        .map(|i| i.to_string())
        .unwrap_or_else(|| "<none>".into());
    vec![
        json!(r.plan.name),
        json!(format!("{ready}/{total}")),
        json!(crate::pod::pod_status_word(r)),
        json!(crate::pod::pod_restarts_column(r)),
        json!(age(r.created_at)),
        json!(ip),
        json!(r.node_name),
        json!("<none>"),
        json!("<none>"),
    ]
}

/// Deployments, ReplicaSets, Jobs: the CLI's listing, its header as the columns (those
/// `-o wide` adds at priority 1), its rows as the cells.
fn workloads(cfg: &Config, plural: &str, namespace: Option<&str>) -> Result<Collection, String> {
    use crate::cli::workloads::listing;
    let kind = crate::pod::workloads::workload_kind(plural)
        .ok_or_else(|| format!("no workload kind {plural}"))?;
    let internal = |e: crate::cli::CliError| e.to_string();
    // The NAMESPACE column of an all-namespaces listing is kubectl's to add.
    let skip = usize::from(namespace.is_none());
    let narrow = listing(cfg, kind, namespace, &[], false)
        .map_err(internal)?
        .rows[0]
        .len()
        - skip;
    let wide = listing(cfg, kind, namespace, &[], true).map_err(internal)?;
    let mut rows = wide.rows.into_iter();
    let header = rows.next().unwrap_or_default();
    let columns = header
        .iter()
        .skip(skip)
        .enumerate()
        .map(|(i, name)| Column {
            name: name.clone(),
            priority: u8::from(i >= narrow),
        })
        .collect();
    let rows = rows
        .zip(wide.objects)
        .map(|(row, obj)| (row.into_iter().skip(skip).map(Value::from).collect(), obj))
        .collect();
    Ok(Collection { columns, rows })
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The machine's boot time (`btime` of /proc/stat): when the node came up.
fn boot_time() -> DateTime<Utc> {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<i64>().ok())
        })
        .and_then(|secs| DateTime::from_timestamp(secs, 0))
        .unwrap_or_else(Utc::now)
}

fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_owned())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}

fn quantity_cpu(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// The node object: this machine, as the kubelet registers it.
pub fn node_object(cfg: &Config) -> Value {
    let name = &cfg.node_name;
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let capacity = crate::resources::NodeCapacity::read().ok();
    let cap = json!({
        "cpu": capacity.map(|c| quantity_cpu(c.cpu_millis)).unwrap_or_default(),
        "memory": capacity.map(|c| format!("{}Ki", c.memory_bytes / 1024)).unwrap_or_default(),
        "pods": "110",
    });
    let boot = stamp(boot_time());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let machine_id = std::fs::read_to_string("/etc/machine-id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "creationTimestamp": boot,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch,
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": arch,
            },
        },
        "spec": {"podCIDR": cfg.pod_cidr.to_string(), "podCIDRs": [cfg.pod_cidr.to_string()]},
        "status": {
            "capacity": cap,
            "allocatable": cap,
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "podrun is posting ready status",
                "lastHeartbeatTime": stamp(Utc::now()),
                "lastTransitionTime": boot,
            }],
            "addresses": [
                {"type": "InternalIP", "address": cfg.network().gateway().to_string()},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "machineID": machine_id,
                "systemUUID": read_trimmed("/sys/class/dmi/id/product_uuid").unwrap_or_else(|| machine_id.clone()),
                "bootID": read_trimmed("/proc/sys/kernel/random/boot_id").unwrap_or_default(),
                "kernelVersion": kernel,
                "osImage": os_image(),
                "containerRuntimeVersion": concat!("podrun://", env!("CARGO_PKG_VERSION")),
                "kubeletVersion": super::KUBE_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": arch,
            },
        },
    })
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

fn node(cfg: &Config) -> Collection {
    let obj = node_object(cfg);
    let info = &obj["status"]["nodeInfo"];
    let cells = vec![
        json!(cfg.node_name),
        json!("Ready"),
        json!("<none>"),
        json!(age(boot_time())),
        info["kubeletVersion"].clone(),
        obj["status"]["addresses"][0]["address"].clone(),
        json!("<none>"),
        info["osImage"].clone(),
        info["kernelVersion"].clone(),
        info["containerRuntimeVersion"].clone(),
    ];
    Collection {
        columns: columns(
            &["Name", "Status", "Roles", "Age", "Version"],
            &[
                "Internal-IP",
                "External-IP",
                "OS-Image",
                "Kernel-Version",
                "Container-Runtime",
            ],
        ),
        rows: vec![(cells, obj)],
    }
}

/// `default` and every namespace a pod, workload, ConfigMap or Secret is in; each dates from its first object
/// (`default` from the node's boot).
fn namespaces(cfg: &Config) -> Collection {
    let mut first: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    first.insert("default".into(), boot_time());
    let store = cfg.store();
    let seen = crate::pod::read::list(cfg, None)
        .into_iter()
        .map(|r| (r.plan.namespace, r.created_at))
        .chain(
            crate::pod::workloads::deployments(&store, None)
                .into_iter()
                .map(|d| (d.record.namespace, d.record.created_at)),
        )
        .chain(
            crate::pod::workloads::replica_sets(&store, None)
                .into_iter()
                .map(|r| (r.record.namespace, r.record.created_at)),
        );
    let configs = ConfigKind::ALL
        .iter()
        .flat_map(|k| store.list_configs(*k, None))
        .filter_map(|o| {
            let ns = o["metadata"]["namespace"].as_str()?.to_owned();
            let at = o["metadata"]["creationTimestamp"].as_str()?;
            Some((
                ns,
                DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc),
            ))
        });
    let recorded = crate::pod::namespaces::recorded(cfg);
    let seen = seen
        .chain(configs)
        .chain(recorded.iter().map(|n| (n.name.clone(), n.created_at)));
    for (ns, at) in seen {
        let e = first.entry(ns).or_insert(at);
        *e = (*e).min(at);
    }
    let rows = first
        .into_iter()
        .map(|(ns, at)| {
            let mut labels = serde_json::Map::new();
            if let Some(n) = recorded.iter().find(|n| n.name == ns) {
                labels.extend(n.labels.iter().map(|(k, v)| (k.clone(), json!(v))));
            }
            labels.insert("kubernetes.io/metadata.name".into(), json!(ns));
            let obj = json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": ns,
                    "creationTimestamp": stamp(at),
                    "labels": labels,
                },
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            });
            (vec![json!(ns), json!("Active"), json!(age(at))], obj)
        })
        .collect();
    Collection {
        columns: columns(&["Name", "Status", "Age"], &[]),
        rows,
    }
}
