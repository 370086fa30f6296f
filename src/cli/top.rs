//! `podrun top [POD] [-o json]`: per pod and container CPU (cores, from two samples of the
//! cgroup's usage), memory current/max, CPU throttling and OOM kills, read from cgroup files
//! by `pod::metrics` (which `podrun serve`'s metrics.k8s.io reads through too).

use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};

use super::{Result, msg, table};
use crate::config::Config;
use crate::pod::metrics;
use crate::state::PodRecord;

#[derive(Debug, Args)]
pub struct TopArgs {
    /// Only this pod.
    pub pod: Option<String>,
    /// Output format: json.
    #[arg(short = 'o', long = "output")]
    pub output: Option<String>,
    /// Sampling window for CPU usage, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub interval_ms: u64,
}

fn mib(b: u64) -> String {
    format!("{}Mi", b / (1024 * 1024))
}

pub fn top(cfg: &Config, namespace: &str, args: &TopArgs) -> Result<i32> {
    let mut pods: Vec<PodRecord> = cfg
        .store()
        .list()
        .into_iter()
        .filter(|r| r.plan.namespace == namespace)
        .collect();
    if let Some(name) = &args.pod {
        pods.retain(|r| &r.plan.name == name);
        if pods.is_empty() {
            return Err(msg(format!("pods \"{name}\" not found")));
        }
    }
    let usage = metrics::sample(&pods, Duration::from_millis(args.interval_ms.max(10)));
    let rows: Vec<Value> = usage
        .iter()
        .map(|u| {
            let (r, s) = (&u.reading, &u.reading.stats);
            let cores = u.cpu.map(|c| c.cores()).unwrap_or(0.0);
            json!({
                "pod": r.pod,
                "container": r.container,
                "cpuCores": (cores * 1000.0).round() / 1000.0,
                "cpuUsageUsec": s.cpu_usage_usec,
                "memoryCurrentBytes": s.memory_current,
                "memoryMaxBytes": s.memory_max,
                "throttledPeriods": s.nr_throttled,
                "periods": s.nr_periods,
                "throttledUsec": s.throttled_usec,
                "oomKills": s.oom_kills,
            })
        })
        .collect();
    if args.output.as_deref() == Some("json") {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"items": rows})).expect("json")
        );
        return Ok(0);
    }
    let mut table_rows = vec![
        [
            "POD",
            "CONTAINER",
            "CPU(cores)",
            "MEMORY",
            "MEMORY MAX",
            "THROTTLED",
            "THROTTLED TIME",
            "OOM KILLS",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for r in &rows {
        table_rows.push(vec![
            r["pod"].as_str().unwrap_or_default().to_owned(),
            r["container"].as_str().unwrap_or_default().to_owned(),
            format!(
                "{}m",
                (r["cpuCores"].as_f64().unwrap_or(0.0) * 1000.0).round()
            ),
            mib(r["memoryCurrentBytes"].as_u64().unwrap_or(0)),
            r["memoryMaxBytes"]
                .as_u64()
                .map(mib)
                .unwrap_or_else(|| "max".into()),
            format!("{}/{}", r["throttledPeriods"], r["periods"]),
            format!(
                "{:.2}s",
                r["throttledUsec"].as_u64().unwrap_or(0) as f64 / 1e6
            ),
            r["oomKills"].to_string(),
        ]);
    }
    table::print(&table_rows);
    Ok(0)
}
