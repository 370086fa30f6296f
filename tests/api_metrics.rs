//! `kubectl top` against `podrun serve` (metrics.k8s.io/v1beta1): the oldest (1.27), the
//! PATH's (1.32) and the newest (1.33) kubectl print `top pod` (one namespace, `-A`, `-l`, one
//! pod, `--containers`) and `top node`. A busy loop limited to 200m shows about 200m, a pod
//! holding 40 MiB of tmpfs shows that much more memory than an idle one, a pod whose only
//! container has exited has no metrics (kubectl's `metrics not available yet` for a young pod,
//! metrics-server's 404 for one pod), a pod that does not exist is the pod lister's 404. The
//! objects themselves are metrics-server's (kind, window, canonical quantities), and `podrun
//! top` reads the same cgroups.

mod common;

use std::time::{Duration, Instant};

use common::kubectl::{Server, get_raw, kubectl, kubectls};
use common::{DEBUG_IMAGE, Node};
use serde_json::Value;

fn manifests() -> Vec<(&'static str, String)> {
    vec![
        (
            "spin.yaml",
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: spin\n  labels: {{app: spin}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: spin\n    image: {DEBUG_IMAGE}\n    command: [sh, -c, 'while :; do :; done']\n    resources: {{limits: {{cpu: 200m, memory: 64Mi}}}}\n  - name: idle\n    image: {DEBUG_IMAGE}\n    command: [sleep, '3600']\n"
            ),
        ),
        (
            "hog.yaml",
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hog\n  labels: {{app: hog}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: hog\n    image: {DEBUG_IMAGE}\n    command: [sh, -c, 'dd if=/dev/zero of=/dev/shm/fill bs=1M count=40 && exec sleep 3600']\n    resources: {{limits: {{memory: 128Mi}}}}\n"
            ),
        ),
        (
            "done.yaml",
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: done\n  labels: {{app: done}}\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: done\n    image: {DEBUG_IMAGE}\n    command: ['true']\n"
            ),
        ),
    ]
}

/// The whitespace-split rows of a kubectl table (the header first).
fn rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// `123m` → 123.
fn millicores(cell: &str) -> u64 {
    cell.strip_suffix('m')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not millicores: {cell:?}"))
}

/// `45Mi` → 45.
fn mebibytes(cell: &str) -> u64 {
    cell.strip_suffix("Mi")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not Mi: {cell:?}"))
}

fn row<'a>(rows: &'a [Vec<String>], first: &str) -> &'a [String] {
    rows.iter()
        .find(|r| r.first().map(String::as_str) == Some(first))
        .unwrap_or_else(|| panic!("no row {first} in {rows:?}"))
}

/// The busy loop's CPU: 200m by its limit; a window of at least 200 ms leaves a period's
/// quantum of slack each way, and the 2-core machine is shared.
const SPIN_MILLICORES: std::ops::RangeInclusive<u64> = 80..=300;

