//! End-to-end tests of `load_str`: whole manifests in, plans or messages out.

use serde_json::json;

use super::*;

const SIDECAR: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: sidecar
  labels: {app: sidecar}
spec:
  containers:
  - name: web-server
    image: busybox:1.36
    command: ["httpd", "-f", "-p", "8080"]
    env:
    - name: POD_IP
      valueFrom:
        fieldRef: {fieldPath: status.podIP}
    - name: LISTEN
      value: "$(POD_IP):8080"
    ports:
    - {name: http, containerPort: 8080}
    resources:
      limits: {cpu: 200m, memory: 64Mi}
  - name: curl-client
    image: curlimages/curl
    command: ["sh", "-c"]
    args: ["while true; do curl -s http://localhost:8080/; sleep 5; done"]
    resources:
      requests: {cpu: 0.1, memory: 1000}
"#;

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web, tier: front}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        command: ["nginx", "-g", "daemon off;"]
        ports: [{containerPort: 80}]
"#;

fn load_one(text: &str) -> Object {
    let mut objects = load_str(text, "test.yaml").unwrap();
    assert_eq!(objects.len(), 1);
    objects.remove(0)
}

fn pod(text: &str) -> PodPlan {
    match load_one(text) {
        Object::Pod(p) => p,
        other => panic!("expected a pod, got {other:?}"),
    }
}

fn error(text: &str) -> String {
    load_str(text, "pods/bad.yaml").unwrap_err().to_string()
}

/// A minimal valid pod with `extra` appended under the first container.
fn pod_with_container_extra(extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  \
         - name: c\n    image: busybox\n    command: [sleep, '1']\n{extra}"
    )
}

#[test]
fn sidecar_pod_plan() {
    let plan = pod(SIDECAR);
    assert_eq!(plan.name, "sidecar");
    assert_eq!(plan.namespace, "default");
    assert_eq!(plan.hostname, "sidecar");
    assert_eq!(plan.restart_policy, RestartPolicy::Always);
    assert_eq!(plan.termination_grace_period_seconds, 30);
    assert!(uuid::Uuid::parse_str(&plan.uid).is_ok());
    assert_eq!(plan.containers.len(), 2);
    let web = &plan.containers[0];
    assert_eq!(web.image_pull_policy, "IfNotPresent");
    assert_eq!(
        web.env[0],
        EnvVar {
            name: "POD_IP".into(),
            source: EnvSource::FieldRef("status.podIP".into())
        }
    );
    assert_eq!(
        web.ports,
        [ContainerPort {
            name: Some("http".into()),
            container_port: 8080,
            protocol: "TCP".into(),
            host_port: None,
            host_ip: None,
        }]
    );
    let limits = ResourceList {
        cpu_millis: Some(200),
        memory_bytes: Some(64 << 20),
    };
    assert_eq!(
        web.resources,
        Resources {
            requests: limits,
            limits
        }
    );
    let curl = &plan.containers[1];
    assert_eq!(curl.image_pull_policy, "Always");
    assert_eq!(curl.resources.requests.cpu_millis, Some(100));
    assert_eq!(curl.resources.requests.memory_bytes, Some(1000));
    assert_eq!(curl.resources.limits, ResourceList::default());
}

#[test]
fn sidecar_resolves_pod_ip() {
    let plan = pod(SIDECAR);
    let facts = PodFacts {
        name: &plan.name,
        namespace: &plan.namespace,
        uid: &plan.uid,
        pod_ip: "10.88.0.7",
        node_name: "node",
        host_ip: "192.168.0.1",
    };
    let process = plan.containers[0].resolve(&facts);
    assert_eq!(process.argv, ["httpd", "-f", "-p", "8080"]);
    assert_eq!(
        process.env,
        [
            ("POD_IP".to_string(), "10.88.0.7".to_string()),
            ("LISTEN".to_string(), "10.88.0.7:8080".to_string())
        ]
    );
}

