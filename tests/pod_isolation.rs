//! Issue 5 acceptance: containers isolated like containerd/runc containers (own root filesystem
//! from the image, kubelet /etc files, capabilities, users, volumes, PID namespaces), and the
//! host's mount table untouched. Each test runs on its own throwaway node (see tests/common).

mod common;

use std::time::Duration;

use common::{DEBUG_IMAGE, Node, PYTHON_IMAGE};

const WAIT: Duration = Duration::from_secs(10);

fn write(node: &Node, name: &str, text: &str) -> String {
    let p = node.root.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

fn apply_text(node: &Node, text: &str) -> common::Run {
    let f = write(node, "pod.yaml", text);
    node.podrun(&["apply", "-f", &f])
}

fn exec(node: &Node, pod: &str, container: &str, cmd: &[&str]) -> common::Run {
    node.exec(pod, container, cmd)
}

fn sh(node: &Node, pod: &str, container: &str, script: &str) -> common::Run {
    exec(node, pod, container, &["sh", "-c", script])
}

/// The node's mount table, without the per-pod netns pins (the only mounts podrun makes there).
fn node_mounts(node: &Node) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{}/mountinfo", node.pid()))
        .unwrap()
        .lines()
        .map(|l| {
            l.split_whitespace()
                .skip(3)
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|l| !l.contains("/run/netns/"))
        .collect()
}

fn capeff(node: &Node, pod: &str, container: &str) -> String {
    let status = exec(node, pod, container, &["cat", "/proc/1/status"])
        .ok()
        .stdout;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .expect("CapEff line")
        .trim()
        .to_owned()
}

fn record(node: &Node, pod: &str) -> serde_json::Value {
    let ns_dir = node.root.path().join("pods").join(format!("default_{pod}"));
    serde_json::from_slice(&std::fs::read(ns_dir.join("pod.json")).unwrap()).unwrap()
}

#[test]
fn sidecar_containers_run_in_their_images_with_private_writes() {
    require_root!();
    let node = Node::new();
    let before = node_mounts(&node);
    node.apply("pods/sidecar.yaml").ok();
    let ip = node.pod_ip("sidecar");

    // Each container's / is its image, not the host's.
    assert!(!std::path::Path::new("/etc/podrun-image").exists());
    let marker = |c: &str| {
        exec(&node, "sidecar", c, &["cat", "/etc/podrun-image"])
            .ok()
            .stdout
    };
    assert_eq!(marker("curl-client").trim(), DEBUG_IMAGE);
    assert_eq!(marker("web-server").trim(), PYTHON_IMAGE);

    // The kubelet's /etc/hosts (pod IP and name), /etc/hostname.
    let hosts = exec(&node, "sidecar", "curl-client", &["cat", "/etc/hosts"])
        .ok()
        .stdout;
    assert!(
        hosts.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"),
        "{hosts}"
    );
    assert!(hosts.contains(&format!("\n{ip}\tsidecar\n")), "{hosts}");
    let hostname = exec(&node, "sidecar", "web-server", &["cat", "/etc/hostname"])
        .ok()
        .stdout;
    assert_eq!(hostname, "sidecar\n");

    // Writes to /tmp stay in the writing container.
    sh(
        &node,
        "sidecar",
        "curl-client",
        "echo mine > /tmp/only-curl",
    )
    .ok();
    assert_eq!(
        exec(&node, "sidecar", "curl-client", &["cat", "/tmp/only-curl"])
            .ok()
            .stdout,
        "mine\n"
    );
    let other = exec(&node, "sidecar", "web-server", &["cat", "/tmp/only-curl"]);
    assert_ne!(other.code, 0, "web-server sees curl-client's file");
    assert!(!std::path::Path::new("/tmp/only-curl").exists());
    // ... in the container's own upper dir, recorded in the pod record.
    let rec = record(&node, "sidecar");
    let upper = rec["containers"][1]["rootfs"]["upper"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(std::path::Path::new(&upper).join("tmp/only-curl").exists());

    // Without shareProcessNamespace each container has its own PID namespace.
    let ps = exec(&node, "sidecar", "curl-client", &["ps", "-o", "pid,args"])
        .ok()
        .stdout;
    assert!(!ps.contains("python3"), "{ps}");
    assert!(
        ps.lines()
            .any(|l| l.trim_start().starts_with("1 ") && l.contains("while true")),
        "{ps}"
    );

    // Nothing is mounted on the node (the netns pin aside).
    assert_eq!(node_mounts(&node), before);

    node.podrun(&["delete", "sidecar", "--grace-period=0"]).ok();
    assert!(
        !std::path::Path::new(&upper).exists(),
        "upper dir left: {upper}"
    );
    assert_eq!(node_mounts(&node), before);
    node.assert_clean();
}

#[test]
fn capabilities_net_raw_and_drop_all() {
    require_root!();
    let node = Node::new();
    node.apply("pods/sidecar.yaml").ok();
    // curl-client: drop ALL, add NET_RAW (raw sockets only).
    assert_eq!(capeff(&node, "sidecar", "curl-client"), "0000000000002000");
    // web-server: containerd's default set.
    assert_eq!(capeff(&node, "sidecar", "web-server"), "00000000a80425fb");
    let gw = "10.244.0.1";
    let r = exec(
        &node,
        "sidecar",
        "curl-client",
        &["ping", "-c", "1", "-W", "2", gw],
    );
    assert_eq!(r.code, 0, "ping with NET_RAW: {} {}", r.stdout, r.stderr);

    let text = format!(
        "{{apiVersion: v1, kind: Pod, metadata: {{name: nocaps}}, spec: {{containers: [{{name: c, image: '{DEBUG_IMAGE}', command: [sleep, '600'], securityContext: {{capabilities: {{drop: [ALL]}}}}}}]}}}}"
    );
    apply_text(&node, &text).ok();
    assert_eq!(capeff(&node, "nocaps", "c"), "0000000000000000");
    let r = exec(&node, "nocaps", "c", &["ping", "-c", "1", "-W", "1", gw]);
    assert_ne!(r.code, 0, "ping without NET_RAW worked: {}", r.stdout);
    assert!(
        r.stderr.contains("permission denied") || r.stdout.contains("permission denied"),
        "{} {}",
        r.stdout,
        r.stderr
    );
    node.podrun(&["delete", "--all", "--grace-period=0"]).ok();
    node.assert_clean();
}

#[test]
fn volumes_are_shared_by_the_pods_containers() {
    require_root!();
    let node = Node::new();
    let before = node_mounts(&node);
    let text = format!(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{greeting: hello, color: blue}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{password: s3cret}}
---
apiVersion: v1
kind: Pod
metadata: {{name: vols}}
spec:
  volumes:
  - {{name: shared, emptyDir: {{}}}}
  - {{name: mem, emptyDir: {{medium: Memory, sizeLimit: 8Mi}}}}
  - {{name: conf, configMap: {{name: settings, items: [{{key: greeting, path: greeting.txt}}]}}}}
  - {{name: host, hostPath: {{path: {host}, type: Directory}}}}
  containers:
  - name: writer
    image: '{DEBUG_IMAGE}'
    command: [sh, -c, 'echo written > /shared/file; echo fast > /mem/file; mkdir -p /shared/sub; echo deep > /shared/sub/f; exec sleep 600']
    envFrom: [{{configMapRef: {{name: settings}}, prefix: CFG_}}]
    env:
    - {{name: PASSWORD, valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}}}
    volumeMounts:
    - {{name: shared, mountPath: /shared}}
    - {{name: mem, mountPath: /mem}}
    - {{name: conf, mountPath: /etc/settings}}
  - name: reader
    image: '{DEBUG_IMAGE}'
    command: [sleep, '600']
    volumeMounts:
    - {{name: shared, mountPath: /data, readOnly: true}}
    - {{name: shared, mountPath: /deep, subPath: sub}}
    - {{name: mem, mountPath: /mem}}
    - {{name: host, mountPath: /host}}
"#,
        host = node.root.path().display()
    );
    apply_text(&node, &text).ok();
    let r = node.eventually(
        &format!(
            "test -e {}",
            node.root
                .path()
                .join("pods/default_vols/volumes/shared/sub/f")
                .display()
        ),
        WAIT,
    );
    assert_eq!(r.code, 0, "writer never wrote");
    assert_eq!(
        exec(&node, "vols", "reader", &["cat", "/data/file"])
            .ok()
            .stdout,
        "written\n"
    );
    assert_eq!(
        exec(&node, "vols", "reader", &["cat", "/deep/f"])
            .ok()
            .stdout,
        "deep\n"
    );
    assert_eq!(
        exec(&node, "vols", "reader", &["cat", "/mem/file"])
            .ok()
            .stdout,
        "fast\n"
    );
    // medium: Memory is a tmpfs with the size limit, and not on the node.
    let df = sh(&node, "vols", "reader", "grep ' /mem ' /proc/mounts")
        .ok()
        .stdout;
    assert!(df.contains("tmpfs") && df.contains("size=8192k"), "{df}");
    // readOnly
    assert_ne!(sh(&node, "vols", "reader", "echo x > /data/new").code, 0);
    // hostPath
    assert!(
        exec(&node, "vols", "reader", &["ls", "/host"])
            .ok()
            .stdout
            .contains("pod.yaml")
    );
    // configMap volume (items) and env from ConfigMap/Secret
    assert_eq!(
        exec(
            &node,
            "vols",
            "writer",
            &["cat", "/etc/settings/greeting.txt"]
        )
        .ok()
        .stdout,
        "hello"
    );
    let env = exec(&node, "vols", "writer", &["env"]).ok().stdout;
    assert!(
        env.contains("CFG_greeting=hello") && env.contains("CFG_color=blue"),
        "{env}"
    );
    assert!(env.contains("PASSWORD=s3cret"), "{env}");
    assert_eq!(node_mounts(&node), before);
    node.podrun(&["delete", "vols", "--grace-period=0"]).ok();
    assert_eq!(node_mounts(&node), before);
    node.assert_clean();
}

