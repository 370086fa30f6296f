//! `podrun scale KIND/NAME --replicas=N` and `podrun rollout status|history|undo|restart
//! deployment/NAME`, kubectl's words and output; the pod layer changes the records and the
//! controller carries the change out.

use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use super::{Result, msg};
use crate::config::Config;
use crate::pod::{rollout, workloads};
use crate::state::{PodKey, WorkloadKind};

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// `deployment/NAME`, `replicaset/NAME`, or KIND then NAME.
    #[arg(required = true, num_args = 1..=2, value_name = "KIND/NAME")]
    pub what: Vec<String>,
    /// The new number of replicas.
    #[arg(long)]
    pub replicas: u32,
}

#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub command: RolloutCommand,
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Wait until the rollout is done, printing its progress.
    Status {
        #[arg(required = true, num_args = 1..=2, value_name = "deployment/NAME")]
        what: Vec<String>,
        /// Print the current state once instead of waiting.
        #[arg(short = 'w', long, default_value_t = true, action = clap::ArgAction::Set)]
        watch: bool,
        /// Give up after this long (`30s`, `5m`; 0: wait forever).
        #[arg(long, default_value = "0s")]
        timeout: String,
    },
    /// The revisions and their change causes.
    History {
        #[arg(required = true, num_args = 1..=2, value_name = "deployment/NAME")]
        what: Vec<String>,
        /// Show one revision's pod template.
        #[arg(long, default_value_t = 0)]
        revision: u64,
    },
    /// Go back to the previous revision (or `--to-revision`).
    Undo {
        #[arg(required = true, num_args = 1..=2, value_name = "deployment/NAME")]
        what: Vec<String>,
        #[arg(long, default_value_t = 0)]
        to_revision: u64,
    },
    /// Replace every pod (a new template stamped with the time).
    Restart {
        #[arg(required = true, num_args = 1..=2, value_name = "deployment/NAME")]
        what: Vec<String>,
    },
}

/// `deployment/NAME` or `deployment NAME` -> (kind, NAME).
fn workload_arg(what: &[String]) -> Result<(WorkloadKind, String)> {
    let (word, name) = match what {
        [one] => one.split_once('/').ok_or_else(|| {
            msg(format!(
                "arguments in resource/name form must have a single resource and name: {one}"
            ))
        })?,
        [kind, name] => (kind.as_str(), name.as_str()),
        _ => return Err(msg("expected KIND/NAME")),
    };
    let kind = workloads::workload_kind(word).ok_or_else(|| {
        msg(format!(
            "the server doesn't have a resource type \"{word}\""
        ))
    })?;
    Ok((kind, name.to_owned()))
}

fn deployment_arg(what: &[String]) -> Result<String> {
    match workload_arg(what)? {
        (WorkloadKind::Deployment, name) => Ok(name),
        (kind, _) => Err(msg(format!(
            "no rollout support for {} in podrun (deployments only)",
            workloads::qualified(kind)
        ))),
    }
}

pub fn scale(cfg: &Config, namespace: &str, args: &ScaleArgs) -> Result<i32> {
    let (kind, name) = workload_arg(&args.what)?;
    let store = cfg.store();
    workloads::scale(&store, kind, &PodKey::new(namespace, &name), args.replicas)?;
    report(crate::controller::ensure_running(cfg));
    println!("{}/{name} scaled", workloads::qualified(kind));
    Ok(0)
}

pub fn rollout(cfg: &Config, namespace: &str, args: &RolloutArgs) -> Result<i32> {
    let store = cfg.store();
    match &args.command {
        RolloutCommand::Status {
            what,
            watch,
            timeout,
        } => {
            let key = PodKey::new(namespace, &deployment_arg(what)?);
            status(cfg, &key, *watch, parse_duration(timeout)?)
        }
        RolloutCommand::History { what, revision } => {
            let key = PodKey::new(namespace, &deployment_arg(what)?);
            history(&store, &key, *revision)
        }
        RolloutCommand::Undo { what, to_revision } => {
            let key = PodKey::new(namespace, &deployment_arg(what)?);
            println!("{}", rollout::undo(&store, &key, *to_revision)?);
            report(crate::controller::ensure_running(cfg));
            Ok(0)
        }
        RolloutCommand::Restart { what } => {
            let key = PodKey::new(namespace, &deployment_arg(what)?);
            println!("{}", rollout::restart(&store, &key)?);
            report(crate::controller::ensure_running(cfg));
            Ok(0)
        }
    }
}

fn report(lines: Vec<String>) {
    for line in lines {
        eprintln!("podrun: {line}");
    }
}

/// `30s`, `5m`, `1h`, `500ms`, or plain seconds.
fn parse_duration(text: &str) -> Result<Duration> {
    let bad = || {
        msg(format!(
            "invalid argument \"{text}\" for \"--timeout\" flag"
        ))
    };
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| text.split_at(i))
        .unwrap_or((text, "s"));
    let n: u64 = number.parse().map_err(|_| bad())?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(bad()),
    })
}

/// kubectl's `rollout status`: a line each time the state changes, until it is done.
fn status(cfg: &Config, key: &PodKey, watch: bool, timeout: Duration) -> Result<i32> {
    let store = cfg.store();
    report(crate::controller::ensure_running(cfg));
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let view = workloads::deployment(&store, key)?;
        let (line, done) = crate::workload::deployment::rollout_status(
            &key.name,
            view.record.plan.replicas,
            &view.status,
        );
        if line != last {
            println!("{line}");
            last = line;
        }
        if done || !watch {
            return Ok(0);
        }
        if view.progressing(&store).1 == "ProgressDeadlineExceeded" {
            return Err(msg(format!(
                "deployment \"{}\" exceeded its progress deadline",
                key.name
            )));
        }
        if !timeout.is_zero() && started.elapsed() >= timeout {
            return Err(msg("timed out waiting for the condition"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn history(store: &crate::state::Store, key: &PodKey, revision: u64) -> Result<i32> {
    let revisions = rollout::history(store, key)?;
    if revision > 0 {
        let r = revisions
            .iter()
            .find(|r| r.number == revision)
            .ok_or_else(|| msg(format!("unable to find the specified revision {revision}")))?;
        println!("deployment.apps/{} with revision #{revision}", key.name);
        print!(
            "{}",
            super::describe_workload::pod_template(&r.replica_set.template)
        );
        return Ok(0);
    }
    // kubectl's tabwriter here pads with two spaces, not three.
    println!("deployment.apps/{} ", key.name);
    println!("REVISION  CHANGE-CAUSE");
    for r in &revisions {
        let cause = r.change_cause.as_deref().unwrap_or("<none>");
        println!("{:<10}{cause}", r.number);
    }
    println!();
    Ok(0)
}