#[test]
fn sidecar_manifest_has_defaults() {
    let plan = pod(SIDECAR);
    let m = &plan.manifest;
    assert_eq!(m["apiVersion"], "v1");
    assert_eq!(m["kind"], "Pod");
    assert_eq!(m["metadata"]["name"], "sidecar");
    assert_eq!(m["metadata"]["namespace"], "default");
    assert_eq!(m["metadata"]["uid"], json!(plan.uid));
    assert_eq!(m["metadata"]["labels"], json!({"app": "sidecar"}));
    assert_eq!(m["spec"]["restartPolicy"], "Always");
    assert_eq!(m["spec"]["terminationGracePeriodSeconds"], 30);
    let web = &m["spec"]["containers"][0];
    assert_eq!(web["imagePullPolicy"], "IfNotPresent");
    assert_eq!(web["ports"][0]["protocol"], "TCP");
    assert_eq!(
        web["resources"]["requests"],
        json!({"cpu": "200m", "memory": "64Mi"})
    );
    assert!(m.get("status").is_none());
}

#[test]
fn deployment_makes_replica_pods() {
    let Object::Deployment(plan) = load_one(DEPLOYMENT) else {
        panic!("expected a deployment");
    };
    assert_eq!(plan.replicas, 3);
    assert_eq!(plan.replica_set_name, format!("web-{}", plan.template_hash));
    let alphabet = "bcdfghjklmnpqrstvwxz2456789";
    assert!(plan.template_hash.chars().all(|c| alphabet.contains(c)));
    let pods = plan.pod_plans();
    assert_eq!(pods.len(), 3);
    let mut names: Vec<&str> = pods.iter().map(|p| p.name.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 3);
    for pod in &pods {
        let suffix = pod
            .name
            .strip_prefix(&format!("{}-", plan.replica_set_name))
            .unwrap();
        assert_eq!(suffix.len(), 5);
        assert!(suffix.chars().all(|c| alphabet.contains(c)));
        assert_eq!(pod.hostname, pod.name);
        assert_eq!(pod.labels["pod-template-hash"], plan.template_hash);
        assert_eq!(pod.labels["app"], "web");
        assert_eq!(pod.labels["tier"], "front");
        let owner = pod.owner.as_ref().unwrap();
        assert_eq!(owner.kind, "ReplicaSet");
        assert_eq!(owner.name, plan.replica_set_name);
        assert_eq!(owner.deployment.as_deref(), Some("web"));
        let meta = &pod.manifest["metadata"];
        assert_eq!(meta["name"], json!(pod.name));
        assert_eq!(meta["uid"], json!(pod.uid));
        assert_eq!(meta["ownerReferences"][0]["kind"], "ReplicaSet");
        assert_eq!(
            meta["ownerReferences"][0]["uid"],
            json!(plan.replica_set_uid)
        );
        assert_eq!(
            meta["labels"]["pod-template-hash"],
            json!(plan.template_hash)
        );
    }
    assert!(pods[0].uid != pods[1].uid && pods[1].uid != pods[2].uid);
}

#[test]
fn template_hash_is_stable_and_tracks_the_template() {
    let hash = |text: &str| match load_one(text) {
        Object::Deployment(d) => d.template_hash,
        _ => unreachable!(),
    };
    assert_eq!(hash(DEPLOYMENT), hash(DEPLOYMENT));
    assert_ne!(
        hash(DEPLOYMENT),
        hash(&DEPLOYMENT.replace("nginx:1.27", "nginx:1.28"))
    );
    assert_eq!(
        hash(DEPLOYMENT),
        hash(&DEPLOYMENT.replace("replicas: 3", "replicas: 5"))
    );
}

#[test]
fn flow_style_and_json_documents() {
    let flow = "{apiVersion: v1, kind: Pod, metadata: {name: flow}, spec: {containers: \
                [{name: c, image: busybox, command: [sleep, '10']}]}}";
    assert_eq!(pod(flow).name, "flow");
    let json_text = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "j"},
        "spec": {"containers": [{"name": "c", "image": "b", "command": ["true"]}]}}"#;
    assert_eq!(pod(json_text).name, "j");
}

#[test]
fn multi_document_skips_empty_documents() {
    let text = format!("---\n{SIDECAR}\n---\n---\n{DEPLOYMENT}\n...\n");
    let objects = load_str(&text, "all.yaml").unwrap();
    assert_eq!(objects.len(), 2);
    assert!(matches!(objects[0], Object::Pod(_)));
    assert!(matches!(objects[1], Object::Deployment(_)));
}