#[test]
fn security_context_users_and_read_only_root() {
    require_root!();
    let node = Node::new();
    let text = format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: sec}}
spec:
  containers:
  - name: user
    image: '{DEBUG_IMAGE}'
    command: [sleep, '600']
    securityContext: {{runAsUser: 1000, runAsGroup: 1000, runAsNonRoot: true, allowPrivilegeEscalation: false}}
  - name: ro
    image: '{DEBUG_IMAGE}'
    command: [sleep, '600']
    securityContext: {{readOnlyRootFilesystem: true}}
"#
    );
    apply_text(&node, &text).ok();
    assert_eq!(
        exec(&node, "sec", "user", &["id", "-u"]).ok().stdout,
        "1000\n"
    );
    assert_eq!(
        exec(&node, "sec", "user", &["id", "-g"]).ok().stdout,
        "1000\n"
    );
    let status = exec(&node, "sec", "user", &["cat", "/proc/1/status"])
        .ok()
        .stdout;
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    assert!(status.contains("Uid:\t1000\t1000\t1000\t1000"), "{status}");
    let r = sh(&node, "sec", "ro", "echo x > /file");
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("Read-only file system"), "{}", r.stderr);
    // /etc/hosts stays writable (as the kubelet mounts it).
    sh(&node, "sec", "ro", "echo '10.0.0.9 extra' >> /etc/hosts").ok();

    // The OCI spec podrun ran, where inspect says.
    let inspect = node.inspect("sec");
    let bundle = inspect["containers"][0]["bundle"]
        .as_str()
        .expect("bundle")
        .to_owned();
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{bundle}/config.json")).unwrap()).unwrap();
    assert_eq!(config["process"]["user"]["uid"], 1000);
    assert_eq!(config["process"]["noNewPrivileges"], true);
    assert_eq!(config["linux"]["namespaces"][2]["type"], "uts");
    assert!(
        config["linux"]["namespaces"][2]["path"]
            .as_str()
            .unwrap()
            .ends_with("/ns/uts")
    );
    node.podrun(&["delete", "sec", "--grace-period=0"]).ok();

    // runAsNonRoot with an image that runs as root: refused, nothing created.
    let text = format!(
        "{{apiVersion: v1, kind: Pod, metadata: {{name: root}}, spec: {{containers: [{{name: c, image: '{DEBUG_IMAGE}', command: [sleep, '600'], securityContext: {{runAsNonRoot: true}}}}]}}}}"
    );
    let r = apply_text(&node, &text);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains(
            "container has runAsNonRoot and image will run as root (pod: \"root_default("
        ) && r.stderr.contains("container: c)"),
        "{}",
        r.stderr
    );
    node.assert_clean();
}

