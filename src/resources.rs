//! The bridge between a manifest's requests/limits and the cgroup module's plain numbers.

use crate::cgroup::ContainerResources;
use crate::spec::{PodPlan, Resources};

pub fn container_resources(r: &Resources) -> ContainerResources {
    ContainerResources {
        cpu_request_millis: r.requests.cpu_millis,
        cpu_limit_millis: r.limits.cpu_millis,
        memory_request_bytes: r.requests.memory_bytes,
        memory_limit_bytes: r.limits.memory_bytes,
    }
}

/// Every container's requests/limits of a pod, in container order.
pub fn pod_resources(plan: &PodPlan) -> Vec<ContainerResources> {
    plan.containers
        .iter()
        .map(|c| container_resources(&c.resources))
        .collect()
}
