//! The prober: one thread, one tokio current-thread runtime (its timer wheel drives every
//! probe), a worker task per probe of a watched container run.
//!
//! The supervisor's event loop talks to it with commands on an unbounded channel (it never
//! blocks on the prober) and hears back through a queue of [`Report`]s plus one byte written
//! to its `wake` socket per report (non-blocking: a full socket already means "look").
//!
//! A worker follows the kubelet's `worker.go` (`doProbe`):
//! - the first attempt at watch time, then one per period on a fixed-rate clock (missed ticks
//!   are skipped, so a slow attempt delays the next one but the phase does not drift);
//!   attempts of one worker never overlap, each bounded by `timeoutSeconds`;
//! - no attempt before `started + initialDelaySeconds`;
//! - the initial results: startup unknown, liveness success, readiness failure (the
//!   supervisor assumes them at watch time: nothing is reported for them);
//! - while a startup probe has not succeeded, liveness and readiness attempts are skipped;
//!   once it succeeds its worker stops and the two others probe at once;
//! - the thresholds: a result is set after `failureThreshold` failures or `successThreshold`
//!   successes in a row, and a change is reported (`changed`);
//! - a liveness or startup failure set puts the worker on hold (it ends) until the container
//!   is watched again (its next run).

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::MissedTickBehavior;

use super::{ContainerProbes, Handler, Kind, Outcome, Probe, Target, check};

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

/// How much longer than its timeout an attempt may take before the worker gives up on it.
const ATTEMPT_GRACE: Duration = Duration::from_secs(1);

/// The prober thread's name (the benchmark finds the thread by it).
pub const THREAD_NAME: &str = "podrun-prober";

pub struct Prober {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

enum Command {
    Watch {
        container: usize,
        container_id: String,
        probes: Box<ContainerProbes>,
        target: Target,
        started: Instant,
    },
    Forget(usize),
    Hook {
        token: u64,
        handler: Handler,
        target: Target,
        timeout: Duration,
    },
}

/// What the thread hands back.
struct Shared {
    reports: Mutex<Vec<Report>>,
    wake: UnixStream,
}

impl Shared {
    fn report(&self, report: Report) {
        self.reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(report);
        // Non-blocking: a full socket (EAGAIN) already holds a wake-up.
        let _ = (&self.wake).write(&[1]);
    }
}

impl Prober {
    /// Start the prober's thread; every report also writes one byte to `wake`.
    pub fn start(wake: UnixStream) -> io::Result<Prober> {
        wake.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            reports: Mutex::new(Vec::new()),
            wake,
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (commands, rx) = mpsc::unbounded_channel();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                runtime.block_on(serve(rx, thread_shared));
                // Dropping the runtime cancels every worker and hook (their exec children are
                // killed on drop).
                drop(runtime);
            })?;
        Ok(Prober {
            commands,
            shared,
            thread: Some(thread),
        })
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
        let _ = self.commands.send(Command::Watch {
            container,
            container_id,
            probes: Box::new(probes),
            target,
            started,
        });
    }

    /// Stop probing container `container` (its run ended).
    pub fn forget(&self, container: usize) {
        let _ = self.commands.send(Command::Forget(container));
    }

    /// Run `handler` once with `timeout`; the end comes back as [`Report::Hook`] `token`.
    pub fn run_hook(&self, token: u64, handler: Handler, target: Target, timeout: Duration) {
        let _ = self.commands.send(Command::Hook {
            token,
            handler,
            target,
            timeout,
        });
    }

    /// The reports since the last call.
    pub fn take_reports(&self) -> Vec<Report> {
        std::mem::take(
            &mut *self
                .shared
                .reports
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop.
        let (closed, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.commands, closed));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread's loop: commands until the channel closes.
async fn serve(mut rx: mpsc::UnboundedReceiver<Command>, shared: Arc<Shared>) {
    let mut watched: HashMap<usize, Vec<AbortHandle>> = HashMap::new();
    while let Some(command) = rx.recv().await {
        match command {
            Command::Watch {
                container,
                container_id,
                probes,
                target,
                started,
            } => {
                let tasks =
                    spawn_workers(container, container_id, *probes, target, started, &shared);
                for old in watched.insert(container, tasks).unwrap_or_default() {
                    old.abort();
                }
            }
            Command::Forget(container) => {
                for task in watched.remove(&container).unwrap_or_default() {
                    task.abort();
                }
            }
            Command::Hook {
                token,
                handler,
                target,
                timeout,
            } => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let outcome = check(&handler, &target, timeout).await;
                    shared.report(Report::Hook { token, outcome });
                });
            }
        }
    }
}