#[test]
fn kubectl_top_pods_and_node() {
    require_root!();
    let node = Node::new();
    for (file, text) in manifests() {
        node.apply_manifest(file, &text).ok();
    }
    node.wait_for_pods(Duration::from_secs(30), |pods| {
        let phase = |name: &str| {
            pods.iter()
                .find(|p| p["metadata"]["name"] == name)
                .map(|p| p["status"]["phase"].clone())
        };
        phase("spin") == Some("Running".into())
            && phase("hog") == Some("Running".into())
            && phase("done") == Some("Succeeded".into())
    });
    // The hog's 40 MiB are written once dd ends.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let top: Value =
            serde_json::from_str(&node.podrun(&["top", "hog", "-o", "json"]).ok().stdout).unwrap();
        if top["items"][0]["memoryCurrentBytes"].as_u64().unwrap_or(0) >= 40 << 20 {
            break;
        }
        assert!(Instant::now() < deadline, "the hog holds no 40 MiB: {top}");
        std::thread::sleep(Duration::from_millis(100));
    }

    let server = Server::start(&node);
    let cache = tempfile::tempdir().unwrap();
    let node_name = node
        .pod_json("spin")
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap()
        .to_owned();
    for bin in kubectls() {
        let version = bin.file_name().unwrap().to_string_lossy().into_owned();
        let cache = cache.path().join(&version);
        let k = |args: &[&str]| kubectl(&node, &bin, &cache, args);

        // The namespace's pods with metrics: spin and hog (done has no running container).
        let out = k(&["top", "pod"]).ok().stdout;
        eprintln!("{version}: kubectl top pod\n{out}");
        let t = rows(&out);
        assert_eq!(
            t[0],
            ["NAME", "CPU(cores)", "MEMORY(bytes)"],
            "{version}: {out}"
        );
        assert_eq!(t.len(), 3, "{version}: {out}");
        let spin = row(&t, "spin");
        let hog = row(&t, "hog");
        assert!(
            SPIN_MILLICORES.contains(&millicores(&spin[1])),
            "{version}: spin's CPU: {out}"
        );
        assert!(millicores(&hog[1]) < 50, "{version}: hog's CPU: {out}");
        let (spin_mem, hog_mem) = (mebibytes(&spin[2]), mebibytes(&hog[2]));
        assert!(
            hog_mem >= spin_mem + 30 && hog_mem < 100,
            "{version}: the hog's 40 MiB: {out}"
        );

        // Per container: spin's two (the busy one and the sleeper), hog's one.
        let out = k(&["top", "pod", "--containers"]).ok().stdout;
        eprintln!("{version}: kubectl top pod --containers\n{out}");
        let t = rows(&out);
        assert_eq!(
            t[0],
            ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"],
            "{version}: {out}"
        );
        let mut pairs: Vec<(String, String)> = t[1..]
            .iter()
            .map(|r| (r[0].clone(), r[1].clone()))
            .collect();
        pairs.sort();
        assert_eq!(
            pairs,
            [("hog", "hog"), ("spin", "idle"), ("spin", "spin")]
                .map(|(a, b)| (a.to_owned(), b.to_owned())),
            "{version}: {out}"
        );
        for r in &t[1..] {
            let cpu = millicores(&r[2]);
            mebibytes(&r[3]);
            if r[1] == "spin" {
                assert!(SPIN_MILLICORES.contains(&cpu), "{version}: {out}");
            } else {
                assert!(cpu < 50, "{version}: {out}");
            }
        }

        // Every namespace, a label selector, one pod.
        let out = k(&["top", "pod", "-A"]).ok().stdout;
        let t = rows(&out);
        assert_eq!(t[0][..2], ["NAMESPACE", "NAME"], "{version}: {out}");
        assert_eq!(t.len(), 3, "{version}: {out}");
        assert!(t[1..].iter().all(|r| r[0] == "default"), "{version}: {out}");
        let out = k(&["top", "pod", "-l", "app=spin"]).ok().stdout;
        let t = rows(&out);
        assert_eq!(t.len(), 2, "{version}: {out}");
        assert_eq!(t[1][0], "spin", "{version}: {out}");
        let out = k(&["top", "pod", "hog"]).ok().stdout;
        let t = rows(&out);
        assert_eq!(t.len(), 2, "{version}: {out}");
        assert!(mebibytes(&t[1][2]) >= 40, "{version}: {out}");
        let out = k(&["top", "pod", "-l", "app in (spin,hog)", "--containers"])
            .ok()
            .stdout;
        assert_eq!(rows(&out).len(), 4, "{version}: {out}");

        // No metrics: a young pod without running containers, one that does not exist.
        let none = k(&["top", "pod", "-l", "app=done"]);
        assert_ne!(none.code, 0, "{version}: {none:?}");
        assert!(
            none.stderr.contains("error: metrics not available yet"),
            "{version}: {none:?}"
        );
        let one = k(&["top", "pod", "done"]);
        assert!(
            one.stderr.contains(
                "Error from server (NotFound): podmetrics.metrics.k8s.io \"default/done\" not found"
            ),
            "{version}: {one:?}"
        );
        let missing = k(&["top", "pod", "nope"]);
        assert!(
            missing
                .stderr
                .contains("Error from server (NotFound): pod \"nope\" not found"),
            "{version}: {missing:?}"
        );
        let empty = k(&["top", "pod", "-l", "app=nothing"]);
        assert_eq!(empty.code, 0, "{version}: {empty:?}");
        assert!(
            empty
                .stderr
                .contains("No resources found in default namespace."),
            "{version}: {empty:?}"
        );

        // The node: its CPU and memory against its allocatable.
        let out = k(&["top", "node"]).ok().stdout;
        eprintln!("{version}: kubectl top node\n{out}");
        let t = rows(&out);
        assert_eq!(t[0][..2], ["NAME", "CPU(cores)"], "{version}: {out}");
        assert_eq!(t.len(), 2, "{version}: {out}");
        let n = &t[1];
        assert_eq!(n[0], node_name, "{version}: {out}");
        assert!(
            millicores(&n[1]) >= *SPIN_MILLICORES.start(),
            "{version}: the node runs the busy loop at least: {out}"
        );
        assert!(
            n[2].ends_with('%') && n[4].ends_with('%'),
            "{version}: {out}"
        );
        assert!(mebibytes(&n[3]) > hog_mem, "{version}: {out}");
        let out = k(&["top", "node", &node_name]).ok().stdout;
        assert_eq!(rows(&out).len(), 2, "{version}: {out}");
    }

    // The objects as metrics-server writes them.
    let bin = &kubectls()[1];
    let cache = cache.path().join("raw");
    let raw = |path: &str| -> Value { get_raw(&node, bin, &cache, path) };
    let groups = raw("/apis");
    assert!(
        groups["groups"].as_array().unwrap().iter().any(|g| {
            g["name"] == "metrics.k8s.io" && g["preferredVersion"]["version"] == "v1beta1"
        }),
        "{groups}"
    );
    let group = raw("/apis/metrics.k8s.io");
    assert_eq!(group["kind"], "APIGroup", "{group}");
    assert_eq!(
        group["versions"][0]["groupVersion"],
        "metrics.k8s.io/v1beta1"
    );
    let list = raw("/apis/metrics.k8s.io/v1beta1");
    let names: Vec<&str> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nodes", "pods"], "{list}");
    let pm = raw("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/spin");
    eprintln!("{pm:#}");
    assert_eq!(pm["kind"], "PodMetrics", "{pm}");
    assert_eq!(pm["apiVersion"], "metrics.k8s.io/v1beta1", "{pm}");
    assert_eq!(pm["metadata"]["labels"]["app"], "spin", "{pm}");
    assert!(pm["metadata"]["creationTimestamp"].is_string(), "{pm}");
    assert!(pm["timestamp"].as_str().unwrap().ends_with('Z'), "{pm}");
    let window = pm["window"].as_str().unwrap();
    assert!(
        window.ends_with("ms") || window.ends_with('s'),
        "window {window:?}"
    );
    for c in pm["containers"].as_array().unwrap() {
        let cpu = c["usage"]["cpu"].as_str().unwrap();
        assert!(
            cpu == "0" || cpu.ends_with(['n', 'u', 'm']),
            "cpu quantity {cpu:?}"
        );
        assert!(
            c["usage"]["memory"].as_str().unwrap().ends_with("Ki")
                || c["usage"]["memory"].as_str().unwrap().ends_with("Mi"),
            "{c}"
        );
    }
    let all = raw("/apis/metrics.k8s.io/v1beta1/pods?labelSelector=app%3Dhog");
    assert_eq!(all["kind"], "PodMetricsList", "{all}");
    assert_eq!(all["items"].as_array().unwrap().len(), 1, "{all}");
    let by_field = raw("/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=metadata.name%3Dspin");
    assert_eq!(by_field["items"].as_array().unwrap().len(), 1, "{by_field}");
    assert_eq!(
        by_field["items"][0]["metadata"]["name"], "spin",
        "{by_field}"
    );
    let bad = kubectl(
        &node,
        bin,
        &cache,
        &[
            "get",
            "--raw",
            "/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=status.phase%3DRunning",
        ],
    );
    assert!(
        bad.stderr.contains("BadRequest") || bad.stderr.contains("field label not supported"),
        "{bad:?}"
    );
    let nodes = raw("/apis/metrics.k8s.io/v1beta1/nodes");
    assert_eq!(nodes["kind"], "NodeMetricsList", "{nodes}");
    assert_eq!(nodes["items"][0]["metadata"]["name"], node_name.as_str());
    assert!(nodes["items"][0]["usage"]["memory"].is_string(), "{nodes}");

    // `kubectl get` prints metrics-server's Table.
    let out = kubectl(&node, bin, &cache, &["get", "podmetrics.metrics.k8s.io"])
        .ok()
        .stdout;
    let t = rows(&out);
    assert_eq!(t[0], ["NAME", "CPU", "MEMORY", "WINDOW"], "{out}");
    assert_eq!(t.len(), 3, "{out}");
    let spin = row(&t, "spin");
    assert!(spin[1].ends_with(['n', 'u', 'm']), "{out}");

    // podrun's own top reads the same cgroups.
    let ours: Value =
        serde_json::from_str(&node.podrun(&["top", "-o", "json"]).ok().stdout).unwrap();
    let spin = ours["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["pod"] == "spin" && r["container"] == "spin")
        .unwrap();
    let cores = spin["cpuCores"].as_f64().unwrap();
    assert!(
        SPIN_MILLICORES.contains(&((cores * 1000.0) as u64)),
        "{ours}"
    );

    server.stop();
    node.podrun(&["delete", "pod", "spin", "hog", "done", "--now"])
        .ok();
    node.assert_clean();
}
