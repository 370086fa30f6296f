//! metrics.k8s.io/v1beta1, as metrics-server serves it (`kubectl top pod|node`): PodMetrics of
//! the pods with running containers (each container's CPU rate and memory working set, from
//! the cgroups `pod::metrics` reads for `podrun top` too) and NodeMetrics of the node (its
//! root cgroup), with `labelSelector` and `fieldSelector` (`metadata.name`,
//! `metadata.namespace`) on lists, and Tables (Name, cpu, memory, Window) for `kubectl get`.
//!
//! CPU rates come from one [`Sampler`] for the server's life: it keeps the last two readings
//! of each container run and of the node, so a request reports the rate since the request
//! before it (metrics-server reports the rate between its last two scrapes) and only one with
//! nothing recent to start from waits the 200 ms window, on the blocking pool the router runs
//! on.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::discovery::Resource;
use super::router::{self, Context, Reply, Selectors, ok, status};
use super::table;
use crate::objects::resources;
use crate::pod::metrics::{ContainerReading, CpuRate, Sampler};

pub const GROUP: &str = "metrics.k8s.io";
pub const VERSION: &str = "v1beta1";
const API_VERSION: &str = "metrics.k8s.io/v1beta1";

const POD_METRICS: Resource = Resource {
    group: GROUP,
    plural: "pods",
    singular: "",
    kind: "PodMetrics",
    namespaced: true,
    short_names: &[],
};

const NODE_METRICS: Resource = Resource {
    group: GROUP,
    plural: "nodes",
    singular: "",
    kind: "NodeMetrics",
    namespaced: false,
    short_names: &[],
};

static SAMPLER: LazyLock<Sampler> = LazyLock::new(Sampler::new);

/// `/apis/metrics.k8s.io/v1beta1/...` below the version (`rest`).
pub fn route(ctx: &Context, rest: &[&str], sel: &Selectors, accept: &str) -> Reply {
    let as_table = table::wants_table(accept);
    match rest {
        [] => ok(resource_list()),
        ["pods"] => pod_list(ctx, None, sel, as_table),
        ["namespaces", ns, "pods"] => pod_list(ctx, Some(ns), sel, as_table),
        ["namespaces", ns, "pods", name] => pod_get(ctx, ns, name, as_table),
        ["nodes"] => node_list(ctx, sel, as_table),
        ["nodes", name] => node_get(ctx, name, as_table),
        _ => status(
            404,
            "NotFound",
            "the server could not find the requested resource",
            None,
        ),
    }
}

/// metrics-server's resource list: pods and nodes, get and list.
pub fn resource_list() -> Value {
    let entry = |r: &Resource| {
        json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": ["get", "list"],
        })
    };
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": API_VERSION,
        "resources": [entry(&NODE_METRICS), entry(&POD_METRICS)],
    })
}

/// A CPU quantity in canonical form (`1234567n`, `250m`, `2`), as `resource.Quantity` writes it.
pub fn cpu_quantity(nanocores: u64) -> String {
    match nanocores {
        0 => "0".into(),
        n if n.is_multiple_of(1_000_000_000) => format!("{}", n / 1_000_000_000),
        n if n.is_multiple_of(1_000_000) => format!("{}m", n / 1_000_000),
        n if n.is_multiple_of(1_000) => format!("{}u", n / 1_000),
        n => format!("{n}n"),
    }
}

/// A memory quantity in canonical binary form (`12345Ki`, `64Mi`, or bytes).
pub fn memory_quantity(bytes: u64) -> String {
    if bytes == 0 {
        return "0".into();
    }
    let mut value = bytes;
    let mut suffix = "";
    for s in ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"] {
        if !value.is_multiple_of(1024) {
            break;
        }
        value /= 1024;
        suffix = s;
    }
    format!("{value}{suffix}")
}

