//! `kubectl explain` against `podrun serve`: the oldest (1.27), the PATH's (1.32) and the
//! newest (1.33) kubectl read the `/openapi/v3` documents' schemas (k8s-openapi's, with the
//! Kubernetes field descriptions) and print a kind, a field and its fields (`-required-`
//! marked), a field's fields recursively, an apps/v1 kind by `--api-version`, and kubectl's own
//! error for a field that does not exist; `--output plaintext-openapiv2` prints the same
//! from `/openapi/v2`'s protobuf definitions. The documents are JSON with the kinds'
//! `x-kubernetes-group-version-kind`, and the root's hashes are the documents' own.

mod common;

use std::time::Duration;

use common::Node;
use common::kubectl::{Server, get_raw, kubectl, kubectls};
use serde_json::Value;

#[test]
fn kubectl_explain_reads_the_schemas() {
    require_root!();
    let node = Node::new();
    // The test images are built once per target dir on first use: not in the start's time.
    common::image_root();
    let server = Server::start(&node);
    assert!(
        server.started_in < Duration::from_millis(900),
        "started in {:?}",
        server.started_in
    );
    let cache = tempfile::tempdir().unwrap();
    for bin in kubectls() {
        let version = bin.file_name().unwrap().to_string_lossy().into_owned();
        let cache = cache.path().join(&version);
        let explain = |args: &[&str]| {
            let mut all = vec!["explain"];
            all.extend_from_slice(args);
            kubectl(&node, &bin, &cache, &all)
        };

        let out = explain(&["pod.spec.containers"]).ok().stdout;
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            &lines[..2],
            ["KIND:       Pod", "VERSION:    v1"],
            "{version}: {out}"
        );
        assert!(
            lines.contains(&"FIELD: containers <[]Container>"),
            "{version}: {out}"
        );
        assert!(
            out.contains(
                "    List of containers belonging to the pod. Containers cannot currently be\n"
            ),
            "{version}: {out}"
        );
        // The field's description, then its type's (kube-apiserver's allOf).
        assert!(
            out.contains("    A single application container that you want to run within a pod.\n"),
            "{version}: {out}"
        );
        assert!(lines.contains(&"FIELDS:"), "{version}: {out}");
        assert!(lines.contains(&"  image\t<string>"), "{version}: {out}");
        assert!(
            lines.contains(&"  name\t<string> -required-"),
            "{version}: {out}"
        );
        assert!(
            lines.contains(&"  livenessProbe\t<Probe>"),
            "{version}: {out}"
        );
        assert!(lines.contains(&"  env\t<[]EnvVar>"), "{version}: {out}");

        let out = explain(&["pod"]).ok().stdout;
        assert!(
            out.contains("    Pod is a collection of containers that can run on a host."),
            "{version}: {out}"
        );
        assert!(out.contains("\n  spec\t<PodSpec>\n"), "{version}: {out}");

        let out = explain(&["pods.spec.containers.livenessProbe", "--recursive"])
            .ok()
            .stdout;
        assert!(
            out.contains("FIELD: livenessProbe <Probe>"),
            "{version}: {out}"
        );
        for field in [
            "  httpGet\t<HTTPGetAction>",
            "    httpHeaders\t<[]HTTPHeader>",
            "      name\t<string> -required-",
            "    port\t<IntOrString> -required-",
            "  periodSeconds\t<integer>",
        ] {
            assert!(
                out.lines().any(|l| l == field),
                "{version}: {field:?} in {out}"
            );
        }

        let out = explain(&["deployment.spec.strategy"]).ok().stdout;
        assert!(
            out.starts_with("GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n"),
            "{version}: {out}"
        );
        assert!(
            out.contains(
                "DeploymentStrategy describes how to replace existing pods with new ones."
            ),
            "{version}: {out}"
        );
        assert!(
            out.lines()
                .any(|l| l == "  rollingUpdate\t<RollingUpdateDeployment>"),
            "{version}: {out}"
        );

        let out = explain(&["deployment.spec.replicas"]).ok().stdout;
        assert!(
            out.contains("FIELD: replicas <integer>"),
            "{version}: {out}"
        );
        assert!(
            out.contains(
                "    Number of desired pods. This is a pointer to distinguish between explicit\n"
            ),
            "{version}: {out}"
        );

        let out = explain(&["--api-version=apps/v1", "replicasets"])
            .ok()
            .stdout;
        assert!(
            out.starts_with("GROUP:      apps\nKIND:       ReplicaSet\nVERSION:    v1\n"),
            "{version}: {out}"
        );
        assert!(
            out.contains("ReplicaSet ensures that a specified number of pod replicas are running"),
            "{version}: {out}"
        );

        let out = explain(&["job.spec.template.spec.restartPolicy"])
            .ok()
            .stdout;
        assert!(
            out.starts_with("GROUP:      batch\nKIND:       Job\n"),
            "{version}: {out}"
        );
        for kind in ["node", "namespace", "event"] {
            explain(&[kind]).ok();
        }

        // `--output plaintext-openapiv2`: kubectl's older printer, from /openapi/v2's protobuf.
        let v2 = ["--output", "plaintext-openapiv2"];
        let out = explain(&["pod.spec.containers", v2[0], v2[1]]).ok().stdout;
        assert!(
            out.contains("RESOURCE: containers <[]Object>"),
            "{version}: {out}"
        );
        assert!(
            out.contains("     List of containers belonging to the pod."),
            "{version}: {out}"
        );
        assert!(
            out.lines().any(|l| l == "   name\t<string> -required-"),
            "{version}: {out}"
        );
        let out = explain(&["pod.spec.containers.livenessProbe.httpGet", v2[0], v2[1]])
            .ok()
            .stdout;
        assert!(
            out.lines().any(|l| l == "   port\t<string> -required-"),
            "{version}: {out}"
        );
        let out = explain(&["--api-version=apps/v1", "deployments", v2[0], v2[1]])
            .ok()
            .stdout;
        assert!(
            out.starts_with("KIND:     Deployment\nVERSION:  apps/v1\n"),
            "{version}: {out}"
        );

        let run = explain(&["pod.spec.nope"]);
        assert_ne!(run.code, 0, "{version}: {run:?}");
        assert!(
            run.stderr.contains("error: field \"nope\" does not exist"),
            "{version}: {run:?}"
        );
    }

    // The documents themselves: JSON, the kinds marked with their group, version and kind,
    // refs by kube-apiserver's names; the root's hash changes with a document.
    let bin = &kubectls()[0];
    let cache = cache.path().join("raw");
    let raw = |path: &str| -> Value { get_raw(&node, bin, &cache, path) };
    let root = raw("/openapi/v3");
    let url = root["paths"]["api/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap();
    let (_, hash) = url.split_once("?hash=").unwrap();
    assert_eq!(hash.len(), 128, "{url}");
    let core = raw("/openapi/v3/api/v1");
    let schemas = &core["components"]["schemas"];
    assert_eq!(
        schemas["io.k8s.api.core.v1.Pod"]["x-kubernetes-group-version-kind"],
        serde_json::json!([{"group": "", "kind": "Pod", "version": "v1"}])
    );
    assert_eq!(
        schemas["io.k8s.api.core.v1.Pod"]["properties"]["spec"]["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.api.core.v1.PodSpec"
    );
    assert!(schemas["io.k8s.api.core.v1.Container"]["properties"]["image"].is_object());
    let apps = raw("/openapi/v3/apis/apps/v1");
    assert_eq!(
        apps["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"]
            [0]["group"],
        "apps"
    );
    server.stop();
}