#[track_caller]
fn refused(node: &Node, text: &str, expect: &str) {
    let r = apply_text(node, text);
    assert_ne!(r.code, 0, "accepted: {text}");
    assert!(r.stderr.contains(expect), "want {expect:?} in {}", r.stderr);
    node.assert_clean();
}

#[test]
fn bad_input_is_refused_before_anything_is_made() {
    require_root!();
    let node = Node::new();
    let pod = |container: &str, extra: &str| {
        format!(
            "{{apiVersion: v1, kind: Pod, metadata: {{name: bad}}, spec: {{{extra} containers: [{{name: c, command: [sleep, '1'], {container}}}]}}}}"
        )
    };
    refused(
        &node,
        &pod("image: podrun.local/nope:1", ""),
        "spec.containers[0].image: image \"podrun.local/nope:1\" not found in the podrun image store",
    );
    let img = format!("image: '{DEBUG_IMAGE}'");
    refused(
        &node,
        &format!(
            "{{apiVersion: v1, kind: ConfigMap, metadata: {{name: cm}}, data: {{a: b}}}}\n---\n{}",
            pod(
                &format!(
                    "{img}, env: [{{name: X, valueFrom: {{configMapKeyRef: {{name: cm, key: missing}}}}}}]"
                ),
                ""
            )
        ),
        "Pod \"bad\": couldn't find key missing in ConfigMap default/cm",
    );
    refused(
        &node,
        &pod(
            &format!(
                "{img}, env: [{{name: X, valueFrom: {{configMapKeyRef: {{name: nocm, key: a}}}}}}]"
            ),
            "",
        ),
        "configmap \"nocm\" not found",
    );
    refused(
        &node,
        &pod(
            &img,
            "volumes: [{name: h, hostPath: {path: /etc/hostname, type: Directory}}],",
        ),
        "volume h: hostPath type check failed: /etc/hostname is not a directory",
    );
    refused(
        &node,
        &pod(
            &format!("{img}, securityContext: {{capabilities: {{add: [NET_RAWW]}}}}"),
            "",
        ),
        "spec.containers[0].securityContext.capabilities.add[0]: unknown capability \"NET_RAWW\"",
    );
    // A command missing inside the image fails the apply, naming container and path.
    refused(
        &node,
        &format!(
            "{{apiVersion: v1, kind: Pod, metadata: {{name: bad}}, spec: {{containers: [{{name: c, {img}, command: [/usr/bin/nonexistent]}}]}}}}"
        ),
        "container c: unable to start container process: exec: \"/usr/bin/nonexistent\": stat /usr/bin/nonexistent: no such file or directory",
    );
}

