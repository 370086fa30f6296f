//! cgroup v2 backend (`Documentation/admin-guide/cgroup-v2.rst`): `cpu.max`, `cpu.weight`,
//! `memory.max`, `memory.low`, `memory.oom.group`, `cgroup.subtree_control`, `cgroup.kill`.

use std::path::{Component, Path};
use std::time::Duration;

use super::stats::{read_flat_keyed, read_single};
use super::{CgroupError, CgroupStats, Dir, Limits, kill_loop, make_dir, read_file, write_file};

pub const CGROUP_CONTROLLERS: &str = "cgroup.controllers";
pub const CGROUP_SUBTREE_CONTROL: &str = "cgroup.subtree_control";
pub const CGROUP_KILL: &str = "cgroup.kill";
pub const CGROUP_EVENTS: &str = "cgroup.events";
pub const CGROUP_CPU_MAX: &str = "cpu.max";
pub const CGROUP_CPU_WEIGHT: &str = "cpu.weight";
pub const CGROUP_CPU_STAT: &str = "cpu.stat";
pub const CGROUP_MEMORY_MAX: &str = "memory.max";
pub const CGROUP_MEMORY_LOW: &str = "memory.low";
pub const CGROUP_MEMORY_CURRENT: &str = "memory.current";
pub const CGROUP_MEMORY_EVENTS: &str = "memory.events";
pub const CGROUP_MEMORY_OOM_GROUP: &str = "memory.oom.group";
pub const CGROUP_MEMORY_STAT: &str = "memory.stat";

/// Controllers podrun delegates down to its pods; `cpu` and `memory` are required, `pids` is
/// enabled when the parent offers it.
const WANTED: [(&str, bool); 3] = [("cpu", true), ("memory", true), ("pids", false)];

/// Creates `<root>/<rel>` top-down, enabling the controllers in each level's
/// `cgroup.subtree_control` before descending (a controller can only be enabled in a child's
/// subtree once the parent enabled it). Also enables them in the last directory (the pod), so its
/// children (containers) get them. Already-enabled controllers are not rewritten.
pub(super) fn create_path(root: &Path, rel: &Path) -> Result<(), CgroupError> {
    let mut dir = root.to_owned();
    enable_controllers(&dir)?;
    for comp in rel.components() {
        if let Component::Normal(c) = comp {
            dir.push(c);
            make_dir(&dir)?;
            enable_controllers(&dir)?;
        }
    }
    Ok(())
}

fn enable_controllers(dir: &Path) -> Result<(), CgroupError> {
    let available = read_file(&dir.join(CGROUP_CONTROLLERS))?;
    let available: Vec<&str> = available.split_whitespace().collect();
    let enabled = read_file(&dir.join(CGROUP_SUBTREE_CONTROL))?;
    let enabled: Vec<&str> = enabled.split_whitespace().collect();
    let mut add = Vec::new();
    for (c, required) in WANTED {
        if enabled.contains(&c) {
            continue;
        }
        if !available.contains(&c) {
            if required {
                return Err(CgroupError::NoV2Controllers {
                    root: dir.to_owned(),
                    available: available.join(" "),
                    missing: c.to_owned(),
                });
            }
            continue;
        }
        add.push(format!("+{c}"));
    }
    if add.is_empty() {
        return Ok(());
    }
    write_file(&dir.join(CGROUP_SUBTREE_CONTROL), &add.join(" "))
}

/// The `cpu.max` line: `"<quota> <period>"`, or `"max <period>"` without a quota.
pub fn cpu_max_value(limits: &Limits) -> String {
    match limits.cpu_quota_us {
        Some(q) => format!("{q} {}", limits.cpu_period_us),
        None => format!("max {}", limits.cpu_period_us),
    }
}

