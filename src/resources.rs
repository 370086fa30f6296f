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

/// What this node offers its pods, as the kubelet's capacity counts it: the online CPUs and
/// the memory in `/proc/meminfo` (MemTotal).
#[derive(Debug, Clone, Copy)]
pub struct NodeCapacity {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
}

impl NodeCapacity {
    pub fn read() -> std::io::Result<NodeCapacity> {
        let cpus = nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
            .ok()
            .flatten()
            .unwrap_or(1)
            .max(1) as u64;
        let meminfo = std::fs::read_to_string("/proc/meminfo")?;
        let mem_kib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .ok_or_else(|| std::io::Error::other("/proc/meminfo has no MemTotal"))?;
        Ok(NodeCapacity {
            cpu_millis: cpus * 1000,
            memory_bytes: mem_kib * 1024,
        })
    }
}

/// A pod whose requests alone exceed the node's whole capacity can never run here: the
/// kubelet's admission rejects it (reason `OutOfcpu` / `OutOfmemory`, message `Node didn't have
/// enough resource: ...`). A limit without a request counts as the request, as the API server
/// defaults it. Other pods' requests are not counted (podrun does not schedule by requests).
pub fn admission_problem(plan: &PodPlan, capacity: NodeCapacity) -> Option<String> {
    // The kubelet's PodRequests: the app containers' sum, or the largest init container's
    // request if larger (they run one at a time, before the apps).
    let (mut cpu, mut memory): (u64, u64) = (0, 0);
    for c in plan.containers.iter().filter(|c| !c.init) {
        cpu = cpu.saturating_add(c.resources.requests.cpu_millis.unwrap_or(0));
        memory = memory.saturating_add(c.resources.requests.memory_bytes.unwrap_or(0));
    }
    for c in plan.containers.iter().filter(|c| c.init) {
        cpu = cpu.max(c.resources.requests.cpu_millis.unwrap_or(0));
        memory = memory.max(c.resources.requests.memory_bytes.unwrap_or(0));
    }
    let over = |resource: &str, requested: u64, capacity: u64| {
        format!(
            "OutOf{resource}: Node didn't have enough resource: {resource}, requested: {requested}, \
             capacity: {capacity} (the pod's requests; a limit without a request counts as one)"
        )
    };
    if cpu > capacity.cpu_millis {
        Some(over("cpu", cpu, capacity.cpu_millis))
    } else if memory > capacity.memory_bytes {
        Some(over("memory", memory, capacity.memory_bytes))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(resources: &str) -> PodPlan {
        let text = format!(
            "{{apiVersion: v1, kind: Pod, metadata: {{name: p}}, spec: {{containers: [{{name: c, image: x, resources: {resources}}}]}}}}"
        );
        match crate::spec::load_str(&text, "test.yaml").unwrap().remove(0) {
            crate::spec::Object::Pod(p) => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_pod_that_cannot_fit_the_node_alone_is_rejected_as_the_kubelet_does() {
        let node = NodeCapacity {
            cpu_millis: 2000,
            memory_bytes: 1 << 30,
        };
        assert_eq!(admission_problem(&plan("{limits: {cpu: 2}}"), node), None);
        let huge = admission_problem(&plan("{requests: {cpu: 1e100}}"), node).unwrap();
        assert!(
            huge.starts_with(&format!(
                "OutOfcpu: Node didn't have enough resource: cpu, requested: {}, capacity: 2000",
                i64::MAX
            )),
            "{huge}"
        );
        let memory = admission_problem(&plan("{limits: {memory: 1e100}}"), node).unwrap();
        assert!(memory.starts_with("OutOfmemory: "), "{memory}");
        // A request below the node, with a limit above it: admitted (limits overcommit).
        assert_eq!(
            admission_problem(
                &plan("{requests: {memory: 1Mi}, limits: {memory: 1e100}}"),
                node
            ),
            None
        );
    }
}