#[test]
fn share_process_namespace_pause_is_pid_1_and_reaps() {
    require_root!();
    let node = Node::new();
    let text = format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: shared}}
spec:
  shareProcessNamespace: true
  containers:
  - name: web-server
    image: '{PYTHON_IMAGE}'
    command: [python3, -S, -c, 'import time; time.sleep(600)']
  - name: curl-client
    image: '{DEBUG_IMAGE}'
    command: [sh, -c, 'while true; do sleep 5; done']
"#
    );
    apply_text(&node, &text).ok();
    let ps = exec(&node, "shared", "curl-client", &["ps", "-o", "pid,args"])
        .ok()
        .stdout;
    assert!(ps.contains("python3"), "{ps}");
    let first = ps.lines().nth(1).unwrap_or("");
    assert!(
        first.trim_start().starts_with("1 ") && first.contains("podrun-pause"),
        "{ps}"
    );

    // An orphan (its parent exits at once) becomes the pause's child and is reaped by it.
    sh(&node, "shared", "curl-client", "(sleep 0.3 &) ; true").ok();
    let pause = node.inspect("shared")["sandbox"]["pause"]["pid"]
        .as_i64()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let zombies: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|s| {
            let after = &s[s.rfind(')').unwrap() + 2..];
            let f: Vec<&str> = after.split_whitespace().collect();
            f[0] == "Z" && f[1] == pause.to_string()
        })
        .collect();
    assert!(zombies.is_empty(), "zombies under the pause: {zombies:?}");
    node.podrun(&["delete", "shared", "--grace-period=0"]).ok();
    node.assert_clean();
}

