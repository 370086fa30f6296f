//! Removing what a pod sandbox put on the kernel, working only from the PodRecord. Used by the
//! supervisor on delete, on a failed start (rollback) and when a sandbox dies, and by the CLI
//! when the supervisor itself is gone. Every step runs even if an earlier one failed, tolerates
//! "already gone", and the failures are returned together.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::net::{self, ipam::Ipam};
use crate::procfs;
use crate::sandbox;
use crate::state::{PodRecord, SandboxRecord, Store};

/// Failures of a best-effort teardown, all of them.
#[derive(Debug, Default, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct TeardownErrors(pub Vec<String>);

impl TeardownErrors {
    fn push(&mut self, what: &str, err: impl std::fmt::Display) {
        self.0.push(format!("{what}: {err}"));
    }
    pub fn into_result(self) -> Result<(), TeardownErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

/// The graceful stop a supervisor makes, done from the record for a pod whose supervisor is
/// gone: [`GracefulStop::begin`] sends SIGTERM to every recorded container process that is
/// still the one podrun started (held by a pidfd, so a recycled pid is never signalled) and to
/// its process group; [`GracefulStop::finish`] waits until they have exited or the grace
/// period is over, then SIGKILLs what is left (as the supervisor does, and the kubelet).
pub struct GracefulStop {
    /// Pidfds of the signalled processes, with their pids (their process groups).
    held: Vec<(std::os::fd::OwnedFd, i32)>,
    deadline: std::time::Instant,
}

impl GracefulStop {
    pub fn begin(record: &PodRecord, grace: Duration) -> Self {
        let mut held = Vec::new();
        for c in &record.containers {
            let Some(p) = c.process else { continue };
            let Ok(pidfd) = crate::sys::pidfd_open(p.pid) else {
                continue;
            };
            // Checked once the pidfd pins the process: it is the container's, and so is the
            // group it leads.
            if !p.is_alive() {
                continue;
            }
            let _ = crate::sys::pidfd_send_signal(&pidfd, libc::SIGTERM);
            procfs::signal_group(p.pid, Signal::SIGTERM);
            held.push((pidfd, p.pid));
        }
        Self {
            held,
            deadline: std::time::Instant::now() + grace,
        }
    }

    pub fn finish(mut self) {
        use std::os::fd::AsFd;
        while procfs::wait_for_exits(&mut self.held, |(fd, _)| fd.as_fd(), self.deadline) {}
        for (pidfd, pid) in &self.held {
            let _ = crate::sys::pidfd_send_signal(pidfd, libc::SIGKILL);
            procfs::signal_group(*pid, Signal::SIGKILL);
        }
    }
}

/// SIGKILL every container process group recorded and wait (bounded) until they are gone.
pub fn kill_containers(record: &PodRecord) {
    for c in &record.containers {
        if let Some(p) = c.process
            && p.is_alive()
        {
            procfs::signal_group(p.pid, Signal::SIGKILL);
            procfs::signal_if_same(p.pid, p.start_time, Signal::SIGKILL);
        }
    }
}

/// Kill the pause (if it is still ours) and remove the sandbox's network: veth, address, pin.
pub fn remove_sandbox(record: &PodRecord, sandbox: &SandboxRecord, errors: &mut TeardownErrors) {
    remove_sandbox_after(record, sandbox, errors, || {});
}

/// How long a dying pod network namespace may take to remove its veth before it is deleted.
const NETNS_VETH_GRACE: Duration = Duration::from_millis(50);

/// As [`remove_sandbox`], running `stop_pause` (a graceful stop) first. The veth goes with the
/// network namespace once the pause is gone and the pin removed (see
/// [`net::detach_pod_with_netns`]); the caller must have closed its namespace descriptors.
pub fn remove_sandbox_after(
    record: &PodRecord,
    sandbox: &SandboxRecord,
    errors: &mut TeardownErrors,
    stop_pause: impl FnOnce(),
) {
    let network = &record.network_config;
    stop_pause();
    if let Some(p) = sandbox.pause {
        procfs::signal_if_same(p.pid, p.start_time, Signal::SIGKILL);
    }
    tracing::debug!("pause killed");
    if pin_is_ours(sandbox) {
        if let Err(e) = sandbox::unpin_netns(&sandbox.netns_path) {
            errors.push("unpin netns", e);
        }
        tracing::debug!("netns unpinned");
    }
    let ifindex = sandbox.network.as_ref().map(|n| n.host_ifindex);
    match net::detach_pod_with_netns(network, &sandbox.host_veth, ifindex, NETNS_VETH_GRACE) {
        Ok(()) => tracing::debug!("veth deleted"),
        Err(e) => errors.push("delete veth", e),
    }
    // Before the address is released: no rule sends a hostPort to an address handed out again.
    // A pod without hostPorts has none (its plan does not change): no lock, no table read.
    if !net::hostport::of_plan(&record.plan).is_empty()
        && let Err(e) = net::hostport::remove(network, &record.plan.uid)
    {
        errors.push("remove hostPort rules", e);
    }
    // After the veth: the address is not handed out again while the old pair still exists.
    if let Err(e) = Ipam::new(network).release(&sandbox.id) {
        errors.push("release pod IP", e);
    }
}

/// Whether the pin at the sandbox's path holds the sandbox's network namespace (the pin of a
/// pod of the same name in another state root does not). Without recorded namespaces (the
/// supervisor died before saving them) or without a mounted pin (a half-made one), yes.
fn pin_is_ours(sandbox: &SandboxRecord) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Some(ns), Ok(pin)) = (&sandbox.namespaces, std::fs::metadata(&sandbox.netns_path)) else {
        return true;
    };
    let mounted = sandbox
        .netns_path
        .parent()
        .and_then(|dir| std::fs::metadata(dir).ok())
        .is_some_and(|dir| dir.dev() != pin.dev());
    !mounted || pin.ino() == ns.net
}

