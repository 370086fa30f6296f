//! The bridge between a manifest's requests/limits and the cgroup module's plain numbers.

use crate::cgroup::ContainerResources;
use crate::spec::Resources;

pub fn container_resources(r: &Resources) -> ContainerResources {
    ContainerResources {
        cpu_request_millis: r.requests.cpu_millis,
        cpu_limit_millis: r.limits.cpu_millis,
        memory_request_bytes: r.requests.memory_bytes,
        memory_limit_bytes: r.limits.memory_bytes,
    }
}