#[test]
fn privileged_dns_config_and_host_aliases() {
    require_root!();
    let node = Node::new();
    let text = format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: misc}}
spec:
  hostname: box
  dnsPolicy: None
  dnsConfig: {{nameservers: [192.0.2.53], searches: [corp.example], options: [{{name: ndots, value: "2"}}]}}
  hostAliases: [{{ip: 192.0.2.10, hostnames: [db.local, cache.local]}}]
  containers:
  - name: priv
    image: '{DEBUG_IMAGE}'
    command: [sleep, '600']
    securityContext: {{privileged: true}}
  - name: plain
    image: '{DEBUG_IMAGE}'
    command: [sleep, '600']
"#
    );
    apply_text(&node, &text).ok();
    let resolv = exec(&node, "misc", "plain", &["cat", "/etc/resolv.conf"])
        .ok()
        .stdout;
    assert_eq!(
        resolv,
        "search corp.example\nnameserver 192.0.2.53\noptions ndots:2\n"
    );
    let hosts = exec(&node, "misc", "plain", &["cat", "/etc/hosts"])
        .ok()
        .stdout;
    assert!(
        hosts.ends_with(
            "\tbox\n\n# Entries added by HostAliases.\n192.0.2.10\tdb.local\tcache.local\n"
        ),
        "{hosts}"
    );
    assert_eq!(
        exec(&node, "misc", "plain", &["hostname"]).ok().stdout,
        "box\n"
    );
    // privileged: every capability (CAP_SYS_ADMIN is bit 21), /sys writable, /proc unmasked.
    let eff = u64::from_str_radix(&capeff(&node, "misc", "priv"), 16).unwrap();
    assert_ne!(eff & (1 << 21), 0, "{eff:x}");
    // The /sys line of /proc/mounts in container `c` of `pod`: rw only for the privileged one.
    let sys_is_rw_only_when_privileged = |pod: &str| {
        let sys = |c: &str| sh(&node, pod, c, "grep ' /sys ' /proc/mounts").ok().stdout;
        assert!(sys("priv").contains(" rw,"), "{pod}: {}", sys("priv"));
        assert!(sys("plain").contains(" ro,"), "{pod}: {}", sys("plain"));
    };
    sys_is_rw_only_when_privileged("misc");
    let kcore = |c: &str| sh(&node, "misc", c, "grep -c ' /proc/keys ' /proc/mounts").stdout;
    assert_eq!(kcore("plain").trim(), "1", "masked in a plain container");
    assert_eq!(kcore("priv").trim(), "0", "not masked when privileged");
    // privileged: the host's device nodes (containerd's HostDevices), e.g. /dev/loop-control.
    let host_only = ["loop-control", "kmsg", "tty0"]
        .into_iter()
        .find(|d| std::path::Path::new("/dev").join(d).exists())
        .expect("a host device to look for");
    let has = |c: &str| sh(&node, "misc", c, &format!("test -c /dev/{host_only}")).code == 0;
    assert!(
        has("priv"),
        "/dev/{host_only} missing in the privileged container"
    );
    assert!(
        !has("plain"),
        "/dev/{host_only} present in a plain container"
    );
    node.podrun(&["delete", "misc", "--grace-period=0"]).ok();

    // The pod's containers share one sysfs superblock (one network namespace): a plain
    // container listed first must not make the privileged one's /sys read-only.
    let reversed = format!(
        "{{apiVersion: v1, kind: Pod, metadata: {{name: order}}, spec: {{containers: [\
         {{name: plain, image: '{DEBUG_IMAGE}', command: [sleep, '600']}}, \
         {{name: priv, image: '{DEBUG_IMAGE}', command: [sleep, '600'], securityContext: {{privileged: true}}}}]}}}}"
    );
    apply_text(&node, &reversed).ok();
    sys_is_rw_only_when_privileged("order");
    node.podrun(&["delete", "order", "--grace-period=0"]).ok();
    node.assert_clean();
}

