//! What podrun knows about one pod, as stored in `<root>/pods/<ns>_<name>/pod.json`.
//!
//! Every kernel object is written here *before* it is created (its name, path or owner id), so
//! that teardown can remove it after any crash: teardown only ever works from this record.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::net::{NetworkConfig, PodNetwork};
use crate::spec::{PodPlan, ResolvedProcess};

/// `<namespace>/<name>`: how a pod is addressed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
}

impl PodKey {
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
    /// `<namespace>/<name>` as [`Display`](std::fmt::Display) writes it (how `__supervise` and
    /// `doctor` name a pod), or a bare `<name>` in namespace `default`.
    pub fn parse(key: &str) -> Self {
        let (namespace, name) = key.split_once('/').unwrap_or(("default", key));
        Self::new(namespace, name)
    }
    /// Directory name under `<root>/pods/`, like the kubelet's `<ns>_<name>` log directories.
    pub fn dir_name(&self) -> String {
        format!("{}_{}", self.namespace, self.name)
    }
    /// Name of the pinned network namespace (`ip netns exec <this> ...`).
    pub fn netns_name(&self) -> String {
        if self.namespace == "default" {
            self.name.clone()
        } else {
            format!("{}.{}", self.namespace, self.name)
        }
    }
}

impl std::fmt::Display for PodKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A process podrun started: the PID plus its start time, so a recycled PID is never signalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    pub pid: i32,
    pub start_time: Option<u64>,
}

impl ProcessId {
    pub fn of(pid: i32) -> Self {
        Self {
            pid,
            start_time: crate::procfs::start_time(pid),
        }
    }
    pub fn is_alive(&self) -> bool {
        crate::procfs::is_same_process(self.pid, self.start_time)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// Kubernetes' ContainerState, serialised in the same shape (`{"running": {"startedAt": ...}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum ContainerState {
    Waiting {
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        message: Option<String>,
    },
    Running {
        started_at: DateTime<Utc>,
    },
    Terminated {
        exit_code: i32,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        signal: Option<i32>,
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        message: Option<String>,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub name: String,
    pub image: String,
    /// Random 64-hex id, like a CRI container id; a new one per start.
    pub id: String,
    pub process: Option<ProcessId>,
    /// The resolved argv/env/cwd of the current run (what `exec` reuses for its environment).
    pub resolved: Option<ResolvedProcess>,
    pub state: ContainerState,
    pub last_state: Option<ContainerState>,
    pub restart_count: u32,
    /// `oom_kill` count of the container's cgroup when this run started (to tell an OOM kill).
    #[serde(default)]
    pub oom_kills_at_start: u64,
    /// The kubelet's back-off entry: the delay a start after a run waits since that run ended,
    /// in units of the 10 s base (0 = none yet; see `supervisor::backoff`): a factor, not
    /// seconds (records written as `backoff_seconds` still read).
    #[serde(default, alias = "backoff_seconds")]
    pub backoff_factor: u64,
    /// The image as resolved at apply (root filesystem and image config).
    #[serde(default)]
    pub image_config: Option<crate::container::image::ContainerImage>,
    /// `<pod dir>/containers/<container>` ([`super::PodPaths::bundle`]): the OCI bundle (`config.json`), recorded before it is written.
    #[serde(default)]
    pub bundle: Option<std::path::PathBuf>,
    /// The overlay of the current run (upper/work dirs recorded before they are created).
    #[serde(default)]
    pub rootfs: Option<crate::container::oci::RootfsLayout>,
    /// An init container (`spec.initContainers`); the record lists them first, as the plan.
    #[serde(default)]
    pub init: bool,
    /// This run's probe results: the startup probe passed (the kubelet's `started`; without
    /// a startup probe a running container is started), the readiness probe passes.
    #[serde(default)]
    pub probed: ProbeResults,
    /// The run's postStart hook is running: as the kubelet's sync waits for it before it
    /// writes a status, the container shows the state it had before it started.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub post_start_running: bool,
    /// Killed because apply changed its image: it starts again whatever the restart policy
    /// (the kubelet's "definition changed, will be restarted"); cleared by that start.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restart_for_update: bool,
}

/// The results of a run's startup and readiness probes (reset at each start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResults {
    pub startup: bool,
    pub readiness: bool,
}

/// Kubernetes event, with the kubectl describe columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: String,
    pub reason: String,
    pub message: String,
    pub first_timestamp: DateTime<Utc>,
    pub last_timestamp: DateTime<Utc>,
    pub count: u32,
}

/// Namespace inodes, as `ls -li /proc/<pid>/ns` or `lsns` show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsInodes {
    pub net: u64,
    pub uts: u64,
    pub ipc: u64,
}

/// One pod sandbox (attempt): the pause process and the network attached to its namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxRecord {
    /// Random 64-hex id, like a CRI sandbox id; also the IPAM owner of the pod address.
    pub id: String,
    pub attempt: u32,
    pub created_at: DateTime<Utc>,
    pub pause: Option<ProcessId>,
    pub namespaces: Option<NsInodes>,
    /// `/run/netns/<pod>`: bind mount of the pause's network namespace (recorded before mounting).
    pub netns_path: std::path::PathBuf,
    /// Host end of the veth pair (recorded before creating it).
    pub host_veth: String,
    /// Filled in once the address was reserved.
    pub ip: Option<std::net::Ipv4Addr>,
    pub network: Option<PodNetwork>,
    pub ready: bool,
}

