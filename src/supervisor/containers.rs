//! Container runs inside the supervisor: start, exit, a start that failed, and restarts by the
//! kubelet's rule ([`super::backoff`]: the restart policy, then the CrashLoopBackOff; first
//! restart at once, then the delay doubles from 10 s up to 300 s, and resets after a run that
//! lasted 10 minutes), for every way a run ends.

use std::time::{Duration, Instant};

use chrono::Utc;
use nix::sys::signal::Signal;

use super::Supervisor;
use super::backoff::{self, Decision};
use super::lifecycle::StartError;
use std::os::fd::AsFd;

use crate::container::{self, image, oci, oci::RootfsLayout};
use crate::procfs;
use crate::spec::PodFacts;
use crate::state::{ContainerState, ProcessId};

/// A container run whose bundle directories, log and cgroup are ready; its config.json (which
/// names the pause's namespaces) is written and its init forked once the pause runs.
pub(super) struct PreparedContainer {
    index: usize,
    name: String,
    bundle: std::path::PathBuf,
    layout: RootfsLayout,
    log: std::fs::File,
    placement: Option<super::cgroups::Placement>,
    oom_score_adj: i32,
    process: crate::spec::ResolvedProcess,
    uid: u32,
    gid: u32,
    additional_gids: Vec<u32>,
    mounts: Vec<oci::VolumeMount>,
    capabilities: std::collections::BTreeSet<String>,
    oom_kills_at_start: u64,
    prepare_us: u64,
    /// The init's end of its namespace channel, when the sandbox thread sends the pod's
    /// namespaces (the init is forked before they exist); else they are sent at the fork.
    pub(super) namespaces: Option<std::os::unix::net::UnixStream>,
}

/// Container `index`'s preparation, or why it failed.
pub(super) type Prepared = (usize, Result<PreparedContainer, StartError>);

/// What every container's init needs from the supervisor once the pause runs.
struct LaunchContext<'a> {
    plan: &'a crate::spec::PodPlan,
    pod: &'a crate::state::PodPaths,
    pod_cgroup: Option<&'a std::path::Path>,
    pause_pid: i32,
    /// The pod's namespaces, once the pause made them (else they come through the
    /// containers' namespace channels).
    ns: Option<&'a crate::sandbox::NamespaceFds>,
    init: &'a crate::config::InitProgram,
    pod_volumes: &'a [(String, std::os::fd::BorrowedFd<'a>)],
}

impl LaunchContext<'_> {
    /// Write a prepared container's config.json and fork its init stage into its cgroup and
    /// the sandbox's namespaces.
    fn launch(&self, p: &PreparedContainer) -> Result<container::LaunchedInit, StartError> {
        let spec = &self.plan.containers[p.index];
        let setup_err = |message: String| {
            StartError::Container(container::ContainerError::Setup {
                container: p.name.clone(),
                message,
            })
        };
        let oci_spec = oci::build(&oci::SpecInput {
            pod: self.plan,
            container: spec,
            process: &p.process,
            image_reference: &spec.image,
            uid: p.uid,
            gid: p.gid,
            additional_gids: p.additional_gids.clone(),
            rootfs: &p.layout,
            pod_paths: self.pod,
            pause_pid: self.pause_pid,
            cgroups_path: self
                .pod_cgroup
                .map(|path| format!("{}/{}", path.display(), p.name)),
            oom_score_adj: p.oom_score_adj,
            volumes: &p.mounts,
            capabilities: &p.capabilities,
        });
        let config = crate::state::bundle_config(&p.bundle);
        oci_spec
            .save(&config)
            .map_err(|e| setup_err(format!("write {}: {e}", config.display())))?;
        let pid_ns = match self.ns.and_then(|ns| ns.pid.as_ref()) {
            Some(fd) => container::PidNamespace::Join(fd.as_fd()),
            None if self.plan.share_process_namespace => return Err(StartError::PauseDied),
            None => container::PidNamespace::New,
        };
        let namespaces = match (&p.namespaces, self.ns) {
            (Some(channel), _) => container::PodNamespaces::Later(channel.as_fd()),
            (None, Some(ns)) => container::PodNamespaces::Now(ns),
            (None, None) => return Err(StartError::PauseDied),
        };
        let log = p
            .log
            .try_clone()
            .map_err(|source| container::ContainerError::Start {
                container: p.name.clone(),
                what: "log".into(),
                source,
            })?;
        Ok(container::spawn_init(container::InitStart {
            container: &p.name,
            init: self.init,
            bundle: &p.bundle,
            namespaces,
            pid_ns,
            placement: container::Placement {
                cgroup_procs: p
                    .placement
                    .as_ref()
                    .map(|c| c.raw_fds())
                    .unwrap_or_default(),
                oom_score_adj: p.oom_score_adj,
            },
            log,
            pod_volumes: self.pod_volumes,
        })?)
    }
}