#[test]
fn errors_name_the_document_when_there_are_several() {
    let text = format!("{SIDECAR}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: s}}\n");
    assert_eq!(
        error(&text),
        "pods/bad.yaml: document 2: kind \"Service\" (v1) is not supported by podrun yet; \
         supported kinds: Pod (v1), Deployment (apps/v1)"
    );
}

#[test]
fn unknown_kinds_use_kubectl_wording() {
    assert_eq!(
        error("apiVersion: v1\nkind: Foo\n"),
        "pods/bad.yaml: no matches for kind \"Foo\" in version \"v1\""
    );
    assert_eq!(
        error("apiVersion: v1\nkind: Deployment\n"),
        "pods/bad.yaml: no matches for kind \"Deployment\" in version \"v1\""
    );
}

#[test]
fn missing_kind_or_api_version() {
    assert!(error("apiVersion: v1\nmetadata: {name: x}\n").contains("Object 'Kind' is missing"));
    assert!(error("kind: Pod\n").contains("Object 'apiVersion' is missing for kind \"Pod\""));
    assert!(error("- a\n- b\n").contains("expected a mapping"));
}

#[test]
fn invalid_yaml_has_line_and_column() {
    let message = error("apiVersion: v1\nkind: Pod\nmetadata: {name: [x}\n");
    assert!(message.starts_with("pods/bad.yaml:3:"), "{message}");
    assert!(message.contains("invalid YAML"), "{message}");
    assert!(!message.contains("at line"), "{message}");
    let duplicate = error("apiVersion: v1\nkind: Pod\nmetadata: {name: x, name: y}\n");
    assert_eq!(
        duplicate,
        "pods/bad.yaml:3:21: invalid YAML: duplicate mapping key: name"
    );
}

#[test]
fn unknown_field_is_a_strict_decoding_error() {
    let text = pod_with_container_extra("    resoures: {limits: {cpu: 1}}\n");
    assert_eq!(
        error(&text),
        "pods/bad.yaml: strict decoding error: unknown field \"spec.containers[0].resoures\""
    );
}

#[test]
fn type_error_names_the_path() {
    let text = pod_with_container_extra("    ports: [{containerPort: http}]\n");
    assert_eq!(
        error(&text),
        "pods/bad.yaml: spec.containers[0].ports[0].containerPort: \
         invalid type: string \"http\", expected i32"
    );
}

#[test]
fn known_but_unsupported_fields() {
    let text = pod_with_container_extra(
        "    tty: true\n    securityContext: {}\n    \
         stdin: false\n  volumes: [{name: v, nfs: {server: s, path: /}}]\n",
    );
    assert_eq!(
        error(&text),
        "pods/bad.yaml: field \"spec.containers[0].tty\" is not supported by podrun yet; \
         field \"spec.volumes[0].nfs\" is not supported by podrun yet"
    );
}

#[test]
fn unsupported_field_ref_and_resource() {
    let text = pod_with_container_extra(
        "    env: [{name: L, valueFrom: {fieldRef: {fieldPath: \"metadata.labels['a']\"}}}]\n    \
         resources: {limits: {ephemeral-storage: 1Gi}}\n",
    );
    let message = error(&text);
    assert!(message.contains(
        "field \"spec.containers[0].resources.limits.ephemeral-storage\" is not supported"
    ));
    assert!(message.contains(
        "field \"spec.containers[0].env[0].valueFrom.fieldRef.fieldPath\" value \
         \"metadata.labels['a']\" is not supported by podrun yet"
    ));
}

#[test]
fn generate_name_and_creation_timestamp() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {generateName: x-, creationTimestamp: null, \
                name: p}\nspec: {containers: [{name: c, image: b, command: ['true']}]}\n";
    assert_eq!(
        error(text),
        "pods/bad.yaml: field \"metadata.generateName\" is not supported by podrun yet"
    );
}

