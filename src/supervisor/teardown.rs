//! Removing what a pod sandbox put on the kernel, working only from the PodRecord. Used by the
//! supervisor on delete, on a failed start (rollback) and when a sandbox dies, and by the CLI
//! when the supervisor itself is gone. Every step runs even if an earlier one failed, tolerates
//! "already gone", and the failures are returned together.

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
    if let Some(p) = sandbox.pause {
        procfs::signal_if_same(p.pid, p.start_time, Signal::SIGKILL);
    }
    if let Err(e) = net::detach_pod(&sandbox.host_veth) {
        errors.push("delete veth", e);
    }
    if let Err(e) = Ipam::new(&record.network_config).release(&sandbox.id) {
        errors.push("release pod IP", e);
    }
    if let Err(e) = sandbox::unpin_netns(&sandbox.netns_path) {
        errors.push("unpin netns", e);
    }
}

/// Remove the pod's state, then the node network if no other pod uses it (bridge, nft rule).
pub fn remove_state_and_network(store: &Store, record: &PodRecord, errors: &mut TeardownErrors) {
    let lock = store.lock();
    if let Err(e) = store.remove(&record.key()) {
        errors.push("remove state", e);
    }
    let network = &record.network_config;
    let in_use = store
        .list()
        .iter()
        .any(|r| r.network_config.bridge == network.bridge);
    if !in_use && let Err(e) = net::teardown_network(network) {
        errors.push("remove node network", e);
    }
    drop(lock);
}

/// Everything, from the record alone: for a pod whose supervisor is gone.
pub fn remove_pod_from_record(store: &Store, record: &PodRecord) -> Result<(), TeardownErrors> {
    let mut errors = TeardownErrors::default();
    kill_containers(record);
    if let Some(sb) = &record.sandbox {
        remove_sandbox(record, sb, &mut errors);
    }
    remove_state_and_network(store, record, &mut errors);
    errors.into_result()
}
