//! The network lock: one per state root's networks, taken around every change to a bridge or
//! to podrun's nft table.

use std::path::PathBuf;

use super::{NetError, NetworkConfig};
use crate::lockfile::LockFile;

/// Proof that the caller holds the network lock (or, for best-effort teardown, that it
/// tried): an exclusive flock on `<ipam_dir>/../firewall.lock` (the file keeps the name it had
/// when only the firewall took it), released on drop. Held while a bridge or podrun's nft
/// table is made, changed or deleted, so a teardown cannot delete the bridge or table that a
/// concurrent attach is about to use.
pub(crate) struct NetworkLock {
    /// The flock; dropping it unlocks.
    _held: Option<LockFile>,
}

impl NetworkLock {
    /// Take the lock of `cfg`'s networks, waiting for any other holder.
    pub(crate) fn take(cfg: &NetworkConfig) -> Result<NetworkLock, NetError> {
        let dir = cfg
            .ipam_dir
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| cfg.ipam_dir.clone());
        std::fs::DirBuilder::new()
            .recursive(true)
            .create(&dir)
            .map_err(|source| NetError::Io {
                op: "create directory",
                path: dir.clone(),
                source,
            })?;
        let file = LockFile::exclusive(&dir.join("firewall.lock"), 0o666)?;
        Ok(NetworkLock { _held: Some(file) })
    }

    /// For teardown when the lock file cannot be taken: proceed without it.
    pub(crate) fn not_held() -> Self {
        NetworkLock { _held: None }
    }
}
