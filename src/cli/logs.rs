//! `podrun logs NAME [-c C] [-f] [-p] [--tail N]`: a container run's stdout+stderr file.

use std::io::{Read, Seek, Write};
use std::time::Duration;

use clap::Args;

use super::{Result, load_pod, msg, pod_arg};
use crate::config::Config;
use crate::pod::read::{self, Run};
use crate::state::{PodKey, PodRecord};

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
    let (path, run) = read::log_of(cfg, &r, &container, which)?;
    let key = r.key();
    let mut file =
        std::fs::File::open(&path).map_err(|e| msg(format!("read log {}: {e}", path.display())))?;
    let mut text = Vec::new();
    file.read_to_end(&mut text)
        .map_err(|e| msg(format!("read log {}: {e}", path.display())))?;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(tail(&text, args.tail));
    let _ = out.flush();
    if args.follow && !args.previous {
        follow(cfg, &key, &container, run, &mut file, &mut out);
    }
    Ok(0)
}

fn tail(text: &[u8], n: Option<i64>) -> &[u8] {
    let Some(n) = n.filter(|n| *n >= 0) else {
        return text;
    };
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut count = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            count += 1;
            if count == n {
                return &text[i + 1..];
            }
        }
    }
    if n == 0 { &[] } else { text }
}

/// Print new output until this run of the container ends or the pod is deleted.
fn follow(
    cfg: &Config,
    key: &PodKey,
    container: &str,
    run: u32,
    file: &mut std::fs::File,
    out: &mut impl Write,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut progressed = false;
        while let Ok(n) = file.read(&mut buf) {
            if n == 0 {
                break;
            }
            progressed = true;
            let _ = out.write_all(&buf[..n]);
        }
        let _ = out.flush();
        if !read::run_is_live(cfg, key, container, run) && !progressed {
            let _ = file.stream_position();
            while let Ok(n) = file.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let _ = out.write_all(&buf[..n]);
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