#[test]
fn validation_collects_all_problems() {
    let text = r#"
apiVersion: v1
kind: Pod
metadata: {name: Sidecar, namespace: my_ns}
spec:
  restartPolicy: Sometimes
  terminationGracePeriodSeconds: -1
  hostname: Not_A_Label
  containers:
  - name: web
    image: busybox
  - name: web
    command: ["x"]
    env: [{name: 1BAD, value: x}]
    ports: [{containerPort: 0, protocol: ICMP}]
"#;
    let message = error(text);
    let expected = [
        "pods/bad.yaml: The Pod \"Sidecar\" is invalid: [",
        "metadata.name: Invalid value: \"Sidecar\": a lowercase RFC 1123 subdomain",
        "metadata.namespace: Invalid value: \"my_ns\": a lowercase RFC 1123 label",
        "spec.containers[1].image: Required value",
        "spec.containers[1].env[0].name: Invalid value: \"1BAD\": a valid environment variable name",
        "spec.containers[1].name: Duplicate value: \"web\"",
        "spec.containers[1].ports[0].containerPort: Invalid value: 0: must be between 1 and 65535, inclusive",
        "spec.containers[1].ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
        "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
        "spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0",
        "spec.hostname: Invalid value: \"Not_A_Label\": a lowercase RFC 1123 label",
    ];
    for part in expected {
        assert!(message.contains(part), "missing {part:?} in {message}");
    }
}

#[test]
fn missing_name_and_containers() {
    assert_eq!(
        error("apiVersion: v1\nkind: Pod\nspec: {containers: []}\n"),
        "pods/bad.yaml: The Pod \"\" is invalid: [metadata.name: Required value: name or \
         generateName is required, spec.containers: Required value]"
    );
    assert_eq!(
        error(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{image: b, command: [x]}]}\n"
        ),
        "pods/bad.yaml: The Pod \"p\" is invalid: spec.containers[0].name: Required value"
    );
}

#[test]
fn duplicate_ports_across_containers() {
    let text = r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - {name: a, image: b, command: [x], ports: [{containerPort: 80}, {containerPort: 80, protocol: UDP}]}
  - {name: b, image: b, command: [x], ports: [{containerPort: 80, protocol: TCP}]}
"#;
    assert_eq!(
        error(text),
        "pods/bad.yaml: The Pod \"p\" is invalid: spec.containers[1].ports[0]: Duplicate value: \"80/TCP\""
    );
}

fn resource_error(resources: &str) -> String {
    error(&pod_with_container_extra(&format!(
        "    resources: {resources}\n"
    )))
}

