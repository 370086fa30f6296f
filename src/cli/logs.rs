//! `podrun logs NAME [-c C] [-f] [-p] [--tail N]`: a container run's stdout+stderr file.

use std::io::Write;

use clap::Args;

use super::{Result, load_pod, msg, pod_arg};
use crate::config::Config;
use crate::pod::logs;
use crate::pod::read::Run;
use crate::state::PodRecord;

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// `pod/NAME` or NAME.
    pub pod: String,
    /// Container (default: the first, as kubectl).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Keep printing what the container writes until it stops.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// The previous run of the container (after a restart).
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Only the last N lines.
    #[arg(long, allow_negative_numbers = true)]
    pub tail: Option<i64>,
}

/// kubectl's rule: `-c` if given, else the only container, else the first with a notice.
pub fn pick_container(r: &PodRecord, wanted: Option<&str>) -> Result<String> {
    // The app containers first (the default is the first of them), then the init containers.
    let names: Vec<&str> = r
        .app_containers()
        .chain(r.init_containers())
        .map(|c| c.name.as_str())
        .collect();
    match wanted {
        Some(w) if names.contains(&w) => Ok(w.to_owned()),
        Some(w) => Err(msg(format!(
            "container {w} is not valid for pod {}",
            r.plan.name
        ))),
        None => {
            if names.len() > 1 {
                eprintln!(
                    "Defaulted container \"{}\" out of: {}",
                    names[0],
                    r.app_containers()
                        .map(|c| c.name.clone())
                        .chain(r.init_containers().map(|c| format!("{} (init)", c.name)))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            names
                .first()
                .map(|n| n.to_string())
                .ok_or_else(|| msg("pod has no containers"))
        }
    }
}

pub fn logs(cfg: &Config, namespace: &str, args: &LogsArgs) -> Result<i32> {
    let name = pod_arg(&args.pod)?;
    let r = load_pod(cfg, namespace, name)?;
    let container = pick_container(&r, args.container.as_deref())?;
    let which = if args.previous {
        Run::Previous
    } else {
        Run::Current
    };
    let mut log = logs::open(cfg, &r, &container, which)?;
    let text = log.read_all()?;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(logs::tail(&text, args.tail));
    let _ = out.flush();
    if args.follow && !args.previous {
        log.follow(cfg, &mut |chunk| {
            out.write_all(chunk).and_then(|()| out.flush()).is_ok()
        });
    }
    Ok(0)
}
