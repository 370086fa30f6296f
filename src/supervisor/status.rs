//! Pod phase (Kubernetes' PodPhase) and the STATUS word kubectl prints.

use crate::spec::RestartPolicy;
use crate::state::{ContainerState, Phase, PodRecord};

/// Phase from the containers, as the kubelet's `getPhase` computes it: a container waiting
/// for its first start keeps the pod Pending; one waiting after it ran (its lastState is
/// terminated: a back-off, or a sandbox being re-made) counts as stopped. Any running:
/// Running. All stopped: Running while they will restart (Always; OnFailure after a
/// failure), else Succeeded (all exited 0) or Failed. Init containers: one that failed fails
/// the pod under Never; while one is still to complete (and no app container started) the pod
/// is Pending.
pub fn pod_phase(record: &PodRecord) -> Phase {
    if record.start_time.is_none() {
        return Phase::Pending;
    }
    let (mut pending_init, mut failed_init) = (0, 0);
    for (i, c) in record.containers.iter().enumerate().filter(|(_, c)| c.init) {
        if record.plan.containers[i].sidecar {
            // A sidecar counts while it has not started yet; then it never holds the pod.
            if !started(record, i) && !has_run(c) {
                pending_init += 1;
            }
            continue;
        }
        match (&c.state, &c.last_state) {
            (ContainerState::Terminated { exit_code, .. }, _)
            | (
                ContainerState::Waiting { .. },
                Some(ContainerState::Terminated { exit_code, .. }),
            ) => {
                if *exit_code != 0 {
                    failed_init += 1
                }
            }
            _ => pending_init += 1,
        }
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in record.app_containers() {
        match (&c.state, &c.last_state) {
            (ContainerState::Running { .. }, _) => running += 1,
            (ContainerState::Terminated { exit_code, .. }, _) => {
                stopped += 1;
                if *exit_code == 0 {
                    succeeded += 1;
                }
            }
            (ContainerState::Waiting { .. }, Some(ContainerState::Terminated { .. })) => {
                stopped += 1
            }
            (ContainerState::Waiting { .. }, _) => waiting += 1,
        }
    }
    let app_started = running + stopped > 0;
    match record.plan.restart_policy {
        RestartPolicy::Never if failed_init > 0 => Phase::Failed,
        _ if pending_init > 0 && !app_started => Phase::Pending,
        _ if waiting > 0 => Phase::Pending,
        _ if running > 0 => Phase::Running,
        _ if stopped == 0 => Phase::Pending,
        RestartPolicy::Always => Phase::Running,
        _ if stopped == succeeded => Phase::Succeeded,
        RestartPolicy::Never => Phase::Failed,
        RestartPolicy::OnFailure => Phase::Running,
    }
}

/// kubectl's STATUS column (printPod): while the init containers have not all completed, the
/// first one that has not: `Init:<reason>` (it failed, or waits with a reason such as
/// CrashLoopBackOff), `Init:ExitCode:N` / `Init:Signal:N` without one, else `Init:N/M` (N
/// completed); then the last app container's waiting/terminated reason wins over the phase
/// (`PodInitializing` while they wait for their first start); a pod being deleted shows
/// Terminating; a pod whose supervisor died shows Unknown.
pub fn pod_status_word(record: &PodRecord) -> String {
    if record.deletion.is_some() {
        return "Terminating".into();
    }
    if supervisor_lost(record) {
        return "Unknown".into();
    }
    if let Some(word) = init_status_word(record) {
        return word;
    }
    let mut reason = record
        .reason
        .clone()
        .unwrap_or_else(|| record.phase.to_string());
    let mut has_running = false;
    // From the last container to the first: the first one with a reason wins.
    for c in record
        .app_containers()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        match shown_state(record, c).as_ref() {
            ContainerState::Waiting { reason: r, .. } if !r.is_empty() => reason = r.clone(),
            ContainerState::Terminated { reason: r, .. } if !r.is_empty() => reason = r.clone(),
            ContainerState::Terminated {
                signal: Some(s), ..
            } => reason = format!("Signal:{s}"),
            ContainerState::Terminated { exit_code, .. } => {
                reason = format!("ExitCode:{exit_code}")
            }
            ContainerState::Running { .. } if ready_named(record, &c.name) => has_running = true,
            ContainerState::Running { .. } | ContainerState::Waiting { .. } => {}
        }
    }
    if reason == "Completed" && has_running {
        reason = if pod_ready(record) {
            "Running"
        } else {
            "NotReady"
        }
        .into();
    }
    reason
}

