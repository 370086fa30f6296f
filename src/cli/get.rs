//! `podrun get pods [NAME...] [-o wide|json|yaml|name|jsonpath=...|custom-columns=...] [-A]
//! [-l SELECTOR] [--field-selector SELECTOR]`.

use clap::Args;
use serde_json::{Value, json};

use super::output::{Selection, print_template};
use super::pod_object::pod_object;
use super::workloads::Resource;
use super::{Result, msg, table};
use crate::config::Config;
use crate::pod::{pod_restarts_column, pod_status_word};
use crate::state::PodRecord;

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Resource type: pods (pod, po), deployments (deploy), replicasets (rs), jobs; several
    /// separated by commas.
    #[arg(value_name = "pods")]
    pub resource: String,
    /// Pod names (all pods when omitted).
    pub names: Vec<String>,
    /// Output format: wide, json, yaml or name.
    #[arg(short = 'o', long = "output")]
    pub output: Option<String>,
    /// Pods of every namespace.
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// Leave out the header line of the table.
    #[arg(long = "no-headers")]
    pub no_headers: bool,
    /// Label selector: `k=v`, `k!=v`, `k in (a,b)`, `k notin (a)`, `k`, `!k`, comma-joined.
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// Field selector: `metadata.name=N`, `metadata.namespace`, pods' `status.phase` and
    /// `spec.nodeName`; `=`, `==`, `!=`, comma-joined.
    #[arg(long = "field-selector")]
    pub field_selector: Option<String>,
    /// After the listing, print each change as it happens (until interrupted).
    #[arg(short = 'w', long = "watch")]
    pub watch: bool,
    /// Print the changes only, without the listing first.
    #[arg(long = "watch-only")]
    pub watch_only: bool,
    /// With a watch, the event's type (ADDED, MODIFIED, DELETED) first on each line.
    #[arg(long = "output-watch-events")]
    pub output_watch_events: bool,
}

pub fn get(cfg: &Config, namespace: &str, args: &GetArgs) -> Result<i32> {
    let (resource, inline_name) = match args.resource.split_once('/') {
        Some((r, n)) => (r, Some(n.to_owned())),
        None => (args.resource.as_str(), None),
    };
    let names: Vec<String> = inline_name
        .into_iter()
        .chain(args.names.iter().cloned())
        .collect();
    let resources = resource
        .split(',')
        .map(Resource::parse)
        .collect::<Result<Vec<_>>>()?;
    if args.watch || args.watch_only {
        return super::get_watch::watch(cfg, namespace, &resources, &names, args);
    }
    if resources != [Resource::Pods] {
        return super::workloads::get(cfg, namespace, &resources, &names, args);
    }
    let all = crate::pod::read::list(cfg, (!args.all_namespaces).then_some(namespace));
    let mut pods: Vec<&PodRecord> = all.iter().collect();
    if !names.is_empty() {
        for n in &names {
            if !pods.iter().any(|r| &r.plan.name == n) {
                return Err(msg(format!("pods \"{n}\" not found")));
            }
        }
        pods.retain(|r| names.contains(&r.plan.name));
    }
    let selection = Selection::parse(
        args.selector.as_deref(),
        args.field_selector.as_deref(),
        "Pod",
    )?;
    if !selection.is_empty() {
        pods.retain(|r| selection.matches(&pod_object(r)));
    }
    let single = names.len() == 1;
    if let Some(output) = args.output.as_deref() {
        let objects: Vec<Value> = pods.iter().map(|r| pod_object(r)).collect();
        if print_template(output, &document(&pods, single), &objects, args.no_headers)? {
            return Ok(0);
        }
    }
    match args.output.as_deref() {
        None => print_table(&pods, false, args, namespace),
        Some("wide") => print_table(&pods, true, args, namespace),
        Some("name") => pods.iter().for_each(|r| println!("pod/{}", r.plan.name)),
        Some("json") => println!(
            "{}",
            serde_json::to_string_pretty(&document(&pods, single)).expect("json")
        ),
        Some("yaml") => print!(
            "{}",
            serde_saphyr::to_string(&document(&pods, single)).map_err(|e| msg(e.to_string()))?
        ),
        Some(other) => {
            return Err(msg(format!(
                "unable to match a printer suitable for the output format \"{other}\", allowed formats are: custom-columns,json,jsonpath,name,wide,yaml"
            )));
        }
    }
    Ok(0)
}

/// One named pod prints as the object itself; otherwise a kubectl `List`.
fn document(pods: &[&PodRecord], single: bool) -> Value {
    if single && let Some(r) = pods.first() {
        return pod_object(r);
    }
    json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": pods.iter().map(|r| pod_object(r)).collect::<Vec<_>>(),
        "metadata": {"resourceVersion": ""},
    })
}

fn print_table(pods: &[&PodRecord], wide: bool, args: &GetArgs, namespace: &str) {
    let all_ns = args.all_namespaces;
    if pods.is_empty() {
        if all_ns {
            eprintln!("No resources found");
        } else {
            eprintln!("No resources found in {namespace} namespace.");
        }
        return;
    }
    let mut rows = pod_rows(pods, wide, all_ns);
    if args.no_headers {
        rows.remove(0);
    }
    table::print(&rows);
}

/// The pods of `namespace` (all with None) named `names` (all if none), as a listing among
/// other kinds' (`get deployments,pods`).
pub fn pods_listing(
    cfg: &Config,
    namespace: Option<&str>,
    names: &[String],
    wide: bool,
) -> Result<super::workloads::Listing> {
    let all = crate::pod::read::list(cfg, namespace);
    let pods: Vec<&PodRecord> = all
        .iter()
        .filter(|r| names.is_empty() || names.contains(&r.plan.name))
        .collect();
    if let Some(n) = names
        .iter()
        .find(|n| !pods.iter().any(|r| &&r.plan.name == n))
    {
        return Err(msg(format!("pods \"{n}\" not found")));
    }
    let mut rows = pod_rows(&pods, wide, namespace.is_none());
    if namespace.is_none() {
        // The caller inserts the NAMESPACE header of the listing.
        rows[0].remove(0);
    }
    Ok(super::workloads::Listing {
        rows,
        objects: pods.iter().map(|r| pod_object(r)).collect(),
        names: pods.iter().map(|r| r.plan.name.clone()).collect(),
    })
}

/// The table of `pods`, its header first.
fn pod_rows(pods: &[&PodRecord], wide: bool, all_ns: bool) -> Vec<Vec<String>> {
    let mut header: Vec<&str> = vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"];
    if all_ns {
        header.insert(0, "NAMESPACE");
    }
    if wide {
        header.extend(["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]);
    }
    let mut rows = vec![header.into_iter().map(str::to_owned).collect::<Vec<_>>()];
    for r in pods {
        let mut row = Vec::new();
        if all_ns {
            row.push(r.plan.namespace.clone());
        }
        let (ready, total) = crate::pod::ready_counts(r);
        row.push(r.plan.name.clone());
        row.push(format!("{ready}/{total}"));
        row.push(pod_status_word(r));
        row.push(pod_restarts_column(r));
        row.push(table::age(r.created_at));
        if wide {
            row.push(
                r.pod_ip()
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "<none>".into()),
            );
            row.push(r.node_name.clone());
            row.push("<none>".into());
            row.push("<none>".into());
        }
        rows.push(row);
    }
    rows
}
