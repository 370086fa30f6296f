//! QoS class (`GetPodQOS`, `pkg/apis/core/v1/helper/qos/qos.go`), `oom_score_adj`
//! (`pkg/kubelet/qos/policy.go`) and the pod cgroup values (`ResourceConfigForPod`,
//! `pkg/kubelet/cm/helpers_linux.go`) plus the per-container values the runtime writes.
//!
//! Requests default to limits everywhere here, as the API server does when only a limit is
//! given; zero quantities count as absent.

use super::formula::{
    QUOTA_PERIOD_US, milli_cpu_to_quota, milli_cpu_to_shares, shares_to_weight_linear,
    shares_to_weight_runc,
};
use super::{ContainerResources, Limits, QosClass};

/// oom_score_adj of Guaranteed containers.
pub const GUARANTEED_OOM_SCORE_ADJ: i32 = -997;
/// oom_score_adj of BestEffort containers.
pub const BEST_EFFORT_OOM_SCORE_ADJ: i32 = 1000;

fn nz(v: Option<u64>) -> Option<u64> {
    v.filter(|&v| v > 0)
}

impl ContainerResources {
    /// CPU request after API defaulting (request, else limit); zero → `None`.
    pub fn effective_cpu_request(&self) -> Option<u64> {
        nz(self.cpu_request_millis).or(nz(self.cpu_limit_millis))
    }
    /// Memory request after API defaulting (request, else limit); zero → `None`.
    pub fn effective_memory_request(&self) -> Option<u64> {
        nz(self.memory_request_bytes).or(nz(self.memory_limit_bytes))
    }
}

/// Kubernetes `GetPodQOS` over every container of the pod (pass init containers too).
pub fn qos_class(containers: &[ContainerResources]) -> QosClass {
    let (mut req_cpu, mut req_mem, mut lim_cpu, mut lim_mem) = (None, None, None, None);
    let add = |acc: &mut Option<u64>, v: Option<u64>| {
        if let Some(v) = v {
            *acc = Some(acc.unwrap_or(0).saturating_add(v));
        }
    };
    let mut guaranteed = true;
    for c in containers {
        // With request defaulting, an explicit request of 0 stays absent (kubelet ignores zeros).
        let cpu_req = match c.cpu_request_millis {
            Some(0) => None,
            Some(v) => Some(v),
            None => nz(c.cpu_limit_millis),
        };
        let mem_req = match c.memory_request_bytes {
            Some(0) => None,
            Some(v) => Some(v),
            None => nz(c.memory_limit_bytes),
        };
        add(&mut req_cpu, cpu_req);
        add(&mut req_mem, mem_req);
        add(&mut lim_cpu, nz(c.cpu_limit_millis));
        add(&mut lim_mem, nz(c.memory_limit_bytes));
        if nz(c.cpu_limit_millis).is_none() || nz(c.memory_limit_bytes).is_none() {
            guaranteed = false;
        }
    }
    let requests = [req_cpu, req_mem];
    let limits = [lim_cpu, lim_mem];
    if requests.iter().all(Option::is_none) && limits.iter().all(Option::is_none) {
        return QosClass::BestEffort;
    }
    // Guaranteed needs every request to equal its limit, and the same set of resources on both sides.
    if guaranteed && requests == limits {
        return QosClass::Guaranteed;
    }
    QosClass::Burstable
}

