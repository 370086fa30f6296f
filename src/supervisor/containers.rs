//! Container runs inside the supervisor, the kernel side: prepare (bundle, overlay, log,
//! cgroup), launch the init stage, release it at its start gate, and read how a run ended.
//! When to start and restart is [`super::policy`]'s.

use chrono::Utc;
use nix::sys::signal::Signal;

use super::Supervisor;
use super::lifecycle::StartError;
use super::policy::{self, Exit};
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
    pub(super) channel: Option<(
        container::channel::SupervisorEnd,
        container::channel::InitEnd,
    )>,
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
    fn launch(&self, p: &mut PreparedContainer) -> Result<container::LaunchedInit, StartError> {
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
        let (channel, namespaces) = match (p.channel.take(), self.ns) {
            (Some(channel), _) => (channel, container::PodNamespaces::Later),
            (None, Some(ns)) => {
                let channel = container::channel::pair().map_err(|source| {
                    container::ContainerError::Start {
                        container: p.name.clone(),
                        what: "init channel".into(),
                        source,
                    }
                })?;
                (channel, container::PodNamespaces::Now(ns))
            }
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
            channel,
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
                    let fork = p.map(|mut p| {
                        scope.spawn(move || {
                            let t0 = std::time::Instant::now();
                            let launched = context.launch(&mut p);
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
        self.ensure_image(i)?;
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
        super::termination::fresh_termination_log(&pod.termination_log(&spec.name))
            .map_err(setup_err)?;

        let (bundle, layout) = bundle_of(&pod, &name, &image.layers);
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
            channel: None,
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
        c.probed = Default::default();
        self.record
            .event("Normal", "Created", format!("Created container: {name}"));
        self.record
            .event("Normal", "Started", format!("Started container {name}"));
        self.started_run(i);
        // No save here: every caller saves once after starting its containers. Until then a
        // crash loses nothing: the process is in the container's cgroup, which delete empties.
        Ok(())
    }

    /// How container process `pid` ended, once it exited with `code` (and `signal`): its
    /// index, and whether the OOM killer ended it; what it left in its group is killed.
    /// None for a process that is no container's (an orphan reaped as subreaper).
    pub(super) fn exit_of(
        &self,
        pid: i32,
        code: i32,
        signal: Option<i32>,
    ) -> Option<(usize, Exit)> {
        let i = self
            .record
            .containers
            .iter()
            .position(|c| c.process.map(|p| p.pid) == Some(pid))?;
        procfs::signal_group(pid, Signal::SIGKILL);
        let c = &self.record.containers[i];
        let oom_killed =
            signal == Some(libc::SIGKILL) && self.oom_kills(&c.name) > c.oom_kills_at_start;
        Some((
            i,
            Exit {
                code,
                signal,
                oom_killed,
                message: self.termination_message(i, code),
            },
        ))
    }

    /// Record the end of a container's process without a decision (while stopping).
    pub(super) fn mark_exited(&mut self, pid: i32, code: i32, signal: Option<i32>) {
        if let Some((i, exit)) = self.exit_of(pid, code, signal) {
            self.ended_run(i);
            policy::record_exit(&mut self.record, i, &exit, Utc::now());
        }
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
        let (bundle, layout) = bundle_of(pod, &c.name, &image.layers);
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
    image_layers: &[std::path::PathBuf],
) -> (std::path::PathBuf, RootfsLayout) {
    let bundle = pod.bundle(name);
    let layout = RootfsLayout::new(&bundle, image_layers);
    (bundle, layout)
}
