//! Issue 22, first slice: `podrun serve` is a Kubernetes API endpoint the real kubectl reads.
//! The oldest (1.27), the PATH's (1.32) and the newest (1.33) kubectl, with the kubeconfig the
//! server wrote, list the book's Deployment's pods (`-o wide -l app=cs-pod`), print the
//! jsonpath containerIDs, get a pod as `podrun get pod -o json` prints it, list deployments,
//! replicasets, the node and every namespace's pods, get the API server's 404, and delete a
//! pod (1.27 and 1.33: gone when kubectl returns, replaced by the Deployment). Without the
//! token, or with a wrong one, the server answers 401; its keys and kubeconfig are 0600; it
//! listens on loopback only; it restarts with the same CA and token without touching pods.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::kubectl::{
    Lines, PORT, Server, idle_pod, kubeconfig, kubectl, kubectl_command, kubectls, running,
};
use common::{Node, Run};
use serde_json::Value;

/// Every column but AGE (index `age`) of a table's lines.
fn without_age(text: &str, age: usize) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .enumerate()
                .filter(|(i, _)| *i != age)
                .map(|(_, c)| c.to_owned())
                .collect()
        })
        .collect()
}

fn strip_volatile(mut v: Value) -> Value {
    if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    v
}

#[test]
fn kubectl_reads_the_books_deployment() {
    require_root!();
    let node = Node::new();
    let manifest = common::repo_file("pods/cs-deployment-local.yaml");
    node.podrun(&["apply", "-f", manifest.to_str().unwrap()])
        .ok();
    let pods = node.wait_for_pods(Duration::from_secs(30), |p| {
        p.len() == 3 && p.iter().all(running)
    });
    let first = pods[0]["metadata"]["name"].as_str().unwrap().to_owned();

    let server = Server::start(&node);
    assert!(
        server.started_in < Duration::from_millis(900),
        "started in {:?}",
        server.started_in
    );
    let cache = tempfile::tempdir().unwrap();
    let podrun_wide = node.podrun(&["get", "pods", "-o", "wide"]).ok().stdout;
    let gateway = format!(
        "{}.1",
        node.cidr
            .split('/')
            .next()
            .unwrap()
            .rsplit_once('.')
            .unwrap()
            .0
    );
    for bin in kubectls() {
        let version = bin.file_name().unwrap().to_string_lossy().into_owned();
        // Each version discovers the API itself.
        let cache = cache.path().join(&version);
        let k = |args: &[&str]| kubectl(&node, &bin, &cache, args);

        // The chapter's listing: 3 rows with IPs and the node, as podrun prints them.
        let out = k(&["get", "pods", "-o", "wide", "-l", "app=cs-pod"])
            .ok()
            .stdout;
        assert_eq!(out.lines().count(), 4, "{version}: {out}");
        assert!(out.starts_with("NAME "), "{version}: {out}");
        assert_eq!(
            without_age(&out, 4),
            without_age(&podrun_wide, 4),
            "{version}:\n{out}\npodrun:\n{podrun_wide}"
        );
        for p in &pods {
            let ip = p["status"]["podIP"].as_str().unwrap();
            assert!(out.contains(ip), "{version}: {ip} missing in\n{out}");
        }
        let none = k(&["get", "pods", "-l", "app!=cs-pod"]);
        assert_eq!(none.code, 0, "{version}: {none:?}");
        assert!(
            none.stderr
                .contains("No resources found in default namespace."),
            "{version}: {none:?}"
        );
        let sel = k(&[
            "get",
            "pods",
            "-l",
            "app in (cs-pod),!nope",
            "--field-selector",
            &format!("metadata.name={first},status.phase=Running"),
            "-o",
            "name",
        ])
        .ok()
        .stdout;
        assert_eq!(sel.trim(), format!("pod/{first}"), "{version}");

        // The chapter's jsonpath.
        let out = k(&[
            "get",
            "pod",
            &first,
            "-o",
            "jsonpath={range .status.containerStatuses[*]}{.name}: {.containerID}{\"\\n\"}{end}",
        ])
        .ok()
        .stdout;
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{version}: {out}");
        let statuses = pods[0]["status"]["containerStatuses"].as_array().unwrap();
        for (line, c) in lines.iter().zip(statuses) {
            assert_eq!(
                *line,
                format!(
                    "{}: {}",
                    c["name"].as_str().unwrap(),
                    c["containerID"].as_str().unwrap()
                ),
                "{version}"
            );
            assert!(line.contains(": podrun://"), "{version}: {line}");
        }

        // podrun's own CLI prints the same for the same template, selectors and columns.
        for args in [
            &[
                "get",
                "pod",
                &first,
                "-o",
                "jsonpath={range .status.containerStatuses[*]}{.name}: {.containerID}{\"\\n\"}{end}",
            ][..],
            &[
                "get",
                "pods",
                "-l",
                "app=cs-pod",
                "-o",
                "jsonpath={.items[*].status.podIP}",
            ],
            &[
                "get",
                "pods",
                "-o",
                "custom-columns=NAME:.metadata.name,IP:.status.podIP,NODE:.spec.nodeName,NONE:.metadata.nope",
                "--field-selector",
                &format!("metadata.name={first}"),
            ],
            &["get", "pods", "-l", "app in (cs-pod),!nope", "-o", "name"],
            &["get", "deployments", "-l", "app=cs-pod", "-o", "name"],
            &[
                "get",
                "events",
                "--field-selector",
                &format!("involvedObject.name={first}"),
                "-o",
                "name",
            ],
            &["get", "namespaces", "-o", "name"],
            &[
                "get",
                "nodes",
                "-o",
                "jsonpath={.items[*].status.nodeInfo.kubeletVersion}",
            ],
        ] {
            let theirs = k(args).ok().stdout;
            let ours = node.podrun(args).ok().stdout;
            assert_eq!(ours, theirs, "{version}: {args:?}");
            assert!(!ours.trim().is_empty(), "{version}: {args:?}");
        }
        // Events: of one pod by field selector, of the Deployment, and in describe.
        let events = k(&[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={first}"),
        ])
        .ok()
        .stdout;
        assert!(
            events.starts_with("LAST SEEN")
                && events.contains("Started")
                && events.contains(&format!("pod/{first}")),
            "{version}: {events}"
        );
        assert!(
            !events.contains("deployment/"),
            "{version}: another object's events: {events}"
        );
        let all = k(&["get", "events", "-o", "wide"]).ok().stdout;
        assert!(
            all.contains("ScalingReplicaSet") && all.contains("deployment-controller"),
            "{version}: {all}"
        );
        let described = k(&["describe", "pod", &first]).ok().stdout;
        assert!(
            described.contains("Events:") && described.contains("Started"),
            "{version}: {described}"
        );
        let theirs = k(&["get", "nodes", "-o", "wide"]).ok().stdout;
        let ours = node.podrun(&["get", "nodes", "-o", "wide"]).ok().stdout;
        assert_eq!(without_age(&ours, 3), without_age(&theirs, 3), "{version}");
        let none = node.podrun(&["get", "pods", "-l", "app!=cs-pod"]);
        assert!(
            none.stderr
                .contains("No resources found in default namespace."),
            "{none:?}"
        );

        // The object itself: what `podrun get pod -o json` prints.
        let theirs: Value =
            serde_json::from_str(&k(&["get", "pod", &first, "-o", "json"]).ok().stdout).unwrap();
        let ours: Value = serde_json::from_str(
            &node
                .podrun(&["get", "pod", &first, "-o", "json"])
                .ok()
                .stdout,
        )
        .unwrap();
        assert_eq!(strip_volatile(theirs), strip_volatile(ours), "{version}");

        // The chapter's exec, verbatim: the client reaches the web server on the pod's
        // loopback and gets the page the web server's shell command wrote.
        let page = k(&[
            "exec",
            &first,
            "-c",
            "curl-client",
            "--",
            "curl",
            "-s",
            "127.0.0.1:80",
        ])
        .ok()
        .stdout;
        assert_eq!(page, "Python web-server\n", "{version}");

        // Deployments, ReplicaSets (short names), the node, every namespace.
        let out = k(&["get", "deploy"]).ok().stdout;
        let rows = without_age(&out, 4);
        assert_eq!(
            rows[0],
            ["NAME", "READY", "UP-TO-DATE", "AVAILABLE"],
            "{version}: {out}"
        );
        assert_eq!(
            rows[1],
            ["cs-deployment", "3/3", "3", "3"],
            "{version}: {out}"
        );
        let out = k(&["get", "deployments", "-o", "wide"]).ok().stdout;
        assert!(out.contains("curl-client,web-server"), "{version}: {out}");
        assert!(out.contains("app=cs-pod"), "{version}: {out}");
        let out = k(&["get", "rs"]).ok().stdout;
        assert!(out.contains("cs-deployment-"), "{version}: {out}");
        let out = k(&["get", "nodes", "-o", "wide"]).ok().stdout;
        let rows = without_age(&out, 3);
        assert_eq!(
            &rows[0][..5],
            ["NAME", "STATUS", "ROLES", "VERSION", "INTERNAL-IP"],
            "{version}: {out}"
        );
        assert_eq!(rows[1][1], "Ready", "{version}: {out}");
        assert_eq!(rows[1][4], gateway, "{version}: {out}");
        let node_name = pods[0]["spec"]["nodeName"].as_str().unwrap();
        assert_eq!(rows[1][0], node_name, "{version}: {out}");
        let out = k(&[
            "get",
            "no",
            node_name,
            "-o",
            "jsonpath={.status.capacity.cpu}",
        ])
        .ok()
        .stdout;
        assert!(out.parse::<u32>().is_ok_and(|n| n > 0), "{version}: {out}");
        let out = k(&["get", "ns"]).ok().stdout;
        assert!(
            out.lines()
                .any(|l| l.starts_with("default ") && l.contains("Active")),
            "{version}: {out}"
        );
        let out = k(&["get", "pods", "-A"]).ok().stdout;
        assert!(out.starts_with("NAMESPACE "), "{version}: {out}");
        assert_eq!(
            out.lines()
                .skip(1)
                .filter(|l| l.starts_with("default "))
                .count(),
            3,
            "{version}: {out}"
        );

        // The API server's 404.
        let missing = k(&["get", "pod", "nope"]);
        assert_ne!(missing.code, 0, "{version}");
        assert!(
            missing
                .stderr
                .contains("Error from server (NotFound): pods \"nope\" not found"),
            "{version}: {missing:?}"
        );
    }

    // `kubectl delete pod`: gone when kubectl returns (its wait finds it so), the Deployment's
    // controller makes another.
    let bins = kubectls();
    for bin in [&bins[0], &bins[2]] {
        let version = bin.file_name().unwrap().to_string_lossy().into_owned();
        let cache = cache.path().join(&version);
        let victim = node.pods_json()[0]["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_owned();
        let out = kubectl(
            &node,
            bin,
            &cache,
            &["delete", "pod", &victim, "--grace-period=1"],
        );
        assert_eq!(out.code, 0, "{version}: {out:?}");
        assert!(
            out.stdout.contains(&format!("pod \"{victim}\" deleted")),
            "{version}: {out:?}"
        );
        assert!(
            node.pods_json()
                .iter()
                .all(|p| p["metadata"]["name"] != victim.as_str()),
            "{version}: {victim} still listed"
        );
        let missing = kubectl(&node, bin, &cache, &["delete", "pod", &victim]);
        assert!(
            missing
                .stderr
                .contains(&format!("pods \"{victim}\" not found")),
            "{version}: {missing:?}"
        );
        node.wait_for_pods(Duration::from_secs(30), |p| {
            p.len() == 3 && p.iter().all(running)
        });
    }

    // Stopped and started again: the pods run on, untouched; the same kubeconfig works.
    let before = node.podrun(&["get", "pods", "-o", "json"]).ok().stdout;
    server.stop();
    let server = Server::start(&node);
    let after = node.podrun(&["get", "pods", "-o", "json"]).ok().stdout;
    let uids = |s: &str| -> Vec<Value> {
        let v: Value = serde_json::from_str(s).unwrap();
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["status"]["containerStatuses"].clone())
            .collect()
    };
    assert_eq!(uids(&before), uids(&after));
    let bin = &kubectls()[1];
    let out = kubectl(&node, bin, cache.path(), &["get", "pods", "--no-headers"])
        .ok()
        .stdout;
    assert_eq!(out.lines().count(), 3, "{out}");
    server.stop();

    node.podrun(&["delete", "deployment", "cs-deployment", "--now"])
        .ok();
    node.wait_for_pods(Duration::from_secs(30), |p| p.is_empty());
    node.assert_clean();
}

