//! CPU and memory usage of the pods' containers and of the node, from their cgroups: what
//! `podrun top` prints and `podrun serve` answers as metrics.k8s.io (`kubectl top`).
//!
//! CPU is a rate, so it takes two readings of a cgroup's cumulative CPU time: `podrun top`
//! reads twice over its `--interval-ms` ([`sample`]); the API server keeps the last two
//! readings of each container as metrics-server keeps its last two scrapes ([`Sampler`]), so a
//! request reports the rate since the request before it and waits only when it has nothing
//! recent to start from. Memory is the latest reading's working set (usage minus the inactive
//! file cache, as cAdvisor and the kubelet compute it).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::cgroup::{CgroupStats, Hierarchy};
use crate::state::{ContainerState, PodRecord};

/// One reading of a cumulative CPU counter.
#[derive(Debug, Clone, Copy)]
pub struct CpuReading {
    pub at: Instant,
    pub time: DateTime<Utc>,
    pub usage_usec: u64,
}

impl CpuReading {
    pub fn now(usage_usec: u64) -> Self {
        CpuReading {
            at: Instant::now(),
            time: Utc::now(),
            usage_usec,
        }
    }
}

/// A CPU rate between two readings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuRate {
    /// CPU time per second of the window, in nanocores (1 core = 1e9).
    pub nanocores: u64,
    /// The time between the two readings.
    pub window: Duration,
    /// When the later reading was taken.
    pub time: DateTime<Utc>,
}

impl CpuRate {
    /// The rate from `before` to `after`; None if the counter went back (a new cgroup) or no
    /// time passed.
    pub fn between(before: &CpuReading, after: &CpuReading) -> Option<CpuRate> {
        let window = after.at.checked_duration_since(before.at)?;
        let used = after.usage_usec.checked_sub(before.usage_usec)?;
        if window.is_zero() {
            return None;
        }
        let nanocores = (used as f64 * 1000.0 / window.as_secs_f64()).round() as u64;
        Some(CpuRate {
            nanocores,
            window,
            time: after.time,
        })
    }

    pub fn cores(&self) -> f64 {
        self.nanocores as f64 / 1e9
    }
}

/// One container's cgroup counters, read once.
#[derive(Debug, Clone)]
pub struct ContainerReading {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// The run it belongs to (a restart is a new run and a new counter).
    pub container_id: String,
    pub stats: CgroupStats,
    pub cpu: CpuReading,
}

impl ContainerReading {
    fn key(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.namespace, self.pod, self.container, self.container_id
        )
    }
}

/// Which containers a reading covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Containers {
    /// Every container whose cgroup exists (`podrun top`).
    WithCgroup,
    /// Running ones only (the kubelet reports no stats of a container that is not running).
    Running,
}

/// Reads the cgroup of each container of `pods` once.
pub fn read(pods: &[PodRecord], which: Containers) -> Vec<ContainerReading> {
    let mut out = Vec::new();
    for r in pods {
        let Some(Ok(pod)) = super::pod_cgroup(r) else {
            continue;
        };
        for c in &r.containers {
            if which == Containers::Running && !matches!(c.state, ContainerState::Running { .. }) {
                continue;
            }
            if let Ok(stats) = pod.child(&c.name).and_then(|ch| ch.stats()) {
                out.push(ContainerReading {
                    namespace: r.plan.namespace.clone(),
                    pod: r.plan.name.clone(),
                    container: c.name.clone(),
                    container_id: c.id.clone(),
                    cpu: CpuReading::now(stats.cpu_usage_usec),
                    stats,
                });
            }
        }
    }
    out
}

/// A container's latest reading and its CPU rate (None: no earlier reading of the same run).
#[derive(Debug, Clone)]
pub struct ContainerUsage {
    pub reading: ContainerReading,
    pub cpu: Option<CpuRate>,
}

/// Two readings of `pods`' containers `window` apart (`podrun top`).
pub fn sample(pods: &[PodRecord], window: Duration) -> Vec<ContainerUsage> {
    let first = read(pods, Containers::WithCgroup);
    std::thread::sleep(window);
    read(pods, Containers::WithCgroup)
        .into_iter()
        .map(|reading| {
            let cpu = first
                .iter()
                .find(|f| f.key() == reading.key())
                .and_then(|f| CpuRate::between(&f.cpu, &reading.cpu));
            ContainerUsage { reading, cpu }
        })
        .collect()
}

/// The node's figures: CPU of the root cgroup; memory working set of the root cgroup where it
/// has one (v1: usage minus `total_inactive_file`, what cAdvisor reports for the node there),
/// else MemTotal - MemAvailable of `/proc/meminfo` (v2, whose root has no memory.current).
#[derive(Debug, Clone, Copy)]
pub struct NodeReading {
    pub cpu: CpuReading,
    pub memory_working_set: u64,
}

pub fn read_node(cgroup_root: &Path) -> Option<NodeReading> {
    let usage = Hierarchy::detect(cgroup_root).ok()?.node_usage().ok()?;
    let memory_working_set = match usage.memory_working_set {
        Some(m) => m,
        None => meminfo_used()?,
    };
    Some(NodeReading {
        cpu: CpuReading::now(usage.cpu_usage_usec),
        memory_working_set,
    })
}

/// MemTotal - MemAvailable, in bytes.
fn meminfo_used() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
            .map(|kib| kib * 1024)
    };
    Some(field("MemTotal:")?.saturating_sub(field("MemAvailable:")?))
}

