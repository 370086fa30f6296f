//! Changes in a state root, heard of by inotify: the state root itself (its directories
//! appear), each workload directory, the pods directory and each pod's directory (records
//! renamed into place, deletion requests, a pod directory removed). The controller's worker
//! and the API server's watches sleep on it.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::WorkloadKind;

/// The inotify watches: the state root (its directories appear), each workload directory,
/// the pods directory and each pod's directory (records renamed into place, deletion
/// requests, a pod directory removed).
pub struct StateWatch {
    inotify: Inotify,
    root: PathBuf,
    watched: HashSet<OsString>,
    pods: HashSet<OsString>,
}

const DIR_EVENTS: AddWatchFlags = AddWatchFlags::IN_CREATE
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_CLOSE_WRITE)
    .union(AddWatchFlags::IN_ONLYDIR);

impl StateWatch {
    pub fn new(root: &Path) -> nix::Result<Self> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        inotify.add_watch(
            root,
            AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_ONLYDIR,
        )?;
        Ok(StateWatch {
            inotify,
            root: root.to_owned(),
            watched: HashSet::new(),
            pods: HashSet::new(),
        })
    }

    /// Watch what appeared since the last pass.
    pub fn refresh(&mut self) {
        let store = crate::state::Store::new(&self.root);
        let dirs = WorkloadKind::ALL
            .iter()
            .map(|k| store.workload_dir(*k))
            .chain([store.pods_dir()])
            .chain(store.config_watch_dirs());
        for dir in dirs {
            let name = dir.clone().into_os_string();
            if !self.watched.contains(&name) && self.inotify.add_watch(&dir, DIR_EVENTS).is_ok() {
                self.watched.insert(name);
            }
        }
        let present: HashSet<OsString> = std::fs::read_dir(store.pods_dir())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        self.pods.retain(|p| present.contains(p));
        for name in present {
            if !self.pods.contains(&name) {
                let dir = store.pods_dir().join(&name);
                if self.inotify.add_watch(&dir, DIR_EVENTS).is_ok() {
                    self.pods.insert(name);
                }
            }
        }
    }

    /// The descriptor to poll: readable when something changed.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.inotify.as_fd()
    }

    /// Read (and forget) the events heard of: the pass that follows looks at everything.
    pub fn drain(&self) {
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
        }
    }
}
