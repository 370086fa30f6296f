//! `podrun get deployments|replicasets|jobs [NAME...]` (and several kinds at once:
//! `get deployments,replicasets,pods`), with kubectl's columns.

use serde_json::{Value, json};

use super::get::GetArgs;
use super::output::{Selection, print_template};
use super::{Result, msg, table};
use crate::config::Config;
use crate::pod::workloads::{self, DeploymentView, ReplicaSetView};
use crate::state::WorkloadKind;

/// What `get` lists: pods or a workload kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Pods,
    Workload(WorkloadKind),
    /// Listed as `podrun serve` lists them (`objects::resources`): nodes, events, namespaces.
    Other(&'static str),
}

impl Resource {
    /// The API's plural: what `objects::resources::collect` lists.
    pub fn plural(&self) -> &'static str {
        match self {
            Resource::Pods => "pods",
            Resource::Workload(WorkloadKind::Deployment) => "deployments",
            Resource::Workload(WorkloadKind::ReplicaSet) => "replicasets",
            Resource::Workload(WorkloadKind::Job) => "jobs",
            Resource::Other(p) => p,
        }
    }

    /// The kind whose field selectors apply (pods' and events' own; the common ones else).
    pub fn selector_kind(&self) -> &'static str {
        match self {
            Resource::Pods => "Pod",
            Resource::Other("events") => "Event",
            _ => "",
        }
    }

    pub fn parse(word: &str) -> Result<Self> {
        if super::is_pod_kind(word) {
            return Ok(Resource::Pods);
        }
        match word {
            "nodes" | "node" | "no" => return Ok(Resource::Other("nodes")),
            "events" | "event" | "ev" => return Ok(Resource::Other("events")),
            "namespaces" | "namespace" | "ns" => return Ok(Resource::Other("namespaces")),
            "configmaps" | "configmap" | "cm" => return Ok(Resource::Other("configmaps")),
            "secrets" | "secret" => return Ok(Resource::Other("secrets")),
            _ => {}
        }
        workloads::workload_kind(word)
            .map(Resource::Workload)
            .ok_or_else(|| {
                msg(format!(
                    "the server doesn't have a resource type \"{word}\""
                ))
            })
    }
}

