//! What the front ends (the CLI, `podrun serve`) print alike, moved out of `cli` to be shared.

pub mod config;
pub mod events;
pub mod jsonpath;
pub mod resources;
pub mod selectors;
pub mod watch;

/// The Kubernetes version podrun answers as (`/version`, the node's kubeletVersion).
pub const KUBE_VERSION: &str = concat!("v1.33.0-podrun.", env!("CARGO_PKG_VERSION"));

use chrono::{DateTime, Utc};

/// kubectl's short human duration: 45s, 3m12s, 5h, 2d3h.
pub fn age(since: DateTime<Utc>) -> String {
    let secs = (Utc::now() - since).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 8 * 3600 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}