#[test]
fn quantity_problems() {
    assert_eq!(
        resource_error("{limits: {memory: 200Mx}}"),
        "pods/bad.yaml: The Pod \"p\" is invalid: spec.containers[0].resources.limits.memory: \
         Invalid value: \"200Mx\": quantities must match the regular expression \
         '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    );
    assert_eq!(
        resource_error("{requests: {cpu: -1}}"),
        "pods/bad.yaml: The Pod \"p\" is invalid: spec.containers[0].resources.requests.cpu: \
         Invalid value: \"-1\": must be greater than or equal to 0"
    );
    assert_eq!(
        resource_error("{limits: {cpu: 0}}"),
        "pods/bad.yaml: The Pod \"p\" is invalid: spec.containers[0].resources.limits.cpu: \
         Invalid value: \"0\": must be greater than 0"
    );
    assert_eq!(
        resource_error("{limits: {cpu: 200m}, requests: {cpu: 0.3}}"),
        "pods/bad.yaml: The Pod \"p\" is invalid: spec.containers[0].resources.requests.cpu: \
         Invalid value: \"300m\": must be less than or equal to cpu limit of 200m"
    );
    assert!(resource_error("{limits: {memory: 1Gi}, requests: {memory: 2Gi}}").contains(
        "requests.memory: Invalid value: \"2Gi\": must be less than or equal to memory limit of 1Gi"
    ));
}

#[test]
fn memory_in_millis_rounds_up_to_a_byte() {
    let plan = pod(&pod_with_container_extra(
        "    resources: {limits: {memory: 100m}}\n",
    ));
    assert_eq!(plan.containers[0].resources.limits.memory_bytes, Some(1));
}

#[test]
fn deployment_problems() {
    let bad = DEPLOYMENT
        .replace("replicas: 3", "replicas: -1")
        .replace("matchLabels: {app: web}", "matchLabels: {app: other}");
    let message = error(&bad);
    assert!(message.starts_with("pods/bad.yaml: The Deployment \"web\" is invalid: ["));
    assert!(
        message.contains("spec.replicas: Invalid value: -1: must be greater than or equal to 0")
    );
    assert!(message.contains(
        "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\", \
         \"tier\":\"front\"}: selector does not match template labels"
    ));
    let never = DEPLOYMENT.replace(
        "      containers:",
        "      restartPolicy: Never\n      containers:",
    );
    assert!(error(&never).contains(
        "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""
    ));
    let no_selector = DEPLOYMENT.replace("  selector:\n    matchLabels: {app: web}\n", "");
    assert!(error(&no_selector).contains("spec.selector: Required value"));
}

#[test]
fn deployment_unsupported_fields() {
    let text = DEPLOYMENT.replace("  replicas: 3\n", "  replicas: 3\n  paused: true\n");
    let err = error(&text);
    assert!(
        err.contains("field \"spec.paused\" is not supported by podrun yet"),
        "{err}"
    );
}

#[test]
fn deployment_strategy_and_timings() {
    let text = DEPLOYMENT.replace(
        "  replicas: 3\n",
        "  replicas: 3\n  minReadySeconds: 5\n  revisionHistoryLimit: 2\n  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: '0%'}}\n",
    );
    let Object::Deployment(d) = load_one(&text) else {
        panic!("a deployment")
    };
    assert_eq!(d.min_ready_seconds, 5);
    assert_eq!(d.revision_history_limit, 2);
    assert_eq!(d.strategy.fenceposts(3), (1, 0));
    let bad = DEPLOYMENT.replace(
        "  replicas: 3\n",
        "  replicas: 3\n  strategy: {type: Recreate, rollingUpdate: {maxSurge: 1}}\n",
    );
    assert!(
        error(&bad).contains("spec.strategy.rollingUpdate: Forbidden"),
        "{}",
        error(&bad)
    );
}

#[test]
fn jobs_and_replica_sets_load_with_their_defaults() {
    let job = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\nspec:\n  completions: 3\n  parallelism: 2\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: busybox, command: ['true']}]\n";
    let Object::Job(j) = load_one(job) else {
        panic!("a job")
    };
    assert_eq!(
        (j.completions, j.parallelism, j.backoff_limit),
        (Some(3), 2, 6)
    );
    assert_eq!(j.labels["job-name"], "pi");
    let always = job.replace("restartPolicy: Never", "restartPolicy: Always");
    assert!(
        error(&always).contains("spec.template.spec.restartPolicy: Unsupported value: \"Always\""),
        "{}",
        error(&always)
    );
    let rs = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: r}\nspec:\n  replicas: 2\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: c, image: busybox}]}\n";
    let Object::ReplicaSet(r) = load_one(rs) else {
        panic!("a replica set")
    };
    assert_eq!(r.replicas, 2);
}

#[test]
fn duplicate_objects_in_one_file() {
    let text = format!("{SIDECAR}\n---\n{SIDECAR}");
    assert_eq!(
        error(&text),
        "pods/bad.yaml: document 2: Pod \"sidecar\" in namespace \"default\" is defined more \
         than once (first in document 1)"
    );
}

#[test]
fn explicit_hostname_and_long_names() {
    let text = pod_with_container_extra("  hostname: db\n");
    assert_eq!(pod(&text).hostname, "db");
    let long = format!("{}-b", "a".repeat(62));
    let text = pod_with_container_extra("").replace("name: p}", &format!("name: {long}}}"));
    assert_eq!(pod(&text).hostname, "a".repeat(62));
}

#[test]
fn restart_policy_serializes_as_kubernetes_strings() {
    assert_eq!(
        serde_json::to_value(RestartPolicy::OnFailure).unwrap(),
        "OnFailure"
    );
    let text = pod_with_container_extra("  restartPolicy: Never\n");
    assert_eq!(pod(&text).restart_policy, RestartPolicy::Never);
}

#[test]
fn load_file_reads_files_and_reports_missing_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pod.yaml");
    std::fs::write(&path, SIDECAR).unwrap();
    assert_eq!(load_file(&path).unwrap().len(), 1);
    let missing = dir.path().join("nope.yaml");
    let message = load_file(&missing).unwrap_err().to_string();
    assert!(
        message.contains("nope.yaml: cannot read manifest"),
        "{message}"
    );
}