/// One task per probe of the run; the startup worker opens the gate of the two others.
fn spawn_workers(
    container: usize,
    container_id: String,
    probes: ContainerProbes,
    target: Target,
    started: Instant,
    shared: &Arc<Shared>,
) -> Vec<AbortHandle> {
    let (gate_tx, gate_rx) = watch::channel(probes.startup.is_none());
    let mut gate_tx = Some(gate_tx);
    let mut tasks = Vec::new();
    for kind in [Kind::Startup, Kind::Liveness, Kind::Readiness] {
        let Some(probe) = probes.get(kind).cloned() else {
            continue;
        };
        let worker = Worker {
            container,
            container_id: container_id.clone(),
            kind,
            probe,
            target: target.clone(),
            started,
            result: initial_result(kind),
            last: None,
            run: 0,
            shared: shared.clone(),
        };
        let gate = match kind {
            Kind::Startup => Gate::Opens(gate_tx.take().expect("one startup probe")),
            _ => Gate::Waits(gate_rx.clone()),
        };
        tasks.push(tokio::spawn(worker.run(gate)).abort_handle());
    }
    tasks
}

/// The kubelet's initial results (`worker.go` `initialValue`).
fn initial_result(kind: Kind) -> Option<bool> {
    match kind {
        Kind::Startup => None,
        Kind::Liveness => Some(true),
        Kind::Readiness => Some(false),
    }
}

/// The startup gate, from a worker's side: the startup worker opens it, the others wait.
enum Gate {
    Opens(watch::Sender<bool>),
    Waits(watch::Receiver<bool>),
}

struct Worker {
    container: usize,
    container_id: String,
    kind: Kind,
    probe: Probe,
    target: Target,
    started: Instant,
    /// The probe's result (None: unknown).
    result: Option<bool>,
    /// The last attempt's result and how many in a row had it (`lastResult`, `resultRun`).
    last: Option<bool>,
    run: u32,
    shared: Arc<Shared>,
}

/// What an attempt leaves the worker to do.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Continue,
    /// On hold (a liveness or startup failure set) or done (startup succeeded).
    Stop,
}

impl Worker {
    async fn run(mut self, mut gate: Gate) {
        let period = Duration::from_secs(u64::from(self.probe.period_seconds.max(1)));
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            let opened = match &mut gate {
                Gate::Waits(rx) if !*rx.borrow() => {
                    tokio::select! {
                        _ = ticker.tick() => false,
                        changed = rx.changed() => match changed {
                            Ok(()) => *rx.borrow(),
                            // The startup worker went without success (on hold): nothing
                            // more to probe for this run.
                            Err(_) => return,
                        },
                    }
                }
                _ => {
                    ticker.tick().await;
                    false
                }
            };
            if let Gate::Waits(rx) = &gate
                && !*rx.borrow()
            {
                continue; // startup has not succeeded: skipped
            }
            if self.attempt().await == Next::Stop {
                if let Gate::Opens(tx) = &gate
                    && self.result == Some(true)
                {
                    let _ = tx.send(true);
                    // Keep the gate open for the others after this worker ends.
                    std::future::pending::<()>().await;
                }
                return;
            }
            if opened {
                // Probed at once when the gate opened: the next attempt a period later.
                ticker.reset();
            }
        }
    }

    /// One tick of `doProbe`.
    async fn attempt(&mut self) -> Next {
        let delay = Duration::from_secs(u64::from(self.probe.initial_delay_seconds));
        if Instant::now() < self.started + delay {
            return Next::Continue;
        }
        let timeout = Duration::from_secs(u64::from(self.probe.timeout_seconds.max(1)));
        // `check` keeps to its timeout (with the kubelet's message); the grace is a bound for
        // a handler that has none of its own (a `sleep`, which is no probe handler).
        let outcome = tokio::time::timeout(
            timeout + ATTEMPT_GRACE,
            check(&self.probe.handler, &self.target, timeout),
        )
        .await
        .unwrap_or_else(|_| {
            Outcome::Failure(format!(
                "probe did not complete within {}s",
                timeout.as_secs()
            ))
        });
        let success = outcome.is_success();
        let changed = self.record(success);
        if !success || changed.is_some() {
            self.shared.report(Report::Probe {
                container: self.container,
                container_id: self.container_id.clone(),
                kind: self.kind,
                outcome,
                changed,
            });
        }
        match (self.kind, self.result) {
            (Kind::Startup, Some(true)) => Next::Stop,
            (Kind::Liveness | Kind::Startup, Some(false)) if changed.is_some() => Next::Stop,
            _ => Next::Continue,
        }
    }

    /// The thresholds: the new result when this attempt changes it.
    fn record(&mut self, success: bool) -> Option<bool> {
        if self.last == Some(success) {
            self.run += 1;
        } else {
            self.last = Some(success);
            self.run = 1;
        }
        let threshold = if success {
            self.probe.success_threshold
        } else {
            self.probe.failure_threshold
        };
        if self.run < threshold.max(1) {
            return None;
        }
        if self.result == Some(success) {
            return None;
        }
        self.result = Some(success);
        Some(success)
    }
}

#[cfg(test)]
mod tests;
