//! Sandbox lifecycle inside the supervisor, the kernel side: create (pause, pin, IP, veth) and
//! launch containers in it, stop it, reap, stop containers, roll back a failed first start, and
//! the final delete. When each happens is [`super::policy`]'s.

use std::time::{Duration, Instant};

use chrono::Utc;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::Supervisor;
use super::policy::Event;
use super::sandbox_steps::SandboxStep;
use super::teardown::{self, TeardownErrors};
use crate::container;
use crate::net::{self, ipam::Ipam};
use crate::procfs;
use crate::sandbox::{self, NamespaceFds, SandboxError};
use crate::state::{ProcessId, SandboxRecord};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Sandbox(#[from] sandbox::SandboxError),
    #[error(transparent)]
    Net(#[from] net::NetError),
    #[error(transparent)]
    Container(#[from] crate::container::ContainerError),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroup::CgroupError),
    #[error("pause process exited during sandbox setup")]
    PauseDied,
    #[error("open pause log: {0}")]
    PauseLog(std::io::Error),
    #[error("volume {name}: {message}")]
    Volume { name: String, message: String },
    #[error("write the pod's /etc files: {0}")]
    PodFiles(std::io::Error),
    #[error("wire the pod network: {0}")]
    Wiring(std::io::Error),
    /// The image could not be made present (`ErrImagePull`, `ErrImageNeverPull`, ...).
    #[error("{message}")]
    ImagePull {
        reason: &'static str,
        message: String,
    },
}

/// The sandbox being made on its own thread ([`Supervisor::spawn_sandbox`]): the pause, then
/// (while this thread goes on launching the containers) the netns pin and the pod network.
struct SandboxStart {
    /// Returns the wired network; any error of the pause, the pin or the wiring.
    thread: std::thread::JoinHandle<Result<net::PodNetwork, StartError>>,
    /// The pipe the forked pause writes its pid on first of all.
    pid: Option<std::os::fd::OwnedFd>,
    /// The pause, once it runs in its namespaces (closed without it when it failed).
    started: std::sync::mpsc::Receiver<(std::process::Child, Result<NamespaceFds, SandboxError>)>,
    /// The sandbox's address for the wiring; dropped unsent, the thread stops before wiring.
    address: Option<std::sync::mpsc::Sender<std::net::Ipv4Addr>>,
}

impl SandboxStart {
    /// The pause's pid as soon as it is forked (before its namespaces are made); None if it
    /// is not reported or the fork failed.
    fn reported_pid(&mut self) -> Option<i32> {
        self.pid.take().and_then(crate::sys::read_reported_pid)
    }

    /// Stop the thread short of wiring (unless it has the address already) and wait for it:
    /// everything it made is in the record, for the rollback. Returns the thread's error.
    fn abandon(mut self) -> Option<StartError> {
        self.address = None;
        match self.thread.join() {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(StartError::Wiring(std::io::Error::other(
                "sandbox thread panicked",
            ))),
        }
    }
}

/// A container whose init stage was forked, or why it could not be.
pub(super) type Launched = (usize, Result<crate::container::LaunchedInit, StartError>);

/// Sandbox `attempt` of the pod as it is recorded before any of it is made: its id (the IPAM
/// owner of its address), netns pin and host veth name. `apply` records the first one with
/// the pod, so the supervisor starts without saving the record again.
pub fn planned_sandbox(record: &crate::state::PodRecord, attempt: u32) -> SandboxRecord {
    let key = record.key();
    SandboxRecord {
        id: random_id(),
        attempt,
        created_at: Utc::now(),
        pause: None,
        namespaces: None,
        netns_path: record.netns_dir.join(key.netns_name()),
        host_veth: net::host_veth_name(&key.to_string()),
        ip: None,
        network: None,
        ready: false,
    }
}

/// The pod network being wired on the sandbox's thread ([`Supervisor::spawn_sandbox`]).
pub(super) struct Wiring(std::thread::JoinHandle<Result<net::PodNetwork, StartError>>);

fn random_id() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Supervisor {
    /// First start: the sandbox, then every container. Any failure aborts the apply.
    pub(super) fn start_pod(&mut self) -> Result<(), StartError> {
        self.create_pod_cgroup()?;
        let all = super::policy::first_starts(&self.record);
        // The volumes and containers are prepared, and the containers' init stages build
        // their root filesystems, while the pause makes the pod's namespaces (the slowest
        // step) and the network is wired; no container process runs before the sandbox is
        // ready (their start gates).
        let (launched_inits, wiring) =
            self.create_sandbox_and_launch(0, &all, Self::prepare_volumes)?;
        let mut launched = Vec::new();
        for (i, result) in launched_inits {
            match result {
                Ok(init) => launched.push((i, init)),
                Err(e) => {
                    // Joined first, so the rollback finds (and removes) what it made; inits
                    // already launched end when their gates close unopened.
                    let _ = self.finish_wiring(wiring);
                    return Err(e);
                }
            }
        }
        self.finish_wiring(wiring)?;
        for (_, init) in &mut launched {
            init.open_gate();
        }
        for (i, init) in launched {
            self.release_container(i, init)?;
        }
        self.record.start_time.get_or_insert_with(Utc::now);
        self.settle();
        self.save();
        Ok(())
    }

    /// Make sandbox `attempt` (pause, namespaces, netns pin, IP, the pod's /etc files, the
    /// network) and launch containers `which` in it. A thread starts the pause and, as soon as
    /// it runs in its namespaces, hands them to the containers' inits, pins its netns and
    /// wires the network (veth, address, routes, masquerade). Meanwhile this thread reserves
    /// the address, writes the files, runs `before` (the pod's volumes, at first start),
    /// prepares the containers and, unless they join the pause's PID namespace, forks their
    /// init stages, which build their root filesystems at once and join the pod's namespaces
    /// when they arrive. Every object is in the record before it is created. The wiring is
    /// joined with [`Supervisor::finish_wiring`] before any container runs.
    pub(super) fn create_sandbox_and_launch(
        &mut self,
        attempt: u32,
        which: &[usize],
        before: impl FnOnce(&mut Self) -> Result<(), StartError>,
    ) -> Result<(Vec<Launched>, Wiring), StartError> {
        let planned = matches!(&self.record.sandbox,
            Some(sb) if sb.attempt == attempt && sb.pause.is_none() && sb.ip.is_none());
        if !planned {
            self.record_step(SandboxStep::Planned(planned_sandbox(&self.record, attempt)));
        }
        // Inits forked before the pod's namespaces exist get them from the sandbox thread,
        // on their channels, made now.
        let (mut senders, mut channels) = (Vec::new(), Vec::new());
        if !self.record.plan.share_process_namespace {
            for &i in which {
                let start_err = |source| container::ContainerError::Start {
                    container: self.record.containers[i].name.clone(),
                    what: "init channel".into(),
                    source,
                };
                let (ours, theirs) = container::channel::pair().map_err(start_err)?;
                senders.push(ours.namespace_sender().map_err(start_err)?);
                channels.push((ours, theirs));
            }
        }
        let mut sandbox = self.spawn_sandbox(senders)?;
        let early = self.reserve_address(attempt).and_then(|ip| {
            if let Some(address) = &sandbox.address {
                let _ = address.send(ip);
            }
            before(self)?;
            self.record_bundles(which.iter().copied());
            let mut prepared = self.prepare_containers(which);
            for ((_, p), channel) in prepared.iter_mut().zip(channels) {
                if let Ok(p) = p {
                    p.channel = Some(channel);
                }
            }
            // The pause's pid (in the containers' config.json) is known right after its fork.
            Ok(match sandbox.reported_pid() {
                Some(pid) => {
                    // Before more processes are started.
                    self.record_step(SandboxStep::Forked(ProcessId::of(pid)));
                    Ok(self.launch_prepared(prepared))
                }
                None => Err(prepared),
            })
        });
        // Inits launched early and dropped on an error below see their start gates (or, when
        // the pause failed, their namespace channels) close, and end. A pause that failed
        // comes first (the thread's error), then what failed here.
        let early = match (self.join_pause(&sandbox), early) {
            (Ok(true), Ok(early)) => early,
            (Ok(false), _) => return Err(sandbox.abandon().unwrap_or(StartError::PauseDied)),
            (Err(e), _) | (Ok(true), Err(e)) => {
                sandbox.abandon();
                return Err(e);
            }
        };
        let launched = match early {
            Ok(launched) => launched,
            Err(prepared) => self.launch_prepared(prepared),
        };
        Ok((launched, Wiring(sandbox.thread)))
    }

    /// Start the sandbox's thread: the pause (its cgroup, then fork, unshare, exec); then it
    /// hands the pod's namespaces to the inits (`inits`), pins the netns and, once it has the
    /// address, wires the pod network.
    fn spawn_sandbox(
        &self,
        inits: Vec<container::channel::NamespaceSender>,
    ) -> Result<SandboxStart, StartError> {
        let log_path = self.store.paths(&self.record.key()).pause_log();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(StartError::PauseLog)?;
        let cgroup = self.cgroup.clone();
        let binary = self.pause_binary.clone();
        let hostname = self.record.plan.hostname.clone();
        let shared_pid = self.record.plan.share_process_namespace;
        let sb = self.record.sandbox.as_ref().expect("planned by the caller");
        let (netns_path, host_veth) = (sb.netns_path.clone(), sb.host_veth.clone());
        let network = self.record.network_config.clone();
        let uid = self.record.plan.uid.clone();
        let host_ports = net::hostport::of_plan(&self.record.plan);
        // The pid a pause in a PID namespace of its own sees is 1: only asked otherwise (the
        // containers of such a pod are forked into that namespace, after the pause anyway).
        let (pid_rx, pid_tx) = if shared_pid {
            (None, None)
        } else {
            let (rx, tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| self.pause_error(e.into()))?;
            (Some(rx), Some(tx))
        };
        let (started_tx, started) = std::sync::mpsc::channel();
        let (address, address_rx) = std::sync::mpsc::channel();
        let pause_error = {
            let binary = binary.clone();
            move |source| StartError::Sandbox(sandbox::SandboxError::StartPause { binary, source })
        };
        let warmup = net::NodeWarmup::start(&network);
        let thread = std::thread::Builder::new()
            .name("sandbox".into())
            .spawn(move || {
                // Joined on every way out of this thread (its drop), before the rollback.
                let warmup = warmup;
                let placement = match &cgroup {
                    Some(pod) => Some(super::cgroups::placement_in(
                        pod,
                        "pause",
                        &crate::cgroup::Limits::best_effort(),
                        crate::cgroup::DeviceAccess::Default,
                    )?),
                    None => None,
                };
                let procs = placement.as_ref().map(|p| p.raw_fds()).unwrap_or_default();
                let report = pid_tx.as_ref().map(|fd| {
                    use std::os::fd::AsRawFd;
                    fd.as_raw_fd()
                });
                let pause =
                    sandbox::start_pause(&binary, &hostname, log, procs, shared_pid, report);
                drop(pid_tx);
                let pause = pause?;
                let pid = pause.id() as i32;
                let opened = if shared_pid {
                    NamespaceFds::open_with_pid(pid)
                } else {
                    NamespaceFds::open(pid)
                };
                let netns = opened.as_ref().ok().map(|ns| {
                    for init in inits {
                        init.send(ns);
                    }
                    ns.net().try_clone_to_owned()
                });
                // The supervisor records the pause and keeps the namespaces (or reports why
                // they could not be opened).
                started_tx
                    .send((pause, opened))
                    .map_err(|_| pause_error(std::io::Error::other("supervisor gone")))?;
                let netns = netns
                    .ok_or(StartError::PauseDied)?
                    .map_err(StartError::Wiring)?;
                // As containerd does, the netns is pinned before the network is wired.
                sandbox::pin_netns(pid, &netns_path)?;
                tracing::debug!(pid, "netns pinned");
                let ip = address_rx.recv().map_err(|_| StartError::PauseDied)?;
                warmup.finish();
                use std::os::fd::AsFd;
                let wired = net::attach_pod(&network, netns.as_fd(), &host_veth, ip)?;
                // The teardown of a failed sandbox removes them again (by the pod uid).
                net::hostport::add(&network, &uid, &wired, &host_ports)?;
                Ok(wired)
            })
            .map_err(|e| self.pause_error(e))?;
        Ok(SandboxStart {
            thread,
            pid: pid_rx,
            started,
            address: Some(address),
        })
    }

    fn pause_error(&self, source: std::io::Error) -> StartError {
        StartError::Sandbox(sandbox::SandboxError::StartPause {
            binary: self.pause_binary.clone(),
            source,
        })
    }

    /// Wait for the pause to run in its namespaces: record it and keep its namespaces. False when
    /// the sandbox thread ended without a pause (its error says why: [`SandboxStart::abandon`]).
    fn join_pause(&mut self, sandbox: &SandboxStart) -> Result<bool, StartError> {
        let Ok((pause, opened)) = sandbox.started.recv() else {
            return Ok(false);
        };
        let pid = pause.id() as i32;
        // Reaped by the supervisor's loop (waitpid(-1)), like the containers.
        drop(pause);
        tracing::debug!(pid, "pause started");
        self.record_step(SandboxStep::Forked(ProcessId::of(pid)));
        let ns = opened?;
        let inodes = ns.inodes().ok_or(StartError::PauseDied)?;
        self.record_step(SandboxStep::Namespaces(inodes));
        self.ns = Some(ns);
        Ok(true)
    }

    /// Reserve the sandbox's address and write the pod's /etc files (/etc/hosts with the pod
    /// IP, hostname, resolv.conf: once per sandbox, shared by its containers).
    fn reserve_address(&mut self, attempt: u32) -> Result<std::net::Ipv4Addr, StartError> {
        let sb = self
            .record
            .sandbox
            .as_ref()
            .expect("planned by create_sandbox");
        let ip = Ipam::new(&self.record.network_config).allocate(&sb.id, "eth0")?;
        self.record_step(SandboxStep::Addressed(ip));
        tracing::debug!(%ip, "address reserved");
        let dns_fallback = self.write_pod_files().map_err(StartError::PodFiles)?;
        if attempt == 0 && dns_fallback {
            self.record.event(
                "Warning",
                "MissingClusterDNS",
                crate::container::podfiles::MISSING_CLUSTER_DNS.to_owned(),
            );
        }
        Ok(ip)
    }

    /// Wait for the wiring and record the network; the sandbox is ready. The callers save once
    /// their containers are started too (the veth name and the pin path were in the record
    /// before they were created).
    pub(super) fn finish_wiring(&mut self, wiring: Wiring) -> Result<(), StartError> {
        let network = wiring
            .0
            .join()
            .map_err(|_| StartError::Wiring(std::io::Error::other("wiring thread panicked")))??;
        tracing::debug!(veth = %network.host_veth, "network attached");
        if self.record.sandbox.is_none() {
            return Err(StartError::PauseDied);
        }
        self.record_step(SandboxStep::Wired(network));
        Ok(())
    }

    /// Kill the pause and remove the sandbox network (containers must be stopped already).
    pub(super) fn stop_sandbox(&mut self) -> TeardownErrors {
        let mut errors = TeardownErrors::default();
        self.ns = None;
        self.drop_staged();
        if let Some(sb) = self.record.sandbox.clone() {
            let record = self.record.clone();
            teardown::remove_sandbox_after(&record, &sb, &mut errors, || {
                if let Some(p) = sb.pause
                    && p.is_alive()
                {
                    procfs::signal_if_same(p.pid, p.start_time, Signal::SIGTERM);
                    self.wait_for(&[p.pid], Duration::from_secs(2));
                }
            });
            self.reap_quietly();
            if let Some(sb) = self.record.sandbox.as_mut() {
                sb.ready = false;
            }
        }
        errors
    }

    /// [`Action::Remove`](super::policy::Action), for `delete`: graceful stop of every
    /// container, then the sandbox, then the state.
    pub(super) fn remove(&mut self, grace: Duration) {
        self.save();
        tracing::debug!(grace = grace.as_secs(), "delete requested");
        self.stop_containers(grace);
        tracing::debug!("containers stopped");
        // Held to the end: no apply can start a pod on the network while it is taken down.
        let lock = self.store.lock();
        let last_on_network = !teardown::network_used_by_others(&self.store, &self.record);
        let network = self.record.network_config.clone();
        let own_veth = self.record.sandbox.as_ref().map(|s| s.host_veth.clone());
        let errors = std::thread::scope(|s| {
            // The last pod takes the node network down (bridge ~40 ms, nft table ~15 ms of
            // kernel time) alongside its own sandbox, whose veth may still be a port for a
            // moment.
            let node_network = last_on_network
                .then(|| s.spawn(|| net::teardown_own_network(&network, own_veth.as_deref())));
            let mut errors = self.stop_sandbox();
            tracing::debug!("sandbox removed");
            teardown::remove_cgroups(&self.record, &mut errors);
            tracing::debug!("cgroups removed");
            match node_network.map(|t| t.join()) {
                None | Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => errors.0.push(format!("remove node network: {e}")),
                Some(Err(_)) => errors.0.push("remove node network: thread panicked".into()),
            }
            // Last: until the record goes, a supervisor killed midway (delete's deadline)
            // leaves delete's fallback a record to tear the rest down from.
            teardown::remove_state(&self.store, &self.record, &mut errors);
            tracing::debug!("state removed");
            errors
        });
        drop(lock);
        if !errors.0.is_empty() {
            tracing::error!(errors = %errors, "delete left errors");
        }
    }

    /// Reap every exited child; route container and pause exits to their handlers.
    pub(super) fn reap_children(&mut self) {
        loop {
            let Some((pid, code, signal)) = reap_one() else {
                return;
            };
            if self.machine.stopping() {
                self.mark_exited(pid, code, signal);
                continue;
            }
            let live_pause = self
                .record
                .sandbox
                .as_ref()
                .filter(|s| s.ready)
                .and_then(|s| s.pause)
                .map(|p| p.pid);
            if Some(pid) == live_pause {
                tracing::warn!(pod = %self.record.key(), "pause exited: sandbox changed");
                self.dispatch(Event::PauseDied);
            } else if let Some((container, exit)) = self.exit_of(pid, code, signal) {
                self.ended_run(container);
                self.dispatch(Event::Exited { container, exit });
            }
        }
    }

    /// Wait (reaping) until none of `pids` is alive, or `timeout`.
    pub(super) fn wait_for(&mut self, pids: &[i32], timeout: Duration) {
        use std::os::fd::AsFd;
        let deadline = Instant::now() + timeout;
        // A pidfd turns readable the moment its process exits: no polling interval to wait out.
        // Fired ones are dropped from the set; without any left, wait in 2 ms steps.
        let mut watched: Vec<std::os::fd::OwnedFd> = pids
            .iter()
            .filter_map(|&p| crate::sys::pidfd_open(p).ok())
            .collect();
        loop {
            self.reap_quietly();
            let left = deadline.saturating_duration_since(Instant::now());
            if pids.iter().all(|&p| !procfs::is_same_process(p, None)) || left.is_zero() {
                return;
            }
            if watched.is_empty() {
                std::thread::sleep(left.min(Duration::from_millis(2)));
                continue;
            }
            procfs::wait_for_exits(&mut watched, |fd| fd.as_fd(), deadline);
        }
    }

    /// Reap without reacting (used while stopping), recording exits of containers.
    fn reap_quietly(&mut self) {
        while let Some((pid, code, signal)) = reap_one() {
            self.mark_exited(pid, code, signal);
        }
    }

    /// [`Action::CreateSandbox`](super::policy::Action): make sandbox `attempt` and start
    /// containers `start` in it; the answers for the policy (a `StartFailed` per container that
    /// could not start, then `SandboxCreated` or `SandboxFailed`).
    pub(super) fn create_sandbox(&mut self, attempt: u32, start: &[usize]) -> Vec<Event> {
        let mut answers = Vec::new();
        let failed = |answers: &mut Vec<Event>, e: StartError| {
            tracing::error!(error = %e, "sandbox creation failed");
            answers.push(Event::SandboxFailed {
                message: e.to_string(),
            });
        };
        let (launched_inits, wiring) =
            match self.create_sandbox_and_launch(attempt, start, |_| Ok(())) {
                Ok(l) => l,
                Err(e) => {
                    failed(&mut answers, e);
                    return answers;
                }
            };
        let mut launched = Vec::new();
        for (i, result) in launched_inits {
            match result {
                Ok(init) => launched.push((i, init)),
                Err(e) => answers.push(start_failed(&self.record, i, e)),
            }
        }
        if let Err(e) = self.finish_wiring(wiring) {
            // The launched inits see their gates close and end.
            drop(launched);
            failed(&mut answers, e);
            return answers;
        }
        for (_, init) in &mut launched {
            init.open_gate();
        }
        for (i, init) in launched {
            if let Err(e) = self.release_container(i, init) {
                answers.push(start_failed(&self.record, i, e));
            }
        }
        answers.push(Event::SandboxCreated);
        answers
    }

    /// Send SIGTERM to every running container's process group, wait up to `grace`, then
    /// SIGKILL what is left, including anything orphaned to us (we are a subreaper).
    pub(super) fn stop_containers(&mut self, grace: Duration) {
        self.stop_probing();
        self.drop_staged();
        let deadline = Instant::now() + grace;
        for group in stop_order(&self.record) {
            let running: Vec<(usize, i32)> = group
                .into_iter()
                .filter_map(|i| {
                    let p = self.record.containers[i].process.filter(|p| p.is_alive())?;
                    Some((i, p.pid))
                })
                .collect();
            if running.is_empty() {
                continue;
            }
            let hooks_ran = self.run_pre_stop_hooks(&running, deadline);
            for &(i, pid) in &running {
                let name = self.record.containers[i].name.clone();
                self.record
                    .event("Normal", "Killing", format!("Stopping container {name}"));
                procfs::signal_group(pid, Signal::SIGTERM);
            }
            self.save();
            let mut left = deadline.saturating_duration_since(Instant::now());
            if hooks_ran {
                left = left.max(Duration::from_secs(2)); // the kubelet's floor after a hook
            }
            let pids: Vec<i32> = running.iter().map(|(_, p)| *p).collect();
            self.wait_for(&pids, left);
        }
        self.kill_all_containers();
    }

    /// The preStop hooks of `running` containers, at once, each bounded by `deadline`; a
    /// failed one is reported (`FailedPreStopHook`) and the stop goes on. True if any ran.
    fn run_pre_stop_hooks(&mut self, running: &[(usize, i32)], deadline: Instant) -> bool {
        let hooks: Vec<(usize, crate::probe::Handler, crate::probe::Target)> = running
            .iter()
            .filter_map(|&(i, _)| {
                let hook = self.record.plan.containers[i].lifecycle.pre_stop.clone()?;
                Some((i, hook, self.handler_target(i)))
            })
            .collect();
        if hooks.is_empty() {
            return false;
        }
        let timeout = deadline.saturating_duration_since(Instant::now());
        let outcomes: Vec<(usize, crate::probe::Outcome)> = std::thread::scope(|s| {
            let runs: Vec<_> = hooks
                .iter()
                .map(|(i, hook, target)| {
                    (
                        *i,
                        s.spawn(move || crate::probe::check_blocking(hook, target, timeout)),
                    )
                })
                .collect();
            runs.into_iter()
                .map(|(i, run)| {
                    let outcome = run.join().unwrap_or_else(|_| {
                        crate::probe::Outcome::Failure("the hook's thread panicked".into())
                    });
                    (i, outcome)
                })
                .collect()
        });
        for (i, outcome) in outcomes {
            if let crate::probe::Outcome::Failure(error) = outcome {
                let message =
                    super::probes::hook_failure_message(&self.record, "PreStop", i, &error);
                self.record.event("Warning", "FailedPreStopHook", message);
            }
        }
        true
    }

    /// SIGKILL every container process group and every other descendant but the pause.
    pub(super) fn kill_all_containers(&mut self) {
        self.drop_staged();
        let pause = self.record.pause_pid();
        for c in &self.record.containers {
            if let Some(p) = c.process {
                procfs::signal_group(p.pid, Signal::SIGKILL);
            }
        }
        let me = std::process::id() as i32;
        for _ in 0..50 {
            let rest = self.container_processes(me, pause);
            if rest.is_empty() {
                break;
            }
            for p in &rest {
                let _ = nix::sys::signal::kill(Pid::from_raw(*p), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(2));
            self.reap_quietly();
        }
        self.reap_quietly();
    }
}

impl Supervisor {
    /// Every live process of the pod but the pause: read from the containers' cgroups (a few
    /// small files) when the pod has them, else from a scan of /proc for our descendants.
    fn container_processes(&self, me: i32, pause: Option<i32>) -> Vec<i32> {
        if let Some(pod) = &self.cgroup {
            let from_cgroups: Option<Vec<i32>> = self
                .record
                .containers
                .iter()
                .map(|c| pod.child(&c.name).ok()?.pids().ok())
                .try_fold(Vec::new(), |mut all, pids| {
                    all.extend(pids?);
                    Some(all)
                });
            if let Some(pids) = from_cgroups {
                return pids;
            }
        }
        procfs::descendants(me)
            .into_iter()
            .filter(|p| Some(*p) != pause)
            .collect()
    }
}

/// Reap one exited child (pid, code, signal) that is not the prober's (its exit status is
/// kept for the prober: [`crate::probe::children`]); None when no child has exited.
fn reap_one() -> Option<(i32, i32, Option<i32>)> {
    loop {
        let mut reaping = crate::probe::children::reaping();
        let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(s) => s,
        };
        let Some((pid, code, signal)) = procfs::exit_of(status) else {
            continue;
        };
        if !reaping.claim(pid, code) {
            return Some((pid, code, signal));
        }
    }
}

/// The order a pod's containers stop in (the kubelet since sidecars): the app containers (and
/// any init container still running) together, then each sidecar alone, the last first.
fn stop_order(record: &crate::state::PodRecord) -> Vec<Vec<usize>> {
    let sidecar = |i: usize| record.plan.containers[i].sidecar;
    let n = record.containers.len();
    let mut groups = vec![(0..n).filter(|&i| !sidecar(i)).collect::<Vec<_>>()];
    groups.extend((0..n).rev().filter(|&i| sidecar(i)).map(|i| vec![i]));
    groups
}

/// A fresh CRI-style 64-hex id.
pub(super) fn new_id() -> String {
    random_id()
}

/// The policy's event for a start of container `i` that failed with `e`.
pub(super) fn start_failed(record: &crate::state::PodRecord, i: usize, e: StartError) -> Event {
    if let StartError::ImagePull { reason, message } = e {
        tracing::warn!(container = %record.containers[i].name, error = %message, "image pull failed");
        return Event::PullFailed {
            container: i,
            reason,
            message,
        };
    }
    let message = e.to_string();
    tracing::warn!(container = %record.containers[i].name, error = %message, "start failed");
    Event::StartFailed {
        container: i,
        message,
    }
}
