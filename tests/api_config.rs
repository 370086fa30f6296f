//! ConfigMaps and Secrets stored on the node: `podrun apply` of them alone, then of a pod
//! that uses them in a second apply (env `valueFrom`, `envFrom`), `get` with kubectl's
//! columns, `-o json` (a Secret's data base64), `delete`, the API server's refusals (an
//! invalid key, a key in both data and binaryData, secret data not base64, an immutable
//! ConfigMap changed), secrets' files mode 0600; and through `podrun serve` the real kubectl
//! (1.27, the PATH's, 1.33): `create configmap|secret generic`, `get cm|secrets`, `-o yaml`,
//! `apply` twice (`unchanged`), a patch of an immutable ConfigMap refused, a pod applied by
//! kubectl whose environment comes from them, `delete`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::kubectl::{Lines, Server, kubectl, kubectl_command, kubectls, running};
use common::{Node, Run};
use serde_json::Value;

const CONFIG: &str = "apiVersion: v1
kind: ConfigMap
metadata: {name: app, labels: {tier: web}}
data: {a: \"1\", b.txt: hello}
---
apiVersion: v1
kind: Secret
metadata: {name: pw}
stringData: {pw: hunter2}
";

/// A pod whose environment comes from ConfigMap `app` and Secret `pw`.
fn env_pod(name: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: c
    image: podrun.local/debug:1
    command: [sh, -c, \"trap 'exit 0' TERM; while true; do sleep 1 & wait; done\"]
    env:
    - name: A
      valueFrom: {{configMapKeyRef: {{name: app, key: a}}}}
    - name: PW
      valueFrom: {{secretKeyRef: {{name: pw, key: pw}}}}
    envFrom:
    - prefix: CM_
      configMapRef: {{name: app}}
"
    )
}

fn failed(run: Run) -> String {
    assert_ne!(run.code, 0, "expected a failure\nstdout: {}", run.stdout);
    run.stderr
}

/// The cells of each line of a table, AGE left out.
fn cells(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| {
            let mut c: Vec<String> = l.split_whitespace().map(str::to_owned).collect();
            c.pop();
            c
        })
        .collect()
}

fn wait_running(node: &Node, pod: &str) {
    let p = node.wait_for_pod(pod, Duration::from_secs(30), running);
    assert!(running(&p), "{pod} not running: {}", p["status"]);
}

fn assert_env(node: &Node, pod: &str) {
    let env = node.exec(pod, "c", &["env"]).ok().stdout;
    for line in ["A=1", "PW=hunter2", "CM_a=1", "CM_b.txt=hello"] {
        assert!(env.lines().any(|l| l == line), "{line} missing from\n{env}");
    }
}

