//! Issue 17, defect 6: values the API server or the node cannot honour are refused at apply,
//! naming the field and value, before anything is created (they used to reach the kernel: a
//! cgroup write's EINVAL, an empty /proc, EMFILE, or a silently unlimited memory limit).

mod common;

use std::process::Command;

use common::{Node, Run};

const DEBUG_IMAGE: &str = "podrun.local/debug:1";

fn pod(name: &str, containers: &str, extra_meta: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n{extra_meta}spec:\n  terminationGracePeriodSeconds: 1\n  volumes: [{{name: v, emptyDir: {{}}}}]\n  containers:\n{containers}"
    )
}

fn container(name: &str, extra: &str) -> String {
    format!("  - {{name: {name}, image: '{DEBUG_IMAGE}', command: [sleep, '600']{extra}}}\n")
}

#[track_caller]
fn refused(node: &Node, manifest: &str, expect: &str) {
    let r = node.apply_manifest("bad.yaml", manifest);
    assert_ne!(
        r.code,
        0,
        "accepted: {}",
        &manifest[..manifest.len().min(400)]
    );
    assert!(
        r.stderr.contains(expect),
        "expected {expect:?} in: {}",
        r.stderr
    );
    assert_eq!(node.state_entries(), 0, "a pod record was made");
    assert!(
        node.veths().is_empty(),
        "a veth was made: {:?}",
        node.veths()
    );
    assert!(node.processes().is_empty(), "processes were started");
}

#[test]
fn out_of_range_resources_are_refused_with_the_field() {
    require_root!();
    let node = Node::new();
    // The kernel's CFS quota tops out at 2^44-1 us: the cgroup write used to fail with EINVAL.
    refused(
        &node,
        &pod(
            "cpu",
            &container("c", ", resources: {limits: {cpu: 1e100}}"),
            "",
        ),
        "spec.containers[0].resources.limits.cpu: Invalid value: \"1e+100\": must be less than or equal to 175921860",
    );
    // A request (or a limit alone: it is the request) the node can never give: the kubelet's
    // admission refuses it (the memory limit used to become "unlimited" without a word).
    refused(
        &node,
        &pod(
            "mem",
            &container("c", ", resources: {limits: {memory: 1e100}}"),
            "",
        ),
        "pod/mem: rejected by the node: OutOfmemory: Node didn't have enough resource: memory, requested: 9223372036854775807",
    );
    refused(
        &node,
        &pod(
            "req",
            &container("c", ", resources: {requests: {cpu: '100000'}}"),
            "",
        ),
        "OutOfcpu: Node didn't have enough resource: cpu, requested: 100000000",
    );
}

#[test]
fn annotations_over_the_api_servers_cap_are_refused() {
    require_root!();
    let node = Node::new();
    let big = "x".repeat(10 << 20);
    refused(
        &node,
        &pod(
            "big",
            &container("c", ""),
            &format!("  annotations: {{note: '{big}'}}\n"),
        ),
        "The Pod \"big\" is invalid: metadata.annotations: Too long: may not be more than 262144 bytes",
    );
    // Just under the cap is fine.
    let fits = "x".repeat(256 * 1024 - 4);
    let r = node.apply_manifest(
        "fits.yaml",
        &pod(
            "fits",
            &container("c", ""),
            &format!("  annotations: {{note: '{fits}'}}\n"),
        ),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    node.podrun(&["delete", "fits", "--now"]).ok();
    node.assert_clean();
}

#[test]
fn a_volume_over_proc_is_refused() {
    require_root!();
    let node = Node::new();
    for (path, why) in [
        ("/proc", "cannot be mounted because it is not of type proc"),
        (
            "//proc/",
            "cannot be mounted because it is not of type proc",
        ),
        ("/proc/sys", "cannot be mounted because it is inside /proc"),
    ] {
        refused(
            &node,
            &pod(
                "p",
                &container(
                    "c",
                    &format!(", volumeMounts: [{{name: v, mountPath: '{path}'}}]"),
                ),
                "",
            ),
            &format!(
                "spec.containers[0].volumeMounts[0].mountPath: Invalid value: \"{path}\": {why}"
            ),
        );
    }
}

#[test]
fn a_pod_over_the_container_limit_is_refused_and_one_at_it_runs() {
    require_root!();
    let node = Node::new();
    let many = |n: usize| {
        (0..n)
            .map(|i| container(&format!("c{i}"), ""))
            .collect::<String>()
    };
    refused(
        &node,
        &pod("huge", &many(10_000), ""),
        "spec.containers: Too many: 10000: must have at most 250 items",
    );
    // 250 containers start, even under a login shell's soft limit of 1024 descriptors (the
    // supervisor raises its own, as containerd runs with LimitNOFILE=infinity).
    let manifest = node.root.path().join("many.yaml");
    std::fs::write(&manifest, pod("many", &many(250), "")).unwrap();
    let apply = node.podrun_command(&["apply", "-f", manifest.to_str().unwrap()]);
    let mut limited = Command::new("prlimit");
    limited
        .arg("--nofile=1024:")
        .arg("--")
        .arg(apply.get_program());
    limited.args(apply.get_args());
    for (k, v) in apply.get_envs() {
        if let Some(v) = v {
            limited.env(k, v);
        }
    }
    let r = Run::from(limited.output().expect("run prlimit"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let pod = node.pod_json("many");
    let statuses = pod["status"]["containerStatuses"].as_array().unwrap();
    assert_eq!(statuses.len(), 250);
    assert!(statuses.iter().all(|c| c["state"]["running"].is_object()));
    node.podrun(&["delete", "many", "--now"]).ok();
    node.assert_clean();
}