/// Kill whatever is left in the pod's cgroups, then remove them (the shared parent stays).
pub fn remove_cgroups(record: &PodRecord, errors: &mut TeardownErrors) {
    match super::cgroups::pod_cgroup(record) {
        None => {}
        Some(Err(e)) => errors.push("find cgroups", e),
        Some(Ok(pod)) => {
            if let Err(e) = pod.kill_all() {
                errors.push("kill cgroup processes", e);
            }
            if let Err(e) = pod.remove() {
                errors.push("remove cgroups", e);
            }
        }
    }
}

/// The last pod under a cgroup parent removes the (then empty) parent too, so that nothing of
/// podrun's stays under /sys/fs/cgroup. A parent something else still uses is left alone.
fn remove_cgroup_parent(record: &PodRecord) {
    if let Some(Ok(pod)) = super::cgroups::pod_cgroup(record) {
        for dir in pod.pod_dirs() {
            if let Some(parent) = dir.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
}

/// Remove the pod's state, then the node network if no other pod uses it (bridge, nft rule).
pub fn remove_state_and_network(store: &Store, record: &PodRecord, errors: &mut TeardownErrors) {
    let lock = store.lock();
    remove_state(store, record, errors);
    if !network_used_by_others(store, record)
        && let Err(e) = net::teardown_own_network(&record.network_config, None)
    {
        errors.push("remove node network", e);
    }
    drop(lock);
}

/// Whether any other pod of this state root uses `record`'s bridge. Decisive only while the
/// caller holds the root lock (an apply reserves its pods under it).
pub fn network_used_by_others(store: &Store, record: &PodRecord) -> bool {
    let key = record.key();
    store
        .list()
        .iter()
        .any(|r| r.key() != key && r.network_config.bridge == record.network_config.bridge)
}

/// Remove the pod's state, and the cgroup parent when no other pod uses it. The caller holds
/// the root lock.
pub fn remove_state(store: &Store, record: &PodRecord, errors: &mut TeardownErrors) {
    if let Err(e) = store.remove(&record.key()) {
        errors.push("remove state", e);
    }
    let parent = record.cgroup.as_ref().map(|c| &c.parent);
    if !store
        .list()
        .iter()
        .any(|r| r.cgroup.as_ref().map(|c| &c.parent) == parent)
    {
        remove_cgroup_parent(record);
    }
}

/// Everything, from the record alone: for a pod whose supervisor is gone.
pub fn remove_pod_from_record(store: &Store, record: &PodRecord) -> Result<(), TeardownErrors> {
    let mut errors = TeardownErrors::default();
    kill_containers(record);
    if let Some(sb) = &record.sandbox {
        remove_sandbox(record, sb, &mut errors);
    }
    remove_cgroups(record, &mut errors);
    remove_state_and_network(store, record, &mut errors);
    errors.into_result()
}