/// The `Init:` STATUS of a pod still initializing (kubectl's printPod), None once every init
/// container completed (a sidecar: started).
fn init_status_word(record: &PodRecord) -> Option<String> {
    let total = record.init_containers().count();
    for (i, c) in record.init_containers().enumerate() {
        if record.plan.containers[i].sidecar && started(record, i) {
            continue;
        }
        return Some(match &c.state {
            ContainerState::Terminated { exit_code: 0, .. } => continue,
            ContainerState::Terminated { reason, .. } if !reason.is_empty() => {
                format!("Init:{reason}")
            }
            ContainerState::Terminated {
                signal: Some(s), ..
            } => format!("Init:Signal:{s}"),
            ContainerState::Terminated { exit_code, .. } => format!("Init:ExitCode:{exit_code}"),
            ContainerState::Waiting { reason, .. }
                if !reason.is_empty() && reason != "PodInitializing" =>
            {
                format!("Init:{reason}")
            }
            _ => format!("Init:{i}/{total}"),
        });
    }
    None
}

/// The state the API shows for `c`: while its postStart hook runs, the waiting state it had
/// before the start (the kubelet writes no status until the hook returns).
pub fn shown_state<'a>(
    record: &PodRecord,
    c: &'a crate::state::ContainerRecord,
) -> std::borrow::Cow<'a, ContainerState> {
    if !c.post_start_running {
        return std::borrow::Cow::Borrowed(&c.state);
    }
    let reason = if record.containers.iter().any(|c| c.init) {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };
    std::borrow::Cow::Owned(ContainerState::Waiting {
        reason: reason.into(),
        message: None,
    })
}

/// Container `i` runs and has started: its startup probe passed, or it has none (the
/// kubelet's `started`).
pub fn started(record: &PodRecord, i: usize) -> bool {
    let c = &record.containers[i];
    matches!(c.state, ContainerState::Running { .. })
        && !c.post_start_running
        && (record.plan.containers[i].probes.startup.is_none() || c.probed.startup)
}

/// Container `i` is ready: started, and its readiness probe passes (or it has none).
pub fn ready(record: &PodRecord, i: usize) -> bool {
    started(record, i)
        && (record.plan.containers[i].probes.readiness.is_none()
            || record.containers[i].probed.readiness)
}

fn ready_named(record: &PodRecord, name: &str) -> bool {
    (record.containers.iter())
        .position(|c| c.name == name)
        .is_some_and(|i| ready(record, i))
}

/// The containers kubectl's READY column counts (apps and sidecars), and those ready.
pub fn ready_counts(record: &PodRecord) -> (usize, usize) {
    let counted = (0..record.containers.len())
        .filter(|&i| !record.containers[i].init || record.plan.containers[i].sidecar);
    counted.fold((0, 0), |(ready_n, total), i| {
        (ready_n + usize::from(ready(record, i)), total + 1)
    })
}

/// The pod's ContainersReady condition: every app container and sidecar is ready.
pub fn containers_ready(record: &PodRecord) -> bool {
    let (ready_n, total) = ready_counts(record);
    ready_n == total
}

/// The pod's Ready condition (no readiness gates: the same as ContainersReady, once
/// initialized).
pub fn pod_ready(record: &PodRecord) -> bool {
    initialized(record) && containers_ready(record)
}

fn has_run(c: &crate::state::ContainerRecord) -> bool {
    matches!(c.state, ContainerState::Terminated { .. })
        || matches!(c.last_state, Some(ContainerState::Terminated { .. }))
}

