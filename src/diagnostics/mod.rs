//! `podrun doctor`: what podrun finds on this node, and what it can put right.
//!
//! The records under the state root are podrun's write-ahead log of every kernel object it
//! creates. When that state is lost (a crash that took `/run` with it, someone wiping the state
//! root) the objects themselves can outlive it. This module finds them from the kernel side,
//! by the names and places podrun uses, and removes them:
//!
//! - `podrun __supervise` processes of this state root whose pod has no record;
//! - pod cgroups `<parent>/pod<uid>` whose uid no record has (their processes are killed);
//! - veths on the node bridge whose name no record's pod would use;
//! - netns pins in the netns dir that hold the network namespace of a process found in an
//!   orphaned pod cgroup (other pins may be someone else's: they are only reported);
//! - allocated addresses whose owner no record has;
//! - hostPort rules in `table inet podrun` whose pod uid no record has;
//! - the bridge and the masquerade rule, and the cgroup parent, when no record uses them.
//!
//! Records whose supervisor is gone are reported too (`delete` removes those pods), and so are
//! running pods whose host veth is gone or off the bridge (they have no network).
//! Pods of other state roots whose supervisors run on this node (they share the bridge, the
//! cgroup parent and the netns dir) count as known: their records are read too.
//! Everything runs under the state root lock, so a concurrent `apply` (which reserves its
//! record under the same lock before creating anything) is never mistaken for leftovers.

mod orphans;

use std::fmt;
use std::path::PathBuf;

use crate::state::PodKey;

pub use orphans::scan;

/// One thing on the node that no record accounts for, or a record that needs attention.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    /// A per-pod supervisor of this state root whose pod has no record.
    Supervisor {
        pid: i32,
        /// Its start time (clock ticks since boot), so a recycled pid is never signalled.
        start: Option<u64>,
        pod: String,
    },
    /// A pod cgroup (every hierarchy's directory) no record owns, with its live processes.
    Cgroup {
        uid: String,
        dirs: Vec<PathBuf>,
        pids: Vec<i32>,
    },
    /// podrun's cgroup parent (every hierarchy's directory) while no record uses it.
    CgroupParent { dirs: Vec<PathBuf> },
    /// A veth on the node bridge no record's pod would use.
    Veth { name: String },
    /// A netns pin holding the network namespace of an orphaned pod.
    Pin { path: PathBuf },
    /// A netns pin podrun cannot tell is its own (not removed).
    UnknownPin { path: PathBuf },
    /// An address marked allocated for an owner no record has.
    Address {
        ip: std::net::Ipv4Addr,
        /// The sandbox id the allocation names (gone with its pod).
        owner: String,
    },
    /// hostPort rules (`table inet podrun`) of a pod uid no record has.
    HostPortRules { uid: String },
    /// The node bridge and masquerade rule, while no record uses them.
    NodeNetwork { bridge: String },
    /// This root's bridge left under its temporary name (podrun stopped while making it).
    HalfMadeBridge { name: String, bridge: String },
    /// A record whose supervisor is not running (`podrun delete` cleans it up).
    LostSupervisor { pod: String },
    /// A running pod whose recorded host veth is gone or off the bridge: it has no network.
    PodNetworkGone {
        pod: String,
        veth: String,
        why: String,
    },
}

impl Finding {
    /// Whether `fix` removes it (otherwise it is only reported).
    pub fn fixable(&self) -> bool {
        !matches!(
            self,
            Finding::UnknownPin { .. }
                | Finding::LostSupervisor { .. }
                | Finding::PodNetworkGone { .. }
        )
    }

    /// The kind of object, as a short word for the table.
    pub fn kind(&self) -> &'static str {
        match self {
            Finding::Supervisor { .. } => "process",
            Finding::Cgroup { .. } | Finding::CgroupParent { .. } => "cgroup",
            Finding::Veth { .. } => "veth",
            Finding::Pin { .. } | Finding::UnknownPin { .. } => "netns",
            Finding::Address { .. } => "address",
            Finding::HostPortRules { .. } => "nft",
            Finding::NodeNetwork { .. } | Finding::HalfMadeBridge { .. } => "network",
            Finding::LostSupervisor { .. } | Finding::PodNetworkGone { .. } => "pod",
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Supervisor { pid, pod, .. } => {
                write!(f, "supervisor pid {pid} of pod {pod}, which has no record")
            }
            Finding::Cgroup { uid, dirs, pids } => write!(
                f,
                "pod cgroup pod{uid} ({} dirs, {} processes: {pids:?}) with no record",
                dirs.len(),
                pids.len()
            ),
            Finding::CgroupParent { dirs } => write!(
                f,
                "cgroup parent {} while no pod uses it",
                dirs.first()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default()
            ),
            Finding::Veth { name } => write!(f, "veth {name} on the bridge, no pod uses it"),
            Finding::Pin { path } => {
                write!(f, "netns pin {} of an orphaned pod sandbox", path.display())
            }
            Finding::UnknownPin { path } => write!(
                f,
                "netns pin {} is not a known pod's; if it is podrun's, remove it with: ip netns delete {}",
                path.display(),
                path.file_name().unwrap_or_default().to_string_lossy()
            ),
            Finding::Address { ip, owner } => {
                write!(f, "address {ip} allocated to no pod (owner {owner})")
            }
            Finding::HostPortRules { uid } => write!(
                f,
                "hostPort rules of pod uid {uid} in table inet podrun, with no record"
            ),
            Finding::NodeNetwork { bridge } => write!(
                f,
                "bridge {bridge} and its masquerade rule, while no pod uses them"
            ),
            Finding::HalfMadeBridge { name, bridge } => write!(
                f,
                "bridge {name}: {bridge} half-made (podrun stopped before naming it)"
            ),
            Finding::LostSupervisor { pod } => write!(
                f,
                "pod {pod}: supervisor not running (status Unknown); remove it with: podrun delete {}",
                PodKey::parse(pod).name
            ),
            Finding::PodNetworkGone { pod, veth, why } => write!(
                f,
                "pod {pod}: its veth {veth} {why}, so the pod has no network; re-create it with: \
                 podrun delete {name}, then apply it again",
                name = PodKey::parse(pod).name
            ),
        }
    }
}

/// What a fix did: per finding, `Ok` or why it could not be removed.
pub type FixReport = Vec<(Finding, Result<(), String>)>;

pub use orphans::fix;

/// Run on the first `apply` into an empty state root: remove what a lost state left behind.
/// One line per object removed (or not), so the user sees what happened.
pub fn sweep_after_lost_state(cfg: &crate::config::Config) -> Vec<String> {
    let store = cfg.store();
    let Ok(_lock) = store.lock() else {
        return Vec::new();
    };
    let findings: Vec<Finding> = scan(cfg).into_iter().filter(Finding::fixable).collect();
    fix(cfg, &findings)
        .into_iter()
        .map(|(f, result)| match result {
            Ok(()) => format!("removed leftover {}: {f}", f.kind()),
            Err(e) => format!("could not remove leftover {}: {f}: {e}", f.kind()),
        })
        .collect()
}
