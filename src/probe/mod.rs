//! Probes and lifecycle-hook handlers, as the kubelet's prober runs them
//! (`pkg/kubelet/prober/{prober.go,worker.go}`, `pkg/probe/{exec,http,tcp,grpc}`).
//!
//! Two halves:
//! - [`check`]: one attempt of a handler (exec in the container, httpGet, tcpSocket, grpc
//!   health) with its timeout, the kubelet's outcome and message;
//! - [`Prober`]: one thread per supervisor with a tokio current-thread runtime (its timer is
//!   the one timer wheel): a worker task per probe on a fixed-rate schedule, the kubelet's
//!   thresholds and startup gating, results handed to the supervisor's event loop through a
//!   queue and a wake-up byte. One-shot handler runs (lifecycle hooks) go through it too.
//!
//! The plan types ([`Probe`], [`Handler`]) are what `spec` makes of a manifest (defaults
//! filled, named ports resolved) and what the record keeps.

mod check;
pub mod children;
mod prober;
#[cfg(test)]
mod test_support;

pub use check::{check, check_blocking};
pub use prober::{Prober, Report, THREAD_NAME as PROBER_THREAD_NAME};

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which probe ([`Kind::Startup`] gates the two others).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    /// As the kubelet's messages spell it: `Liveness`, `Readiness`, `Startup`.
    pub fn title(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scheme {
    Http,
    Https,
}

/// What a probe or a hook does. Ports are numbers (a named port is resolved by the plan
/// against the container's `ports`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Handler {
    /// Run `command` in the container (its namespaces, cgroup, user); exit 0 is success.
    Exec { command: Vec<String> },
    /// GET `scheme://host:port/path`; 200 <= status < 400 is success. `host` empty: the pod IP.
    HttpGet {
        scheme: Scheme,
        host: Option<String>,
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
    /// A TCP connect to `host:port` (host empty: the pod IP).
    TcpSocket { host: Option<String>, port: u16 },
    /// grpc.health.v1.Health/Check on the pod IP's `port`, `service` (empty: the server).
    Grpc { port: u16, service: Option<String> },
    /// Hooks only (`lifecycle.*.sleep`): wait `seconds`.
    Sleep { seconds: u64 },
}

/// A probe of a container, the Kubernetes defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub handler: Handler,
    pub initial_delay_seconds: u32,
    /// Default 10.
    pub period_seconds: u32,
    /// Default 1.
    pub timeout_seconds: u32,
    /// Default 1 (must be 1 for liveness and startup).
    pub success_threshold: u32,
    /// Default 3.
    pub failure_threshold: u32,
    /// Probe-level `terminationGracePeriodSeconds` (liveness/startup kills).
    pub termination_grace_period_seconds: Option<i64>,
}

/// A container's probes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerProbes {
    pub startup: Option<Probe>,
    pub liveness: Option<Probe>,
    pub readiness: Option<Probe>,
}

impl ContainerProbes {
    pub fn is_empty(&self) -> bool {
        self.startup.is_none() && self.liveness.is_none() && self.readiness.is_none()
    }

    pub fn get(&self, kind: Kind) -> Option<&Probe> {
        match kind {
            Kind::Startup => self.startup.as_ref(),
            Kind::Liveness => self.liveness.as_ref(),
            Kind::Readiness => self.readiness.as_ref(),
        }
    }
}

/// Where a handler runs: network handlers go from the node (this process's network
/// namespace) to `pod_ip`; exec runs `exec_program exec_args... -- command...` (podrun's own
/// `exec` verb for the container), its stdout and stderr together being the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub pod_ip: Ipv4Addr,
    pub exec_program: PathBuf,
    /// e.g. `--root R exec -n NS POD -c CONTAINER --` (the command follows).
    pub exec_args: Vec<OsString>,
}

/// One attempt's outcome, with the kubelet's output text (the Unhealthy event's message
/// after "<Kind> probe failed: ", or a hook's failure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure(String),
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success)
    }
}

/// The default probe timeout (`timeoutSeconds`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