/// kubectl's RESTARTS: while the pod initializes, the restarts of the init containers up to
/// the first that has not completed (printPod's loop stops there), else the app containers'.
pub fn pod_restarts(record: &PodRecord) -> u32 {
    let inits = (record.containers.iter().enumerate()).filter(|(_, c)| c.init);
    if init_status_word(record).is_some() {
        let mut sum = 0;
        for (i, c) in inits {
            sum += c.restart_count;
            let done = matches!(c.state, ContainerState::Terminated { exit_code: 0, .. })
                || (record.plan.containers[i].sidecar && started(record, i));
            if !done {
                break;
            }
        }
        sum
    } else {
        let sidecars = inits.filter(|(i, _)| record.plan.containers[*i].sidecar);
        let sidecars: u32 = sidecars.map(|(_, c)| c.restart_count).sum();
        sidecars
            + record
                .app_containers()
                .map(|c| c.restart_count)
                .sum::<u32>()
    }
}

/// The RESTARTS column as kubectl prints it: the count, and since kubectl 1.24 how long ago
/// the latest restart's run ended (`2 (8s ago)`), from the containers' last termination.
pub fn pod_restarts_column(record: &PodRecord) -> String {
    let restarts = pod_restarts(record);
    let last = record
        .containers
        .iter()
        .filter(|c| c.restart_count > 0)
        .filter_map(|c| match &c.last_state {
            Some(ContainerState::Terminated { finished_at, .. }) => Some(*finished_at),
            _ => None,
        })
        .max();
    match last {
        Some(at) if restarts > 0 => format!("{restarts} ({} ago)", crate::objects::age(at)),
        _ => restarts.to_string(),
    }
}

/// Every init container completed (the pod's Initialized condition).
pub fn initialized(record: &PodRecord) -> bool {
    init_status_word(record).is_none()
}

/// True when the record says the pod is live but its supervisor process is gone.
/// The pod's `status.message` while its supervisor is lost (`status.reason` SupervisorLost).
pub const SUPERVISOR_LOST_MESSAGE: &str =
    "the pod's podrun supervisor is not running; `podrun delete` still removes everything";

pub fn supervisor_lost(record: &PodRecord) -> bool {
    record.supervisor.is_some_and(|s| !s.is_alive())
}

