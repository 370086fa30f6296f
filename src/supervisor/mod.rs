//! The per-pod supervisor (podrun's containerd-shim / conmon): started detached by `apply`, it
//! owns the pause and the containers as its children, records their state, restarts them by the
//! pod's restartPolicy, re-creates the sandbox when the pause dies, and tears everything down
//! when `delete` asks (SIGTERM after writing the deletion request into the record).
//!
//! Two halves: [`policy`] is the kubelet's rules as a state machine over the record (events
//! in, kernel actions out, unit-tested without root); the rest carries the actions out
//! ([`lifecycle`]: sandbox, reaping, stopping; [`containers`]: a container's run). One loop
//! ([`Supervisor::event_loop`]) waits on a signal pipe (SIGCHLD, SIGTERM) and the policy's
//! next timer. Threads are short-lived: the sandbox's (pause, netns pin, wiring), joined
//! before any container runs, and one per init fork at launch (scoped). It is a child subreaper, so
//! whatever a container forks and orphans comes back to it and can be reaped and killed.

mod backoff;
mod cgroups;
mod containers;
mod images;
mod lifecycle;
mod policy;
mod probes;
pub mod report;
mod sandbox_steps;
mod staging;
mod status;
pub mod teardown;
mod termination;
mod update;
mod volumes;

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use policy::{Action, Event, Kernel as _, Machine};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use signal_hook::consts::{SIGCHLD, SIGINT, SIGTERM};

use crate::sandbox::NamespaceFds;
use crate::state::{PodKey, PodRecord, ProcessId, Store};

pub use cgroups::pod_cgroup;
pub use lifecycle::planned_sandbox;

/// What `apply` records with a new pod besides its plan, so that its supervisor starts the
/// first sandbox and containers without saving the record first: the first sandbox (ids and
/// names of what it will create) and every container's bundle.
pub fn plan_first_start(store: &Store, record: &mut PodRecord) {
    record.sandbox = Some(planned_sandbox(record, 0));
    let pod = store.paths(&record.key());
    let all = 0..record.containers.len();
    containers::plan_bundles(&pod, record, all);
}
pub use status::{
    SUPERVISOR_LOST_MESSAGE, containers_ready, initialized, pod_phase, pod_ready, pod_restarts,
    pod_restarts_column, pod_status_word, ready, ready_counts, shown_state, started,
    supervisor_lost,
};

/// Environment variable scaling the kubelet's 10 s restart back-off and sandbox retry period
/// (tests use a short one).
pub const BACKOFF_BASE_ENV: &str = "PODRUN_BACKOFF_BASE_MS";

pub struct Supervisor {
    store: Store,
    record: PodRecord,
    pause_binary: PathBuf,
    ns: Option<NamespaceFds>,
    cgroup: Option<crate::cgroup::PodCgroup>,
    /// The kubelet's policy: timers, a sandbox being made, stopping.
    machine: Machine,
    /// Pod-level tmpfs mounts (memory emptyDirs, /dev/shm), detached: never on the host.
    pod_volumes: Vec<(String, OwnedFd)>,
    /// The init stage exec'd for every container.
    init_program: crate::config::InitProgram,
    /// Probes, hooks and kills in progress.
    probing: probes::Probing,
    /// The write end of the event loop's wake-up pipe (for the prober's reports).
    wake: Option<UnixStream>,
    /// Containers launched ahead, waiting at their gates.
    staged: staging::Staged,
}

/// A supervisor holds a few descriptors per container while it starts them all at once (the
/// init's channel, its log, cgroup files), so its soft RLIMIT_NOFILE is raised to the hard
/// limit, as containerd runs with `LimitNOFILE=infinity` (a login shell's 1024 would fail a pod
/// of ~200 containers with EMFILE); the containers inherit it, as containerd's do.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Entry point of `podrun __supervise`, and of a supervisor forked by `apply` (which passes
/// the record it just saved: `known`). `ready` gets the [`report::StartReport`].
pub fn run(
    store: Store,
    key: PodKey,
    known: Option<PodRecord>,
    pause_binary: PathBuf,
    ready: Option<OwnedFd>,
) -> i32 {
    let _ = nix::sys::prctl::set_child_subreaper(true);
    raise_open_files_limit();
    let record = match known.map(Ok).unwrap_or_else(|| store.load(&key)) {
        Ok(r) => r,
        Err(e) => {
            report(ready, Err(e.to_string()));
            return 1;
        }
    };
    let backoff_ms = std::env::var(BACKOFF_BASE_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut sup = Supervisor {
        store,
        record,
        pause_binary,
        ns: None,
        cgroup: None,
        machine: Machine::new(Duration::from_millis(backoff_ms)),
        pod_volumes: Vec::new(),
        init_program: crate::config::init_program(),
        probing: Default::default(),
        wake: None,
        staged: Default::default(),
    };
    let (wake_rx, wake_tx) = match UnixStream::pair() {
        Ok(p) => p,
        Err(e) => {
            report(ready, Err(format!("signal pipe: {e}")));
            return 1;
        }
    };
    let term = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [SIGCHLD, SIGTERM, SIGINT] {
        let tx = wake_tx.try_clone().expect("clone signal pipe");
        signal_hook::low_level::pipe::register(sig, tx).expect("register signal pipe");
    }
    for sig in [SIGTERM, SIGINT] {
        signal_hook::flag::register(sig, term.clone()).expect("register stop flag");
    }
    let update = update::register(&wake_tx);
    let _ = wake_rx.set_nonblocking(true);
    let _ = wake_tx.set_nonblocking(true);
    sup.wake = wake_tx.try_clone().ok();
    // SIGHUP/SIGPIPE must not take the shim down when its session or a reader goes away.
    let _ = ignore_hangup_and_pipe();

    sup.record.supervisor = Some(ProcessId::of(std::process::id() as i32));
    tracing::debug!("supervisor running");
    if let Err(e) = sup.start_pod() {
        let msg = e.to_string();
        tracing::error!(pod = %key, error = %msg, "start failed, rolling back");
        policy::dispatch(&mut sup, Event::FirstStartFailed);
        report(ready, Err(msg));
        return 1;
    }
    report(ready, Ok(status::start_summary(&sup.record)));
    tracing::debug!("pod started, reported");
    if sup.record.containers.first().is_some_and(|c| c.init) {
        sup.stage_after(0);
        sup.dispatch(Event::Sync); // a first sidecar that started lets the sequence go on
    }
    sup.event_loop(&wake_rx, &term, &update);
    0
}

fn ignore_hangup_and_pipe() -> std::io::Result<()> {
    // signal-hook's `register` with an empty action would still install a handler; a flag we
    // never read is the safe way to make SIGHUP and SIGPIPE harmless.
    let sink = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, sink.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGPIPE, sink)?;
    Ok(())
}