/// kubelet `GetContainerOOMScoreAdjust`: Guaranteed −997, BestEffort 1000, Burstable
/// `1000 − 1000 × request / capacity` in integer math, clamped to [3, 999].
///
/// `node_memory_bytes == 0` (unknown capacity) is treated as "request ≥ capacity", i.e. 3, unless
/// the request is also 0 (999).
pub fn oom_score_adj(qos: QosClass, memory_request_bytes: u64, node_memory_bytes: u64) -> i32 {
    match qos {
        QosClass::Guaranteed => GUARANTEED_OOM_SCORE_ADJ,
        QosClass::BestEffort => BEST_EFFORT_OOM_SCORE_ADJ,
        QosClass::Burstable => {
            let floor = (1000 + GUARANTEED_OOM_SCORE_ADJ) as i128;
            let adj = if node_memory_bytes == 0 {
                if memory_request_bytes == 0 {
                    1000
                } else {
                    floor
                }
            } else {
                1000 - (1000 * memory_request_bytes as i128) / node_memory_bytes as i128
            };
            if adj < floor {
                floor as i32
            } else if adj >= BEST_EFFORT_OOM_SCORE_ADJ as i128 {
                BEST_EFFORT_OOM_SCORE_ADJ - 1
            } else {
                adj as i32
            }
        }
    }
}

/// kubelet `ResourceConfigForPod` for the pod cgroup (see [`super::pod_limits`]).
pub fn pod_limits(containers: &[ContainerResources]) -> Limits {
    pod_limits_with_inits(containers, &[])
}

/// [`pod_limits`] of a pod with init containers `inits` beside the app containers `apps`:
/// each sum is the kubelet's `PodRequests`/`PodLimits`, the larger of the apps' sum and the
/// largest init container's value (they run one at a time, before the apps); the QoS class
/// and whether limits are declared count every container.
pub fn pod_limits_with_inits(apps: &[ContainerResources], inits: &[ContainerResources]) -> Limits {
    let all: Vec<ContainerResources> = apps.iter().chain(inits).copied().collect();
    let containers = &all[..];
    let qos = qos_class(containers);
    let sum = |f: fn(&ContainerResources) -> Option<u64>| {
        let apps = apps.iter().filter_map(f).fold(0u64, u64::saturating_add);
        inits.iter().filter_map(f).fold(apps, u64::max)
    };
    let cpu_requests = sum(ContainerResources::effective_cpu_request);
    let cpu_limits = sum(|c| nz(c.cpu_limit_millis));
    let mem_requests = sum(ContainerResources::effective_memory_request);
    let mem_limits = sum(|c| nz(c.memory_limit_bytes));
    let cpu_declared = containers.iter().all(|c| nz(c.cpu_limit_millis).is_some());
    let mem_declared = containers
        .iter()
        .all(|c| nz(c.memory_limit_bytes).is_some());

    let mut limits = Limits::best_effort();
    limits.memory_low = Some(mem_requests).filter(|&v| v > 0);
    match qos {
        QosClass::BestEffort => {}
        QosClass::Guaranteed | QosClass::Burstable => {
            limits.cpu_shares = milli_cpu_to_shares(cpu_requests);
            if qos == QosClass::Guaranteed || cpu_declared {
                limits.cpu_quota_us =
                    Some(milli_cpu_to_quota(cpu_limits, QUOTA_PERIOD_US)).filter(|&q| q > 0);
            }
            if qos == QosClass::Guaranteed || mem_declared {
                limits.memory_max = Some(mem_limits).filter(|&m| m > 0);
            }
        }
    }
    limits.cpu_weight = Some(shares_to_weight_linear(limits.cpu_shares));
    limits
}

