//! What a pull shows while it runs: on a terminal (stderr), a progress bar per layer being
//! fetched (indicatif); otherwise nothing but the failures of endpoints that were tried before
//! one answered, so logs and pipes stay quiet.

use std::collections::HashMap;
use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::image::PullEvent;

pub struct PullProgress {
    bars: Option<MultiProgress>,
    layers: HashMap<String, ProgressBar>,
    /// `Trying REGISTRY/REPOSITORY` lines (`podrun pull` has them; apply does not).
    endpoints: bool,
    quiet: bool,
}

impl PullProgress {
    /// Bars when stderr is a terminal and `quiet` is not asked for; `endpoints`: a line for
    /// each endpoint tried.
    pub fn new(quiet: bool, endpoints: bool) -> PullProgress {
        let bars = (!quiet && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        PullProgress {
            bars,
            layers: HashMap::new(),
            endpoints,
            quiet,
        }
    }

    fn line(&self, line: String) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.println(line);
            }
            None if !self.quiet => eprintln!("{line}"),
            None => {}
        }
    }

    pub fn event(&mut self, event: PullEvent) {
        match event {
            PullEvent::Trying(endpoint) => {
                if self.endpoints {
                    self.line(format!("Trying {endpoint}"));
                }
            }
            PullEvent::Failed { endpoint, error } => self.line(format!("  {endpoint}: {error}")),
            PullEvent::Manifest { fetch, present } => {
                let Some(bars) = &self.bars else { return };
                if present > 0 {
                    let _ = bars.println(format!("  {present} layer(s) already present"));
                }
                let style = ProgressStyle::with_template(
                    "  {prefix} {bar:30} {bytes:>10}/{total_bytes:<10} {msg}",
                )
                .expect("a valid template");
                for (digest, size) in fetch {
                    let bar = bars.add(ProgressBar::new(size));
                    bar.set_style(style.clone());
                    bar.set_prefix(short(&digest));
                    self.layers.insert(digest, bar);
                }
            }
            PullEvent::Progress { digest, done } => {
                if let Some(bar) = self.layers.get(&digest) {
                    bar.set_position(done);
                }
            }
            PullEvent::LayerDone { digest } => {
                if let Some(bar) = self.layers.get(&digest) {
                    bar.finish_with_message("done");
                }
            }
        }
    }
}

impl Drop for PullProgress {
    fn drop(&mut self) {
        for bar in self.layers.values() {
            bar.abandon();
        }
        if let Some(bars) = &self.bars {
            let _ = bars.clear();
        }
    }
}

/// `sha256:0123456789ab...` as the first 12 hex digits, as docker shows layers.
fn short(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex[..12.min(hex.len())].to_owned()
}