/// Tell apply how the start went ([`report::StartReport`]).
fn report(ready: Option<OwnedFd>, result: Result<String, String>) {
    if let Some(fd) = ready {
        match result {
            Ok(summary) => report::StartReport::Started(summary),
            Err(why) => report::StartReport::Failed(why),
        }
        .send(fd);
    }
}

impl Supervisor {
    fn save(&self) {
        if let Err(e) = self.store.save(&self.record) {
            tracing::error!(error = %e, "save pod record");
        }
    }

    fn event_loop(
        &mut self,
        wake: &UnixStream,
        term: &std::sync::atomic::AtomicBool,
        update: &std::sync::atomic::AtomicBool,
    ) {
        loop {
            if term.load(std::sync::atomic::Ordering::SeqCst) && !self.machine.stopping() {
                self.record.deletion = self.store.deletion_request(&self.record.key());
                self.dispatch(Event::StopRequested);
                return;
            }
            self.reap_children();
            self.take_update(update);
            self.take_probe_reports();
            self.fire_kill_deadlines(Instant::now());
            if self.machine.due(Instant::now()) {
                self.dispatch(Event::Tick);
            }
            let deadline = self.machine.next_deadline().into_iter();
            let deadline = deadline.chain(self.probing.next_deadline()).min();
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            wait_readable(wake, timeout);
        }
    }

    /// [`policy::dispatch`] `event`, and save the record once.
    fn dispatch(&mut self, event: Event) {
        if policy::dispatch(self, event) {
            self.save();
        }
    }

    /// Recompute the phase; stop the sandbox of a pod that has finished.
    fn settle(&mut self) {
        for action in self.machine.settle(&mut self.record) {
            self.perform(action);
        }
    }
}

impl policy::Kernel for Supervisor {
    fn state(&mut self) -> (&mut Machine, &mut PodRecord) {
        (&mut self.machine, &mut self.record)
    }

    /// Carry out one action of the policy; the events it answers with.
    fn perform(&mut self, action: Action) -> Vec<Event> {
        match action {
            Action::Start(i) => match self.start_or_release(i) {
                Ok(()) => vec![],
                Err(e) => vec![lifecycle::start_failed(&self.record, i, e)],
            },
            Action::StopContainers { grace } => {
                self.stop_containers(grace);
                vec![]
            }
            Action::KillContainers => {
                self.kill_all_containers();
                vec![]
            }
            Action::StopSandbox => {
                log_errors(&self.stop_sandbox(), "sandbox teardown");
                vec![]
            }
            Action::CreateSandbox { attempt, start } => {
                let events = self.create_sandbox(attempt, &start);
                if start == [0] && self.record.containers[0].init {
                    self.stage_after(0);
                }
                events
            }
            Action::Remove { grace } => {
                self.remove(grace);
                vec![]
            }
            Action::RemoveCgroups => {
                let mut errors = teardown::TeardownErrors::default();
                teardown::remove_cgroups(&self.record, &mut errors);
                log_errors(&errors, "remove cgroups");
                vec![]
            }
            Action::RemoveState => {
                let mut errors = teardown::TeardownErrors::default();
                teardown::remove_state_and_network(&self.store, &self.record, &mut errors);
                log_errors(&errors, "remove state");
                vec![]
            }
            Action::Kill { container, grace } => {
                self.kill(container, grace);
                vec![]
            }
            Action::Then(event) => vec![event],
        }
    }
}

fn log_errors(errors: &teardown::TeardownErrors, what: &str) {
    if !errors.0.is_empty() {
        tracing::error!(errors = %errors, "{what} left errors");
    }
}

/// Block until the signal pipe is readable or `timeout` passes, then drain it.
fn wait_readable(wake: &UnixStream, timeout: Option<Duration>) {
    let timeout = match timeout {
        None => PollTimeout::NONE,
        Some(d) => {
            PollTimeout::try_from(d.as_millis().min(60_000) as i32 + 1).unwrap_or(PollTimeout::MAX)
        }
    };
    let mut fds = [PollFd::new(wake.as_fd(), PollFlags::POLLIN)];
    let _ = poll(&mut fds, timeout);
    let mut buf = [0u8; 64];
    let mut reader = wake;
    while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
}
