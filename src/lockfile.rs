//! One exclusive `flock(2)` on a lock file: the image store's, the state root's, an IPAM
//! directory's and the network lock all take theirs here.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Holds an exclusive flock on a file until dropped (closing the file unlocks it).
#[derive(Debug)]
pub struct LockFile {
    _file: File,
}

/// Opening or locking a lock file failed: `op` is `"open"` or `"lock"`.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}", path = .path.display())]
pub struct LockError {
    pub op: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl LockFile {
    /// Open (creating it with `mode` if missing, never truncating) and lock `path`
    /// exclusively, waiting for any other holder.
    pub fn exclusive(path: &Path, mode: u32) -> Result<LockFile, LockError> {
        let file = open(path, mode)?;
        file.lock().map_err(|source| LockError {
            op: "lock",
            path: path.to_owned(),
            source,
        })?;
        Ok(LockFile { _file: file })
    }

    /// As [`LockFile::exclusive`], without waiting: None while another holds the lock.
    pub fn try_exclusive(path: &Path, mode: u32) -> Result<Option<LockFile>, LockError> {
        let file = open(path, mode)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(LockFile { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(source)) => Err(LockError {
                op: "lock",
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// A file whose open description already holds the lock (inherited from the process
    /// that took it).
    pub fn from_locked(file: File) -> LockFile {
        LockFile { _file: file }
    }

    /// The locked file (its descriptor carries the lock to a forked child).
    pub fn file(&self) -> &File {
        &self._file
    }
}

/// Open (creating it with `mode` if missing, never truncating) a lock file.
fn open(path: &Path, mode: u32) -> Result<File, LockError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(mode)
        .open(path)
        .map_err(|source| LockError {
            op: "open",
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_until_the_first_drops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = LockFile::exclusive(&path, 0o600).unwrap();
        let other = File::open(&path).unwrap();
        assert!(other.try_lock().is_err(), "locked while held");
        drop(held);
        assert!(other.try_lock().is_ok(), "free once dropped");
        let missing = LockFile::exclusive(&dir.path().join("no/such/lock"), 0o600).unwrap_err();
        assert_eq!(missing.op, "open");
    }
}
