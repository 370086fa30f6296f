//! Watches (`?watch=true`): `kubectl get -w`, `kubectl wait`, client-go's informers.
//!
//! A watch is a thread that sleeps on the state root's inotify watches ([`StateWatch`]: the
//! records the supervisors and the controller rename into place, pod directories made and
//! removed), at most a second at a time, and after each change lists the resource again as a
//! get does and compares it with what it listed before: an object that appeared is `ADDED`,
//! one whose object changed `MODIFIED`, one gone `DELETED` (with the object last seen), one
//! JSON line each (`{"type":...,"object":...}`) on the chunked response. podrun keeps no
//! revision counter: a watch from a list's resourceVersion (the time of the list) starts
//! from what it lists when it starts (a change between the list and the watch is missed),
//! one without (or `0`, or `sendInitialEvents=true`) first sends every object as `ADDED`.
//! Each event carries the time of its listing, in microseconds, as its resourceVersion;
//! `allowWatchBookmarks` adds a `BOOKMARK` a minute; `timeoutSeconds` ends it. With a Table
//! `Accept` each event's object is a Table of its one row, as kube-apiserver sends them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::router::{Context, ReadTarget, Reply, Selectors, resource_version, select, status};
use super::table::{self, Column};
use crate::objects::resources;
use crate::state::StateWatch;

/// A second at most between looks at whether the client is still there.
const TICK: Duration = Duration::from_secs(1);
/// A burst of changes (a record written aside and renamed) is taken as one.
const SETTLE: Duration = Duration::from_millis(5);
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);
/// Events queued for a slow client before the watch waits for it.
const QUEUE: usize = 64;

pub struct Options {
    pub table: bool,
    pub initial_events: bool,
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
            bookmarks: super::router::truthy(&param("allowWatchBookmarks")),
            timeout: param("timeoutSeconds")
                .parse::<u64>()
                .ok()
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
        }
    }
}

/// The objects a watch follows, by namespace and name, with their Table cells.
type Seen = BTreeMap<(String, String), (Vec<Value>, Value)>;

struct Watcher {
    ctx: Context,
    res: &'static super::discovery::Resource,
    namespace: Option<String>,
    name: Option<String>,
    sel: Selectors,
    columns: Vec<Column>,
}

impl Watcher {
    fn list(&mut self) -> Result<Seen, Reply> {
        let collection =
            resources::collect(&self.ctx.cfg, self.res.plural, self.namespace.as_deref())
                .map_err(|e| status(500, "InternalError", &e.to_string(), None))?;
        self.columns = collection.columns;
        let mut rows = collection.rows;
        if let Some(name) = &self.name {
            rows.retain(|(_, o)| o["metadata"]["name"] == name.as_str());
        }
        select(&mut rows, self.res, &self.sel)?;
        Ok(rows
            .into_iter()
            .map(|(cells, obj)| {
                let key = (
                    obj["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    obj["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
                (key, (cells, obj))
            })
            .collect())
    }
}

/// Start the watch of `target`: the reply streams its events until the client goes, the
/// timeout passes or the server stops.
pub fn start(ctx: &Context, target: &ReadTarget, sel: Selectors, opts: Options) -> Reply {
    let mut watcher = Watcher {
        ctx: ctx.clone(),
        res: target.res,
        namespace: target.namespace.map(str::to_owned),
        name: target.name.map(str::to_owned),
        sel,
        columns: Vec::new(),
    };
    // Selectors are checked (and the first listing made) before the answer starts.
    let first = match watcher.list() {
        Ok(seen) => seen,
        Err(reply) => return reply,
    };
    let mut state = match StateWatch::new(&ctx.cfg.root) {
        Ok(s) => s,
        Err(e) => return status(500, "InternalError", &format!("inotify: {e}"), None),
    };
    state.refresh();
    let (tx, rx) = mpsc::channel(QUEUE);
    let spawned = std::thread::Builder::new()
        .name("watch".into())
        .spawn(move || run(watcher, state, first, opts, tx));
    if let Err(e) = spawned {
        return status(500, "InternalError", &format!("watch thread: {e}"), None);
    }
    let mut reply = Reply::new(200, Value::Null);
    reply.stream = Some(rx);
    reply
}

fn run(
    mut watcher: Watcher,
    mut state: StateWatch,
    first: Seen,
    opts: Options,
    tx: mpsc::Sender<Bytes>,
) {
    let started = Instant::now();
    let mut last_bookmark = Instant::now();
    let send = |kind: &str, cells: &[Value], obj: &Value, rv: &str, columns: &[Column]| {
        let mut obj = obj.clone();
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
    let mut seen = first;
    if opts.initial_events {
        let rv = resource_version();
        for (cells, obj) in seen.values() {
            if !send("ADDED", cells, obj, &rv, &watcher.columns) {
                return;
            }
        }
    }
    loop {
        if tx.is_closed() || opts.timeout.is_some_and(|t| started.elapsed() >= t) {
            return;
        }
        let mut fds = [PollFd::new(state.fd(), PollFlags::POLLIN)];
        let ms = TICK.as_millis() as u16;
        let changed = poll(&mut fds, PollTimeout::from(ms)).is_ok_and(|n| n > 0);
        if opts.bookmarks && last_bookmark.elapsed() >= BOOKMARK_EVERY {
            last_bookmark = Instant::now();
            let rv = resource_version();
            let mark = json!({"apiVersion": super::discovery::api_version(watcher.res.group),
                "kind": watcher.res.kind, "metadata": {"resourceVersion": rv}});
            let mut line = serde_json::to_vec(&json!({"type": "BOOKMARK", "object": mark}))
                .unwrap_or_default();
            line.push(b'\n');
            if tx.blocking_send(Bytes::from(line)).is_err() {
                return;
            }
        }
        if !changed {
            continue;
        }
        std::thread::sleep(SETTLE);
        state.drain();
        state.refresh();
        let Ok(now) = watcher.list() else {
            continue;
        };
        let rv = resource_version();
        for (key, (cells, obj)) in &now {
            let event = match seen.get(key) {
                None => "ADDED",
                Some((_, before)) if before != obj => "MODIFIED",
                Some(_) => continue,
            };
            if !send(event, cells, obj, &rv, &watcher.columns) {
                return;
            }
        }
        for (key, (cells, obj)) in &seen {
            if !now.contains_key(key) && !send("DELETED", cells, obj, &rv, &watcher.columns) {
                return;
            }
        }
        seen = now;
    }
}