/// `curl` to the server inside the node: (HTTP status, body).
fn curl(node: &Node, headers: &[&str], path: &str) -> (String, String) {
    let ca = node.root.path().join("api/ca.crt");
    let mut c = node.command("curl");
    c.args(["-s", "--max-time", "5", "--cacert"]).arg(&ca);
    for h in headers {
        c.args(["-H", h]);
    }
    c.args(["-w", "\n%{http_code}"])
        .arg(format!("https://127.0.0.1:{PORT}{path}"));
    let out = Run::from(c.output().unwrap());
    let (body, code) = out.stdout.rsplit_once('\n').unwrap_or(("", ""));
    (code.to_owned(), body.to_owned())
}

#[test]
fn serve_refuses_anonymous_requests_and_keeps_its_secrets() {
    require_root!();
    let node = Node::new();
    let server = Server::start(&node);
    let dir = node.root.path().join("api");

    // Without the token, or with a wrong one: 401 and a Status.
    for headers in [
        vec![],
        vec!["Authorization: Bearer wrong"],
        vec!["Authorization: Basic eDp5"],
    ] {
        let (code, body) = curl(&node, &headers, "/api/v1/pods");
        assert_eq!(code, "401", "{headers:?}: {body}");
        let status: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["reason"], "Unauthorized");
        assert_eq!(status["code"], 401);
    }
    let token = std::fs::read_to_string(dir.join("token")).unwrap();
    let auth = format!("Authorization: Bearer {}", token.trim());
    let (code, body) = curl(&node, &[&auth], "/api/v1/pods");
    assert_eq!(code, "200", "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["kind"],
        "PodList"
    );
    // The aggregated discovery asked for: the legacy document, as application/json.
    let (code, body) = curl(
        &node,
        &[
            &auth,
            "Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        ],
        "/apis",
    );
    assert_eq!(code, "200");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["kind"],
        "APIGroupList"
    );

    // Secrets: 0600 files in a 0700 directory.
    for f in ["ca.key", "server.key", "token", "kubeconfig"] {
        let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}: {mode:o}");
    }
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let kc: Value =
        serde_json::from_str(&std::fs::read_to_string(kubeconfig(&node)).unwrap()).unwrap();
    assert_eq!(kc["current-context"], "podrun");
    assert_eq!(kc["clusters"][0]["name"], "podrun");
    assert!(kc["clusters"][0]["cluster"]["certificate-authority-data"].is_string());

    // Loopback only: the one listening socket of the node is 127.0.0.1:PORT.
    let listening = node.sh("ss -Hltn").ok().stdout;
    let local: Vec<&str> = listening
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert_eq!(local, [format!("127.0.0.1:{PORT}")], "{listening}");

    // A restart keeps the CA, the serving certificate and the token.
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let (ca, cert, tok) = (read("ca.crt"), read("server.crt"), read("token"));
    server.stop();
    let server = Server::start(&node);
    assert_eq!(
        (read("ca.crt"), read("server.crt"), read("token")),
        (ca, cert, tok)
    );
    let (code, _) = curl(&node, &[&auth], "/version");
    assert_eq!(code, "200");
    server.stop();
    node.assert_clean();
}