/// What the runtime writes for one container cgroup (see [`super::container_limits`]).
pub fn container_limits(c: &ContainerResources) -> Limits {
    let shares = milli_cpu_to_shares(c.effective_cpu_request().unwrap_or(0));
    Limits {
        cpu_quota_us: nz(c.cpu_limit_millis).map(|m| milli_cpu_to_quota(m, QUOTA_PERIOD_US)),
        cpu_period_us: QUOTA_PERIOD_US,
        cpu_shares: shares,
        cpu_weight: Some(shares_to_weight_runc(shares)),
        memory_max: nz(c.memory_limit_bytes),
        memory_low: c.effective_memory_request(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: u64 = 1024 * 1024;
    const GI: u64 = 1024 * MI;

    fn res(
        cr: Option<u64>,
        cl: Option<u64>,
        mr: Option<u64>,
        ml: Option<u64>,
    ) -> ContainerResources {
        ContainerResources {
            cpu_request_millis: cr,
            cpu_limit_millis: cl,
            memory_request_bytes: mr,
            memory_limit_bytes: ml,
        }
    }

    #[test]
    fn qos_classes() {
        use QosClass::*;
        assert_eq!(qos_class(&[]), BestEffort);
        assert_eq!(qos_class(&[ContainerResources::default()]), BestEffort);
        assert_eq!(
            qos_class(&[res(Some(0), Some(0), Some(0), None)]),
            BestEffort
        );
        // Limits only: requests default to limits.
        assert_eq!(
            qos_class(&[res(None, Some(500), None, Some(GI))]),
            Guaranteed
        );
        assert_eq!(
            qos_class(&[res(Some(500), Some(500), Some(GI), Some(GI))]),
            Guaranteed
        );
        assert_eq!(
            qos_class(&[res(Some(100), Some(200), Some(100 * MI), Some(200 * MI))]),
            Burstable
        );
        // One container without memory limit.
        assert_eq!(
            qos_class(&[
                res(None, Some(500), None, Some(GI)),
                res(None, Some(500), None, None)
            ]),
            Burstable
        );
        // Guaranteed + BestEffort container → Burstable.
        assert_eq!(
            qos_class(&[
                res(None, Some(500), None, Some(GI)),
                ContainerResources::default()
            ]),
            Burstable
        );
        assert_eq!(qos_class(&[res(Some(100), None, None, None)]), Burstable);
        // Explicit zero request with a limit: request absent but limit present → Burstable.
        assert_eq!(
            qos_class(&[res(Some(0), Some(500), None, Some(GI))]),
            Burstable
        );
        assert_eq!(Guaranteed.to_string(), "Guaranteed");
        assert_eq!(BestEffort.to_string(), "BestEffort");
        assert_eq!(Burstable.to_string(), "Burstable");
    }

    #[test]
    fn init_containers_count_by_the_largest_beside_the_apps_sum() {
        // Two apps of 200m/256Mi and an init of 500m/128Mi, limits = requests: Guaranteed;
        // cpu = max(400, 500), memory = max(512Mi, 128Mi).
        let app = res(None, Some(200), None, Some(256 * MI));
        let init = res(None, Some(500), None, Some(128 * MI));
        let l = pod_limits_with_inits(&[app, app], &[init]);
        assert_eq!(l.cpu_quota_us, Some(50_000));
        assert_eq!(l.memory_max, Some(512 * MI));
        assert_eq!(l.memory_low, Some(512 * MI));
        assert_eq!(
            pod_limits_with_inits(&[app, app], &[]),
            pod_limits(&[app, app])
        );
        // An init container without a memory limit: no pod memory.max (every container counts).
        let loose = res(None, Some(500), None, None);
        assert_eq!(pod_limits_with_inits(&[app], &[loose]).memory_max, None);
        assert_eq!(
            pod_limits_with_inits(&[app], &[loose]).cpu_quota_us,
            Some(50_000)
        );
    }

    #[test]
    fn oom_score_adj_edges() {
        use QosClass::*;
        assert_eq!(oom_score_adj(Guaranteed, GI, 8 * GI), -997);
        assert_eq!(oom_score_adj(BestEffort, 0, 8 * GI), 1000);
        assert_eq!(oom_score_adj(Burstable, 0, 8 * GI), 999);
        assert_eq!(oom_score_adj(Burstable, 1, 8 * GI), 999);
        assert_eq!(oom_score_adj(Burstable, 4 * GI, 8 * GI), 500);
        assert_eq!(oom_score_adj(Burstable, GI, 10 * GI), 900);
        assert_eq!(oom_score_adj(Burstable, 3 * GI, 8 * GI), 625);
        assert_eq!(oom_score_adj(Burstable, 100 * 1024 * 1024, 3 * GI), 968); // 1000 - 32.55 → 968
        assert_eq!(oom_score_adj(Burstable, 8 * GI, 8 * GI), 3);
        assert_eq!(oom_score_adj(Burstable, 100 * GI, 8 * GI), 3);
        assert_eq!(oom_score_adj(Burstable, 8 * GI - 8 * GI / 1000, 8 * GI), 3);
        assert_eq!(oom_score_adj(Burstable, u64::MAX, 1), 3);
        assert_eq!(oom_score_adj(Burstable, 5, 0), 3);
        assert_eq!(oom_score_adj(Burstable, 0, 0), 999);
    }

    #[test]
    fn container_example() {
        let l = container_limits(&res(Some(100), Some(200), Some(100 * MI), Some(200 * MI)));
        assert_eq!(
            l,
            Limits {
                cpu_quota_us: Some(20_000),
                cpu_period_us: 100_000,
                cpu_shares: 102,
                cpu_weight: Some(17),
                memory_max: Some(209_715_200),
                memory_low: Some(104_857_600),
            }
        );
    }

    #[test]
    fn container_defaults() {
        let l = container_limits(&ContainerResources::default());
        assert_eq!(l.cpu_quota_us, None);
        assert_eq!(l.cpu_shares, 2);
        assert_eq!(l.cpu_weight, Some(1));
        assert_eq!(l.memory_max, None);
        assert_eq!(l.memory_low, None);
        // Only a cpu limit: shares come from the limit.
        let l = container_limits(&res(None, Some(1000), None, None));
        assert_eq!(
            (l.cpu_quota_us, l.cpu_shares, l.cpu_weight),
            (Some(100_000), 1024, Some(100))
        );
        // 5m limit hits the quota floor.
        assert_eq!(
            container_limits(&res(None, Some(5), None, None)).cpu_quota_us,
            Some(1000)
        );
    }

    #[test]
    fn pod_guaranteed() {
        let c = res(None, Some(500), None, Some(GI));
        let l = pod_limits(&[c, c]);
        assert_eq!(
            l,
            Limits {
                cpu_quota_us: Some(100_000),
                cpu_period_us: 100_000,
                cpu_shares: 1024,
                cpu_weight: Some(39),
                memory_max: Some(2 * GI),
                memory_low: Some(2 * GI),
            }
        );
    }

    #[test]
    fn pod_burstable() {
        let a = res(Some(100), Some(200), Some(100 * MI), Some(200 * MI));
        let b = res(Some(400), Some(800), Some(100 * MI), Some(300 * MI));
        let l = pod_limits(&[a, b]);
        assert_eq!(l.cpu_shares, 512);
        assert_eq!(l.cpu_weight, Some(20));
        assert_eq!(l.cpu_quota_us, Some(100_000));
        assert_eq!(l.memory_max, Some(500 * MI));
        assert_eq!(l.memory_low, Some(200 * MI));

        // One container without any limit → neither quota nor memory.max at pod level.
        let l = pod_limits(&[a, res(Some(400), None, Some(100 * MI), None)]);
        assert_eq!(l.cpu_shares, 512);
        assert_eq!(l.cpu_quota_us, None);
        assert_eq!(l.memory_max, None);
        assert_eq!(l.memory_low, Some(200 * MI));

        // Memory limit missing in one container, cpu limits everywhere.
        let l = pod_limits(&[a, res(None, Some(300), Some(MI), None)]);
        assert_eq!(l.cpu_quota_us, Some(50_000));
        assert_eq!(l.memory_max, None);
    }

    #[test]
    fn pod_best_effort() {
        let l = pod_limits(&[ContainerResources::default(), ContainerResources::default()]);
        assert_eq!(l, Limits::best_effort());
        assert_eq!(l.cpu_shares, 2);
        assert_eq!(l.cpu_weight, Some(1));
    }
}
