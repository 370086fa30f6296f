//! Watches (`?watch=true`): `kubectl get -w`, `kubectl wait`, client-go's informers.
//!
//! A watch is a thread on a [`CollectionWatch`] (the state root's inotify watches, a new
//! listing after each change, compared with the last), at most a second at a time: `ADDED`,
//! `MODIFIED` and `DELETED` events, one JSON line each (`{"type":...,"object":...}`) on the
//! chunked response. podrun keeps no revision counter: a list's resourceVersion is its time
//! in microseconds, a pod's is its record's last write (the same clock), other objects carry
//! the time of the listing that saw them. A watch from a list's resourceVersion first sends
//! what changed since (pods whose version is newer: ADDED if made in a later second,
//! MODIFIED else; a pod deleted between the list and the watch is missed, there are no
//! tombstones); one without (or `0`, or `sendInitialEvents=true`) first sends every object
//! as `ADDED`. `allowWatchBookmarks` adds a `BOOKMARK` a minute; `timeoutSeconds` ends it.
//! With a Table `Accept` each event's object is a Table of its one row, as kube-apiserver
//! sends them.

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::router::{Context, ReadTarget, Reply, Selectors, resource_version, select, status};
use super::table::{self, Column};
use crate::objects::resources;
use crate::objects::watch::{CollectionWatch, Lister, Row};

/// A second at most between looks at whether the client is still there.
const TICK: Duration = Duration::from_secs(1);
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);
/// Events queued for a slow client before the watch waits for it.
const QUEUE: usize = 64;

pub struct Options {
    pub table: bool,
    pub initial_events: bool,
    /// The resourceVersion the watch starts from (a list's), when not all is sent first.
    pub since: Option<u128>,
    pub bookmarks: bool,
    pub timeout: Option<Duration>,
}

impl Options {
    pub fn from_params(param: &dyn Fn(&str) -> String, accept: &str) -> Options {
        let rv = param("resourceVersion");
        Options {
            table: table::wants_table(accept),
            initial_events: rv.is_empty()
                || rv == "0"
                || super::router::truthy(&param("sendInitialEvents")),
            since: rv.parse().ok().filter(|v| *v > 0),
            bookmarks: super::router::truthy(&param("allowWatchBookmarks")),
            timeout: param("timeoutSeconds")
                .parse::<u64>()
                .ok()
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
        }
    }
}

/// Start the watch of `target`: the reply streams its events until the client goes, the
/// timeout passes or the server stops.
pub fn start(ctx: &Context, target: &ReadTarget, sel: Selectors, opts: Options) -> Reply {
    let (cfg, res) = (ctx.cfg.clone(), target.res);
    let namespace = target.namespace.map(str::to_owned);
    let name = target.name.map(str::to_owned);
    // Selectors are checked (with a first listing) before the answer starts.
    let mut probe = Vec::new();
    if let Err(reply) = select(&mut probe, res, &sel) {
        return reply;
    }
    let lister: Lister = Box::new(move || {
        let collection = resources::collect(&cfg, res.plural, namespace.as_deref())?;
        let mut rows = collection.rows;
        if let Some(name) = &name {
            rows.retain(|(_, o)| o["metadata"]["name"] == name.as_str());
        }
        select(&mut rows, res, &sel).map_err(|r| r.body["message"].to_string())?;
        Ok((collection.columns, rows))
    });
    let watch = match CollectionWatch::new(&ctx.cfg.root, lister) {
        Ok(w) => w,
        Err(e) => return status(500, "InternalError", &e, None),
    };
    let (tx, rx) = mpsc::channel(QUEUE);
    let spawned = std::thread::Builder::new()
        .name("watch".into())
        .spawn(move || run(res, watch, opts, tx));
    if let Err(e) = spawned {
        return status(500, "InternalError", &format!("watch thread: {e}"), None);
    }
    let mut reply = Reply::new(200, Value::Null);
    reply.stream = Some(rx);
    reply
}

fn run(
    res: &'static super::discovery::Resource,
    mut watch: CollectionWatch,
    opts: Options,
    tx: mpsc::Sender<Bytes>,
) {
    let started = Instant::now();
    let mut last_bookmark = Instant::now();
    let send = |kind: &str, (cells, obj): &Row, rv: &str, columns: &[Column]| {
        let mut obj = obj.clone();
        // An object's own version (a pod's), else the time of the listing that saw it.
        let rv = obj["metadata"]["resourceVersion"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| rv.to_owned());
        let rv = rv.as_str();
        obj["metadata"]["resourceVersion"] = json!(rv);
        let object = if opts.table {
            table::table(columns, &[(cells.to_vec(), obj)], rv)
        } else {
            obj
        };
        let mut line =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        tx.blocking_send(Bytes::from(line)).is_ok()
    };
    if opts.initial_events {
        let rv = resource_version();
        for row in watch.current() {
            if !send("ADDED", row, &rv, &watch.columns) {
                return;
            }
        }
    } else if let Some(since) = opts.since {
        // From a list's resourceVersion: what changed since then (an object with a version
        // of its own newer than it: ADDED if it was made after), so nothing between the
        // list and the watch is missed but a deletion (podrun keeps no tombstones).
        let rv = resource_version();
        for row in watch.current() {
            let changed = row.1["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|v| v.parse::<u128>().ok())
                .is_some_and(|v| v > since);
            if !changed {
                continue;
            }
            let created = row.1["metadata"]["creationTimestamp"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.timestamp_micros() as u128);
            // creationTimestamp has whole seconds: ADDED only if made in a later second
            // than the list (a pod of the list's own second is MODIFIED, which clients
            // take as an add of what they did not know).
            let kind = if created.is_some_and(|c| c > since) {
                "ADDED"
            } else {
                "MODIFIED"
            };
            if !send(kind, row, &rv, &watch.columns) {
                return;
            }
        }
    }
    loop {
        if tx.is_closed() || opts.timeout.is_some_and(|t| started.elapsed() >= t) {
            return;
        }
        let changes = watch.next_changes(TICK);
        if !changes.is_empty() {
            crate::sys::release_free_memory();
        }
        if opts.bookmarks && last_bookmark.elapsed() >= BOOKMARK_EVERY {
            last_bookmark = Instant::now();
            let rv = resource_version();
            let mark = json!({"apiVersion": super::discovery::api_version(res.group),
                "kind": res.kind, "metadata": {"resourceVersion": rv}});
            let mut line = serde_json::to_vec(&json!({"type": "BOOKMARK", "object": mark}))
                .unwrap_or_default();
            line.push(b'\n');
            if tx.blocking_send(Bytes::from(line)).is_err() {
                return;
            }
        }
        let rv = resource_version();
        for (change, row) in &changes {
            if !send(change.word(), row, &rv, &watch.columns) {
                return;
            }
        }
    }
}