#[test]
fn kubectl_generated_deployment_is_accepted() {
    let text = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  creationTimestamp: null
  labels:
    app: web
  name: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  strategy: {}
  template:
    metadata:
      creationTimestamp: null
      labels:
        app: web
    spec:
      containers:
      - image: nginx
        name: nginx
        command: [nginx]
        resources: {}
status: {}
"#;
    let Object::Deployment(plan) = load_one(text) else {
        panic!("expected a deployment");
    };
    assert_eq!(plan.pod_plans().len(), 1);
}

#[test]
fn numeric_label_values_are_type_errors() {
    assert_eq!(
        error("apiVersion: v1\nkind: Pod\nmetadata: {name: x, labels: {a: 1}}\n"),
        "pods/bad.yaml: metadata.labels.a: invalid type: integer `1`, expected a string"
    );
}

#[test]
fn namespace_flag_fills_in_and_refuses_a_different_one() {
    let bare = "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers: [{name: c, image: i, command: [sh]}]\n";
    let objects = crate::spec::load_str_in(bare, "p.yaml", Some("team-a")).unwrap();
    let Object::Pod(plan) = &objects[0] else {
        panic!("expected a pod");
    };
    assert_eq!(plan.namespace, "team-a");
    let own = bare.replace("{name: x}", "{name: x, namespace: team-b}");
    let err = crate::spec::load_str_in(&own, "p.yaml", Some("team-a"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "the namespace from the provided object \"team-b\" does not match the namespace \
         \"team-a\". You must pass '--namespace=team-b' to perform this operation."
    );
    let same = bare.replace("{name: x}", "{name: x, namespace: team-a}");
    assert!(crate::spec::load_str_in(&same, "p.yaml", Some("team-a")).is_ok());
}

#[test]
fn security_context_and_volumes_are_validated() {
    let text = pod_with_container_extra(
        "    securityContext: {capabilities: {add: [NET_RAWW, NET_ADMIN], drop: [all]}, runAsUser: -1}\n    \
         volumeMounts: [{name: nope, mountPath: /a}, {name: v, mountPath: /a, subPath: ../x}]\n  \
         dnsPolicy: None\n  \
         volumes: [{name: v, hostPath: {path: /x, type: Dir}}, {name: v, emptyDir: {medium: Disk}}]\n",
    );
    let message = error(&text);
    for part in [
        "spec.containers[0].securityContext.capabilities.add[0]: unknown capability \"NET_RAWW\"",
        "spec.containers[0].securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive",
        "spec.containers[0].volumeMounts[0].name: Not found: \"nope\"",
        "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/a\": must be unique",
        "spec.containers[0].volumeMounts[1].subPath: Invalid value: \"../x\": must not contain '..'",
        "spec.volumes[0].hostPath.type: Unsupported value: \"Dir\"",
        "spec.volumes[1].name: Duplicate value: \"v\"",
        "spec.volumes[1].emptyDir.medium: Unsupported value: \"Disk\"",
        "spec.dnsConfig.nameservers: Required value: must provide at least one DNS nameserver when DNSPolicy is None",
    ] {
        assert!(message.contains(part), "missing {part:?} in {message}");
    }
    assert!(
        !message.contains("NET_ADMIN") && !message.contains("drop[0]"),
        "{message}"
    );
}

#[test]
fn config_maps_and_secrets_of_the_same_file_feed_env_and_volumes() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata: {a: '1', b: '2'}\n---\n\
        apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {pw: aHVudGVyMg==}\n---\n\
        apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: i\n    \
        envFrom: [{configMapRef: {name: cm}}]\n    \
        env: [{name: b, value: override}, {name: PW, valueFrom: {secretKeyRef: {name: s, key: pw}}}, \
        {name: O, valueFrom: {configMapKeyRef: {name: gone, key: x, optional: true}}}]\n    \
        volumeMounts: [{name: sec, mountPath: /s}]\n  \
        volumes: [{name: sec, secret: {secretName: s, defaultMode: 256}}]\n";
    let objects = load_str(text, "t").unwrap();
    assert_eq!(
        objects.len(),
        1,
        "ConfigMap and Secret are consumed, not returned"
    );
    let plan = match &objects[0] {
        Object::Pod(p) => p.clone(),
        _ => unreachable!(),
    };
    let facts = crate::spec::PodFacts {
        name: "p",
        namespace: "default",
        uid: "u",
        pod_ip: "",
        node_name: "n",
        host_ip: "",
    };
    let env = plan.containers[0].resolve(&facts).env;
    assert_eq!(
        env,
        [
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "override".to_string()),
            ("PW".to_string(), "hunter2".to_string()),
        ]
    );
    match &plan.volumes[0].source {
        crate::spec::VolumeSource::Files { files, .. } => {
            assert_eq!(files[0].path, "pw");
            assert_eq!(files[0].data.0, b"hunter2");
            assert_eq!(files[0].mode, 0o400);
        }
        other => panic!("{other:?}"),
    }
    let missing = text.replace("key: pw", "key: nope");
    assert_eq!(
        error(&missing),
        "pods/bad.yaml: document 3: Pod \"p\": couldn't find key nope in Secret default/s"
    );
}