impl Supervisor {
    /// Start (or restart) container `i` in the current, wired sandbox.
    pub(super) fn start_container(&mut self, i: usize) -> Result<(), StartError> {
        let launched = self.launch_container(i)?;
        self.release_container(i, launched)
    }

    /// Write the bundle and overlay directories of containers `which` into the record, saved
    /// once, before any of them is made (launching each would save the record again).
    pub(super) fn record_bundles(&mut self, which: impl IntoIterator<Item = usize>) {
        let pod = self.store.paths(&self.record.key());
        if plan_bundles(&pod, &mut self.record, which) {
            self.save();
        }
    }

    /// Launch container `i` in the current sandbox: its bundle (fresh overlay upper dir,
    /// config.json), then the init stage, which builds the container's root filesystem while
    /// the caller goes on and waits at its start gate ([`Supervisor::release_container`]).
    pub(super) fn launch_container(
        &mut self,
        i: usize,
    ) -> Result<container::LaunchedInit, StartError> {
        if self.ns.is_none() {
            return Err(StartError::PauseDied);
        }
        let prepared = self.prepare_containers(&[i]);
        let (_, result) = self.launch_prepared(prepared).remove(0);
        result
    }

    /// Prepare containers `which` (bundle directories, log, cgroup); needs no sandbox yet, so
    /// it runs while the pause starts.
    pub(super) fn prepare_containers(&mut self, which: &[usize]) -> Vec<Prepared> {
        which
            .iter()
            .map(|&i| (i, self.prepare_container(i)))
            .collect()
    }

    /// Launch prepared containers in the current sandbox, whose pause is at least forked:
    /// every init stage at once, each written (config.json) and forked on a thread of its own
    /// (a fork returns only once the child exec'd, ~1-3 ms while other inits build their root
    /// filesystems), so the inits start close together. Inits launched before the pause made
    /// the pod's namespaces wait for them on their namespace channels.
    pub(super) fn launch_prepared(
        &mut self,
        prepared: Vec<Prepared>,
    ) -> Vec<super::lifecycle::Launched> {
        let Some(pause_pid) = self.record.pause_pid() else {
            return prepared
                .into_iter()
                .map(|(i, _)| (i, Err(StartError::PauseDied)))
                .collect();
        };
        let pod = self.store.paths(&self.record.key());
        let pod_volumes = self.pod_volume_fds();
        let pod_cgroup = self.cgroup.as_ref().map(|c| c.path());
        let context = LaunchContext {
            plan: &self.record.plan,
            pod: &pod,
            pod_cgroup: pod_cgroup.as_deref(),
            pause_pid,
            ns: self.ns.as_ref(),
            init: &self.init_program,
            pod_volumes: &pod_volumes,
        };
        let spawned: Vec<_> = std::thread::scope(|scope| {
            let forks: Vec<_> = prepared
                .into_iter()
                .map(|(i, p)| {
                    let context = &context;
                    let fork = p.map(|p| {
                        scope.spawn(move || {
                            let t0 = std::time::Instant::now();
                            let launched = context.launch(&p);
                            (p, launched, t0.elapsed())
                        })
                    });
                    (i, fork)
                })
                .collect();
            forks
                .into_iter()
                .map(|(i, fork)| (i, fork.map(|f| f.join().expect("spawn thread panicked"))))
                .collect()
        });
        drop(pod_volumes);
        spawned
            .into_iter()
            .map(|(i, r)| {
                let result = r.and_then(|(p, launched, took)| {
                    let launched = launched?;
                    tracing::debug!(
                        container = %p.name,
                        pid = launched.pid(),
                        prepare_us = p.prepare_us,
                        spawn_us = took.as_micros() as u64,
                        "container launched"
                    );
                    let c = &mut self.record.containers[i];
                    c.resolved = Some(p.process);
                    c.oom_kills_at_start = p.oom_kills_at_start;
                    Ok(launched)
                });
                (i, result)
            })
            .collect()
    }

