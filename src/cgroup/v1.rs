//! cgroup v1 backend for hybrid hosts (`Documentation/admin-guide/cgroup-v1/`): one directory per
//! hierarchy. `cpu.cfs_period_us`, `cpu.cfs_quota_us`, `cpu.shares`, `memory.limit_in_bytes`,
//! `memory.soft_limit_in_bytes`; stats from `cpuacct.usage`, `cpu.stat`, `memory.usage_in_bytes`,
//! `memory.oom_control`.

use std::path::Path;

use super::stats::{read_flat_keyed, read_single};
use super::{CgroupError, CgroupStats, Dir, Limits, write_file};

pub const CPU_CFS_PERIOD: &str = "cpu.cfs_period_us";
pub const CPU_CFS_QUOTA: &str = "cpu.cfs_quota_us";
pub const CPU_SHARES: &str = "cpu.shares";
pub const CPU_STAT: &str = "cpu.stat";
pub const CPUACCT_USAGE: &str = "cpuacct.usage";
pub const MEMORY_LIMIT: &str = "memory.limit_in_bytes";
pub const MEMORY_SOFT_LIMIT: &str = "memory.soft_limit_in_bytes";
pub const MEMORY_USAGE: &str = "memory.usage_in_bytes";
pub const MEMORY_OOM_CONTROL: &str = "memory.oom_control";
pub const MEMORY_STAT: &str = "memory.stat";

/// v1 reports "unlimited" as PAGE_COUNTER_MAX × page size (9223372036854771712 on x86-64).
const V1_UNLIMITED_THRESHOLD: u64 = 1 << 62;

/// Writes `limits` into the controllers `dir`'s hierarchy carries. The period goes first: the
/// kernel validates the quota against the current period.
pub(super) fn apply(dir: &Dir, limits: &Limits) -> Result<(), CgroupError> {
    if dir.has("cpu") {
        write_file(
            &dir.path.join(CPU_CFS_PERIOD),
            &limits.cpu_period_us.to_string(),
        )?;
        let quota = limits
            .cpu_quota_us
            .map_or_else(|| "-1".to_owned(), |q| q.to_string());
        write_file(&dir.path.join(CPU_CFS_QUOTA), &quota)?;
        write_file(&dir.path.join(CPU_SHARES), &limits.cpu_shares.to_string())?;
    }
    if dir.has("memory") {
        if let Some(max) = limits.memory_max {
            write_file(&dir.path.join(MEMORY_LIMIT), &max.to_string())?;
        }
        if let Some(low) = limits.memory_low {
            write_file(&dir.path.join(MEMORY_SOFT_LIMIT), &low.to_string())?;
        }
    }
    Ok(())
}

pub(super) fn stats(dirs: &[Dir]) -> Result<CgroupStats, CgroupError> {
    let mut s = CgroupStats::default();
    for dir in dirs {
        if dir.has("cpuacct") {
            s.cpu_usage_usec = read_single(&dir.path.join(CPUACCT_USAGE))?.unwrap_or(0) / 1000;
        }
        if dir.has("cpu") {
            let cpu = read_flat_keyed(&dir.path.join(CPU_STAT))?;
            let get = |k: &str| cpu.get(k).copied().unwrap_or(0);
            s.nr_periods = get("nr_periods");
            s.nr_throttled = get("nr_throttled");
            s.throttled_usec = get("throttled_time") / 1000;
        }
        if dir.has("memory") {
            s.memory_current = read_single(&dir.path.join(MEMORY_USAGE))?.unwrap_or(0);
            s.memory_max =
                read_single(&dir.path.join(MEMORY_LIMIT))?.filter(|&m| m < V1_UNLIMITED_THRESHOLD);
            s.oom_kills = oom_kills(&dir.path)?;
            s.memory_inactive_file = inactive_file(&dir.path)?;
        }
    }
    Ok(s)
}

/// `total_inactive_file` of `memory.stat` (this cgroup and its descendants, the key cAdvisor
/// reads on v1); 0 where the file is absent.
fn inactive_file(dir: &Path) -> Result<u64, CgroupError> {
    let path = dir.join(MEMORY_STAT);
    if !path.exists() {
        return Ok(0);
    }
    Ok(read_flat_keyed(&path)?
        .get("total_inactive_file")
        .copied()
        .unwrap_or(0))
}

/// The root cgroup's figures (`dirs` are the hierarchies' roots).
pub(super) fn node_usage(dirs: &[Dir]) -> Result<super::NodeUsage, CgroupError> {
    let mut u = super::NodeUsage {
        cpu_usage_usec: 0,
        memory_working_set: None,
    };
    for dir in dirs {
        if dir.has("cpuacct") {
            u.cpu_usage_usec = read_single(&dir.path.join(CPUACCT_USAGE))?.unwrap_or(0) / 1000;
        }
        if dir.has("memory") {
            let usage = read_single(&dir.path.join(MEMORY_USAGE))?.unwrap_or(0);
            u.memory_working_set = Some(usage.saturating_sub(inactive_file(&dir.path)?));
        }
    }
    Ok(u)
}

/// The `oom_kill` line of `memory.oom_control` (Linux ≥ 4.13).
pub(super) fn oom_kills(dir: &Path) -> Result<u64, CgroupError> {
    let m = read_flat_keyed(&dir.join(MEMORY_OOM_CONTROL))?;
    Ok(m.get("oom_kill").copied().unwrap_or(0))
}