/// Writes `limits` into `dir`; container cgroups (`oom_group`) also get `memory.oom.group=1`.
pub(super) fn apply(dir: &Path, limits: &Limits, oom_group: bool) -> Result<(), CgroupError> {
    write_file(&dir.join(CGROUP_CPU_MAX), &cpu_max_value(limits))?;
    if let Some(w) = limits.cpu_weight.filter(|&w| w > 0) {
        write_file(&dir.join(CGROUP_CPU_WEIGHT), &w.to_string())?;
    }
    // memory.low before memory.max: harmless either way, but mirrors runc's order.
    if let Some(low) = limits.memory_low {
        write_file(&dir.join(CGROUP_MEMORY_LOW), &low.to_string())?;
    }
    if let Some(max) = limits.memory_max {
        write_file(&dir.join(CGROUP_MEMORY_MAX), &max.to_string())?;
    }
    if oom_group {
        write_file(&dir.join(CGROUP_MEMORY_OOM_GROUP), "1")?;
    }
    Ok(())
}

pub(super) fn stats(dir: &Path) -> Result<CgroupStats, CgroupError> {
    let cpu = read_flat_keyed(&dir.join(CGROUP_CPU_STAT))?;
    let get = |k: &str| cpu.get(k).copied().unwrap_or(0);
    Ok(CgroupStats {
        cpu_usage_usec: get("usage_usec"),
        nr_periods: get("nr_periods"),
        nr_throttled: get("nr_throttled"),
        throttled_usec: get("throttled_usec"),
        memory_current: read_single(&dir.join(CGROUP_MEMORY_CURRENT))?.unwrap_or(0),
        memory_max: read_single(&dir.join(CGROUP_MEMORY_MAX))?,
        oom_kills: oom_kills(dir)?,
        memory_inactive_file: inactive_file(dir)?,
    })
}

/// `inactive_file` of `memory.stat` (v2 counts descendants in every key); 0 where the file is
/// absent.
fn inactive_file(dir: &Path) -> Result<u64, CgroupError> {
    let path = dir.join(CGROUP_MEMORY_STAT);
    if !path.exists() {
        return Ok(0);
    }
    Ok(read_flat_keyed(&path)?
        .get("inactive_file")
        .copied()
        .unwrap_or(0))
}

/// `usage_usec` of a cgroup's `cpu.stat` (the root's too: the kernel keeps one there).
pub(super) fn cpu_usage_usec(dir: &Path) -> Result<u64, CgroupError> {
    Ok(read_flat_keyed(&dir.join(CGROUP_CPU_STAT))?
        .get("usage_usec")
        .copied()
        .unwrap_or(0))
}

pub(super) fn oom_kills(dir: &Path) -> Result<u64, CgroupError> {
    let events = read_flat_keyed(&dir.join(CGROUP_MEMORY_EVENTS))?;
    Ok(events.get("oom_kill").copied().unwrap_or(0))
}

const POPULATED_WAIT: Duration = Duration::from_secs(5);

/// `cgroup.kill` (Linux ≥ 5.14) kills the whole subtree; then wait for `populated 0` in
/// `cgroup.events` so a following rmdir does not race the exiting processes.
/// Without `cgroup.kill`, fall back to SIGKILL-ing `cgroup.procs` in a loop.
pub(super) fn kill_all(dir: &Path) -> Result<(), CgroupError> {
    let kill_file = dir.join(CGROUP_KILL);
    if !dir.exists() {
        return Ok(());
    }
    if !kill_file.exists() {
        return kill_loop(&[Dir {
            path: dir.to_owned(),
            controllers: Vec::new(),
        }]);
    }
    write_file(&kill_file, "1")?;
    let start = std::time::Instant::now();
    loop {
        let events = read_flat_keyed(&dir.join(CGROUP_EVENTS))?;
        if events.get("populated").copied().unwrap_or(0) == 0 {
            return Ok(());
        }
        if start.elapsed() > POPULATED_WAIT {
            return Err(CgroupError::KillTimeout {
                path: dir.to_owned(),
                attempts: 1,
                pids: super::read_pids(dir).unwrap_or_default(),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