/// Container inits start before the pause has made the pod's namespaces and join them late:
/// /sys must still be the pod network's sysfs (eth0 and lo, none of the node's links) and
/// /dev/mqueue the pod IPC namespace's mqueue (the superblock the pause's IPC namespace gets).
#[test]
fn sys_and_mqueue_belong_to_the_pods_namespaces() {
    require_root!();
    let node = Node::new();
    let text = format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: late}}
spec:
  containers:
  - name: a
    image: '{DEBUG_IMAGE}'
    command: [sh, -c, 'while true; do sleep 5; done']
  - name: b
    image: '{DEBUG_IMAGE}'
    command: [sh, -c, 'while true; do sleep 5; done']
"#
    );
    apply_text(&node, &text).ok();
    let pause = node.inspect("late")["sandbox"]["pause"]["pid"]
        .as_i64()
        .unwrap();
    // The mqueue superblock of the pod's IPC namespace, mounted from it in a throwaway mount
    // namespace (nothing stays mounted on the node).
    let pod_mqueue = node
        .sh(&format!(
            "d=$(mktemp -d) && nsenter -t {pause} --ipc unshare --mount --propagation private \
             sh -c 'mount -t mqueue mq \"$0\" && grep \" $0 \" /proc/self/mountinfo | cut -d\" \" -f3' \"$d\"; \
             rmdir \"$d\""
        ))
        .ok()
        .stdout;
    assert!(pod_mqueue.trim().contains(':'), "{pod_mqueue:?}");
    for c in ["a", "b"] {
        let links = exec(&node, "late", c, &["ls", "/sys/class/net"])
            .ok()
            .stdout;
        let mut links: Vec<&str> = links.split_whitespace().collect();
        links.sort();
        assert_eq!(links, ["eth0", "lo"], "container {c}: /sys/class/net");
        let mqueue = sh(
            &node,
            "late",
            c,
            "grep ' /dev/mqueue ' /proc/self/mountinfo | cut -d' ' -f3",
        )
        .ok()
        .stdout;
        assert_eq!(
            mqueue.trim(),
            pod_mqueue.trim(),
            "container {c}: /dev/mqueue"
        );
    }
    node.podrun(&["delete", "late", "--grace-period=0"]).ok();
    node.assert_clean();
}
