//! The book chapter's Deployment offline: `pods/cs-deployment-local.yaml` (the chapter's text
//! with only the image names changed to podrun's stand-ins, as `rootfs/build.sh` builds them)
//! runs as printed: three pods whose web server is the chapter's shell command
//! (`echo "Python web-server" > index.html; python3 -m http.server 80`), reachable from another
//! pod's curl-client. Issue 17, defect 7: the python image had no /bin/sh and half a stdlib.

mod common;

use std::time::Duration;

use common::Node;
use serde_json::Value;

#[test]
fn the_books_deployment_runs_with_the_local_images() {
    require_root!();
    let images = common::recipe_image_root();
    let images = images.to_str().unwrap();
    let node = Node::new();
    let manifest = common::repo_file("pods/cs-deployment-local.yaml");
    let manifest = manifest.to_str().unwrap();
    let podrun = |args: &[&str]| node.podrun_env(args, &[("PODRUN_IMAGE_ROOT", images)]);
    let out = podrun(&["apply", "-f", manifest]).ok().stdout;
    assert!(
        out.contains("deployment.apps/cs-deployment created"),
        "{out}"
    );

    let list: Value =
        serde_json::from_str(&podrun(&["get", "pods", "-o", "json"]).ok().stdout).unwrap();
    let pods: Vec<(String, String)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap().to_owned(),
                p["status"]["podIP"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(pods.len(), 3, "{list}");

    // Every web server answers with the file its shell wrote, from the node and from the
    // curl-client of another pod (pod to pod over the bridge).
    for (i, (name, ip)) in pods.iter().enumerate() {
        let r = node.eventually(
            &format!("curl -s --max-time 1 http://{ip}/index.html"),
            Duration::from_secs(20),
        );
        assert_eq!(r.stdout, "Python web-server\n", "{name} at {ip}: {r:?}");
        let (client, _) = &pods[(i + 1) % pods.len()];
        let r = podrun(&[
            "exec",
            client,
            "-c",
            "curl-client",
            "--",
            "curl",
            "-s",
            "--max-time",
            "2",
            &format!("http://{ip}/"),
        ]);
        assert_eq!(r.code, 0, "curl from {client} to {ip}: {r:?}");
        assert_eq!(
            r.stdout, "Python web-server\n",
            "{client} to {ip}/ (index.html)"
        );
    }
    // Both containers of every pod are running, none restarted.
    let list: Value =
        serde_json::from_str(&podrun(&["get", "pods", "-o", "json"]).ok().stdout).unwrap();
    for p in list["items"].as_array().unwrap() {
        for c in p["status"]["containerStatuses"].as_array().unwrap() {
            assert!(c["state"]["running"].is_object(), "{c}");
            assert_eq!(c["restartCount"], 0, "{c}");
        }
    }
    // The stand-in says what it is.
    let (first, _) = &pods[0];
    let r = podrun(&[
        "exec",
        first,
        "-c",
        "web-server",
        "--",
        "cat",
        "/etc/os-release",
    ])
    .ok();
    assert!(
        r.stdout.contains("stand-in for python:*-slim"),
        "{}",
        r.stdout
    );

    podrun(&["delete", "-f", manifest, "--now"]).ok();
    node.assert_clean();
}