#[test]
fn podrun_apply_stores_config_objects_for_later_pods() {
    require_root!();
    let node = Node::new();
    let out = node.apply_manifest("config.yaml", CONFIG).ok().stdout;
    assert_eq!(out, "configmap/app created\nsecret/pw created\n");
    let again = node.apply_manifest("config.yaml", CONFIG).ok().stdout;
    assert_eq!(again, "configmap/app unchanged\nsecret/pw unchanged\n");
    let secret_file = node.root.path().join("secrets/default/pw.json");
    let mode = std::fs::metadata(&secret_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let cm = node.podrun(&["get", "configmaps"]).ok().stdout;
    assert_eq!(cells(&cm), [vec!["NAME", "DATA"], vec!["app", "2"]]);
    let secrets = node.podrun(&["get", "secrets"]).ok().stdout;
    assert_eq!(
        cells(&secrets),
        [vec!["NAME", "TYPE", "DATA"], vec!["pw", "Opaque", "1"]]
    );
    let json: Value = serde_json::from_str(
        &node
            .podrun(&["get", "secret", "pw", "-o", "json"])
            .ok()
            .stdout,
    )
    .unwrap();
    assert_eq!(json["data"]["pw"], "aHVudGVyMg==");
    assert_eq!(json["type"], "Opaque");
    assert!(json["metadata"]["uid"].is_string());
    assert!(json["metadata"]["creationTimestamp"].is_string());
    let yaml = node.podrun(&["get", "cm", "app", "-o", "yaml"]).ok().stdout;
    assert!(yaml.contains("b.txt: hello"), "{yaml}");
    let listed = node
        .podrun(&["get", "cm", "-l", "tier=web", "-o", "name"])
        .ok();
    assert_eq!(listed.stdout, "configmap/app\n");
    let described = node.podrun(&["describe", "secret", "pw"]).ok().stdout;
    assert!(described.contains("pw:  7 bytes"), "{described}");
    assert!(!described.contains("hunter2"), "{described}");

    // A pod of a later apply resolves them from the store.
    node.apply_manifest("pod.yaml", &env_pod("envpod")).ok();
    wait_running(&node, "envpod");
    assert_env(&node, "envpod");

    // A missing key is refused with the kubelet's words, and nothing is made.
    let missing = env_pod("nokey").replace("key: pw}", "key: nope}");
    let err = failed(node.apply_manifest("nokey.yaml", &missing));
    assert!(
        err.contains("couldn't find key nope in Secret default/pw"),
        "{err}"
    );
    assert!(!node.root.path().join("pods/default_nokey").exists());

    // The API server's refusals; nothing of the refused file is stored.
    let bad_key =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata: {\"bad key\": x}\n";
    let err = failed(node.apply_manifest("bad.yaml", bad_key));
    assert!(err.contains("data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'"), "{err}");
    let dup = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata: {k: x}\nbinaryData: {k: eA==}\n";
    let err = failed(node.apply_manifest("bad.yaml", dup));
    assert!(
        err.contains("data[k]: Invalid value: \"k\": duplicate of key present in binaryData"),
        "{err}"
    );
    let not_base64 =
        "apiVersion: v1\nkind: Secret\nmetadata: {name: bad}\ndata: {k: \"not base64!\"}\n";
    let err = failed(node.apply_manifest("bad.yaml", not_base64));
    assert!(
        err.contains(
            "The Secret \"bad\" is invalid: data[k]: Invalid value: \"not base64!\": illegal base64 data at input byte 3"
        ),
        "{err}"
    );
    let with_pod = format!("{bad_key}---\n{}", env_pod("badpod"));
    failed(node.apply_manifest("bad.yaml", &with_pod));
    assert!(!node.root.path().join("pods/default_badpod").exists());
    assert!(node.podrun(&["get", "cm", "bad"]).code != 0);

    // An immutable ConfigMap keeps its data.
    let frozen = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: frozen}\nimmutable: true\ndata: {a: \"1\"}\n";
    node.apply_manifest("frozen.yaml", frozen).ok();
    let err = failed(node.apply_manifest("frozen.yaml", &frozen.replace("\"1\"", "\"2\"")));
    assert!(
        err.contains("The ConfigMap \"frozen\" is invalid: data: Forbidden: field is immutable when `immutable` is set"),
        "{err}"
    );
    let labelled = frozen.replace("{name: frozen}", "{name: frozen, labels: {x: z}}");
    let changed = node.apply_manifest("frozen.yaml", &labelled).ok();
    assert_eq!(changed.stdout, "configmap/frozen configured\n");

    let deleted = node.podrun(&["delete", "configmap", "app", "frozen"]).ok();
    assert_eq!(
        deleted.stdout,
        "configmap \"app\" deleted\nconfigmap \"frozen\" deleted\n"
    );
    let err = failed(node.podrun(&["delete", "cm", "app"]));
    assert!(err.contains("configmaps \"app\" not found"), "{err}");
    node.podrun(&["delete", "secret/pw"]).ok();
    let none = node.podrun(&["get", "cm"]).ok();
    assert_eq!(none.stdout, "");
    assert!(
        none.stderr.contains("No resources found"),
        "{}",
        none.stderr
    );
    node.podrun(&["delete", "envpod", "--now"]).ok();
    // delete -f of a file with them.
    node.apply_manifest("config.yaml", CONFIG).ok();
    let file = node.root.path().join("config.yaml");
    let out = node
        .podrun(&["delete", "-f", file.to_str().unwrap()])
        .ok()
        .stdout;
    assert_eq!(out, "configmap \"app\" deleted\nsecret \"pw\" deleted\n");
    assert!(
        node.podrun(&["get", "secrets", "-o", "name"])
            .ok()
            .stdout
            .is_empty()
    );
}

#[test]
fn kubectl_creates_gets_applies_and_deletes_config_objects() {
    require_root!();
    let node = Node::new();
    let server = Server::start(&node);
    let cache = tempfile::tempdir().unwrap();
    for (i, bin) in kubectls().into_iter().enumerate() {
        let version = bin.file_name().unwrap().to_string_lossy().into_owned();
        let cache = cache.path().join(&version);
        let k = |args: &[&str]| kubectl(&node, &bin, &cache, args);
        let watch = Lines::spawn(kubectl_command(
            &node,
            &bin,
            &cache,
            &["get", "cm", "-w", "--output-watch-events"],
        ));
        // kubectl lists first ("No resources found"), then watches.
        std::thread::sleep(Duration::from_millis(1500));
        let out = k(&[
            "create",
            "configmap",
            "app",
            "--from-literal=a=1",
            "--from-literal=b.txt=hello",
        ])
        .ok();
        assert_eq!(out.stdout, "configmap/app created\n", "{version}");
        let out = k(&[
            "create",
            "secret",
            "generic",
            "pw",
            "--from-literal=pw=hunter2",
        ])
        .ok();
        assert_eq!(out.stdout, "secret/pw created\n", "{version}");
        let again = k(&["create", "configmap", "app", "--from-literal=a=1"]);
        assert!(
            again.stderr.contains("configmaps \"app\" already exists"),
            "{version}: {}",
            again.stderr
        );

        let cm = k(&["get", "cm"]).ok().stdout;
        assert_eq!(
            cells(&cm),
            [vec!["NAME", "DATA"], vec!["app", "2"]],
            "{version}"
        );
        let secrets = k(&["get", "secrets"]).ok().stdout;
        assert_eq!(
            cells(&secrets),
            [vec!["NAME", "TYPE", "DATA"], vec!["pw", "Opaque", "1"]],
            "{version}"
        );
        let all = k(&["get", "cm", "-A"]).ok().stdout;
        assert!(all.starts_with("NAMESPACE"), "{version}: {all}");
        let yaml = k(&["get", "cm", "app", "-o", "yaml"]).ok().stdout;
        for want in [
            "kind: ConfigMap",
            "a: \"1\"",
            "uid:",
            "resourceVersion:",
            "creationTimestamp:",
        ] {
            assert!(yaml.contains(want), "{version}: {want} in\n{yaml}");
        }
        let described = k(&["describe", "secret", "pw"]).ok().stdout;
        assert!(described.contains("pw:  7 bytes"), "{version}: {described}");
        let described = k(&["describe", "cm", "app"]).ok().stdout;
        assert!(
            described.contains("b.txt:\n----\nhello"),
            "{version}: {described}"
        );
        let data = k(&["get", "secret", "pw", "-o", "jsonpath={.data.pw}"])
            .ok()
            .stdout;
        assert_eq!(data, "aHVudGVyMg==", "{version}");
        let podrun_view: Value =
            serde_json::from_str(&node.podrun(&["get", "cm", "app", "-o", "json"]).ok().stdout)
                .unwrap();
        assert_eq!(podrun_view["data"]["a"], "1");

        // kubectl apply: created, unchanged, configured; the last-applied annotation kept.
        let file = node.root.path().join("applied.yaml");
        let applied =
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: applied}\ndata: {x: \"1\"}\n";
        std::fs::write(&file, applied).unwrap();
        let f = file.to_str().unwrap();
        assert_eq!(
            k(&["apply", "-f", f]).ok().stdout,
            "configmap/applied created\n",
            "{version}"
        );
        assert_eq!(
            k(&["apply", "-f", f]).ok().stdout,
            "configmap/applied unchanged\n",
            "{version}"
        );
        std::fs::write(&file, applied.replace("\"1\"", "\"2\"")).unwrap();
        assert_eq!(
            k(&["apply", "-f", f]).ok().stdout,
            "configmap/applied configured\n",
            "{version}"
        );
        watch.wait_for(&["ADDED", "app"], &version);
        watch.wait_for(&["MODIFIED", "applied"], &version);
        let x = k(&["get", "cm", "applied", "-o", "jsonpath={.data.x}"])
            .ok()
            .stdout;
        assert_eq!(x, "2", "{version}");

        // A patch of an immutable ConfigMap's data is refused as the API server refuses it.
        let frozen = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: frozen}\nimmutable: true\ndata: {a: \"1\"}\n";
        std::fs::write(&file, frozen).unwrap();
        k(&["apply", "-f", f]).ok();
        let refused = k(&["patch", "cm", "frozen", "-p", "{\"data\":{\"a\":\"2\"}}"]);
        assert!(
            refused
                .stderr
                .contains("field is immutable when `immutable` is set"),
            "{version}: {}",
            refused.stderr
        );
        let merged = k(&[
            "patch",
            "cm",
            "applied",
            "--type=merge",
            "-p",
            "{\"data\":{\"y\":\"3\"}}",
        ])
        .ok();
        assert!(
            merged.stdout.contains("patched"),
            "{version}: {}",
            merged.stdout
        );
        let json_patch = k(&[
            "patch",
            "secret",
            "pw",
            "--type=json",
            "-p",
            "[{\"op\":\"add\",\"path\":\"/metadata/labels\",\"value\":{\"k\":\"v\"}}]",
        ])
        .ok();
        assert!(
            json_patch.stdout.contains("patched"),
            "{version}: {}",
            json_patch.stdout
        );
        let labelled = k(&["get", "secrets", "-l", "k=v", "-o", "name"])
            .ok()
            .stdout;
        assert_eq!(labelled, "secret/pw\n", "{version}");

        // An invalid key: the server's message.
        let bad =
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata: {\"bad key\": x}\n";
        std::fs::write(&file, bad).unwrap();
        let err = k(&["apply", "-f", f]);
        assert!(
            err.stderr.contains(
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
            ),
            "{version}: {}",
            err.stderr
        );

        // A pod applied by kubectl gets its environment from them.
        let pod = format!("envpod{i}");
        std::fs::write(&file, env_pod(&pod)).unwrap();
        k(&["apply", "-f", f]).ok();
        wait_running(&node, &pod);
        assert_env(&node, &pod);
        node.podrun(&["delete", &pod, "--now"]).ok();

        for (what, name) in [
            ("cm", "app"),
            ("cm", "applied"),
            ("cm", "frozen"),
            ("secret", "pw"),
        ] {
            let out = k(&["delete", what, name]).ok().stdout;
            let singular = if what == "cm" { "configmap" } else { "secret" };
            assert_eq!(out, format!("{singular} \"{name}\" deleted\n"), "{version}");
        }
        watch.wait_for(&["DELETED", "app"], &version);
        watch.stop();
        let gone = k(&["get", "cm", "app"]);
        assert!(
            gone.stderr.contains("configmaps \"app\" not found"),
            "{version}: {}",
            gone.stderr
        );
        let empty = k(&["get", "cm"]).ok();
        assert!(
            empty.stderr.contains("No resources found"),
            "{version}: {}",
            empty.stderr
        );
    }
    server.stop();
}