/// Where the pod's cgroups live: `<root>/<parent>/pod<uid>` (`/<controller>/...` on cgroup v1),
/// one child per container and one named `pause`. Recorded before they are created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CgroupRecord {
    pub root: std::path::PathBuf,
    pub parent: String,
    pub mode: Option<crate::cgroup::Mode>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletionRequest {
    pub grace_period_seconds: i64,
    pub requested_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodRecord {
    pub plan: PodPlan,
    pub network_config: NetworkConfig,
    pub netns_dir: std::path::PathBuf,
    #[serde(default)]
    pub cgroup: Option<CgroupRecord>,
    pub node_name: String,
    pub created_at: DateTime<Utc>,
    pub start_time: Option<DateTime<Utc>>,
    pub supervisor: Option<ProcessId>,
    pub phase: Phase,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub sandbox: Option<SandboxRecord>,
    pub containers: Vec<ContainerRecord>,
    pub events: Vec<Event>,
    pub deletion: Option<DeletionRequest>,
    /// Host paths of the pod's volumes podrun creates (emptyDir directories, configMap/secret
    /// files), recorded before they are created. All live under the pod's state directory.
    #[serde(default)]
    pub volumes: Vec<VolumeRecord>,
    /// Where the supervisor finds and pulls images at later starts (restarts under `Always`,
    /// an image removed since); None in records of an older podrun (no later pulls).
    #[serde(default)]
    pub images: Option<ImageSource>,
}

/// The node's image store and registries config, as apply had them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSource {
    pub image_root: std::path::PathBuf,
    pub registries_conf: std::path::PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub name: String,
    /// `emptyDir`, `emptyDir (Memory)`, `hostPath`, `configMap`, `secret`.
    pub kind: String,
    /// The host directory, or None for a tmpfs held by the supervisor (never on the host).
    pub path: Option<std::path::PathBuf>,
}

impl PodRecord {
    pub fn key(&self) -> PodKey {
        PodKey::new(&self.plan.namespace, &self.plan.name)
    }

    pub fn container(&self, name: &str) -> Option<&ContainerRecord> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// The init containers (listed first).
    pub fn init_containers(&self) -> impl Iterator<Item = &ContainerRecord> {
        self.containers.iter().filter(|c| c.init)
    }

    /// The app containers (after the init containers).
    pub fn app_containers(&self) -> impl Iterator<Item = &ContainerRecord> {
        self.containers.iter().filter(|c| !c.init)
    }

    /// The address reserved for the current sandbox, as soon as it is reserved (before the
    /// network is wired; what the containers are given).
    pub fn sandbox_ip(&self) -> Option<std::net::Ipv4Addr> {
        self.sandbox.as_ref().and_then(|s| s.ip)
    }

    /// The current sandbox's pause, once forked.
    pub fn pause_pid(&self) -> Option<i32> {
        self.sandbox.as_ref().and_then(|s| s.pause).map(|p| p.pid)
    }

    pub fn pod_ip(&self) -> Option<std::net::Ipv4Addr> {
        self.sandbox
            .as_ref()
            .and_then(|s| s.network.as_ref())
            .map(|n| n.ip)
    }

    /// Record an event, folding a repeat of an earlier one (same type, reason and message)
    /// into its count as the kubelet's event recorder does (its correlator keys events by
    /// those, wherever they came in between): a restart loop's Created, Started, Failed and
    /// BackOff stay one event each. The folded event moves last, where kubectl's order by
    /// last timestamp shows it.
    pub fn event(&mut self, kind: &str, reason: &str, message: String) {
        record_event(&mut self.events, kind, reason, message, Utc::now());
    }
}

/// [`PodRecord::event`] on a list of events, at `now`.
pub(crate) fn record_event(
    events: &mut Vec<Event>,
    kind: &str,
    reason: &str,
    message: String,
    now: DateTime<Utc>,
) {
    let same = |e: &Event| e.kind == kind && e.reason == reason && e.message == message;
    if let Some(at) = events.iter().rposition(same) {
        let mut e = events.remove(at);
        e.count += 1;
        e.last_timestamp = now;
        events.push(e);
        return;
    }
    events.push(Event {
        kind: kind.to_owned(),
        reason: reason.to_owned(),
        message,
        first_timestamp: now,
        last_timestamp: now,
        count: 1,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_events_are_counted_not_repeated() {
        let t0 = Utc::now();
        let mut events = Vec::new();
        let mut at = t0;
        for _ in 0..3 {
            for (kind, reason, message) in [
                ("Warning", "Failed", "Error: gone"),
                (
                    "Warning",
                    "BackOff",
                    "Back-off restarting failed container c in pod p",
                ),
            ] {
                at += chrono::Duration::seconds(1);
                record_event(&mut events, kind, reason, message.into(), at);
            }
        }
        record_event(
            &mut events,
            "Normal",
            "Killing",
            "Stopping container c".into(),
            at,
        );
        let seen: Vec<(&str, u32)> = events
            .iter()
            .map(|e| (e.reason.as_str(), e.count))
            .collect();
        assert_eq!(seen, [("Failed", 3), ("BackOff", 3), ("Killing", 1)]);
        assert_eq!(events[0].first_timestamp, t0 + chrono::Duration::seconds(1));
        assert_eq!(events[0].last_timestamp, t0 + chrono::Duration::seconds(5));
        // The same reason with another message is another event; a repeat moves last.
        record_event(&mut events, "Warning", "Failed", "Error: other".into(), at);
        record_event(&mut events, "Warning", "Failed", "Error: gone".into(), at);
        let seen: Vec<(&str, u32)> = events
            .iter()
            .map(|e| (e.message.as_str(), e.count))
            .collect();
        assert_eq!(seen[2..], [("Error: other", 1), ("Error: gone", 4)]);
    }
}