/// The last two CPU readings per counter (a container run, or the node), so that repeated
/// requests report the rate between them without waiting, as metrics-server reports the rate
/// between its last two scrapes. A request with no usable earlier reading (the first one, one
/// after [`Sampler::STALE`], or a counter that went back) reads again after
/// [`Sampler::WINDOW`]; only that request waits (the API serves requests on tokio's blocking
/// pool, and the lock is not held while it sleeps).
#[derive(Default)]
pub struct Sampler {
    last: Mutex<HashMap<String, Pair>>,
}

#[derive(Clone, Copy)]
struct Pair {
    previous: Option<CpuReading>,
    latest: CpuReading,
}

impl Sampler {
    /// The shortest window a rate is taken over (and the wait of a request without one).
    pub const WINDOW: Duration = Duration::from_millis(200);
    /// Readings older than this are not a window's start (a rate over minutes says little of now).
    pub const STALE: Duration = Duration::from_secs(60);

    pub fn new() -> Self {
        Self::default()
    }

    /// Rates for what `read` returns (keyed), reading again after [`Sampler::WINDOW`] for
    /// the keys with nothing recent to start from. Items without a rate after that are left out.
    pub fn rates<T>(&self, read: impl Fn() -> Vec<(String, T, CpuReading)>) -> Vec<(T, CpuRate)> {
        let now = read();
        let mut done: Vec<(String, T, CpuRate)> = Vec::new();
        let mut pending: Vec<String> = Vec::new();
        {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            last.retain(|_, p| p.latest.at.elapsed() < Self::STALE);
            for (key, item, reading) in now {
                let pair = last.get(&key).copied();
                let rate = pair.and_then(|p| {
                    let since = reading.at.saturating_duration_since(p.latest.at);
                    if since >= Self::WINDOW {
                        let rate = CpuRate::between(&p.latest, &reading)?;
                        last.insert(
                            key.clone(),
                            Pair {
                                previous: Some(p.latest),
                                latest: reading,
                            },
                        );
                        Some(rate)
                    } else {
                        // Asked again within the window: the last pair's rate.
                        p.previous
                            .and_then(|prev| CpuRate::between(&prev, &p.latest))
                            .filter(|r| r.window >= Self::WINDOW)
                    }
                });
                match rate {
                    Some(rate) => done.push((key, item, rate)),
                    None => {
                        last.insert(
                            key.clone(),
                            Pair {
                                previous: None,
                                latest: reading,
                            },
                        );
                        pending.push(key);
                    }
                }
            }
        }
        if !pending.is_empty() {
            std::thread::sleep(Self::WINDOW);
            let again = read();
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            for (key, item, reading) in again {
                if !pending.contains(&key) {
                    continue;
                }
                let Some(p) = last.get(&key).copied() else {
                    continue;
                };
                if let Some(rate) = CpuRate::between(&p.latest, &reading) {
                    last.insert(
                        key.clone(),
                        Pair {
                            previous: Some(p.latest),
                            latest: reading,
                        },
                    );
                    done.push((key, item, rate));
                }
            }
        }
        done.into_iter()
            .map(|(_, item, rate)| (item, rate))
            .collect()
    }

    /// The running containers of `pods` with their CPU rates.
    pub fn containers(&self, pods: &[PodRecord]) -> Vec<(ContainerReading, CpuRate)> {
        self.rates(|| {
            read(pods, Containers::Running)
                .into_iter()
                .map(|r| (r.key(), r.clone(), r.cpu))
                .collect()
        })
    }

    /// The node's CPU rate and memory working set.
    pub fn node(&self, cgroup_root: &Path) -> Option<(NodeReading, CpuRate)> {
        self.rates(|| {
            read_node(cgroup_root)
                .map(|n| ("node".to_owned(), n, n.cpu))
                .into_iter()
                .collect()
        })
        .pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64, usage_usec: u64) -> CpuReading {
        CpuReading {
            at: base + Duration::from_millis(ms),
            time: Utc::now(),
            usage_usec,
        }
    }

    #[test]
    fn rate_between_readings() {
        let t = Instant::now();
        let r = CpuRate::between(&at(t, 0, 1_000), &at(t, 500, 101_000)).unwrap();
        assert_eq!(r.nanocores, 200_000_000);
        assert_eq!(r.window, Duration::from_millis(500));
        assert!((r.cores() - 0.2).abs() < 1e-9);
        // A counter that went back (a new cgroup) or no time: no rate.
        assert!(CpuRate::between(&at(t, 0, 5), &at(t, 10, 4)).is_none());
        assert!(CpuRate::between(&at(t, 10, 5), &at(t, 10, 6)).is_none());
    }

    #[test]
    fn sampler_reuses_its_last_reading() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let s = Sampler::new();
        let usage = AtomicU64::new(0);
        let reads = AtomicU64::new(0);
        let read = || {
            reads.fetch_add(1, Ordering::SeqCst);
            // 100 ms of CPU time per read.
            let u = usage.fetch_add(100_000, Ordering::SeqCst);
            vec![("c".to_owned(), (), CpuReading::now(u))]
        };
        let t0 = Instant::now();
        let first = s.rates(read);
        assert_eq!(first.len(), 1);
        assert!(t0.elapsed() >= Sampler::WINDOW, "the first request waits");
        assert_eq!(reads.load(Ordering::SeqCst), 2);
        // Right after: the same pair, no wait and no second read.
        let again = s.rates(read);
        assert_eq!(again[0].1.window, first[0].1.window);
        assert_eq!(reads.load(Ordering::SeqCst), 3);
        std::thread::sleep(Sampler::WINDOW);
        let t1 = Instant::now();
        let later = s.rates(read);
        assert!(
            t1.elapsed() < Sampler::WINDOW,
            "no wait with a reading to start from"
        );
        assert!(later[0].1.window >= Sampler::WINDOW);
        assert_eq!(reads.load(Ordering::SeqCst), 4);
    }
}
