//! Parsed pod records kept by a long-running reader (`podrun serve`: every list and every
//! watch's re-list reads all of them), keyed by the record file's inode, size and mtime: the
//! supervisors rename a new file into place for each change, so a record whose file is the
//! same is the same record. Off unless [`enable`]d: the CLI's verbs read each record once.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use super::PodRecord;

static ENABLED: AtomicBool = AtomicBool::new(false);

type Stamp = (u64, u64, i64, i64);

fn cache() -> &'static Mutex<HashMap<PathBuf, (Stamp, PodRecord)>> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, (Stamp, PodRecord)>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Keep parsed records in this process from now on.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// The record at `path`: from the cache when its file did not change, else read and parsed.
pub fn read(path: &Path) -> Option<PodRecord> {
    if !ENABLED.load(Ordering::Relaxed) {
        return serde_json::from_slice(&std::fs::read(path).ok()?).ok();
    }
    let m = std::fs::metadata(path).ok()?;
    let stamp = (m.ino(), m.size(), m.mtime(), m.mtime_nsec());
    if let Some((s, r)) = cache().lock().ok()?.get(path)
        && *s == stamp
    {
        return Some(r.clone());
    }
    let record: PodRecord = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    if let Ok(mut c) = cache().lock() {
        c.insert(path.to_owned(), (stamp, record.clone()));
    }
    Some(record)
}

/// Forget the records of files not in `seen` (pods deleted).
pub fn retain(seen: &[PathBuf]) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let seen: std::collections::HashSet<&PathBuf> = seen.iter().collect();
    if let Ok(mut c) = cache().lock() {
        c.retain(|p, _| seen.contains(p));
    }
}
