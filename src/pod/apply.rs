//! Apply: validate everything first, reserve the pod names, start one supervisor per pod,
//! wait until each reports its sandbox ready and containers started. If any pod fails, every
//! pod this apply created is removed again. Objects that exist are compared with their last
//! applied configuration first ([`super::declarative`]): unchanged ones are left alone,
//! allowed pod updates go to their supervisors once every new pod has started, and any
//! refusal stops the apply before anything is made.

use chrono::Utc;

use super::sort::{Sorted, checked_updates, sort};
use super::{Result, failed as msg, supervisor_start as start_supervisor};
use crate::config::Config;
use crate::container::image::{self, ContainerImage};
use crate::spec::{Object, PodPlan, VolumeSource};
use crate::state::{
    CgroupRecord, ContainerRecord, ContainerState, Phase, PodKey, PodRecord, StateError, Store,
};
use crate::supervisor::report::StartReport;

/// What apply did with one object: kubectl's line (`pod/NAME created`, `unchanged`,
/// `configured`) and each pod it created with what it started (sandbox, network,
/// containers: a line each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub line: String,
    pub pods: Vec<(PodKey, String)>,
}

/// Create the pods of `objects` (all of them, or none) and update those that exist and
/// changed where allowed; nothing is made or changed if any object is refused. `note` hears
/// what apply did on the side (leftovers of a lost state root it removed); `pulling` how the
/// pulls of missing images go ([`super::images`]).
pub fn apply(
    cfg: &Config,
    objects: Vec<Object>,
    note: &mut dyn FnMut(String),
    pulling: &mut dyn FnMut(crate::image::PullEvent),
) -> Result<Vec<Created>> {
    cfg.network().validate()?;
    let store = cfg.store();
    // An empty state root (first use, or state lost with /run): remove what a lost state left.
    if !store.pods_dir().exists() {
        for line in crate::diagnostics::sweep_after_lost_state(cfg) {
            note(line);
        }
    }
    let Sorted {
        pods,
        headers,
        updates,
        workloads,
        templates,
        events,
    } = sort(&store, objects)?;
    for p in &pods {
        let key = PodKey::new(&p.namespace, &p.name);
        if store.exists(&key) {
            return Err(StateError::AlreadyExists(p.name.clone()).into());
        }
        // The netns dir is the node's: another state root's pod of that name (or `ip netns
        // add`) holds the name this pod's namespace would be pinned at.
        let pin = cfg.netns_dir.join(key.netns_name());
        if pin.symlink_metadata().is_ok() {
            return Err(msg(format!(
                "pod/{}: network namespace {} already exists (another state root's pod of that name, or `ip netns add`): remove it, or give this pod another name",
                p.name,
                pin.display()
            )));
        }
    }
    // The pods to make, the pods to update and the templates the controller makes pods of
    // later: their images are pulled and checked alike.
    let mut checked: Vec<PodPlan> = pods.clone();
    checked.extend(updates.iter().map(|(_, plan, _)| plan.clone()));
    let made_or_updated = checked.len();
    checked.extend(templates);
    let outcomes = super::images::ensure_images(cfg, &checked, pulling)?;
    if let Some(problem) = checked
        .iter()
        .find_map(|p| super::images::never_pull_problem(cfg, p))
    {
        return Err(msg(problem));
    }
    check_images(cfg, &checked)?;
    let mut images = checked
        .iter()
        .map(|p| prepare(cfg, p))
        .collect::<Result<Vec<_>>>()?;
    images.truncate(made_or_updated);
    let updates = checked_updates(images.split_off(pods.len()), updates)?;
    tracing::debug!("images resolved");
    // A controller pass sees this apply's pods and records together, or neither.
    let workloads_lock = store.workloads_lock()?;
    let started = start(cfg, &store, &pods, &images, &outcomes)?;
    for w in &workloads {
        w.save(&store)?;
    }
    for (kind, key, reason, message) in events {
        store.add_workload_event(kind, &key, "Normal", reason, message);
    }
    drop(workloads_lock);
    super::update::send(&store, updates)?;
    if !workloads.is_empty() {
        for line in crate::controller::ensure_running(cfg) {
            note(line);
        }
    }
    let mut started = started.into_iter();
    Ok(headers
        .into_iter()
        .map(|(line, n)| Created {
            line,
            pods: started.by_ref().take(n).collect(),
        })
        .collect())
}