#[test]
fn zero_prefixed_numbers_are_octal_as_in_kubectl() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers: [{name: c, image: i, command: [sh], volumeMounts: [{name: s, mountPath: /s}]}]\n  volumes: [{name: s, secret: {secretName: s, defaultMode: 0400}}]\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {a: YQ==}\n";
    let Object::Pod(plan) = load_str(text, "p.yaml").unwrap().remove(0) else {
        panic!("expected a pod");
    };
    match &plan.volumes[0].source {
        crate::spec::VolumeSource::Files { default_mode, .. } => assert_eq!(*default_mode, 0o400),
        other => panic!("{other:?}"),
    }
}

#[test]
fn host_ports_are_planned_and_bad_ones_named() {
    let text = pod_with_container_extra(
        "    ports: [{containerPort: 80, hostPort: 8080, hostIP: 192.0.2.7}, {containerPort: 81, protocol: UDP, hostPort: 0}]\n",
    );
    let plan = pod(&text);
    let ports = &plan.containers[0].ports;
    assert_eq!(ports[0].host_port, Some(8080));
    assert_eq!(ports[0].host_ip, Some("192.0.2.7".parse().unwrap()));
    assert_eq!(ports[1].host_port, None);

    let text = pod_with_container_extra(
        "    ports: [{containerPort: 80, hostPort: 70000, hostIP: nowhere}, {containerPort: 81, hostPort: -1, hostIP: \"::1\"}]\n",
    );
    let err = error(&text);
    for cause in [
        "spec.containers[0].ports[0].hostPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        "spec.containers[0].ports[0].hostIP: Invalid value: \"nowhere\": must be a valid IP address",
        "spec.containers[0].ports[1].hostPort: Invalid value: -1: must be between 1 and 65535, inclusive",
        "spec.containers[0].ports[1].hostIP: Unsupported value: \"::1\": an IPv6 hostIP is not supported by podrun yet",
    ] {
        assert!(err.contains(cause), "{cause} missing from {err}");
    }
}

const WITH_INITS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: inits}
spec:
  volumes: [{name: work, emptyDir: {}}]
  initContainers:
  - name: setup
    image: busybox:1.36
    command: [sh, -c, "echo ready > /work/flag"]
    volumeMounts: [{name: work, mountPath: /work}]
  - name: migrate
    image: busybox:1.36
    command: ["true"]
  containers:
  - name: web
    image: busybox:1.36
    command: [httpd, -f]
"#;