    /// Everything container `i`'s init stage needs before the pause runs: bundle
    /// directories, log, cgroup, the process after the image merge.
    fn prepare_container(&mut self, i: usize) -> Result<PreparedContainer, StartError> {
        let t0 = std::time::Instant::now();
        let key = self.record.key();
        let ip = self
            .record
            .sandbox_ip()
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        let host_ip = self.record.network_config.gateway().to_string();
        let plan = &self.record.plan;
        let spec = &plan.containers[i];
        let name = spec.name.clone();
        let setup_err = |message: String| {
            StartError::Container(container::ContainerError::Setup {
                container: name.clone(),
                message,
            })
        };
        let facts = PodFacts {
            name: &plan.name,
            namespace: &plan.namespace,
            uid: &plan.uid,
            pod_ip: &ip,
            node_name: &self.record.node_name,
            host_ip: &host_ip,
        };
        let image = self.record.containers[i]
            .image_config
            .clone()
            .ok_or_else(|| setup_err(format!("image {:?} was not resolved", spec.image)))?;
        let resolved = spec.resolve(&facts);
        let process = image::merge_process(spec, &resolved, &image, &plan.hostname);
        let (uid, gid) = image::resolve_user(
            &image,
            spec.security.run_as_user,
            spec.security.run_as_group,
        )
        .map_err(setup_err)?;
        let restart = self.record.containers[i].restart_count;
        self.store.prune_container_logs(&key, &spec.name, restart);
        let pod = self.store.paths(&key);
        let log_path = pod.container_log(&spec.name, restart);
        let log = container::open_log(&spec.name, &log_path)?;

        let (bundle, layout) = bundle_of(&pod, &name, &image.rootfs);
        // Recorded before they are made; usually already, by [`Supervisor::record_bundles`].
        let c = &mut self.record.containers[i];
        if c.rootfs.as_ref() != Some(&layout) {
            c.bundle = Some(bundle.clone());
            c.rootfs = Some(layout.clone());
            self.save();
        }
        // A restarted container is a new container: it starts from the image again.
        for dir in [&layout.upper, &layout.work] {
            let _ = std::fs::remove_dir_all(dir);
        }
        for dir in [&layout.upper, &layout.work, &layout.merged] {
            std::fs::create_dir_all(dir)
                .map_err(|e| setup_err(format!("create {}: {e}", dir.display())))?;
        }
        let mounts = self.volume_mounts(i)?;
        let placement = self.container_placement(i)?;
        let capabilities = container::caps::effective_set(&self.record.plan.containers[i].security);
        Ok(PreparedContainer {
            index: i,
            oom_kills_at_start: self.oom_kills(&name),
            oom_score_adj: self.oom_score_adj(i),
            additional_gids: image::additional_gids(&image, uid),
            name,
            bundle,
            layout,
            log,
            placement,
            process,
            uid,
            gid,
            mounts,
            capabilities,
            prepare_us: t0.elapsed().as_micros() as u64,
            namespaces: None,
        })
    }

    /// Open container `i`'s start gate and wait until its process runs (or failed to start).
    pub(super) fn release_container(
        &mut self,
        i: usize,
        launched: container::LaunchedInit,
    ) -> Result<(), StartError> {
        let t0 = std::time::Instant::now();
        let child = launched.release()?;
        let name = self.record.containers[i].name.clone();
        tracing::debug!(
            container = %name,
            pid = child.id(),
            wait_us = t0.elapsed().as_micros() as u64,
            "container started"
        );
        let c = &mut self.record.containers[i];
        c.id = super::lifecycle::new_id();
        c.process = Some(ProcessId::of(child.id() as i32));
        c.state = ContainerState::Running {
            started_at: Utc::now(),
        };
        self.record
            .event("Normal", "Created", format!("Created container: {name}"));
        self.record
            .event("Normal", "Started", format!("Started container {name}"));
        // No save here: every caller saves once after starting its containers. Until then a
        // crash loses nothing: the process is in the container's cgroup, which delete empties.
        Ok(())
    }

