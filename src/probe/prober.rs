//! The prober: one thread, one tokio current-thread runtime (its timer wheel drives every
//! probe), a worker task per probe of a watched container run. (Interface; see the module
//! header of `probe` for the rules.)

use std::io;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::{ContainerProbes, Handler, Kind, Outcome, Target};

/// What the prober tells the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A probe attempt of container `container`'s run `container_id` ended. Every failed
    /// attempt is reported (the kubelet records an `Unhealthy` event for each); a successful
    /// one only when it changes the result.
    Probe {
        container: usize,
        container_id: String,
        kind: Kind,
        outcome: Outcome,
        /// The probe's result changed with this attempt (thresholds crossed): the new result.
        changed: Option<bool>,
    },
    /// A handler started with [`Prober::run_hook`] ended.
    Hook { token: u64, outcome: Outcome },
}

pub struct Prober {
    _private: (),
}

impl Prober {
    /// Start the prober's thread; every report also writes one byte to `wake`.
    pub fn start(wake: UnixStream) -> io::Result<Prober> {
        let _ = wake;
        todo!()
    }

    /// Probe container `container`'s run `container_id`, started at `started`.
    pub fn watch(
        &self,
        container: usize,
        container_id: String,
        probes: ContainerProbes,
        target: Target,
        started: Instant,
    ) {
        let _ = (container, container_id, probes, target, started);
        todo!()
    }

    /// Stop probing container `container` (its run ended).
    pub fn forget(&self, container: usize) {
        let _ = container;
        todo!()
    }

    /// Run `handler` once with `timeout`; the end comes back as [`Report::Hook`] `token`.
    pub fn run_hook(&self, token: u64, handler: Handler, target: Target, timeout: Duration) {
        let _ = (token, handler, target, timeout);
        todo!()
    }

    /// The reports since the last call.
    pub fn take_reports(&self) -> Vec<Report> {
        todo!()
    }
}

#[allow(dead_code)]
fn _outcome(_: Outcome) {}
