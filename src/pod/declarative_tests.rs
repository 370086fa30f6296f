use super::*;
use crate::spec::{DeploymentPlan, Object};

fn pod(text: &str) -> PodPlan {
    match crate::spec::load_str(text, "test").unwrap().remove(0) {
        Object::Pod(p) => p,
        other => panic!("{other:?}"),
    }
}

fn deployment(text: &str) -> DeploymentPlan {
    match crate::spec::load_str(text, "test").unwrap().remove(0) {
        Object::Deployment(d) => d,
        other => panic!("{other:?}"),
    }
}

const WEB: &str = "apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers:
  - {name: a, image: 'podrun.local/debug:1', command: [sleep, '1000']}
  - {name: b, image: 'podrun.local/debug:1', command: [sleep, '1000']}
";

#[test]
fn the_same_file_is_unchanged() {
    let old = pod(WEB);
    assert_eq!(pod_change(&old, &pod(WEB)), Ok(PodChange::Unchanged));
}

#[test]
fn a_pod_recorded_without_its_last_applied_configuration_is_unchanged() {
    let mut old = pod(WEB);
    old.last_applied = None;
    assert_eq!(pod_change(&old, &pod(WEB)), Ok(PodChange::Unchanged));
    // Written another way (a default stated): configured, the new configuration kept.
    let stated = WEB.replace("spec:\n", "spec:\n  restartPolicy: Always\n");
    let Ok(PodChange::Update { plan, images }) = pod_change(&pod(WEB), &pod(&stated)) else {
        panic!("an update");
    };
    assert!(images.is_empty());
    assert_eq!(plan.last_applied, pod(&stated).last_applied);
}

#[test]
fn an_image_change_updates_that_container_only() {
    let old = pod(WEB);
    let text = WEB.replacen("podrun.local/debug:1", "podrun.local/python:3.11-slim", 1);
    let Ok(PodChange::Update { plan, images }) = pod_change(&old, &pod(&text)) else {
        panic!("an update");
    };
    assert_eq!(images, ["a"]);
    assert_eq!(plan.uid, old.uid);
    assert_eq!(plan.containers[0].image, "podrun.local/python:3.11-slim");
    assert_eq!(plan.containers[1].image, "podrun.local/debug:1");
    assert_eq!(
        plan.manifest["spec"]["containers"][0]["image"],
        "podrun.local/python:3.11-slim"
    );
    assert_eq!(plan.manifest["metadata"]["uid"], old.uid.as_str());
    assert_eq!(plan.last_applied, pod(&text).last_applied);
}

#[test]
fn labels_are_metadata_and_change_freely() {
    let old = pod(WEB);
    let text = WEB.replace("{app: web}", "{app: web, tier: front}");
    let Ok(PodChange::Update { plan, images }) = pod_change(&old, &pod(&text)) else {
        panic!("an update");
    };
    assert!(images.is_empty());
    assert_eq!(plan.labels.get("tier").map(String::as_str), Some("front"));
    assert_eq!(plan.manifest["metadata"]["labels"]["tier"], "front");
}

#[test]
fn a_command_change_is_refused_with_the_api_servers_message() {
    let old = pod(WEB);
    let text = WEB.replacen("'1000'", "'2000'", 1);
    let err = pod_change(&old, &pod(&text)).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("The Pod \"web\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"),
        "{text}"
    );
    assert!(
        text.contains("spec.containers[0].command: [\"sleep\",\"1000\"] -> [\"sleep\",\"2000\"]"),
        "{text}"
    );
}

#[test]
fn a_default_pull_policy_that_follows_the_new_tag_is_no_change() {
    let old = pod(WEB);
    let text = WEB.replacen("podrun.local/debug:1", "podrun.local/debug:latest", 1);
    let Ok(PodChange::Update { plan, .. }) = pod_change(&old, &pod(&text)) else {
        panic!("an update");
    };
    // The API server keeps the pod's pull policy (the patch does not name it).
    assert_eq!(
        plan.containers[0].image_pull_policy,
        old.containers[0].image_pull_policy
    );
}

const DEPLOY: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  replicas: 2
  selector: {matchLabels: {app: d}}
  template:
    metadata: {labels: {app: d}}
    spec:
      containers: [{name: c, image: 'podrun.local/debug:1', command: [sleep, '1000']}]
";

#[test]
fn workloads_are_created_kept_or_configured() {
    let d = deployment(DEPLOY);
    let applied = d.last_applied.clone().unwrap();
    let change = |old: Option<&str>, pods, new: &DeploymentPlan| {
        workload_change(
            "Deployment",
            "d",
            old,
            pods,
            new.last_applied.as_deref().unwrap(),
        )
    };
    assert_eq!(change(None, 0, &d), Ok(WorkloadChange::Create));
    assert_eq!(
        change(None, 2, &d),
        Err(Refused::DeploymentWithoutRecord("d".into()))
    );
    assert_eq!(
        change(Some(&applied), 2, &deployment(DEPLOY)),
        Ok(WorkloadChange::Unchanged)
    );
    let scaled = deployment(&DEPLOY.replace("replicas: 2", "replicas: 3"));
    assert_eq!(
        change(Some(&applied), 2, &scaled),
        Ok(WorkloadChange::Configured(vec![
            "spec.replicas: 2 -> 3".into()
        ]))
    );
}

#[test]
fn a_job_takes_only_the_changes_the_api_server_allows() {
    let old = r#"{"spec":{"parallelism":1,"template":{"spec":{"containers":[{"image":"a"}]}}}}"#;
    let wider = old.replace(r#""parallelism":1"#, r#""parallelism":2"#);
    assert!(matches!(
        workload_change("Job", "j", Some(old), 0, &wider),
        Ok(WorkloadChange::Configured(_))
    ));
    let image = old.replace(r#""image":"a""#, r#""image":"b""#);
    let err = workload_change("Job", "j", Some(old), 0, &image).unwrap_err();
    assert_eq!(
        err.to_string(),
        "The Job \"j\" is invalid: spec.template.spec.containers[0].image: field is immutable"
    );
}
