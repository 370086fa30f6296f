//! `podrun get RESOURCE [NAME...] -w|--watch-only [--output-watch-events]`: the listing, then
//! a line per change as kubectl prints a watch ([`crate::objects::watch`]): the row of the
//! object that was added, modified or deleted (`-o json|yaml|name`: the object), with the
//! event's type first under `--output-watch-events`. It runs until interrupted.

use std::io::Write;
use std::time::Duration;

use serde_json::Value;

use super::get::GetArgs;
use super::output::Selection;
use super::workloads::Resource;
use super::{Result, msg};
use crate::config::Config;
use crate::objects::resources::Column;
use crate::objects::watch::{Change, CollectionWatch, Row};

/// The shown cells of a row (priority 1 only `wide`), NAMESPACE and EVENT first when asked.
fn line(
    columns: &[Column],
    (cells, obj): &Row,
    wide: bool,
    namespace_column: bool,
    event: Option<Change>,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(e) = event {
        out.push(e.word().to_owned());
    }
    if namespace_column {
        out.push(
            obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    for (c, cell) in columns.iter().zip(cells) {
        if c.priority == 0 || wide {
            out.push(match cell {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        }
    }
    out
}

pub fn watch(
    cfg: &Config,
    namespace: &str,
    resources: &[Resource],
    names: &[String],
    args: &GetArgs,
) -> Result<i32> {
    let [resource] = resources else {
        return Err(msg(
            "you may only specify a single resource type with --watch",
        ));
    };
    let plural = resource.plural();
    let namespaced = !matches!(plural, "nodes" | "namespaces");
    let all = args.all_namespaces || !namespaced;
    let scope = (!all).then(|| namespace.to_owned());
    let selection = Selection::parse(
        args.selector.as_deref(),
        args.field_selector.as_deref(),
        resource.selector_kind(),
    )?;
    let wanted = names.to_vec();
    let mut w = CollectionWatch::of(cfg, plural, scope, move |o| {
        (wanted.is_empty() || wanted.iter().any(|n| o["metadata"]["name"] == n.as_str()))
            && selection.matches(o)
    })
    .map_err(msg)?;
    let output = args.output.as_deref().unwrap_or("");
    let wide = output == "wide";
    let events = args.output_watch_events;
    let ns_column = args.all_namespaces && namespaced;
    let mut out = std::io::stdout();
    let print_rows = |rows: &[Vec<String>]| {
        super::table::print(rows);
        let _ = std::io::stdout().flush();
    };
    let header = |columns: &[Column]| {
        let mut header = Vec::new();
        if events {
            header.push("EVENT".to_owned());
        }
        if ns_column {
            header.push("NAMESPACE".to_owned());
        }
        header.extend(
            columns
                .iter()
                .filter(|c| c.priority == 0 || wide)
                .map(|c| c.name.to_uppercase()),
        );
        header
    };
    // kubectl prints the header with the first row it has.
    let mut header_due = !args.no_headers && matches!(output, "" | "wide");
    if !args.watch_only {
        let current: Vec<&Row> = w.current().collect();
        if current.is_empty() {
            if all {
                eprintln!("No resources found");
            } else {
                eprintln!("No resources found in {namespace} namespace.");
            }
        } else if matches!(output, "" | "wide") {
            let mut rows = Vec::new();
            if header_due {
                rows.push(header(&w.columns));
                header_due = false;
            }
            let ev = events.then_some(Change::Added);
            rows.extend(
                current
                    .iter()
                    .map(|r| line(&w.columns, r, wide, ns_column, ev)),
            );
            print_rows(&rows);
        } else {
            for r in current {
                print_object(&mut out, output, &r.1, events.then_some(Change::Added))?;
            }
        }
    }
    loop {
        for (change, row) in w.next_changes(Duration::from_secs(1)) {
            if !matches!(output, "" | "wide") {
                print_object(&mut out, output, &row.1, events.then_some(change))?;
                continue;
            }
            let mut rows = Vec::new();
            if header_due {
                rows.push(header(&w.columns));
                header_due = false;
            }
            rows.push(line(
                &w.columns,
                &row,
                wide,
                ns_column,
                events.then_some(change),
            ));
            print_rows(&rows);
        }
    }
}

fn print_object(
    out: &mut std::io::Stdout,
    output: &str,
    obj: &Value,
    event: Option<Change>,
) -> Result<()> {
    let text = match output {
        "json" => {
            let v = match event {
                Some(e) => serde_json::json!({"type": e.word(), "object": obj}),
                None => obj.clone(),
            };
            serde_json::to_string_pretty(&v).map_err(|e| msg(e.to_string()))? + "\n"
        }
        "yaml" => format!(
            "---\n{}",
            serde_saphyr::to_string(obj).map_err(|e| msg(e.to_string()))?
        ),
        "name" => format!(
            "{}/{}\n",
            obj["kind"].as_str().unwrap_or_default().to_lowercase(),
            obj["metadata"]["name"].as_str().unwrap_or_default()
        ),
        other => {
            return Err(msg(format!(
                "unable to match a printer suitable for the output format \"{other}\" with --watch, allowed formats are: json,name,wide,yaml"
            )));
        }
    };
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    Ok(())
}