/// Make the pods of `pods` (their images resolved as `images`): reserve their names, start
/// their supervisors, wait for each one's report. All or none: if one fails, the others are
/// removed again. Returns what each started.
fn start(
    cfg: &Config,
    store: &Store,
    pods: &[PodPlan],
    images: &[Vec<ContainerImage>],
    outcomes: &[(String, super::images::ImageOutcome)],
) -> Result<Vec<(PodKey, String)>> {
    let reserved = reserve(cfg, store, pods, images, outcomes)?;
    tracing::debug!("names reserved");
    let started: Vec<(PodKey, std::result::Result<String, String>)> =
        start_supervisors(cfg, &reserved);
    let failures: Vec<String> = started
        .iter()
        .filter_map(|(k, r)| r.as_ref().err().map(|e| format!("pod/{}: {e}", k.name)))
        .collect();
    if !failures.is_empty() {
        for (key, r) in &started {
            if r.is_ok() {
                let _ = super::delete_pod(cfg, key, Some(0));
            }
        }
        return Err(msg(failures.join("\n")));
    }
    tracing::debug!("pods started");
    Ok(started
        .into_iter()
        .map(|(k, r)| (k, r.unwrap_or_default()))
        .collect())
}

/// Make the pods `plans` of a workload, for its controller (which holds the workloads lock):
/// images pulled if missing (a template's images were checked when it was applied), then as
/// [`start`]. The error names the first pod that could not be made.
pub fn create_pods(cfg: &Config, plans: &[PodPlan]) -> Result<Vec<(PodKey, String)>> {
    let store = cfg.store();
    let outcomes = super::images::ensure_images(cfg, plans, &mut |_| {})?;
    check_images(cfg, plans)?;
    let images = plans
        .iter()
        .map(|p| prepare(cfg, p))
        .collect::<Result<Vec<_>>>()?;
    start(cfg, &store, plans, &images, &outcomes)
}