    /// A start that failed (the command is gone, a mount failed, ...): recorded as containerd
    /// and the kubelet show it, a run that ended at once with `StartError` (exit code 128, the
    /// error as its message) and a `Failed` event; the container waits with
    /// `RunContainerError` until the next sync, when the back-off decides (CrashLoopBackOff).
    pub(super) fn container_start_failed(&mut self, i: usize, err: StartError) {
        let now = Utc::now();
        let msg = err.to_string();
        tracing::warn!(container = %self.record.containers[i].name, error = %msg, "start failed");
        self.record
            .event("Warning", "Failed", format!("Error: {msg}"));
        let c = &mut self.record.containers[i];
        c.process = None;
        c.state = ContainerState::Terminated {
            exit_code: 128,
            signal: None,
            reason: "StartError".into(),
            message: Some(msg.clone()),
            started_at: now,
            finished_at: now,
        };
        if backoff::policy_restarts(self.record.plan.restart_policy, 128) {
            let c = &mut self.record.containers[i];
            c.last_state = Some(c.state.clone());
            c.state = ContainerState::Waiting {
                reason: "RunContainerError".into(),
                message: Some(msg),
            };
            self.schedule_restart(i, self.backoff_base / SYNC_AFTER_ERROR_DIVISOR);
        }
    }

    /// Record the end of a container's main process (and kill what it left in its group).
    pub(super) fn mark_exited(
        &mut self,
        pid: i32,
        code: i32,
        signal: Option<i32>,
    ) -> Option<usize> {
        let i = self
            .record
            .containers
            .iter()
            .position(|c| c.process.map(|p| p.pid) == Some(pid))?;
        procfs::signal_group(pid, Signal::SIGKILL);
        let name = self.record.containers[i].name.clone();
        let oom_killed = signal == Some(libc::SIGKILL)
            && self.oom_kills(&name) > self.record.containers[i].oom_kills_at_start;
        let c = &mut self.record.containers[i];
        let started_at = match &c.state {
            ContainerState::Running { started_at } => *started_at,
            _ => Utc::now(),
        };
        let reason = match code {
            _ if oom_killed => "OOMKilled",
            0 => "Completed",
            _ => "Error",
        };
        c.state = ContainerState::Terminated {
            exit_code: code,
            signal,
            reason: reason.into(),
            message: None,
            started_at,
            finished_at: Utc::now(),
        };
        c.process = None;
        if oom_killed {
            let limit = self.record.plan.containers[i]
                .resources
                .limits
                .memory_bytes
                .map(|b| format!(" (memory limit {b} bytes)"))
                .unwrap_or_default();
            self.record.event(
                "Warning",
                "OOMKilled",
                format!("Container {name} was killed by the kernel OOM killer{limit}"),
            );
        }
        Some(i)
    }

    pub(super) fn on_container_exit(&mut self, pid: i32, code: i32, signal: Option<i32>) {
        let Some(i) = self.mark_exited(pid, code, signal) else {
            return; // an orphan a container left behind, reaped as subreaper
        };
        self.restart_or_back_off(i);
        self.update_phase();
        self.save();
    }

    /// The kubelet's rule ([`backoff::decide`]) for container `i`, which is not running, now.
    pub(super) fn restart_decision(&self, i: usize) -> Decision {
        let c = &self.record.containers[i];
        backoff::decide(
            self.record.plan.restart_policy,
            last_run(c),
            c.backoff_seconds,
            Utc::now(),
            self.backoff_base,
        )
    }

    /// The kubelet's rule for container `i`, whose run the sandbox change just ended: judged by
    /// the run before that one (its lastState), or started at once without one.
    pub(super) fn restart_decision_after_kill(&self, i: usize) -> Decision {
        let c = &self.record.containers[i];
        let before = c
            .last_state
            .as_ref()
            .filter(|s| matches!(s, ContainerState::Terminated { .. }));
        backoff::decide(
            self.record.plan.restart_policy,
            before,
            c.backoff_seconds,
            Utc::now(),
            self.backoff_base,
        )
    }

    /// Container `i` is not running and its sandbox is: start it now, or once its back-off
    /// has passed, or leave it stopped, as [`Supervisor::restart_decision`] says.
    fn restart_or_back_off(&mut self, i: usize) {
        match self.restart_decision(i) {
            Decision::Stay => {}
            Decision::BackOff { delay, remaining } => self.back_off(i, delay, remaining),
            Decision::Start { next } => {
                self.begin_restart(i, next);
                if let Err(e) = self.start_container(i) {
                    self.container_start_failed(i, e);
                }
            }
        }
    }

