//! The pod lifecycle as a library: what the verbs do, for any front end (the CLI today, a
//! controller or an API server next). [`apply`] validates objects, reserves their names and
//! starts one supervisor per pod, rolling back everything on any failure; [`delete`] asks
//! supervisors to stop and tears down from the record what a lost supervisor left; applied
//! again, an object is left `unchanged` or updated where Kubernetes allows it
//! ([`declarative`], [`update`]); the
//! status words and the pod cgroups are read from here too. Front ends parse and print only.
//!
//! Below it: `supervisor` (the per-pod process that owns a pod's kernel objects), `state` (the
//! records, [`crate::state::PodPaths`]), `diagnostics` (leftovers without a record).

pub mod apply;
pub mod declarative;
pub mod delete;
pub mod exec;
pub mod exec_child;
pub mod images;
pub mod logs;
pub mod metrics;
pub mod namespaces;
pub mod port_forward;
pub mod read;
pub mod rollout;
mod sort;
mod supervisor_start;
pub use supervisor_start::exec_supervisors;
pub mod update;
pub mod workloads;

pub use crate::supervisor::{
    SUPERVISOR_LOST_MESSAGE, containers_ready, initialized, pod_cgroup, pod_ready, pod_restarts,
    pod_restarts_column, pod_status_word, ready, ready_counts, shown_state, started,
    supervisor_lost,
};
pub use apply::{Created, apply};
pub use delete::{delete_pod, owned_by_deployment};

/// Why a pod operation failed; every message names the object.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    /// A declarative apply refused to change an existing object.
    #[error(transparent)]
    Refused(#[from] declarative::Refused),
    /// Refused or failed, with the API server's or the runtime's words.
    #[error("{0}")]
    Failed(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, PodError>;

fn failed(text: impl Into<String>) -> PodError {
    PodError::Failed(text.into())
}

/// The supervisor of pod `key` in this process (`podrun __supervise`): runs until the pod is
/// deleted; its exit code.
pub fn supervise(cfg: &crate::config::Config, key: crate::state::PodKey) -> i32 {
    let ready = std::env::var(supervisor_start::READY_FD_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .and_then(crate::sys::inherited_fd);
    crate::supervisor::run(cfg.store(), key, None, crate::config::pause_binary(), ready)
}
