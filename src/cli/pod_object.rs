//! A PodRecord rendered as the Kubernetes Pod object (`get -o json|yaml`): the applied
//! metadata/spec plus a `status` with phase, podIP, conditions and containerStatuses.

use serde_json::{Value, json};

use crate::cgroup;
use crate::pod::pod_status_word;
use crate::state::{ContainerState, PodRecord};

pub fn pod_object(r: &PodRecord) -> Value {
    let mut obj = r.plan.manifest.clone();
    if !obj.is_object() {
        obj = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": r.plan.name, "namespace": r.plan.namespace}});
    }
    let meta = &mut obj["metadata"];
    meta["uid"] = json!(r.plan.uid);
    meta["creationTimestamp"] = json!(
        r.created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    if r.deletion.is_some() {
        meta["deletionTimestamp"] = json!(r.deletion.as_ref().map(|d| {
            d.requested_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        }));
    }
    if let Some(applied) = &r.plan.last_applied {
        // As kubectl apply keeps it: in the object's own annotations.
        meta["annotations"][crate::spec::LAST_APPLIED_ANNOTATION] = json!(applied);
    }
    obj["spec"]["nodeName"] = json!(r.node_name);
    obj["status"] = status(r);
    obj
}

fn status(r: &PodRecord) -> Value {
    let ip = r.pod_ip().map(|ip| ip.to_string());
    let ready = if crate::pod::pod_ready(r) {
        "True"
    } else {
        "False"
    };
    let sandbox_ready = if r.sandbox.as_ref().is_some_and(|s| s.ready) {
        "True"
    } else {
        "False"
    };
    let mut status = json!({
        "phase": r.phase.to_string(),
        "hostIP": r.network_config.gateway().to_string(),
        "conditions": conditions(r, sandbox_ready, ready),
        "containerStatuses": statuses(r, false),
        "qosClass": qos(r).to_string(),
    });
    if r.init_containers().next().is_some() {
        status["initContainerStatuses"] = statuses(r, true);
    }
    if let Some(ip) = ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    if let Some(t) = r.start_time {
        status["startTime"] = json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    let word = pod_status_word(r);
    if word == "Unknown" {
        status["reason"] = json!("SupervisorLost");
        status["message"] = json!(crate::pod::SUPERVISOR_LOST_MESSAGE);
    }
    status
}

/// The pod's conditions with the time each last changed, as far as the record shows it: the
/// pod was scheduled and initialized when podrun took it, the sandbox became ready when it was
/// made, and the containers became ready when the last of them started (or stopped being ready
/// when the last one ended).
fn conditions(r: &PodRecord, sandbox_ready: &str, ready: &str) -> Value {
    let stamp = |t: chrono::DateTime<chrono::Utc>| {
        json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    let taken = r.created_at;
    let started = r.start_time.unwrap_or(taken);
    let sandbox_changed = r.sandbox.as_ref().map_or(started, |s| s.created_at);
    let ready_changed = if ready == "True" {
        r.app_containers()
            .filter_map(|c| match c.state {
                ContainerState::Running { started_at } => Some(started_at),
                _ => None,
            })
            .max()
    } else {
        r.app_containers()
            .flat_map(|c| [Some(&c.state), c.last_state.as_ref()])
            .flatten()
            .filter_map(|s| match s {
                ContainerState::Terminated { finished_at, .. } => Some(*finished_at),
                _ => None,
            })
            .max()
    }
    .unwrap_or(started);
    // Initialized: when the last init container completed (at the start without any).
    let (initialized, initialized_changed) = if crate::pod::initialized(r) {
        let completed = r.init_containers().filter_map(|c| match c.state {
            ContainerState::Terminated { finished_at, .. } => Some(finished_at),
            _ => None,
        });
        ("True", completed.max().unwrap_or(started))
    } else {
        ("False", started)
    };
    let condition = |kind: &str, status: &str, at| json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": stamp(at)});
    let mut ready_condition = condition("Ready", ready, ready_changed);
    let mut containers_ready = condition(
        "ContainersReady",
        if crate::pod::containers_ready(r) {
            "True"
        } else {
            "False"
        },
        ready_changed,
    );
    // The kubelet's reasons (`status/generate.go`): the containers not ready, by name.
    let unready: Vec<&str> = (0..r.containers.len())
        .filter(|&i| !r.containers[i].init || r.plan.containers[i].sidecar)
        .filter(|&i| !crate::pod::ready(r, i))
        .map(|i| r.containers[i].name.as_str())
        .collect();
    if initialized == "False" {
        ready_condition["reason"] = json!("PodNotInitialized");
    }
    if !unready.is_empty() {
        let message = format!("containers with unready status: [{}]", unready.join(" "));
        if initialized != "False" {
            ready_condition["reason"] = json!("ContainersNotReady");
        }
        ready_condition["message"] = json!(message);
        containers_ready["reason"] = json!("ContainersNotReady");
        containers_ready["message"] = json!(message);
    }
    json!([
        condition("PodReadyToStartContainers", sandbox_ready, sandbox_changed),
        condition("Initialized", initialized, initialized_changed),
        ready_condition,
        containers_ready,
        condition("PodScheduled", "True", taken),
    ])
}

/// The statuses of the init containers (`init`) or of the app containers.
fn statuses(r: &PodRecord, init: bool) -> Value {
    let which = (0..r.containers.len()).filter(|&i| r.containers[i].init == init);
    which.map(|i| container_status(r, i)).collect()
}

fn container_status(r: &PodRecord, i: usize) -> Value {
    let c = &r.containers[i];
    let mut v = json!({
        "name": c.name,
        "image": c.image,
        "imageID": c.image_config.as_ref().map(|i| i.image_id.as_str()).unwrap_or(""),
        "containerID": format!("podrun://{}", c.id),
        "ready": crate::pod::ready(r, i),
        "started": crate::pod::started(r, i),
        "restartCount": c.restart_count,
        "state": api_state(&crate::pod::shown_state(r, c)),
        "lastState": c.last_state.as_ref().map(api_state).unwrap_or(json!({})),
    });
    if let Some(p) = c.process {
        v["pid"] = json!(p.pid);
    }
    v
}

/// A container state as the API shows it: its times to the second (metav1.Time), as the
/// record keeps them finer (back-off counts from the exact finish).
fn api_state(state: &ContainerState) -> Value {
    let mut v = serde_json::to_value(state).unwrap_or_default();
    for inner in v.as_object_mut().into_iter().flat_map(|o| o.values_mut()) {
        for key in ["startedAt", "finishedAt"] {
            let at = inner[key]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            if let Some(at) = at {
                inner[key] = json!(
                    at.to_utc()
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
            }
        }
    }
    v
}

/// Kubernetes QoS class of the pod from its containers' requests and limits.
pub fn qos(r: &PodRecord) -> cgroup::QosClass {
    let resources = crate::resources::pod_resources(&r.plan);
    cgroup::qos_class(&resources)
}
