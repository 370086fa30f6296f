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
    /// Restart back-off: the delay that applies to the next crash, in seconds (0 = none yet).
    #[serde(default)]
    pub backoff_seconds: u64,
    /// The image as resolved at apply (root filesystem and image config).
    #[serde(default)]
    pub image_config: Option<crate::container::image::ContainerImage>,
    /// `<pod dir>/<container>`: the OCI bundle (`config.json`), recorded before it is written.
    #[serde(default)]
    pub bundle: Option<std::path::PathBuf>,
    /// The overlay of the current run (upper/work dirs recorded before they are created).
    #[serde(default)]
    pub rootfs: Option<crate::container::oci::RootfsLayout>,
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

    /// Record an event, folding a repeat of the last one into its count as Kubernetes does.
    pub fn event(&mut self, kind: &str, reason: &str, message: String) {
        let now = Utc::now();
        if let Some(last) = self.events.last_mut()
            && last.reason == reason
            && last.message == message
        {
            last.count += 1;
            last.last_timestamp = now;
            return;
        }
        self.events.push(Event {
            kind: kind.to_owned(),
            reason: reason.to_owned(),
            message,
            first_timestamp: now,
            last_timestamp: now,
            count: 1,
        });
    }
}