    /// A new run of container `i` is about to start after a run that ended: its back-off entry
    /// becomes `next`, the last run becomes its lastState, and its restart count goes up.
    pub(super) fn begin_restart(&mut self, i: usize, next: u64) {
        let c = &mut self.record.containers[i];
        c.backoff_seconds = next;
        if let ContainerState::Terminated { .. } = c.state {
            c.last_state = Some(c.state.clone());
        }
        c.restart_count += 1;
    }

    /// Container `i` is in back-off: shown as CrashLoopBackOff (with the kubelet's message and
    /// a BackOff event), and tried again in `remaining`.
    pub(super) fn back_off(&mut self, i: usize, delay: Duration, remaining: Duration) {
        self.schedule_restart(i, remaining);
        let name = self.record.containers[i].name.clone();
        let pod = self.record.plan.name.clone();
        let c = &mut self.record.containers[i];
        if let ContainerState::Terminated { .. } = c.state {
            c.last_state = Some(c.state.clone());
        }
        c.state = ContainerState::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: Some(format!(
                "back-off {}s restarting failed container={name} pod={pod}_{}({})",
                delay.as_secs(),
                self.record.plan.namespace,
                self.record.plan.uid
            )),
        };
        self.record.event(
            "Warning",
            "BackOff",
            format!("Back-off restarting failed container {name} in pod {pod}"),
        );
    }

    /// Try container `i` again (the back-off decides) at `delay` from now.
    fn schedule_restart(&mut self, i: usize, delay: Duration) {
        self.pending_restarts.retain(|(j, _)| *j != i);
        self.pending_restarts.push((i, Instant::now() + delay));
    }

    pub(super) fn run_due_restarts(&mut self) {
        let now = Instant::now();
        let due: Vec<usize> = self
            .pending_restarts
            .iter()
            .filter(|(_, t)| *t <= now)
            .map(|(i, _)| *i)
            .collect();
        if due.is_empty() {
            return;
        }
        self.pending_restarts.retain(|(_, t)| *t > now);
        for i in due {
            self.restart_or_back_off(i);
        }
        self.update_phase();
        self.save();
    }
}

/// A start error shows `RunContainerError` until the kubelet's next sync of the pod, which
/// its PLEG relist (every 1 s, a tenth of the 10 s back-off base) triggers; that sync finds the
/// container in back-off.
const SYNC_AFTER_ERROR_DIVISOR: u32 = 10;

/// The container's last run (a `Terminated` state): its state, or the lastState of a
/// container waiting after it (a back-off, a start error, a sandbox being re-made).
fn last_run(c: &crate::state::ContainerRecord) -> Option<&ContainerState> {
    match (&c.state, &c.last_state) {
        (ContainerState::Terminated { .. }, _) => Some(&c.state),
        (ContainerState::Waiting { .. }, Some(last @ ContainerState::Terminated { .. })) => {
            Some(last)
        }
        _ => None,
    }
}

/// Set the bundle and overlay directories of containers `which` in `record`; true if any
/// changed.
pub(super) fn plan_bundles(
    pod: &crate::state::PodPaths,
    record: &mut crate::state::PodRecord,
    which: impl IntoIterator<Item = usize>,
) -> bool {
    let mut changed = false;
    for i in which {
        let c = &mut record.containers[i];
        let Some(image) = &c.image_config else {
            continue;
        };
        let (bundle, layout) = bundle_of(pod, &c.name, &image.rootfs);
        if c.rootfs.as_ref() != Some(&layout) {
            c.bundle = Some(bundle);
            c.rootfs = Some(layout);
            changed = true;
        }
    }
    changed
}

/// Container `name`'s bundle directory (config.json, logs) and overlay.
fn bundle_of(
    pod: &crate::state::PodPaths,
    name: &str,
    image_rootfs: &std::path::Path,
) -> (std::path::PathBuf, RootfsLayout) {
    let bundle = pod.bundle(name);
    let layout = RootfsLayout::new(&bundle, image_rootfs);
    (bundle, layout)
}
