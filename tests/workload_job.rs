//! Issue 21, acceptance 6: Jobs. completions 3 / parallelism 2 of a container that exits 0
//! is Complete with 3 succeeded pods and never more than 2 running at once; a failing one
//! (restartPolicy Never, backoffLimit 1) backs off, reaches the limit and is Failed with 2
//! failed pods; activeDeadlineSeconds fails a Job and stops its running pod;
//! ttlSecondsAfterFinished deletes a finished Job with its pods; `delete job` removes its
//! pods and leaves the node clean.

mod common;

use std::time::{Duration, Instant};

use common::Node;
use serde_json::Value;

/// A fast pod-failure back-off for the controller these tests start.
const FAST_BACKOFF: (&str, &str) = ("PODRUN_JOB_BACKOFF_BASE_MS", "200");

fn job(name: &str, spec: &str, policy: &str, script: &str) -> String {
    format!(
        "apiVersion: batch/v1
kind: Job
metadata: {{name: {name}}}
spec:
{spec}  template:
    spec:
      restartPolicy: {policy}
      terminationGracePeriodSeconds: 2
      containers:
      - name: c
        image: podrun.local/debug:1
        command: [sh, -c, \"{script}\"]
"
    )
}

fn apply(node: &Node, file: &str, manifest: &str) -> common::Run {
    let f = node.root.path().join(file);
    std::fs::write(&f, manifest).expect("write manifest");
    node.podrun_env(&["apply", "-f", f.to_str().unwrap()], &[FAST_BACKOFF])
}

fn job_json(node: &Node, name: &str) -> Value {
    let out = node.podrun(&["get", "job", name, "-o", "json"]).ok().stdout;
    serde_json::from_str(&out).expect("get job -o json")
}

/// The job's row of `get jobs`, split on whitespace.
fn row(node: &Node, name: &str) -> Vec<String> {
    let out = node.podrun(&["get", "jobs"]).ok().stdout;
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        "{out}"
    );
    lines
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|r| r.first().map(String::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no row {name}: {out}"))
}

fn wait_for_job(
    node: &Node,
    name: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let j = job_json(node, name);
        if done(&j) {
            return j;
        }
        assert!(Instant::now() < deadline, "job never got there: {j:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn condition(j: &Value, kind: &str) -> Option<Value> {
    j["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .cloned()
}

fn phases(pods: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = pods
        .iter()
        .map(|p| p["status"]["phase"].as_str().unwrap_or_default().to_owned())
        .collect();
    v.sort();
    v
}

fn running(pods: &[Value]) -> usize {
    pods.iter()
        .filter(|p| p["status"]["phase"] == "Running" || p["status"]["phase"] == "Pending")
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .count()
}

#[test]
fn completions_3_parallelism_2_completes_with_at_most_2_at_once() {
    require_root!();
    let node = Node::new();
    let out = apply(
        &node,
        "ok.yaml",
        &job(
            "ok",
            "  completions: 3\n  parallelism: 2\n",
            "Never",
            "sleep 1; exit 0",
        ),
    )
    .ok();
    assert!(
        out.stdout.starts_with("job.batch/ok created"),
        "{}",
        out.stdout
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut most = 0;
    let j = loop {
        let pods = node.pods_json();
        most = most.max(running(&pods));
        let j = job_json(&node, "ok");
        if condition(&j, "Complete").is_some() {
            break j;
        }
        assert!(
            Instant::now() < deadline,
            "never complete: {j:#} {:?}",
            phases(&pods)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(most <= 2, "{most} pods ran at once");
    assert_eq!(most, 2, "parallelism 2 was never used");
    assert_eq!(j["status"]["succeeded"], 3, "{j:#}");
    assert!(j["status"]["completionTime"].is_string(), "{j:#}");
    assert_eq!(
        condition(&j, "Complete").unwrap()["reason"],
        "CompletionsReached"
    );
    let pods = node.pods_json();
    assert_eq!(phases(&pods), ["Succeeded"; 3], "finished pods stay");
    for p in &pods {
        assert_eq!(p["metadata"]["labels"]["job-name"], "ok");
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Job");
    }
    let r = row(&node, "ok");
    assert_eq!(&r[..3], ["ok", "Complete", "3/3"], "{r:?}");
    assert!(r[3].ends_with('s'), "DURATION {r:?}");
    let wide = node.podrun(&["get", "jobs", "-o", "wide"]).ok().stdout;
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "STATUS",
            "COMPLETIONS",
            "DURATION",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ],
        "{wide}"
    );
    assert!(wide.contains("podrun.local/debug:1"), "{wide}");
    assert!(
        wide.contains("batch.kubernetes.io/controller-uid="),
        "{wide}"
    );

    let described = node.podrun(&["describe", "job", "ok"]).ok().stdout;
    for want in [
        "Parallelism:",
        "0 Active (0 Ready) / 3 Succeeded / 0 Failed",
        "Completed At:",
        "SuccessfulCreate",
        "Created pod: ok-",
        "Job completed",
        "job-controller",
    ] {
        assert!(described.contains(want), "{want:?} not in:\n{described}");
    }

    // Applied again: unchanged, nothing rerun.
    let again = apply(
        &node,
        "ok.yaml",
        &job(
            "ok",
            "  completions: 3\n  parallelism: 2\n",
            "Never",
            "sleep 1; exit 0",
        ),
    )
    .ok();
    assert!(
        again.stdout.starts_with("job.batch/ok unchanged"),
        "{}",
        again.stdout
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(node.pods_json().len(), 3);

    node.podrun(&["delete", "job", "ok", "--now"]).ok();
    node.wait_for_pods(Duration::from_secs(10), |p| p.is_empty());
    node.assert_clean();
}

#[test]
fn a_failing_job_backs_off_and_reaches_its_backoff_limit() {
    require_root!();
    let node = Node::new();
    apply(
        &node,
        "bad.yaml",
        &job("bad", "  backoffLimit: 1\n", "Never", "exit 1"),
    )
    .ok();
    let j = wait_for_job(&node, "bad", Duration::from_secs(20), |j| {
        condition(j, "Failed").is_some()
    });
    let failed = condition(&j, "Failed").unwrap();
    assert_eq!(failed["reason"], "BackoffLimitExceeded", "{j:#}");
    assert_eq!(
        failed["message"],
        "Job has reached the specified backoff limit"
    );
    assert_eq!(j["status"]["failed"], 2, "{j:#}");
    assert!(j["status"]["completionTime"].is_null());
    let pods = node.pods_json();
    assert_eq!(phases(&pods), ["Failed", "Failed"]);
    // No third pod comes.
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(node.pods_json().len(), 2);
    let described = node.podrun(&["describe", "job", "bad"]).ok().stdout;
    assert!(
        described.contains("0 Active (0 Ready) / 0 Succeeded / 2 Failed"),
        "{described}"
    );
    assert!(described.contains("BackoffLimitExceeded"), "{described}");
    let r = row(&node, "bad");
    assert_eq!(&r[..3], ["bad", "Failed", "0/1"], "{r:?}");

    node.podrun(&["delete", "job", "bad"]).ok();
    node.wait_for_pods(Duration::from_secs(10), |p| p.is_empty());
    node.assert_clean();
}

#[test]
fn active_deadline_fails_the_job_and_stops_its_pod() {
    require_root!();
    let node = Node::new();
    apply(
        &node,
        "slow.yaml",
        &job(
            "slow",
            "  activeDeadlineSeconds: 2\n",
            "Never",
            "trap 'exit 143' TERM; while true; do sleep 1 & wait; done",
        ),
    )
    .ok();
    node.wait_for_pods(Duration::from_secs(10), |p| {
        p.len() == 1 && p[0]["status"]["phase"] == "Running"
    });
    let r = row(&node, "slow");
    assert_eq!(&r[..3], ["slow", "Running", "0/1"], "{r:?}");
    let started = Instant::now();
    let j = wait_for_job(&node, "slow", Duration::from_secs(10), |j| {
        condition(j, "Failed").is_some()
    });
    eprintln!("failed after {:?}", started.elapsed());
    let failed = condition(&j, "Failed").unwrap();
    assert_eq!(failed["reason"], "DeadlineExceeded", "{j:#}");
    assert_eq!(
        failed["message"],
        "Job was active longer than specified deadline"
    );
    // Its running pod is stopped.
    node.wait_for_pods(Duration::from_secs(10), |p| {
        p.iter().all(|p| p["status"]["phase"] != "Running")
    });
    assert!(j["status"]["active"].is_null(), "{j:#}");
    node.podrun(&["delete", "job", "slow"]).ok();
    node.wait_for_pods(Duration::from_secs(10), |p| p.is_empty());
    node.assert_clean();
}

#[test]
fn ttl_after_finished_deletes_the_job_and_its_pods() {
    require_root!();
    let node = Node::new();
    apply(
        &node,
        "brief.yaml",
        &job("brief", "  ttlSecondsAfterFinished: 2\n", "Never", "exit 0"),
    )
    .ok();
    wait_for_job(&node, "brief", Duration::from_secs(10), |j| {
        condition(j, "Complete").is_some()
    });
    let done = Instant::now();
    assert_eq!(phases(&node.pods_json()), ["Succeeded"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = node.podrun(&["get", "job", "brief"]);
        if out.code != 0 {
            assert!(
                out.stderr.contains("jobs.batch \"brief\" not found"),
                "{}",
                out.stderr
            );
            break;
        }
        assert!(Instant::now() < deadline, "never deleted");
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = done.elapsed();
    assert!(
        after >= Duration::from_millis(1000),
        "deleted after {after:?}"
    );
    node.wait_for_pods(Duration::from_secs(10), |p| p.is_empty());
    node.assert_clean();
}
