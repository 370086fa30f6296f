//! Watching a collection, for both front ends (`podrun get -w`, the API's `?watch=true`):
//! sleep on the state root's inotify watches ([`StateWatch`]: the records the supervisors and
//! the controller rename into place, pod directories made and removed), and after a change
//! list the collection again and compare it with the last listing: an object that appeared
//! is [`Change::Added`], one whose object changed [`Change::Modified`], one gone
//! [`Change::Deleted`] (with the object last seen).

use std::collections::BTreeMap;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde_json::Value;

use super::resources::Column;
use crate::state::StateWatch;

/// A burst of changes (a record written aside and renamed) is taken as one.
const SETTLE: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Modified,
    Deleted,
}

impl Change {
    /// The watch event's type (`kubectl get -w --output-watch-events` prints it too).
    pub fn word(self) -> &'static str {
        match self {
            Change::Added => "ADDED",
            Change::Modified => "MODIFIED",
            Change::Deleted => "DELETED",
        }
    }
}

/// A row: its cells and its object.
pub type Row = (Vec<Value>, Value);
/// What the watch lists each time: the columns and the rows (filtered as the caller wants).
pub type Lister = Box<dyn FnMut() -> Result<(Vec<Column>, Vec<Row>), String> + Send>;

pub struct CollectionWatch {
    list: Lister,
    state: StateWatch,
    seen: BTreeMap<(String, String), Row>,
    pub columns: Vec<Column>,
}

fn key(obj: &Value) -> (String, String) {
    let m = &obj["metadata"];
    (
        m["namespace"].as_str().unwrap_or_default().to_owned(),
        m["name"].as_str().unwrap_or_default().to_owned(),
    )
}

impl CollectionWatch {
    /// Start watching under `root`: the first listing is made now.
    pub fn new(root: &std::path::Path, mut list: Lister) -> Result<CollectionWatch, String> {
        let mut state = StateWatch::new(root).map_err(|e| format!("inotify: {e}"))?;
        state.refresh();
        let (columns, rows) = list()?;
        Ok(CollectionWatch {
            list,
            state,
            seen: rows.into_iter().map(|r| (key(&r.1), r)).collect(),
            columns,
        })
    }

    /// Watch `plural` in `namespace` (None: all), keeping the objects `keep` chooses.
    pub fn of(
        cfg: &crate::config::Config,
        plural: &'static str,
        namespace: Option<String>,
        keep: impl Fn(&Value) -> bool + Send + 'static,
    ) -> Result<CollectionWatch, String> {
        let lister_cfg = cfg.clone();
        let lister: Lister = Box::new(move || {
            let c = super::resources::collect(&lister_cfg, plural, namespace.as_deref())?;
            let mut rows = c.rows;
            rows.retain(|(_, o)| keep(o));
            Ok((c.columns, rows))
        });
        CollectionWatch::new(&cfg.root, lister)
    }

    /// The rows of the last listing.
    pub fn current(&self) -> impl Iterator<Item = &Row> {
        self.seen.values()
    }

    /// Wait up to `tick` for a change; the changes found (none: nothing changed, or only
    /// what the filter leaves out).
    pub fn next_changes(&mut self, tick: Duration) -> Vec<(Change, Row)> {
        let ms = tick.as_millis().min(u128::from(u16::MAX)) as u16;
        let mut fds = [PollFd::new(self.state.fd(), PollFlags::POLLIN)];
        if !poll(&mut fds, PollTimeout::from(ms)).is_ok_and(|n| n > 0) {
            return Vec::new();
        }
        std::thread::sleep(SETTLE);
        self.state.drain();
        self.state.refresh();
        let Ok((columns, rows)) = (self.list)() else {
            return Vec::new();
        };
        self.columns = columns;
        let now: BTreeMap<_, _> = rows.into_iter().map(|r| (key(&r.1), r)).collect();
        let mut changes = Vec::new();
        for (k, row) in &now {
            match self.seen.get(k) {
                None => changes.push((Change::Added, row.clone())),
                Some((_, before)) if *before != row.1 => {
                    changes.push((Change::Modified, row.clone()))
                }
                Some(_) => {}
            }
        }
        for (k, row) in &self.seen {
            if !now.contains_key(k) {
                changes.push((Change::Deleted, row.clone()));
            }
        }
        self.seen = now;
        changes
    }
}