/// What apply prints for a started pod (kubectl's `pod/NAME created` is printed before it):
/// the sandbox, the network and each container, one line each.
pub fn start_summary(r: &PodRecord) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if let Some(sb) = &r.sandbox {
        let pause = sb.pause.map(|p| p.pid).unwrap_or_default();
        let _ = writeln!(
            out,
            "sandbox    pause pid {pause}, netns {}, hostname {}",
            sb.netns_path.display(),
            r.plan.hostname
        );
        if let Some(n) = &sb.network {
            let _ = writeln!(
                out,
                "network    {}/{} gw {} on bridge {}, veth {} <-> {} (ifindex {} <-> {})",
                n.ip,
                n.prefix_len,
                n.gateway,
                n.bridge,
                n.host_veth,
                n.pod_ifname,
                n.host_ifindex,
                n.pod_ifindex
            );
        }
    }
    for c in &r.containers {
        let pid = c.process.map(|p| p.pid).unwrap_or_default();
        let argv = c
            .resolved
            .as_ref()
            .map(|p| p.argv.join(" "))
            .unwrap_or_default();
        let argv: String = argv.replace('\n', " ").chars().take(60).collect();
        let _ = writeln!(out, "container  {} pid {pid}: {argv}", c.name);
    }
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::state::ContainerRecord;
    use chrono::Utc;

    /// A container's state and last state.
    pub(in crate::supervisor) type States = (ContainerState, Option<ContainerState>);

    /// A started pod record of containers `c0`, `c1` ... in `states`, under `policy`.
    pub(in crate::supervisor) fn record(policy: &str, states: &[States]) -> PodRecord {
        record_with_inits(policy, &[], states)
    }

    /// [`record`] with init containers `i0`, `i1` ... in `inits` (listed first).
    pub(in crate::supervisor) fn record_with_inits(
        policy: &str,
        inits: &[States],
        states: &[States],
    ) -> PodRecord {
        let list = |prefix: &str, n: usize| -> String {
            (0..n)
                .map(|i| format!("{{name: {prefix}{i}, image: 'debug:1', command: [sh]}},"))
                .collect()
        };
        let (init_list, containers) = (list("i", inits.len()), list("c", states.len()));
        let manifest = format!(
            "{{apiVersion: v1, kind: Pod, metadata: {{name: p}}, spec: {{restartPolicy: {policy}, initContainers: [{init_list}], containers: [{containers}]}}}}"
        );
        let n_init = inits.len();
        let states: Vec<States> = inits.iter().chain(states).cloned().collect();
        let plan = match crate::spec::load_str(&manifest, "test").unwrap().remove(0) {
            crate::spec::Object::Pod(plan) => plan,
            other => panic!("{other:?}"),
        };
        let root = std::path::Path::new("/run/podrun");
        PodRecord {
            plan,
            network_config: crate::net::NetworkConfig::with_state_root(root),
            netns_dir: "/run/netns".into(),
            cgroup: None,
            node_name: "node".into(),
            created_at: Utc::now(),
            start_time: Some(Utc::now()),
            supervisor: None,
            phase: Phase::Pending,
            reason: None,
            message: None,
            sandbox: None,
            containers: states
                .iter()
                .enumerate()
                .map(|(i, (state, last))| ContainerRecord {
                    name: match i.checked_sub(n_init) {
                        None => format!("i{i}"),
                        Some(j) => format!("c{j}"),
                    },
                    image: "debug:1".into(),
                    id: String::new(),
                    process: None,
                    resolved: None,
                    state: state.clone(),
                    last_state: last.clone(),
                    restart_count: 0,
                    oom_kills_at_start: 0,
                    backoff_factor: 0,
                    image_config: None,
                    bundle: None,
                    rootfs: None,
                    init: i < n_init,
                    probed: Default::default(),
                    post_start_running: false,
                    restart_for_update: false,
                })
                .collect(),
            events: vec![],
            deletion: None,
            volumes: vec![],
            images: None,
        }
    }

    fn running() -> ContainerState {
        ContainerState::Running {
            started_at: Utc::now(),
        }
    }
    fn waiting(reason: &str) -> ContainerState {
        ContainerState::Waiting {
            reason: reason.into(),
            message: None,
        }
    }
    fn exited(code: i32) -> ContainerState {
        ContainerState::Terminated {
            exit_code: code,
            signal: None,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: None,
            started_at: Utc::now(),
            finished_at: Utc::now(),
        }
    }

    #[test]
    fn phase_follows_the_kubelets_get_phase() {
        use Phase::*;
        let cases: Vec<(&str, Vec<States>, Phase)> = vec![
            (
                "Always",
                vec![(running(), None), (running(), None)],
                Running,
            ),
            // Never started (CreateContainerError and the like): the pod stays Pending.
            (
                "Always",
                vec![(running(), None), (waiting("CreateContainerError"), None)],
                Pending,
            ),
            // Waiting after a run: a back-off, or a sandbox being re-made (its retry included).
            (
                "Always",
                vec![(waiting("CrashLoopBackOff"), Some(exited(1)))],
                Running,
            ),
            (
                "Always",
                vec![
                    (waiting("ContainerCreating"), Some(exited(137))),
                    (waiting("ContainerCreating"), Some(exited(137))),
                ],
                Running,
            ),
            (
                "OnFailure",
                vec![(waiting("CrashLoopBackOff"), Some(exited(1)))],
                Running,
            ),
            (
                "OnFailure",
                vec![(exited(0), None), (exited(0), None)],
                Succeeded,
            ),
            ("Never", vec![(exited(0), None), (exited(1), None)], Failed),
            ("Never", vec![(exited(0), None), (running(), None)], Running),
            ("Never", vec![(exited(0), None)], Succeeded),
        ];
        for (policy, states, want) in cases {
            let r = record(policy, &states);
            assert_eq!(pod_phase(&r), want, "{policy} {states:?}");
        }
        let mut not_started = record("Always", &[(waiting("ContainerCreating"), None)]);
        not_started.start_time = None;
        assert_eq!(pod_phase(&not_started), Pending);
    }
}
