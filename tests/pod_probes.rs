//! Issue 20, probes: liveness restarts a container (events in describe), readiness sets
//! READY and the Ready condition without a restart, startup holds liveness back; exec,
//! tcpSocket, httpGet and grpc each pass and fail, network probes going from the node to the
//! pod IP (a server bound to 127.0.0.1 fails them, as in Kubernetes).

mod common;

use std::time::Duration;

use common::Node;
use serde_json::Value;

/// A busybox httpd serving /www (with a /www/healthz) on `listen`, after `delay` seconds.
fn httpd(listen: &str, delay: u32) -> String {
    format!(
        "sleep {delay}; mkdir -p /www; echo ok > /www/healthz; exec httpd -f -p {listen} -h /www"
    )
}

/// An app container's status.
fn status<'a>(pod: &'a Value, name: &str) -> &'a Value {
    common::container_status(pod, "containerStatuses", name)
}

fn condition(pod: &Value, kind: &str) -> Value {
    pod["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == kind)
        .cloned()
        .unwrap_or_else(|| panic!("condition {kind} in {pod}"))
}

#[test]
fn liveness_on_a_named_port_restarts_a_server_that_starts_failing() {
    require_root!();
    let node = Node::new();
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: live}}
spec:
  containers:
  - name: web
    image: podrun.local/debug:1
    command: [sh, -c, '{}']
    ports: [{{name: http, containerPort: 8080}}]
    livenessProbe:
      httpGet: {{path: /healthz, port: http}}
      periodSeconds: 1
      failureThreshold: 2
      # httpd is PID 1 of its PID namespace: it ignores SIGTERM, the kill waits this long.
      terminationGracePeriodSeconds: 1
"#,
        httpd("8080", 0)
    );
    node.apply_manifest("live.yaml", &manifest).ok();
    node.wait_for_pod("live", Duration::from_secs(20), |p| {
        status(p, "web")["started"] == true
    });
    // Healthy for a few periods: no restart.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(status(&node.pod_json("live"), "web")["restartCount"], 0);
    node.exec("live", "web", &["rm", "/www/healthz"]).ok();
    let pod = node.wait_for_pod("live", Duration::from_secs(20), |p| {
        status(p, "web")["restartCount"] == 1 && status(p, "web")["state"]["running"].is_object()
    });
    let web = status(&pod, "web");
    let describe = node.podrun(&["describe", "pod", "live"]).ok().stdout;
    assert_eq!(web["restartCount"], 1, "{web}\n{describe}");
    assert!(web["lastState"]["terminated"].is_object(), "{web}");
    let describe = node.podrun(&["describe", "pod", "live"]).ok().stdout;
    for needle in [
        "Liveness:       http-get http://:8080/healthz delay=0s timeout=1s period=1s #success=1 #failure=2",
        "Unhealthy",
        "Liveness probe failed: HTTP probe failed with statuscode: 404",
        "Container web failed liveness probe, will be restarted",
    ] {
        assert!(describe.contains(needle), "{needle:?} in\n{describe}");
    }
    node.podrun(&["delete", "live", "--now"]).ok();
    node.assert_clean();
}

#[test]
fn a_failing_readiness_probe_unreadies_without_a_restart_and_startup_holds_liveness_back() {
    require_root!();
    let node = Node::new();
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: ready}}
spec:
  containers:
  - name: gated
    image: podrun.local/debug:1
    command: [sleep, '3600']
    readinessProbe:
      exec: {{command: [cat, /tmp/ready]}}
      periodSeconds: 1
  - name: slow
    image: podrun.local/debug:1
    command: [sh, -c, '{}']
    startupProbe:
      httpGet: {{path: /healthz, port: 8080}}
      periodSeconds: 1
      failureThreshold: 20
    livenessProbe:
      httpGet: {{path: /healthz, port: 8080}}
      periodSeconds: 1
      failureThreshold: 1
