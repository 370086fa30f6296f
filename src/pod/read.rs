//! Reading pods: the list (`get`), one pod, and where a container run's log is (`logs`).

use std::path::PathBuf;

use super::{Result, failed};
use crate::config::Config;
use crate::state::{ContainerState, PodKey, PodRecord};

/// The pods of `namespace` (every namespace: None), sorted by namespace and name.
pub fn list(cfg: &Config, namespace: Option<&str>) -> Vec<PodRecord> {
    cfg.store()
        .list()
        .into_iter()
        .filter(|r| namespace.is_none_or(|ns| r.plan.namespace == ns))
        .collect()
}

/// Pod `name` of `namespace`.
pub fn get(cfg: &Config, namespace: &str, name: &str) -> Result<PodRecord> {
    Ok(cfg.store().load(&PodKey::new(namespace, name))?)
}

/// Which run of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    Current,
    /// The run before the last restart (`logs -p`).
    Previous,
}

/// The log file of `run` of container `container` of pod `r`, and that run's number; the
/// API server's words when there is no previous run.
pub fn log_of(cfg: &Config, r: &PodRecord, container: &str, run: Run) -> Result<(PathBuf, u32)> {
    let c = r.container(container).ok_or_else(|| {
        failed(format!(
            "container {container} is not valid for pod {}",
            r.plan.name
        ))
    })?;
    let number = match run {
        Run::Current => c.restart_count,
        Run::Previous if c.restart_count == 0 => {
            return Err(failed(format!(
                "previous terminated container \"{container}\" in pod \"{}\" not found",
                r.plan.name
            )));
        }
        Run::Previous => c.restart_count - 1,
    };
    let path = cfg.store().paths(&r.key()).container_log(container, number);
    Ok((path, number))
}

/// Whether run `number` of container `container` of pod `key` is still the one running.
pub fn run_is_live(cfg: &Config, key: &PodKey, container: &str, number: u32) -> bool {
    cfg.store().load(key).ok().is_some_and(|r| {
        r.container(container).is_some_and(|c| {
            c.restart_count == number && matches!(c.state, ContainerState::Running { .. })
        })
    })
}
