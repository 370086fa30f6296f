//! `podrun delete NAME... | -f FILE | --all`: the pods named, asked to stop all at once
//! through [`crate::pod::delete`], then waited for; kubectl's `pod "NAME" deleted` each.

use std::path::PathBuf;

use clap::Args;

use super::{Result, is_pod_kind, msg, pod_arg};
use crate::config::Config;
use crate::pod::delete::{finish, request_stop};
use crate::spec::{self, Object};
use crate::state::{PodKey, StateError};

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// `pod` (optional) and pod names, or `pod/NAME`.
    #[arg(value_name = "[pod] NAME")]
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

pub fn delete(
    cfg: &Config,
    namespace: &str,
    explicit_namespace: Option<&str>,
    args: &DeleteArgs,
) -> Result<i32> {
    let keys = targets(cfg, namespace, explicit_namespace, args)?;
    if keys.is_empty() {
        return Err(msg("resource(s) were provided, but no name was specified"));
    }
    let grace = if args.now {
        Some(1)
    } else {
        args.grace_period.filter(|g| *g >= 0)
    };
    let mut missing = Vec::new();
    let mut waiting = Vec::new();
    for key in keys {
        match request_stop(cfg, &key, grace) {
            Ok((w, warnings)) => {
                for warning in warnings {
                    eprintln!("podrun: {warning}");
                }
                waiting.push((key, w))
            }
            Err(StateError::NotFound(_)) if args.ignore_not_found => {}
            Err(e @ StateError::NotFound(_)) => missing.push(e.to_string()),
            Err(e) => return Err(e.into()),
        }
    }
    let mut failed = Vec::new();
    for (key, w) in waiting {
        match finish(cfg, w) {
            Ok(()) => println!("pod \"{}\" deleted", key.name),
            Err(e) => failed.push(format!("pod \"{}\": {e}", key.name)),
        }
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
) -> Result<Vec<PodKey>> {
    let store = cfg.store();
    if args.all {
        return Ok(store
            .list()
            .into_iter()
            .map(|r| r.key())
            .filter(|k| k.namespace == namespace)
            .collect());
    }
    if let Some(file) = &args.file {
        let mut keys = Vec::new();
        for obj in spec::load_file_in(file, explicit_namespace)? {
            match obj {
                Object::Pod(p) => keys.push(PodKey::new(&p.namespace, &p.name)),
                Object::Deployment(d) => keys.extend(crate::pod::forget_deployment(
                    &store,
                    &d.namespace,
                    &d.name,
                )?),
            }
        }
        return Ok(keys);
    }
    let mut names: &[String] = &args.names;
    if let Some(first) = names.first()
        && is_pod_kind(first)
    {
        names = &names[1..];
    }
    names
        .iter()
        .map(|n| Ok(PodKey::new(namespace, pod_arg(n)?)))
        .collect()
}