"#,
        httpd("8080", 4)
    );
    node.apply_manifest("ready.yaml", &manifest).ok();
    // The slow server starts after 4 s: the startup probe fails until then, and liveness
    // (which would kill it at its first failure) waits for it.
    let pod = node.wait_for_pod("ready", Duration::from_secs(30), |p| {
        status(p, "slow")["started"] == true
    });
    assert_eq!(status(&pod, "slow")["restartCount"], 0, "{pod}");
    assert_eq!(status(&pod, "slow")["ready"], true);
    assert_eq!(status(&pod, "gated")["ready"], false);
    assert_eq!(node.get_column("ready", 1), "1/2");
    assert_eq!(condition(&pod, "Ready")["status"], "False");
    assert_eq!(condition(&pod, "ContainersReady")["status"], "False");
    assert_eq!(
        condition(&pod, "Ready")["message"],
        "containers with unready status: [gated]"
    );
    let row = node.podrun(&["get", "pods", "--no-headers"]).ok().stdout;
    assert!(row.contains(" Running "), "{row}");
    node.exec("ready", "gated", &["touch", "/tmp/ready"]).ok();
    let pod = node.wait_for_pod("ready", Duration::from_secs(10), |p| {
        condition(p, "Ready")["status"] == "True"
    });
    assert_eq!(node.get_column("ready", 1), "2/2");
    assert_eq!(
        status(&pod, "gated")["restartCount"],
        0,
        "readiness never restarts"
    );
    node.exec("ready", "gated", &["rm", "/tmp/ready"]).ok();
    let pod = node.wait_for_pod("ready", Duration::from_secs(10), |p| {
        status(p, "gated")["ready"] == false
    });
    assert_eq!(status(&pod, "gated")["restartCount"], 0);
    assert!(status(&pod, "gated")["state"]["running"].is_object());
    let describe = node.podrun(&["describe", "pod", "ready"]).ok().stdout;
    assert!(
        describe.contains("Readiness probe failed: cat: can't open '/tmp/ready'"),
        "{describe}"
    );
    node.podrun(&["delete", "ready", "--now"]).ok();
    node.assert_clean();
}

/// Where the example gRPC health server is (built by `cargo test` with the examples).
fn grpc_server_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("examples")
}

#[test]
fn exec_tcp_http_and_grpc_probes_pass_and_fail() {
    require_root!();
    let node = Node::new();
    let examples = grpc_server_dir();
    assert!(
        examples.join("grpc_health_server").exists(),
        "the example gRPC server in {}",
        examples.display()
    );
    // Each container's readiness probe shows the outcome: ready or not.
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: kinds}}
spec:
  volumes: [{{name: bin, hostPath: {{path: '{bin}', type: Directory}}}}]
  containers:
  - name: exec-pass
    image: podrun.local/debug:1
    command: [sleep, '3600']
    readinessProbe: {{exec: {{command: ['true']}}, periodSeconds: 1}}
  - name: exec-fail
    image: podrun.local/debug:1
    command: [sleep, '3600']
    readinessProbe: {{exec: {{command: [sh, -c, 'echo nope; exit 1']}}, periodSeconds: 1}}
  - name: tcp-pass
    image: podrun.local/debug:1
    command: [sh, -c, '{http_any}']
    readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
  - name: tcp-loopback
    image: podrun.local/debug:1
    command: [sh, -c, '{http_loopback}']
    readinessProbe: {{tcpSocket: {{port: 8081}}, periodSeconds: 1}}
  - name: http-fail
    image: podrun.local/debug:1
    command: [sleep, '3600']
    readinessProbe: {{httpGet: {{path: /missing, port: 8080, httpHeaders: [{{name: X-Probe, value: podrun}}]}}, periodSeconds: 1}}
  - name: grpc-pass
    image: podrun.local/debug:1
    command: [/bin-host/grpc_health_server, '9090']
    volumeMounts: [{{name: bin, mountPath: /bin-host, readOnly: true}}]
    readinessProbe: {{grpc: {{port: 9090}}, periodSeconds: 1}}
  - name: grpc-fail
    image: podrun.local/debug:1
    command: [sleep, '3600']
    readinessProbe: {{grpc: {{port: 9090, service: down}}, periodSeconds: 1}}
"#,
        bin = examples.display(),
        http_any = httpd("8080", 0),
        http_loopback = httpd("127.0.0.1:8081", 0),
    );
    node.apply_manifest("kinds.yaml", &manifest).ok();
    let passing = ["exec-pass", "tcp-pass", "grpc-pass"];
    let pod = node.wait_for_pod("kinds", Duration::from_secs(30), |p| {
        passing.iter().all(|n| status(p, n)["ready"] == true)
    });
    for name in passing {
        assert_eq!(status(&pod, name)["ready"], true, "{name}: {pod}");
    }
    // Failing ones stay unready (several periods later).
    std::thread::sleep(Duration::from_secs(3));
    let pod = node.pod_json("kinds");
    for name in ["exec-fail", "tcp-loopback", "http-fail", "grpc-fail"] {
        assert_eq!(status(&pod, name)["ready"], false, "{name}: {pod}");
        assert_eq!(status(&pod, name)["restartCount"], 0, "{name}");
    }
    assert_eq!(node.get_column("kinds", 1), "3/7");
    let describe = node.podrun(&["describe", "pod", "kinds"]).ok().stdout;
    let ip = pod["status"]["podIP"].as_str().unwrap();
    for needle in [
        "Readiness probe failed: nope".to_string(),
        format!("Readiness probe failed: dial tcp {ip}:8081: connect: connection refused"),
        "Readiness probe failed: HTTP probe failed with statuscode: 404".to_string(),
        "Readiness probe failed: service unhealthy (responded with \"NOT_SERVING\")".to_string(),
    ] {
        assert!(describe.contains(&needle), "{needle:?} in\n{describe}");
    }
    node.podrun(&["delete", "kinds", "--now"]).ok();
    node.assert_clean();
}
