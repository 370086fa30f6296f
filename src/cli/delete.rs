//! `podrun delete NAME... | -f FILE | --all`: the pods named, asked to stop all at once
//! through [`crate::pod::delete`], then waited for; kubectl's `pod "NAME" deleted` each.

use std::path::PathBuf;

use clap::Args;

use super::{Result, is_pod_kind, msg, pod_arg};
use crate::config::Config;
use crate::pod::delete::{finish, request_stop};
use crate::pod::workloads;
use crate::spec::{self, Object};
use crate::state::{ConfigKind, PodKey, StateError, WorkloadKind};

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// `pod` (optional) and pod names, or `pod/NAME`; or `deployment|replicaset|job NAME...`
    /// (`deployment/NAME`): the workload and its pods.
    #[arg(value_name = "[KIND] NAME")]
    pub names: Vec<String>,
    /// Delete the pods of this manifest (Pods by name, Deployments with all their pods).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Every pod in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Seconds to wait after SIGTERM before SIGKILL (default: the pod's terminationGracePeriodSeconds).
    #[arg(long, allow_negative_numbers = true)]
    pub grace_period: Option<i64>,
    /// Shorthand for --grace-period=1.
    #[arg(long)]
    pub now: bool,
    /// Treat a missing pod as deleted.
    #[arg(long)]
    pub ignore_not_found: bool,
}

/// What a delete names: a pod, or a workload (whose pods go with it).
enum Target {
    Pod(PodKey),
    Workload(WorkloadKind, PodKey),
    /// A stored ConfigMap or Secret (`delete -f` of a file that holds one).
    Config(ConfigKind, PodKey),
}

pub fn delete(
    cfg: &Config,
    namespace: &str,
    explicit_namespace: Option<&str>,
    args: &DeleteArgs,
) -> Result<i32> {
    if let Some(done) = super::config_objects::delete(cfg, namespace, args) {
        return done;
    }
    let targets = targets(cfg, namespace, explicit_namespace, args)?;
    if targets.is_empty() {
        return Err(msg("resource(s) were provided, but no name was specified"));
    }
    let grace = if args.now {
        Some(1)
    } else {
        args.grace_period.filter(|g| *g >= 0)
    };
    let store = cfg.store();
    let mut missing = Vec::new();
    let mut failed = Vec::new();
    // Workloads first (forgotten under the workloads lock: no controller replaces their
    // pods after), then every pod at once.
    let mut pods: Vec<(PodKey, Option<String>)> = Vec::new();
    let mut lines: Vec<(String, usize)> = Vec::new();
    for target in targets {
        match target {
            Target::Pod(key) => pods.push((key, None)),
            Target::Workload(kind, key) => match workloads::forget(&store, kind, &key) {
                Ok(owned) => {
                    let line = format!("{} \"{}\" deleted", workloads::qualified(kind), key.name);
                    lines.push((line, owned.len()));
                    pods.extend(owned.into_iter().map(|k| (k, Some(key.name.clone()))));
                }
                Err(_) if args.ignore_not_found => {}
                Err(e) => missing.push(e.to_string()),
            },
            Target::Config(kind, key) => match store.remove_config(kind, &key.namespace, &key.name)
            {
                Ok(true) => {
                    lines.push((format!("{} \"{}\" deleted", kind.singular(), key.name), 0))
                }
                Ok(false) if args.ignore_not_found => {}
                Ok(false) => missing.push(format!("{} \"{}\" not found", kind.plural(), key.name)),
                Err(e) => return Err(e.into()),
            },
        }
    }
    let mut waiting = Vec::new();
    for (key, owner) in pods {
        match request_stop(cfg, &key, grace) {
            Ok((w, warnings)) => {
                for warning in warnings {
                    eprintln!("podrun: {warning}");
                }
                waiting.push((key, owner, w))
            }
            // A workload's pod may be gone already (its controller removed it).
            Err(StateError::NotFound(_)) if args.ignore_not_found || owner.is_some() => {}
            Err(e @ StateError::NotFound(_)) => missing.push(e.to_string()),
            Err(e) => return Err(e.into()),
        }
    }
    for (key, owner, w) in waiting {
        match finish(cfg, w) {
            Ok(()) if owner.is_none() => println!("pod \"{}\" deleted", key.name),
            Ok(()) => {}
            Err(e) => failed.push(format!("pod \"{}\": {e}", key.name)),
        }
    }
    for (line, _) in lines {
        println!("{line}");
    }
    failed.extend(missing);
    if failed.is_empty() {
        Ok(0)
    } else {
        Err(msg(failed.join("\n")))
    }
}

fn targets(
    cfg: &Config,
    namespace: &str,
    explicit_namespace: Option<&str>,
    args: &DeleteArgs,
) -> Result<Vec<Target>> {
    let store = cfg.store();
    if args.all {
        if let Some(kind) = args.names.first().and_then(|w| workloads::workload_kind(w)) {
            return Ok(all_workloads(&store, kind, namespace));
        }
        return Ok(store
            .list()
            .into_iter()
            .map(|r| r.key())
            .filter(|k| k.namespace == namespace)
            .map(Target::Pod)
            .collect());
    }
    if let Some(file) = &args.file {
        let stored = crate::objects::config::stored(cfg);
        let loaded = spec::load_file_with(file, explicit_namespace, &stored)?;
        let mut targets: Vec<Target> = loaded
            .configs
            .iter()
            .filter_map(|c| {
                let key = PodKey::new(&c.namespace, &c.name);
                Some(Target::Config(ConfigKind::from_kind(c.kind)?, key))
            })
            .collect();
        for obj in loaded.objects {
            let key = PodKey::new(obj.namespace(), obj.name());
            targets.push(match obj {
                Object::Pod(_) => Target::Pod(key),
                Object::Deployment(_) => Target::Workload(WorkloadKind::Deployment, key),
                Object::ReplicaSet(_) => Target::Workload(WorkloadKind::ReplicaSet, key),
                Object::Job(_) => Target::Workload(WorkloadKind::Job, key),
            });
        }
        return Ok(targets);
    }
    let mut names: &[String] = &args.names;
    let mut kind = None;
    if let Some(first) = names.first() {
        if is_pod_kind(first) {
            names = &names[1..];
        } else if let Some(k) = workloads::workload_kind(first) {
            kind = Some(k);
            names = &names[1..];
        }
    }
    names
        .iter()
        .map(|n| {
            if let Some(k) = kind {
                return Ok(Target::Workload(k, PodKey::new(namespace, n)));
            }
            match n.split_once('/') {
                Some((word, name)) if workloads::workload_kind(word).is_some() => {
                    let k = workloads::workload_kind(word).expect("checked");
                    Ok(Target::Workload(k, PodKey::new(namespace, name)))
                }
                _ => Ok(Target::Pod(PodKey::new(namespace, pod_arg(n)?))),
            }
        })
        .collect()
}

fn all_workloads(store: &crate::state::Store, kind: WorkloadKind, namespace: &str) -> Vec<Target> {
    let keys: Vec<PodKey> = match kind {
        WorkloadKind::Deployment => store.list_deployments().iter().map(|d| d.key()).collect(),
        WorkloadKind::ReplicaSet => store.list_replica_sets().iter().map(|r| r.key()).collect(),
        WorkloadKind::Job => store.list_jobs().iter().map(|j| j.key()).collect(),
    };
    keys.into_iter()
        .filter(|k| k.namespace == namespace)
        .map(|k| Target::Workload(kind, k))
        .collect()
}