fn container_image(node: &Node, pod: &str) -> String {
    let out = node.podrun(&["get", "pod", pod, "-o", "json"]).ok().stdout;
    let pod: Value = serde_json::from_str(&out).unwrap();
    pod["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Issue 22 acceptance 1 and 4 with the oldest and the newest kubectl: `kubectl apply` creates
/// the book's Deployment, says `unchanged` the second time, `kubectl patch` scales it,
/// `kubectl delete deployment` removes it with its pods; a Pod's image change is applied to
/// the running pod, another change refused with the API server's message, an unknown field
/// refused with strict validation (and only warned about with `--validate=warn`).
#[test]
fn kubectl_applies_patches_and_deletes() {
    require_root!();
    let node = Node::new();
    let server = Server::start(&node);
    let cache = tempfile::tempdir().unwrap();
    let bins = kubectls();
    let deployment = common::repo_file("pods/cs-deployment-local.yaml");
    let deployment = deployment.to_str().unwrap();
    for bin in [&bins[0], &bins[2]] {
        let version = bin.file_name().unwrap().to_string_lossy().into_owned();
        let cache = cache.path().join(&version);
        let k = |args: &[&str]| kubectl(&node, bin, &cache, args);

        let out = k(&["apply", "-f", deployment]);
        assert_eq!(out.code, 0, "{version}: {out:?}");
        assert_eq!(
            out.stdout.trim(),
            "deployment.apps/cs-deployment created",
            "{version}"
        );
        let pods = node.wait_for_pods(Duration::from_secs(30), |p| {
            p.len() == 3 && p.iter().all(running)
        });
        let mut names: Vec<String> = pods
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        let again = k(&["apply", "-f", deployment]).ok().stdout;
        assert_eq!(
            again.trim(),
            "deployment.apps/cs-deployment unchanged",
            "{version}"
        );
        let mut after: Vec<String> = node
            .pods_json()
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        after.sort();
        assert_eq!(
            after, names,
            "{version}: pods changed by an unchanged apply"
        );
        // Seen by podrun's own CLI as applied there.
        let podrun_again = node.podrun(&["apply", "-f", deployment]).ok().stdout;
        assert!(
            podrun_again.contains("deployment.apps/cs-deployment unchanged"),
            "{version}: {podrun_again}"
        );

        let patched = k(&[
            "patch",
            "deployment",
            "cs-deployment",
            "-p",
            r#"{"spec":{"replicas":2}}"#,
        ]);
        assert_eq!(patched.code, 0, "{version}: {patched:?}");
        assert!(
            patched
                .stdout
                .contains("deployment.apps/cs-deployment patched"),
            "{version}: {patched:?}"
        );
        // The surplus pod terminating (its containers wait out the 30 s grace period).
        node.wait_for_pods(Duration::from_secs(10), |p| {
            p.iter()
                .filter(|p| p["metadata"]["deletionTimestamp"].is_null() && running(p))
                .count()
                == 2
        });

        let deleted = k(&["delete", "deployment", "cs-deployment", "--grace-period=1"]);
        assert_eq!(deleted.code, 0, "{version}: {deleted:?}");
        assert!(
            deleted
                .stdout
                .contains("deployment.apps \"cs-deployment\" deleted"),
            "{version}: {deleted:?}"
        );
        assert_eq!(node.pods_json().len(), 0, "{version}: pods left");
        assert!(node.veths().is_empty(), "{version}: veths left");

        // A Pod: created, its image changed in place, any other change refused.
        let file = node.root.path().join("idle.yaml");
        let file = file.to_str().unwrap();
        std::fs::write(file, idle_pod("podrun.local/debug:1", "true", "")).unwrap();
        let out = k(&["apply", "-f", file]);
        assert_eq!(out.stdout.trim(), "pod/idle created", "{version}: {out:?}");
        node.wait_for_pods(Duration::from_secs(20), |p| {
            p.len() == 1 && p.iter().all(running)
        });
        let sandbox = node.pod_ip("idle");
        std::fs::write(file, idle_pod("podrun.local/python:3.11-slim", "true", "")).unwrap();
        let out = k(&["apply", "-f", file]);
        assert_eq!(
            out.stdout.trim(),
            "pod/idle configured",
            "{version}: {out:?}"
        );
        assert_eq!(
            container_image(&node, "idle"),
            "podrun.local/python:3.11-slim"
        );
        assert_eq!(
            node.pod_ip("idle"),
            sandbox,
            "{version}: the sandbox was re-made"
        );

        std::fs::write(
            file,
            idle_pod("podrun.local/python:3.11-slim", "echo other", ""),
        )
        .unwrap();
        let refused = k(&["apply", "-f", file]);
        assert_ne!(refused.code, 0, "{version}: {refused:?}");
        assert!(
            refused.stderr.contains("The Pod \"idle\" is invalid")
                && refused
                    .stderr
                    .contains("Forbidden: pod updates may not change fields other than"),
            "{version}: {refused:?}"
        );
        assert_eq!(
            container_image(&node, "idle"),
            "podrun.local/python:3.11-slim"
        );

        // Unknown fields: refused (strict, kubectl's default), or warned about and dropped.
        let unknown = node.root.path().join("unknown.yaml");
        let unknown = unknown.to_str().unwrap();
        let text = idle_pod("podrun.local/debug:1", "true", "  bogus: 1\n").replace("idle", "odd");
        std::fs::write(unknown, &text).unwrap();
        let strict = k(&["apply", "-f", unknown]);
        assert_ne!(strict.code, 0, "{version}: {strict:?}");
        assert!(
            strict
                .stderr
                .contains("strict decoding error: unknown field \"spec.bogus\""),
            "{version}: {strict:?}"
        );
        assert!(
            node.pods_json()
                .iter()
                .all(|p| p["metadata"]["name"] != "odd"),
            "{version}: a refused pod was made"
        );
        let warned = k(&["apply", "--validate=warn", "-f", unknown]);
        assert_eq!(warned.code, 0, "{version}: {warned:?}");
        assert!(
            warned.stderr.contains("unknown field \"spec.bogus\""),
            "{version}: {warned:?}"
        );
        k(&["delete", "pod", "odd", "idle", "--grace-period=1"]).ok();
        assert_eq!(node.pods_json().len(), 0, "{version}: pods left");
    }
    server.stop();
    node.assert_clean();
}

/// Issue 22 acceptance 2 with the oldest and the newest kubectl: `kubectl get pods -w
/// --output-watch-events` sees ADDED, MODIFIED and DELETED as podrun's CLI creates a pod,
/// its container exits and restarts, and the pod is deleted; `kubectl wait
/// --for=condition=Ready` returns once a readiness probe passes.
#[test]
fn kubectl_watches_and_waits() {
    require_root!();
    let node = Node::new();
    let server = Server::start(&node);
    let cache = tempfile::tempdir().unwrap();
    let bins = kubectls();
    for bin in [&bins[0], &bins[2]] {
        let version = bin.file_name().unwrap().to_string_lossy().into_owned();
        let cache = cache.path().join(&version);
        let watch = Lines::spawn(kubectl_command(
            &node,
            bin,
            &cache,
            &["get", "pods", "-w", "--output-watch-events"],
        ));
        // kubectl lists first ("No resources found"), then watches.
        std::thread::sleep(Duration::from_millis(1500));
        let t0 = Instant::now();
        node.apply_manifest(
            "idle.yaml",
            &idle_pod(
                "podrun.local/debug:1",
                "echo first line; echo hello from idle",
                "",
            ),
        )
        .ok();
        watch.wait_for(&["ADDED", "idle"], &version);
        let added_in = t0.elapsed();
        node.wait_for_pods(Duration::from_secs(10), |p| p.iter().all(running));
        // Its PID 1 ends (the exec dies with it: 137), the kubelet's rules restart it.
        node.podrun(&["exec", "idle", "-c", "c", "--", "kill", "1"]);
        watch.wait_for(&["MODIFIED", "idle", "Running   ", "  1 "], &version);

        // Logs: the current run, the previous one, the last line, and followed.
        let k = |args: &[&str]| kubectl(&node, bin, &cache, args);
        for (args, want) in [
            (&["logs", "idle"][..], "first line\nhello from idle\n"),
            (&["logs", "idle", "-p"], "first line\nhello from idle\n"),
            (
                &["logs", "idle", "-c", "c", "--tail=1"],
                "hello from idle\n",
            ),
            (&["logs", "idle", "--limit-bytes=5"], "first"),
        ] {
            let out = k(args).ok().stdout;
            assert_eq!(out, want, "{version}: {args:?}");
        }
        let missing = k(&["logs", "idle", "-c", "nope"]);
        assert!(
            missing
                .stderr
                .contains("container nope is not valid for pod idle"),
            "{version}: {missing:?}"
        );
        let follow = Lines::spawn(kubectl_command(&node, bin, &cache, &["logs", "-f", "idle"]));
        follow.wait_for(&["hello from idle"], &version);
        // A run that writes on (its PID 1 replaced by one that echoes): seen as it comes.
        node.podrun(&[
            "exec",
            "idle",
            "-c",
            "c",
            "--",
            "sh",
            "-c",
            "echo more >> /proc/1/fd/1",
        ])
        .ok();
        follow.wait_for(&["more"], &version);
        follow.stop();
        node.podrun(&["delete", "pod", "idle", "--now"]).ok();
        watch.wait_for(&["DELETED", "idle"], &version);
        watch.stop();
        eprintln!("{version}: ADDED seen {added_in:?} after the apply began");

        // Ready once its probe passes (the file appears 2 s after the start).
        let probe = "    readinessProbe:\n      exec: {command: [test, -f, /tmp/ready]}\n      periodSeconds: 1\n";
        let ready = idle_pod(
            "podrun.local/debug:1",
            "(sleep 2; touch /tmp/ready) & true",
            probe,
        )
        .replace("name: idle,", "name: late,")
        .replace("{app: idle}", "{app: late}");
        node.apply_manifest("late.yaml", &ready).ok();
        let t0 = Instant::now();
        let waited = kubectl(
            &node,
            bin,
            &cache,
            &[
                "wait",
                "--for=condition=Ready",
                "pod",
                "-l",
                "app=late",
                "--timeout=30s",
            ],
        );
        assert_eq!(waited.code, 0, "{version}: {waited:?}");
        assert!(
            waited.stdout.contains("pod/late condition met"),
            "{version}: {waited:?}"
        );
        assert!(
            t0.elapsed() > Duration::from_millis(500),
            "{version}: ready at once ({:?}): the probe was not waited for",
            t0.elapsed()
        );
        node.podrun(&["delete", "pod", "late", "--now"]).ok();
    }
    server.stop();
    node.assert_clean();
}

/// Issue 22 acceptance 5: the official Kubernetes Python client lists the pods (typed: every
/// field it requires is there; and a page at a time with limit/continue), evicts one
/// (pods/eviction), watches them and deletes one through the API.
#[test]
fn the_python_client_lists_watches_and_deletes() {
    require_root!();
    let node = Node::new();
    let idle = idle_pod("podrun.local/debug:1", "true", "");
    let spare = idle.replace("name: idle,", "name: spare,");
    node.apply_manifest("idle.yaml", &format!("{idle}---\n{spare}"))
        .ok();
    node.wait_for_pods(Duration::from_secs(10), |p| {
        p.len() == 2 && p.iter().all(running)
    });
    let ip = node.pod_ip("idle");
    let server = Server::start(&node);
    let script = common::repo_file("tests/api_python_client.py");
    let out = Run::from(
        node.command("python3")
            .arg(&script)
            .arg(kubeconfig(&node))
            .arg("idle")
            .arg("spare")
            .output()
            .expect("run python3"),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("listed idle Running {ip} c=podrun://")),
        "{out:?}"
    );
    for line in [
        "page1 idle remaining 1",
        "page2 spare more False",
        "evicted spare ['idle']",
        "event ADDED idle",
        "deleted idle",
        "event DELETED idle",
        "nodes ",
    ] {
        assert!(out.stdout.contains(line), "{line}: {out:?}");
    }
    assert!(node.pods_json().is_empty(), "the pod is still there");
    server.stop();
    node.assert_clean();
}
