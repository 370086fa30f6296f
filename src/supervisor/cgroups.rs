//! The pod's cgroups from the supervisor's side: `<parent>/pod<uid>` with the kubelet's pod
//! values, a `pause` child and one child per container with the runtime's container values.
//! Processes are moved into their cgroup by the forked child itself, before exec.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::Supervisor;
use super::lifecycle::StartError;
use crate::cgroup::{self, DeviceAccess, Hierarchy, Limits, PodCgroup};

use crate::resources::{container_resources, pod_resources};
use crate::state::PodRecord;

/// A child cgroup with its placement files open for the pre-exec hook.
pub(super) struct Placement {
    fds: Vec<OwnedFd>,
}

impl Placement {
    pub fn raw_fds(&self) -> Vec<RawFd> {
        self.fds.iter().map(AsRawFd::as_raw_fd).collect()
    }
}

/// Create child `name` of the pod cgroup and open its placement files.
pub(super) fn placement_in(
    pod: &PodCgroup,
    name: &str,
    limits: &Limits,
    devices: DeviceAccess,
) -> Result<Placement, StartError> {
    let child = pod.create_child(name, limits)?;
    // Before anything joins: no window in which the process could open a host device.
    child.restrict_devices(devices)?;
    let fds = child.self_placement_fds()?;
    Ok(Placement { fds })
}

/// The pod cgroup handle from the record (no filesystem access beyond layout detection).
pub fn pod_cgroup(record: &PodRecord) -> Option<Result<PodCgroup, cgroup::CgroupError>> {
    let rec = record.cgroup.as_ref()?;
    Some(Hierarchy::detect(&rec.root).map(|h| PodCgroup::open(&h, &rec.parent, &record.plan.uid)))
}

/// Total memory of the node (for the Burstable oom_score_adj formula).
fn node_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

impl Supervisor {
    /// Create the pod cgroup with the kubelet's pod-level values.
    pub(super) fn create_pod_cgroup(&mut self) -> Result<(), StartError> {
        let Some(rec) = self.record.cgroup.clone() else {
            return Ok(());
        };
        let h = Hierarchy::detect(&rec.root)?;
        let resources = pod_resources(&self.record.plan);
        let (inits, apps): (Vec<_>, Vec<_>) = resources
            .iter()
            .zip(&self.record.plan.containers)
            .partition(|(_, c)| c.init);
        let only = |list: Vec<(&cgroup::ContainerResources, _)>| -> Vec<_> {
            list.into_iter().map(|(r, _)| *r).collect()
        };
        // Saved with the sandbox record next; root and parent were recorded by apply, and
        // the mode can be detected again, so delete finds these cgroups even before that.
        if let Some(r) = self.record.cgroup.as_mut() {
            r.mode = Some(h.mode());
        }
        let pod = PodCgroup::create(
            &h,
            &rec.parent,
            &self.record.plan.uid,
            &cgroup::pod_limits_with_inits(&only(apps), &only(inits)),
        )?;
        tracing::debug!(path = %pod.path().display(), mode = ?h.mode(), "pod cgroup created");
        self.cgroup = Some(pod);
        Ok(())
    }

    /// The cgroup a process named `name` (a container, or `pause`) is placed in before exec.
    pub(super) fn placement(
        &self,
        name: &str,
        limits: &Limits,
        devices: DeviceAccess,
    ) -> Result<Option<Placement>, StartError> {
        let Some(pod) = &self.cgroup else {
            return Ok(None);
        };
        Ok(Some(placement_in(pod, name, limits, devices)?))
    }

    pub(super) fn container_placement(&self, i: usize) -> Result<Option<Placement>, StartError> {
        let spec = &self.record.plan.containers[i];
        self.placement(
            &spec.name,
            &cgroup::container_limits(&container_resources(&spec.resources)),
            DeviceAccess::for_container(spec.security.privileged),
        )
    }

    /// The kubelet's oom_score_adj for container `i` (by the pod's QoS class).
    pub(super) fn oom_score_adj(&self, i: usize) -> i32 {
        let all = pod_resources(&self.record.plan);
        let qos = cgroup::qos_class(&all);
        let request = all[i].effective_memory_request().unwrap_or(0);
        cgroup::oom_score_adj(qos, request, node_memory_bytes())
    }

    /// OOM kills counted in container `name`'s cgroup so far.
    pub(super) fn oom_kills(&self, name: &str) -> u64 {
        self.cgroup
            .as_ref()
            .and_then(|p| p.child(name).ok())
            .and_then(|c| c.oom_kill_count().ok())
            .unwrap_or(0)
    }
}