#[test]
fn init_containers_are_planned_first_in_order() {
    let p = pod(WITH_INITS);
    let names: Vec<(&str, bool)> = p
        .containers
        .iter()
        .map(|c| (c.name.as_str(), c.init))
        .collect();
    assert_eq!(names, [("setup", true), ("migrate", true), ("web", false)]);
    assert_eq!(p.containers[0].volume_mounts[0].mount_path, "/work");
    assert_eq!(p.container_field(1), "spec.initContainers[1]");
    assert_eq!(p.container_field(2), "spec.containers[0]");
    // The stored manifest has the API server's defaults in both lists, and no list invented.
    let spec = &p.manifest["spec"];
    assert_eq!(spec["initContainers"][1]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(spec["containers"][0]["imagePullPolicy"], "IfNotPresent");
    let plain = pod(SIDECAR);
    assert!(plain.containers.iter().all(|c| !c.init));
    assert!(plain.manifest["spec"].get("initContainers").is_none());
}

#[test]
fn init_containers_are_validated_like_containers_and_sidecars_accepted() {
    let sidecar = WITH_INITS.replace(
        "command: [\"true\"]",
        "command: [\"true\"]\n    restartPolicy: Always\n    ports: [{containerPort: 80}]\n    \
         readinessProbe: {tcpSocket: {port: 80}}",
    );
    let p = pod(&sidecar);
    let c = &p.containers[1];
    assert!(c.init && c.sidecar, "{c:?}");
    let probe = c
        .probes
        .readiness
        .as_ref()
        .expect("a sidecar may have probes");
    assert_eq!(
        (
            probe.period_seconds,
            probe.timeout_seconds,
            probe.failure_threshold
        ),
        (10, 1, 3),
        "the API server's defaults"
    );
    let bad = sidecar.replace("restartPolicy: Always", "restartPolicy: OnFailure");
    let message = error(&bad);
    assert!(
        message.contains(
            "spec.initContainers[1].restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\""
        ),
        "{message}"
    );
    assert!(
        message.contains("spec.initContainers[1].readinessProbe: Forbidden: may not be set for init containers without restartPolicy=Always"),
        "{message}"
    );
    let bad = WITH_INITS.replace(
        "  - name: migrate\n    image: busybox:1.36\n",
        "  - name: web\n",
    );
    let message = error(&bad);
    for part in [
        "spec.initContainers[1].image: Required value",
        "spec.containers[0].name: Duplicate value: \"web\"",
    ] {
        assert!(message.contains(part), "{part} in {message}");
    }
    let ports = WITH_INITS.replace(
        "command: [\"true\"]",
        "command: [\"true\"]\n    ports: [{containerPort: 80}]",
    );
    assert!(
        error(&ports).contains("spec.initContainers[1].ports"),
        "{}",
        error(&ports)
    );
}

#[test]
fn probes_and_hooks_are_validated_as_the_api_server_does() {
    let text = pod_with_container_extra(
        "    ports: [{name: web, containerPort: 8080}]\n    \
         livenessProbe: {httpGet: {port: web, path: healthz}, successThreshold: 2}\n    \
         readinessProbe: {exec: {command: [x]}, tcpSocket: {port: 1}, terminationGracePeriodSeconds: 5}\n    \
         startupProbe: {periodSeconds: -1}\n    \
         lifecycle: {postStart: {httpGet: {port: nope}}, preStop: {exec: {}}}\n",
    );
    let message = error(&text);
    for part in [
        "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
        "spec.containers[0].readinessProbe: Forbidden: may not specify more than 1 handler type",
        "spec.containers[0].readinessProbe.terminationGracePeriodSeconds: Invalid value: 5: must not be set for readinessProbes",
        "spec.containers[0].startupProbe: Required value: must specify a handler type",
        "spec.containers[0].startupProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
        "spec.containers[0].lifecycle.postStart.httpGet.port: Invalid value: \"nope\"",
        "spec.containers[0].lifecycle.preStop.exec.command: Required value",
    ] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    // Valid: the named port resolved, the path made absolute, the defaults filled.
    let ok = pod_with_container_extra(
        "    ports: [{name: web, containerPort: 8080}]\n    \
         livenessProbe: {httpGet: {port: web, path: healthz}}\n    \
         lifecycle: {preStop: {sleep: {seconds: 2}}}\n",
    );
    let plan = pod(&ok);
    let probe = plan.containers[0].probes.liveness.as_ref().unwrap();
    assert_eq!(
        probe.handler,
        crate::probe::Handler::HttpGet {
            scheme: crate::probe::Scheme::Http,
            host: None,
            port: 8080,
            path: "/healthz".into(),
            headers: vec![],
        }
    );
    assert_eq!(
        plan.containers[0].lifecycle.pre_stop,
        Some(crate::probe::Handler::Sleep { seconds: 2 })
    );
    let manifest = &plan.manifest["spec"]["containers"][0];
    assert_eq!(manifest["livenessProbe"]["periodSeconds"], 10);
    assert_eq!(manifest["livenessProbe"]["httpGet"]["scheme"], "HTTP");
    assert_eq!(manifest["terminationMessagePath"], "/dev/termination-log");
    assert!(manifest.get("readinessProbe").is_none(), "{manifest}");
}