/// Nodes, events or namespaces as `podrun serve` lists them: kube-apiserver's columns
/// (upper-cased; priority 1 only `wide`), NAMESPACE first for events of every namespace.
fn other_listing(
    cfg: &Config,
    plural: &str,
    namespace: Option<&str>,
    names: &[String],
    wide: bool,
) -> Result<Listing> {
    let namespaced = matches!(plural, "events" | "configmaps" | "secrets");
    let collection =
        crate::objects::resources::collect(cfg, plural, namespace.filter(|_| namespaced))
            .map_err(msg)?;
    let shown: Vec<bool> = collection
        .columns
        .iter()
        .map(|c| wide || c.priority == 0)
        .collect();
    let all_ns = namespaced && namespace.is_none();
    let mut header: Vec<String> = Vec::new();
    if all_ns {
        header.push("NAMESPACE".into());
    }
    header.extend(
        collection
            .columns
            .iter()
            .zip(&shown)
            .filter(|(_, s)| **s)
            .map(|(c, _)| c.name.to_uppercase()),
    );
    let mut out = Listing {
        rows: vec![header],
        objects: Vec::new(),
        names: Vec::new(),
    };
    for (cells, obj) in collection.rows {
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if !names.is_empty() && !names.contains(&name) {
            continue;
        }
        let mut row = Vec::new();
        if all_ns {
            row.push(
                obj["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        row.extend(
            cells
                .iter()
                .zip(&shown)
                .filter(|(_, s)| **s)
                .map(|(v, _)| crate::objects::jsonpath::text_of(v)),
        );
        out.rows.push(row);
        out.objects.push(obj);
        out.names.push(name);
    }
    if let Some(n) = names.iter().find(|n| !out.names.contains(n)) {
        return Err(msg(format!("{plural} \"{n}\" not found")));
    }
    Ok(out)
}

/// The rows (header first) and the objects of one workload kind's listing.
pub struct Listing {
    pub rows: Vec<Vec<String>>,
    pub objects: Vec<Value>,
    pub names: Vec<String>,
}

impl Listing {
    /// The rows, objects and names whose object `selection` chooses.
    pub fn select(self, selection: &Selection) -> Listing {
        if selection.is_empty() {
            return self;
        }
        let mut rows = self.rows.into_iter();
        let mut out = Listing {
            rows: rows.next().into_iter().collect(),
            objects: Vec::new(),
            names: Vec::new(),
        };
        for ((row, obj), name) in rows.zip(self.objects).zip(self.names) {
            if selection.matches(&obj) {
                out.rows.push(row);
                out.objects.push(obj);
                out.names.push(name);
            }
        }
        out
    }
}

/// List workload `kind` in `namespace` (every namespace with None), `names` only if given.
pub fn listing(
    cfg: &Config,
    kind: WorkloadKind,
    namespace: Option<&str>,
    names: &[String],
    wide: bool,
) -> Result<Listing> {
    let store = cfg.store();
    let all_ns = namespace.is_none();
    let mut listing = match kind {
        WorkloadKind::Deployment => {
            let mut views = workloads::deployments(&store, namespace);
            keep_named(kind, names, &mut views, |v| &v.record.name)?;
            deployments_listing(&views, wide, all_ns, &store)
        }
        WorkloadKind::ReplicaSet => {
            let mut views = workloads::replica_sets(&store, namespace);
            keep_named(kind, names, &mut views, |v| &v.record.name)?;
            replica_sets_listing(&views, wide, all_ns)
        }
        WorkloadKind::Job => super::jobs::listing(cfg, namespace, names, wide)?,
    };
    if all_ns {
        listing.rows[0].insert(0, "NAMESPACE".into());
    }
    Ok(listing)
}

fn keep_named<T>(
    kind: WorkloadKind,
    names: &[String],
    views: &mut Vec<T>,
    name: impl Fn(&T) -> &String,
) -> Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    if let Some(missing) = names.iter().find(|n| !views.iter().any(|v| name(v) == *n)) {
        return Err(workloads::not_found(kind, missing).into());
    }
    views.retain(|v| names.contains(name(v)));
    Ok(())
}

/// CONTAINERS, IMAGES (comma-separated) of a template.
pub fn containers_images(plan: &crate::spec::PodPlan) -> (String, String) {
    let apps: Vec<&crate::spec::ContainerPlan> =
        plan.containers.iter().filter(|c| !c.init).collect();
    let names: Vec<&str> = apps.iter().map(|c| c.name.as_str()).collect();
    let images: Vec<&str> = apps.iter().map(|c| c.image.as_str()).collect();
    (names.join(","), images.join(","))
}

/// `app=web,pod-template-hash=...`.
pub fn selector(map: &std::collections::BTreeMap<String, String>) -> String {
    let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join(",")
}

fn deployments_listing(
    views: &[DeploymentView],
    wide: bool,
    all_ns: bool,
    store: &crate::state::Store,
) -> Listing {
    let mut header = vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"];
    if wide {
        header.extend(["CONTAINERS", "IMAGES", "SELECTOR"]);
    }
    let mut rows = vec![header.into_iter().map(str::to_owned).collect::<Vec<_>>()];
    for v in views {
        let p = &v.record.plan;
        let mut row = Vec::new();
        if all_ns {
            row.push(v.record.namespace.clone());
        }
        row.extend([
            v.record.name.clone(),
            format!("{}/{}", v.status.ready, p.replicas),
            v.status.updated.to_string(),
            v.status.available.to_string(),
            table::age(v.record.created_at),
        ]);
        if wide {
            let (c, i) = containers_images(&p.template);
            row.extend([c, i, selector(&p.selector)]);
        }
        rows.push(row);
    }
    Listing {
        rows,
        objects: views
            .iter()
            .map(|v| super::workload_object::deployment_object(v, store))
            .collect(),
        names: views.iter().map(|v| v.record.name.clone()).collect(),
    }
}

fn replica_sets_listing(views: &[ReplicaSetView], wide: bool, all_ns: bool) -> Listing {
    let mut header = vec!["NAME", "DESIRED", "CURRENT", "READY", "AGE"];
    if wide {
        header.extend(["CONTAINERS", "IMAGES", "SELECTOR"]);
    }
    let mut rows = vec![header.into_iter().map(str::to_owned).collect::<Vec<_>>()];
    for v in views {
        let mut row = Vec::new();
        if all_ns {
            row.push(v.record.namespace.clone());
        }
        row.extend([
            v.record.name.clone(),
            v.record.replicas.to_string(),
            v.counts.current.to_string(),
            v.counts.ready.to_string(),
            table::age(v.record.created_at),
        ]);
        if wide {
            let (c, i) = containers_images(&v.record.template.plan);
            row.extend([c, i, selector(&v.record.selector)]);
        }
        rows.push(row);
    }
    Listing {
        rows,
        objects: views
            .iter()
            .map(super::workload_object::replica_set_object)
            .collect(),
        names: views.iter().map(|v| v.record.name.clone()).collect(),
    }
}

/// `get` of one workload kind, or of several kinds (`deployments,replicasets,pods`): a table
/// per kind, names prefixed with the kind when there are several, as kubectl prints them.
pub fn get(
    cfg: &Config,
    namespace: &str,
    resources: &[Resource],
    names: &[String],
    args: &GetArgs,
) -> Result<i32> {
    let ns = (!args.all_namespaces).then_some(namespace);
    let several = resources.len() > 1;
    let output = args.output.as_deref();
    let wide = output == Some("wide");
    let mut objects: Vec<Value> = Vec::new();
    let mut printed = false;
    for resource in resources {
        let (kind_word, listing) = match resource {
            Resource::Pods => (
                "pod".to_owned(),
                super::get::pods_listing(cfg, ns, names, wide)?,
            ),
            Resource::Workload(kind) => (
                workloads::qualified(*kind).to_owned(),
                listing(cfg, *kind, ns, names, wide)?,
            ),
            Resource::Other(plural) => (
                plural.trim_end_matches('s').to_owned(),
                other_listing(cfg, plural, ns, names, wide)?,
            ),
        };
        let selection = Selection::parse(
            args.selector.as_deref(),
            args.field_selector.as_deref(),
            resource.selector_kind(),
        )?;
        let listing = listing.select(&selection);
        match output {
            Some("json") | Some("yaml") => objects.extend(listing.objects),
            Some(o) if o.starts_with("jsonpath=") || o.starts_with("custom-columns=") => {
                objects.extend(listing.objects)
            }
            Some("name") => {
                for n in &listing.names {
                    println!("{kind_word}/{n}");
                }
            }
            None | Some("wide") => {
                if listing.names.is_empty() {
                    continue;
                }
                let mut rows = listing.rows;
                if several {
                    let at = usize::from(args.all_namespaces);
                    for row in rows.iter_mut().skip(1) {
                        row[at] = format!("{kind_word}/{}", row[at]);
                    }
                    if printed {
                        println!();
                    }
                }
                if args.no_headers {
                    rows.remove(0);
                }
                table::print(&rows);
                printed = true;
            }
            Some(other) => {
                return Err(msg(format!(
                    "unable to match a printer suitable for the output format \"{other}\", allowed formats are: custom-columns,json,jsonpath,name,wide,yaml"
                )));
            }
        }
    }
    if let Some(o) =
        output.filter(|o| o.starts_with("jsonpath=") || o.starts_with("custom-columns="))
    {
        let doc = if objects.len() == 1 && !names.is_empty() && !several {
            objects[0].clone()
        } else {
            json!({"apiVersion": "v1", "kind": "List", "items": objects, "metadata": {"resourceVersion": ""}})
        };
        print_template(o, &doc, &objects, args.no_headers)?;
        return Ok(0);
    }
    match output {
        Some("json") | Some("yaml") => {
            let doc = if objects.len() == 1 && !names.is_empty() && !several {
                objects.remove(0)
            } else {
                json!({"apiVersion": "v1", "kind": "List", "items": objects, "metadata": {"resourceVersion": ""}})
            };
            if output == Some("json") {
                println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
            } else {
                print!(
                    "{}",
                    serde_saphyr::to_string(&doc).map_err(|e| msg(e.to_string()))?
                );
            }
        }
        None | Some("wide") if !printed => {
            if args.all_namespaces {
                eprintln!("No resources found");
            } else {
                eprintln!("No resources found in {namespace} namespace.");
            }
        }
        _ => {}
    }
    Ok(0)
}