/// Every missing or invalid image of every pod, all named in one error (a Deployment's pods
/// share its template: its problems are named once, by the Deployment and the template's path).
fn check_images(cfg: &Config, pods: &[PodPlan]) -> Result<()> {
    let store = cfg.images();
    let mut problems: Vec<String> = Vec::new();
    for plan in pods {
        let deployment = plan.owner.as_ref().and_then(|o| o.deployment.as_deref());
        for e in crate::image::image_problems(&store, plan) {
            let line = match deployment {
                Some(d) => format!("deployment.apps/{d}: spec.template.{e}"),
                None => format!("pod/{}: {e}", plan.name),
            };
            if !problems.contains(&line) {
                problems.push(line);
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(msg(problems.join("\n")))
    }
}

/// Everything about a pod that can be checked before anything is created: each container's
/// image (resolved), the command it would run, runAsNonRoot against the image user, hostPath
/// types. Returns the images, in container order.
fn prepare(cfg: &Config, plan: &PodPlan) -> Result<Vec<ContainerImage>> {
    let pod_id = format!("{}_{}({})", plan.name, plan.namespace, plan.uid);
    let fail = |text: String| msg(format!("pod/{}: {text}", plan.name));
    let capacity = crate::resources::NodeCapacity::read()
        .map_err(|e| fail(format!("read the node's capacity: {e}")))?;
    if let Some(problem) = crate::resources::admission_problem(plan, capacity) {
        return Err(fail(format!("rejected by the node: {problem}")));
    }
    let mut images = Vec::new();
    for c in &plan.containers {
        let image = image::resolve_image(&cfg.image_root, &c.image)
            .map_err(|e| fail(format!("container {}: {e}", c.name)))?;
        if c.command.is_empty() && image.entrypoint.is_empty() && image.cmd.is_empty() {
            return Err(fail(format!("container {}: no command specified", c.name)));
        }
        image::verify_run_as_non_root(c, &image, &pod_id)
            .map_err(|e| fail(format!("container {}: {e}", c.name)))?;
        image::resolve_user(&image, c.security.run_as_user, c.security.run_as_group)
            .map_err(|e| fail(format!("container {}: {e}", c.name)))?;
        images.push(image);
    }
    for c in &plan.containers {
        for m in c.volume_mounts.iter().filter(|m| m.sub_path.is_some()) {
            let memory = plan.volumes.iter().any(|v| {
                v.name == m.name && matches!(v.source, VolumeSource::EmptyDir { memory: true, .. })
            });
            if memory {
                return Err(fail(format!(
                    "container {}: volume {}: subPath of a medium: Memory emptyDir is not supported by podrun yet",
                    c.name, m.name
                )));
            }
        }
    }
    for v in &plan.volumes {
        if let VolumeSource::HostPath { path, kind } = &v.source {
            crate::container::volumes::check_host_path(path, kind, false)
                .map_err(|e| fail(format!("volume {}: {e}", v.name)))?;
        }
    }
    Ok(images)
}

fn new_record(cfg: &Config, plan: &PodPlan, images: &[ContainerImage]) -> PodRecord {
    PodRecord {
        plan: plan.clone(),
        network_config: cfg.network(),
        netns_dir: cfg.netns_dir.clone(),
        cgroup: Some(CgroupRecord {
            root: cfg.cgroup_root.clone(),
            parent: cfg.cgroup_parent.clone(),
            mode: None,
        }),
        node_name: cfg.node_name.clone(),
        created_at: Utc::now(),
        start_time: None,
        supervisor: None,
        phase: Phase::Pending,
        reason: None,
        message: None,
        sandbox: None,
        containers: plan
            .containers
            .iter()
            .zip(images)
            .map(|(c, image)| ContainerRecord {
                name: c.name.clone(),
                image: c.image.clone(),
                id: String::new(),
                process: None,
                resolved: None,
                // The kubelet's default waiting reason, PodInitializing in a pod with init
                // containers (`convertToAPIContainerStatuses`).
                state: ContainerState::Waiting {
                    reason: if plan.containers.iter().any(|c| c.init) {
                        "PodInitializing"
                    } else {
                        "ContainerCreating"
                    }
                    .into(),
                    message: None,
                },
                last_state: None,
                restart_count: 0,
                oom_kills_at_start: 0,
                backoff_factor: 0,
                image_config: Some(image.clone()),
                bundle: None,
                rootfs: None,
                init: c.init,
                probed: Default::default(),
                post_start_running: false,
                restart_for_update: false,
            })
            .collect(),
        events: Vec::new(),
        deletion: None,
        volumes: Vec::new(),
        images: Some(crate::state::ImageSource {
            image_root: cfg.image_root.clone(),
            registries_conf: cfg.registries_conf.clone(),
        }),
    }
}

/// Reserve every pod name (mkdir) under the root lock; undo them all if one is taken.
/// Returns the records as saved.
fn reserve(
    cfg: &Config,
    store: &Store,
    pods: &[PodPlan],
    images: &[Vec<ContainerImage>],
    outcomes: &[(String, super::images::ImageOutcome)],
) -> Result<Vec<PodRecord>> {
    let _lock = store.lock()?;
    check_host_ports(store, pods)?;
    let mut done: Vec<PodRecord> = Vec::new();
    for (p, images) in pods.iter().zip(images) {
        let mut record = new_record(cfg, p, images);
        crate::supervisor::plan_first_start(store, &mut record);
        record.event(
            "Normal",
            "Scheduled",
            format!(
                "Successfully assigned {}/{} to {}",
                p.namespace, p.name, cfg.node_name
            ),
        );
        for (kind, reason, message) in super::images::image_events(p, outcomes) {
            record.event(kind, reason, message);
        }
        if let Err(e) = store.create(&record) {
            for r in &done {
                let _ = store.remove(&r.key());
            }
            return Err(e.into());
        }
        done.push(record);
    }
    Ok(done)
}

/// Refuse a pod whose hostPort (port, protocol, hostIP) a pod of this state root holds, or an
/// earlier pod of this apply asks for: portmap itself reserves nothing (the last one would
/// win), so this is the scheduler's NodePorts check. The caller holds the root lock.
fn check_host_ports(store: &Store, pods: &[PodPlan]) -> Result<()> {
    use crate::net::hostport;
    let mut held: Vec<(String, String, Vec<hostport::HostPort>)> = store
        .list()
        .iter()
        .map(|r| {
            let ports = hostport::of_plan(&r.plan);
            (r.plan.namespace.clone(), r.plan.name.clone(), ports)
        })
        .filter(|(_, _, ports)| !ports.is_empty())
        .collect();
    for p in pods {
        let wanted = hostport::of_plan(p);
        for (namespace, name, ports) in &held {
            if let Some((want, _)) = hostport::conflict(&wanted, ports) {
                return Err(msg(format!(
                    "pod/{}: hostPort {want} of container {} is already taken on this node by pod {namespace}/{name}",
                    p.name, want.container
                )));
            }
        }
        held.push((p.namespace.clone(), p.name.clone(), wanted));
    }
    Ok(())
}

/// Start every supervisor at once, then collect their reports: what each started (the
/// summary apply prints), or why it failed.
fn start_supervisors(
    cfg: &Config,
    records: &[PodRecord],
) -> Vec<(PodKey, std::result::Result<String, String>)> {
    let store = cfg.store();
    let spawned: Vec<_> = records
        .iter()
        .map(|r| (r.key(), start_supervisor::start(cfg, &store, r)))
        .collect();
    tracing::debug!("supervisors spawned");
    spawned
        .into_iter()
        .map(|(k, s)| {
            let result = match s {
                Err(e) => {
                    let _ = store.remove(&k);
                    Err(e.to_string())
                }
                Ok(started) => match StartReport::receive(started.ready) {
                    Some(StartReport::Started(summary)) => Ok(summary),
                    // It rolled back what it had made.
                    Some(StartReport::Failed(why)) => {
                        let _ = nix::sys::wait::waitpid(started.pid, None);
                        let _ = store.remove(&k);
                        Err(why)
                    }
                    None => {
                        let status = nix::sys::wait::waitpid(started.pid, None);
                        Err(remove_after_crash(cfg, &k, status))
                    }
                },
            };
            (k, result)
        })
        .collect()
}

/// The supervisor ended without a report (it crashed or was killed midway): remove what it
/// had made, as `delete` does for a pod whose supervisor is gone (from the record, where every
/// object is before it is made). Returns apply's error for the pod.
fn remove_after_crash(
    cfg: &Config,
    key: &PodKey,
    status: nix::Result<nix::sys::wait::WaitStatus>,
) -> String {
    let how = match status.ok().and_then(crate::procfs::exit_of) {
        Some((_, _, Some(signal))) => match nix::sys::signal::Signal::try_from(signal) {
            Ok(signal) => format!("was killed by {signal}"),
            Err(_) => format!("was killed by signal {signal}"),
        },
        Some((_, code, None)) => format!("exited with status {code}"),
        None => "ended".to_owned(),
    };
    match super::delete_pod(cfg, key, Some(0)) {
        Ok(()) => format!("supervisor {how} before the pod started; what it had made was removed"),
        Err(e) => format!(
            "supervisor {how} before the pod started; removing what it had made failed: {e}"
        ),
    }
}
