//! `podrun wait (RESOURCE/NAME... | RESOURCE -l SELECTOR | RESOURCE --all) --for=COND
//! [--timeout=30s]`, as kubectl wait: COND is `condition=Ready` (or `condition=X=false`),
//! `delete`, or `jsonpath={.status.phase}=Running`. Each object prints `KIND/NAME condition
//! met` (`deleted` for delete) when it gets there; the wait follows the state through a
//! [`CollectionWatch`], so it answers when the change happens, not at the next poll.

use std::time::{Duration, Instant};

use clap::Args;
use serde_json::Value;

use super::output::Selection;
use super::workloads::Resource;
use super::{Result, msg};
use crate::config::Config;
use crate::objects::jsonpath::{Template, text_of};
use crate::objects::watch::CollectionWatch;

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// `pod/NAME`, `pods NAME...`, or a resource type with -l or --all.
    #[arg(required = true)]
    pub targets: Vec<String>,
    /// `condition=NAME[=VALUE]`, `delete` or `jsonpath=EXPR=VALUE`.
    #[arg(long = "for")]
    pub for_: String,
    /// Label selector of the objects to wait for.
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// Every object of the type.
    #[arg(long)]
    pub all: bool,
    /// How long to wait (`30s`, `2m`, `500ms`; 0: check once).
    #[arg(long, default_value = "30s")]
    pub timeout: String,
}

enum Want {
    Condition(String, String),
    Delete,
    JsonPath(Template, String),
}

fn parse_for(text: &str) -> Result<Want> {
    if text == "delete" {
        return Ok(Want::Delete);
    }
    if let Some(rest) = text.strip_prefix("condition=") {
        let (name, value) = rest.split_once('=').unwrap_or((rest, "true"));
        return Ok(Want::Condition(name.to_lowercase(), value.to_lowercase()));
    }
    if let Some(rest) = text.strip_prefix("jsonpath=") {
        // The expression's end is its closing brace (the value may hold '=').
        let end = rest.rfind('}').map(|i| i + 1).unwrap_or(rest.len());
        let (expr, value) = rest.split_at(end);
        let value = value.strip_prefix('=').unwrap_or_default();
        let t = Template::parse(expr).map_err(|e| msg(format!("--for: {e}")))?;
        return Ok(Want::JsonPath(t, value.to_owned()));
    }
    Err(msg(format!(
        "unrecognized condition: \"{text}\"; the --for flag accepts condition=NAME, delete or jsonpath=EXPR=VALUE"
    )))
}

fn met(want: &Want, obj: &Value) -> bool {
    match want {
        Want::Delete => false,
        Want::Condition(name, value) => obj["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| {
                c["type"]
                    .as_str()
                    .is_some_and(|t| t.to_lowercase() == *name)
                    && c["status"]
                        .as_str()
                        .is_some_and(|s| s.to_lowercase() == *value)
            }),
        Want::JsonPath(t, value) => t.values(obj).first().is_some_and(|v| text_of(v) == *value),
    }
}

/// `30s`, `2m`, `1h`, `500ms`, or bare seconds.
fn parse_timeout(text: &str) -> Result<Duration> {
    let bad = || {
        msg(format!(
            "invalid --timeout {text:?}: want a duration such as 30s"
        ))
    };
    let (num, unit) = text.split_at(
        text.find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(text.len()),
    );
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs_f64(secs.max(0.0)))
}

pub fn wait(cfg: &Config, namespace: &str, args: &WaitArgs) -> Result<i32> {
    let want = parse_for(&args.for_)?;
    let timeout = parse_timeout(&args.timeout)?;
    // `pod/a pod/b`, or `pods a b`, or `pods -l x`.
    let (kind_word, names): (String, Vec<String>) = match args.targets[0].split_once('/') {
        Some((k, _)) => {
            let mut names = Vec::new();
            for t in &args.targets {
                let (k2, n) = t
                    .split_once('/')
                    .ok_or_else(|| msg(format!("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'podrun wait {t}')")))?;
                if k2 != k {
                    return Err(msg("podrun wait takes objects of one resource type"));
                }
                names.push(n.to_owned());
            }
            (k.to_owned(), names)
        }
        None => (args.targets[0].clone(), args.targets[1..].to_vec()),
    };
    if names.is_empty() && args.selector.is_none() && !args.all {
        return Err(msg("resource(s) were provided, but no name was specified"));
    }
    let plural = Resource::parse(&kind_word)?.plural();
    let singular = plural.trim_end_matches('s');
    let selection = Selection::parse(args.selector.as_deref(), None, "")?;
    let wanted = names.clone();
    let mut w = CollectionWatch::of(cfg, plural, Some(namespace.to_owned()), move |o| {
        (wanted.is_empty() || wanted.iter().any(|n| o["metadata"]["name"] == n.as_str()))
            && selection.matches(o)
    })
    .map_err(msg)?;
    let found: Vec<String> = w
        .current()
        .map(|(_, o)| {
            o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    if let Some(missing) = names.iter().find(|n| !found.contains(n)) {
        if matches!(want, Want::Delete) {
            // kubectl: a named object already gone is deleted.
            println!("{singular}/{missing} deleted");
        } else {
            return Err(msg(format!("{plural} \"{missing}\" not found")));
        }
    }
    if found.is_empty() && names.is_empty() {
        return Err(msg("no matching resources found"));
    }
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<String> = found;
    loop {
        let current: Vec<Value> = w.current().map(|(_, o)| o.clone()).collect();
        pending.retain(|name| {
            let obj = current
                .iter()
                .find(|o| o["metadata"]["name"] == name.as_str());
            let done = match (&want, obj) {
                (Want::Delete, None) => {
                    println!("{singular}/{name} deleted");
                    true
                }
                (_, Some(o)) if met(&want, o) => {
                    println!("{singular}/{name} condition met");
                    true
                }
                _ => false,
            };
            !done
        });
        if pending.is_empty() {
            return Ok(0);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(msg(format!(
                "timed out waiting for the condition on {plural}/{}",
                pending[0]
            )));
        }
        w.next_changes(left.min(Duration::from_secs(1)));
    }
}
