//! `podrun apply -f FILE`: read the manifest, hand its objects to [`crate::pod::apply`], print
//! what was done as kubectl does (`pod/NAME created`, `unchanged`, `configured`,
//! `deployment.apps/NAME created`), each created pod's summary indented under it.

use std::path::Path;

use super::Result;
use crate::config::Config;
use crate::pod::{self, Created};

pub fn apply(cfg: &Config, file: &Path, namespace: Option<&str>) -> Result<i32> {
    tracing::debug!("apply started");
    let stored = crate::objects::config::stored(cfg);
    let loaded = crate::spec::load_file_with(file, namespace, &stored)?;
    tracing::debug!("manifest loaded");
    // ConfigMaps and Secrets: worked out (an immutable one's change refused) before any pod
    // is made, stored once the pods are.
    let configs = loaded
        .configs
        .iter()
        .map(|c| crate::objects::config::plan(cfg, c, true))
        .collect::<std::result::Result<Vec<_>, String>>()
        .map_err(|e| super::msg(format!("{}: {e}", file.display())))?;
    let created = if loaded.objects.is_empty() {
        Vec::new()
    } else {
        let mut bars = super::pull_progress::PullProgress::new(false, false);
        let created = pod::apply(
            cfg,
            loaded.objects,
            &mut |note| eprintln!("podrun: {note}"),
            &mut |e| bars.event(e),
        );
        drop(bars);
        created?
    };
    crate::objects::config::commit(cfg, &configs)?;
    for c in &configs {
        println!("{}", c.line());
    }
    print_created(&created);
    Ok(0)
}

fn print_created(created: &[Created]) {
    use std::io::Write;
    let mut out = String::new();
    for object in created {
        out.push_str(&object.line);
        out.push('\n');
        let several = object.pods.len() > 1;
        for (key, summary) in &object.pods {
            let indent = if several {
                out.push_str(&format!("  pod/{}\n", key.name));
                "    "
            } else {
                "  "
            };
            for l in summary.lines() {
                out.push_str(indent);
                out.push_str(l);
                out.push('\n');
            }
        }
    }
    // One write: the caller reading our output is woken once, not per line.
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
}