/// A duration as Go's `time.Duration.String()` writes it (`200ms`, `10.5s`, `1m2.003s`), to
/// the millisecond.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (secs, frac) = (ms / 1000, ms % 1000);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&s.to_string());
    if frac > 0 {
        let digits = format!("{frac:03}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push('s');
    out
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn rows_of(objs: Vec<Value>) -> Vec<(Vec<Value>, Value)> {
    objs.into_iter()
        .map(|o| {
            let usage = if o["kind"] == "NodeMetrics" {
                o["usage"].clone()
            } else {
                pod_total(&o)
            };
            let cells = vec![
                o["metadata"]["name"].clone(),
                usage["cpu"].clone(),
                usage["memory"].clone(),
                o["window"].clone(),
            ];
            (cells, o)
        })
        .collect()
}

/// The sum of a PodMetrics' containers (the Table's cells), as quantities.
fn pod_total(o: &Value) -> Value {
    let (mut cpu, mut mem) = (0u64, 0u64);
    for c in o["containers"].as_array().into_iter().flatten() {
        cpu += parse_cpu(c["usage"]["cpu"].as_str().unwrap_or("0"));
        mem += parse_memory(c["usage"]["memory"].as_str().unwrap_or("0"));
    }
    json!({"cpu": cpu_quantity(cpu), "memory": memory_quantity(mem)})
}

fn parse_cpu(q: &str) -> u64 {
    let (num, scale) = match q.char_indices().last() {
        Some((i, 'n')) => (&q[..i], 1),
        Some((i, 'u')) => (&q[..i], 1_000),
        Some((i, 'm')) => (&q[..i], 1_000_000),
        _ => (q, 1_000_000_000),
    };
    num.parse::<u64>().unwrap_or(0) * scale
}

fn parse_memory(q: &str) -> u64 {
    let units = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    for (i, u) in units.iter().enumerate() {
        if let Some(num) = q.strip_suffix(u) {
            return num.parse::<u64>().unwrap_or(0) << (10 * (i as u32 + 1));
        }
    }
    q.parse().unwrap_or(0)
}

fn list_reply(res: &Resource, objs: Vec<Value>, sel: &Selectors, as_table: bool) -> Reply {
    let mut rows = rows_of(objs);
    if let Err(reply) = router::select(&mut rows, res, sel) {
        return reply;
    }
    if as_table {
        let columns = resources::columns(&["Name", "cpu", "memory", "Window"], &[]);
        return ok(table::table(&columns, &rows, ""));
    }
    ok(json!({
        "kind": format!("{}List", res.kind),
        "apiVersion": API_VERSION,
        "metadata": {},
        "items": rows.into_iter().map(|(_, o)| o).collect::<Vec<_>>(),
    }))
}

fn one_reply(obj: Value, as_table: bool) -> Reply {
    if !as_table {
        return ok(obj);
    }
    let rows = rows_of(vec![obj]);
    let columns = resources::columns(&["Name", "cpu", "memory", "Window"], &[]);
    ok(table::table(&columns, &rows, ""))
}

/// The NotFound metrics-server answers: `pod "x" not found` from its pod lister for a pod
/// that does not exist, `podmetrics.metrics.k8s.io "ns/x" not found` for one without metrics.
fn not_found(group: &str, kind: &str, name: &str) -> Reply {
    let qualified = if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    };
    status(
        404,
        "NotFound",
        &format!("{qualified} \"{name}\" not found"),
        Some(json!({"name": name, "group": group, "kind": kind})),
    )
}

/// PodMetrics of `pods` (those with at least one running container), sorted by namespace
/// and name as metrics-server sorts them.
fn pod_metrics(pods: &[crate::state::PodRecord]) -> Vec<Value> {
    let usage = SAMPLER.containers(pods);
    let mut out = Vec::new();
    let mut sorted: Vec<&crate::state::PodRecord> = pods.iter().collect();
    sorted
        .sort_by(|a, b| (&a.plan.namespace, &a.plan.name).cmp(&(&b.plan.namespace, &b.plan.name)));
    for r in sorted {
        let mine: Vec<&(ContainerReading, CpuRate)> = usage
            .iter()
            .filter(|(c, _)| c.namespace == r.plan.namespace && c.pod == r.plan.name)
            .collect();
        let Some((_, first)) = mine.first() else {
            continue;
        };
        let containers: Vec<Value> = mine
            .iter()
            .map(|(c, rate)| {
                json!({
                    "name": c.container,
                    "usage": {
                        "cpu": cpu_quantity(rate.nanocores),
                        "memory": memory_quantity(c.stats.memory_working_set()),
                    },
                })
            })
            .collect();
        let mut metadata = json!({
            "name": r.plan.name,
            "namespace": r.plan.namespace,
            // metrics-server stamps the object when it answers.
            "creationTimestamp": stamp(Utc::now()),
        });
        if !r.plan.labels.is_empty() {
            metadata["labels"] = json!(r.plan.labels);
        }
        out.push(json!({
            "kind": "PodMetrics",
            "apiVersion": API_VERSION,
            "metadata": metadata,
            "timestamp": stamp(first.time),
            "window": go_duration(first.window),
            "containers": containers,
        }));
    }
    out
}

fn pod_list(ctx: &Context, ns: Option<&str>, sel: &Selectors, as_table: bool) -> Reply {
    let mut pods = crate::pod::read::list(&ctx.cfg, ns);
    // The label selector first: only the chosen pods' cgroups are read.
    if let Ok(labels) = crate::objects::selectors::parse_labels(&sel.labels) {
        pods.retain(|r| crate::objects::selectors::matches(&labels, &r.plan.labels));
    }
    list_reply(&POD_METRICS, pod_metrics(&pods), sel, as_table)
}

fn pod_get(ctx: &Context, ns: &str, name: &str, as_table: bool) -> Reply {
    let Ok(r) = crate::pod::read::get(&ctx.cfg, ns, name) else {
        return not_found("", "pod", name);
    };
    match pod_metrics(std::slice::from_ref(&r)).pop() {
        Some(obj) => one_reply(obj, as_table),
        None => not_found(GROUP, "podmetrics", &format!("{ns}/{name}")),
    }
}

fn node_metrics(ctx: &Context) -> Vec<Value> {
    let Some((node, rate)) = SAMPLER.node(&ctx.cfg.cgroup_root) else {
        return Vec::new();
    };
    let labels = resources::collect(&ctx.cfg, "nodes", None)
        .ok()
        .and_then(|c| c.rows.into_iter().next())
        .map(|(_, o)| o["metadata"]["labels"].clone())
        .unwrap_or(Value::Null);
    let mut metadata = json!({
        "name": ctx.cfg.node_name,
        "creationTimestamp": stamp(Utc::now()),
    });
    if labels.is_object() {
        metadata["labels"] = labels;
    }
    vec![json!({
        "kind": "NodeMetrics",
        "apiVersion": API_VERSION,
        "metadata": metadata,
        "timestamp": stamp(rate.time),
        "window": go_duration(rate.window),
        "usage": {
            "cpu": cpu_quantity(rate.nanocores),
            "memory": memory_quantity(node.memory_working_set),
        },
    })]
}

fn node_list(ctx: &Context, sel: &Selectors, as_table: bool) -> Reply {
    list_reply(&NODE_METRICS, node_metrics(ctx), sel, as_table)
}

fn node_get(ctx: &Context, name: &str, as_table: bool) -> Reply {
    if name != ctx.cfg.node_name {
        return not_found("", "node", name);
    }
    match node_metrics(ctx).pop() {
        Some(obj) => one_reply(obj, as_table),
        None => not_found(GROUP, "nodemetrics", name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_durations() {
        assert_eq!(cpu_quantity(1_234_567), "1234567n");
        assert_eq!(cpu_quantity(200_000_000), "200m");
        assert_eq!(cpu_quantity(2_000_000_000), "2");
        assert_eq!(cpu_quantity(5_000), "5u");
        assert_eq!(cpu_quantity(0), "0");
        assert_eq!(memory_quantity(12_345 * 1024), "12345Ki");
        assert_eq!(memory_quantity(64 << 20), "64Mi");
        assert_eq!(memory_quantity(1000), "1000");
        assert_eq!(parse_cpu("200m") + parse_cpu("1234567n"), 201_234_567);
        assert_eq!(
            parse_memory("64Mi") + parse_memory("4Ki"),
            (64 << 20) + 4096
        );
        assert_eq!(go_duration(Duration::from_millis(200)), "200ms");
        assert_eq!(go_duration(Duration::from_millis(10_500)), "10.5s");
        assert_eq!(go_duration(Duration::from_millis(62_003)), "1m2.003s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_micros(200_900)), "200ms");
    }
}
