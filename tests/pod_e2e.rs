//! Issue 2 acceptance: the sidecar pod end to end, checked on the kernel. Each test runs on its
//! own throwaway node (see tests/common).

mod common;

use std::time::{Duration, Instant};

use common::Node;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

fn wait_for_web(node: &Node, ip: &str) {
    let r = node.eventually(&format!("curl -s --max-time 1 http://{ip}:80/ready"), WAIT);
    assert_eq!(r.code, 0, "web server never answered on {ip}: {}", r.stderr);
}

#[test]
fn sidecar_runs_and_containers_share_localhost() {
    require_root!();
    let node = Node::new();
    let out = node.apply("pods/sidecar.yaml").ok();
    assert!(out.stdout.contains("pod/sidecar created"), "{}", out.stdout);

    let get = node.podrun(&["get", "pods"]).ok().stdout;
    let line = get
        .lines()
        .find(|l| l.starts_with("sidecar"))
        .expect("sidecar listed");
    assert!(line.contains("2/2") && line.contains("Running"), "{get}");
    let ip = node.pod_ip("sidecar");
    assert!(
        ip.starts_with("10.244.0.") && ip != "10.244.0.0" && ip != "10.244.0.1",
        "{ip}"
    );
    wait_for_web(&node, &ip);

    let page = node
        .exec(
            "sidecar",
            "curl-client",
            &["curl", "-s", "http://127.0.0.1:80/"],
        )
        .ok()
        .stdout;
    assert!(
        page.contains(&ip),
        "page does not name the pod IP {ip}: {page}"
    );

    let list: Value =
        serde_json::from_str(&node.podrun(&["get", "pods", "-o", "json"]).ok().stdout).unwrap();
    assert_eq!(list["kind"], "List");
    let pod = &list["items"][0];
    assert_eq!(pod["metadata"]["name"], "sidecar");
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(pod["status"]["podIP"], ip.as_str());
    assert_eq!(
        pod["status"]["containerStatuses"].as_array().unwrap().len(),
        2
    );
    assert!(pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"].is_string());
}

#[test]
fn host_reaches_pod_and_veth_is_wired_to_the_bridge() {
    require_root!();
    let node = Node::new();
    node.apply("pods/sidecar.yaml").ok();
    let ip = node.pod_ip("sidecar");
    wait_for_web(&node, &ip);
    let page = node
        .sh(&format!("curl -s --max-time 2 http://{ip}:80/hello"))
        .ok()
        .stdout;
    assert!(page.contains("path /hello"), "{page}");

    let addr = node.sh("ip netns exec sidecar ip -br addr").ok().stdout;
    let eth0 = addr
        .lines()
        .find(|l| l.starts_with("eth0"))
        .unwrap_or_else(|| panic!("no eth0: {addr}"));
    assert!(
        eth0.contains(&format!("{ip}/24")) && eth0.contains("UP"),
        "{eth0}"
    );

    let info = node.inspect("sidecar");
    let veth = info["sandbox"]["hostVeth"].as_str().unwrap().to_owned();
    let link: Value = serde_json::from_str(
        &node
            .sh(&format!("ip -j -d link show dev {veth}"))
            .ok()
            .stdout,
    )
    .unwrap();
    assert_eq!(link[0]["master"], "podrun0");
    let peer_index = link[0]["link_index"].as_u64().expect("veth peer ifindex");
    let inside: Value = serde_json::from_str(
        &node
            .sh("ip netns exec sidecar ip -j link show dev eth0")
            .ok()
            .stdout,
    )
    .unwrap();
    assert_eq!(inside[0]["ifindex"].as_u64(), Some(peer_index));
    let route = node
        .sh("ip netns exec sidecar ip route show default")
        .ok()
        .stdout;
    assert!(route.contains("via 10.244.0.1 dev eth0"), "{route}");
    let fwd = node.sh("cat /proc/sys/net/ipv4/ip_forward").ok().stdout;
    assert_eq!(fwd.trim(), "1");
    let nft = node.sh("nft list table inet podrun").ok().stdout;
    assert!(
        nft.contains("10.244.0.0/24") && nft.contains("masquerade") && nft.contains("podrun0"),
        "{nft}"
    );
}

#[test]
fn two_pods_reach_each_other_over_the_bridge() {
    require_root!();
    let node = Node::new();
    node.apply("pods/sidecar.yaml").ok();
    let other = node.root.path().join("other.yaml");
    let text = std::fs::read_to_string(common::repo_file("pods/sidecar.yaml"))
        .unwrap()
        .replace("name: sidecar", "name: other");
    std::fs::write(&other, text).unwrap();
    node.podrun(&["apply", "-f", other.to_str().unwrap()]).ok();
    let (a, b) = (node.pod_ip("sidecar"), node.pod_ip("other"));
    assert_ne!(a, b);
    wait_for_web(&node, &b);
    let page = node
        .exec(
            "sidecar",
            "curl-client",
            &[
                "curl",
                "-s",
                "--max-time",
                "2",
                &format!("http://{b}/from-a"),
            ],
        )
        .ok()
        .stdout;
    assert!(page.contains(&b) && page.contains("/from-a"), "{page}");
}

#[test]
fn containers_share_the_pause_namespaces_and_hostname() {
    require_root!();
    let node = Node::new();
    node.apply("pods/sidecar.yaml").ok();
    let info = node.inspect("sidecar");
    let pause = &info["sandbox"]["pause"]["namespaces"];
    assert!(pause["net"].is_u64());
    for c in info["containers"].as_array().unwrap() {
        for kind in ["net", "uts", "ipc"] {
            assert_eq!(c["namespaces"][kind], pause[kind], "{} {kind}", c["name"]);
        }
    }
    let host = node
        .exec(
            "sidecar",
            "web-server",
            &["cat", "/proc/sys/kernel/hostname"],
        )
        .ok()
        .stdout;
    assert_eq!(host.trim(), "sidecar");
    let host = node
        .exec("sidecar", "curl-client", &["hostname"])
        .ok()
        .stdout;
    assert_eq!(host.trim(), "sidecar");
}

#[test]
fn deployment_makes_three_pods_with_distinct_ips() {
    require_root!();
    let node = Node::new();
    let out = node.apply("pods/deployment.yaml").ok().stdout;
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let list: Value =
        serde_json::from_str(&node.podrun(&["get", "pods", "-o", "json"]).ok().stdout).unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let mut ips: Vec<&str> = items
        .iter()
        .map(|p| p["status"]["podIP"].as_str().unwrap())
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 3, "{ips:?}");
    for p in items {
        let name = p["metadata"]["name"].as_str().unwrap();
        let parts: Vec<&str> = name.split('-').collect();
        assert_eq!(parts.len(), 3, "{name}");
        assert_eq!(parts[0], "web");
        assert_eq!(parts[2].len(), 5, "{name}");
        assert_eq!(p["status"]["phase"], "Running");
    }
    node.podrun(&[
        "delete",
        "-f",
        common::repo_file("pods/deployment.yaml").to_str().unwrap(),
        "--now",
    ])
    .ok();
    node.assert_clean();
}

#[test]
fn concurrent_applies_never_share_an_ip() {
    require_root!();
    let node = Node::new();
    // 20 applies started at once, each its own process, racing for the IPAM lock.
    let children: Vec<_> = (0..20)
        .map(|i| {
            let f = node.root.path().join(format!("p{i}.yaml"));
            std::fs::write(&f, format!("{{apiVersion: v1, kind: Pod, metadata: {{name: p{i}}}, spec: {{containers: [{{name: c, image: podrun.local/debug:1, command: [sleep, '600']}}]}}}}")).unwrap();
            node.podrun_command(&["apply", "-f", f.to_str().unwrap()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let list: Value =
        serde_json::from_str(&node.podrun(&["get", "pods", "-o", "json"]).ok().stdout).unwrap();
    let mut ips: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"]["podIP"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ips.len(), 20);
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 20, "duplicate pod IPs");
    assert_eq!(node.ipam_files().len(), 20);
    node.podrun(&["delete", "--all", "--now"]).ok();
    node.assert_clean();
}

#[test]
fn delete_leaves_nothing_behind() {
    require_root!();
    let node = Node::new();
    node.apply("pods/sidecar.yaml").ok();
    let info = node.inspect("sidecar");
    let ip = node.pod_ip("sidecar");
    let sup = info["supervisor"]["pid"].as_i64().unwrap() as i32;
    // The shell loop's `sleep` is a child the container forked: it must go too.
    let client = info["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "curl-client")
        .unwrap()["pid"]
        .as_i64()
        .unwrap();
    let r = node.eventually(&format!("pgrep -P {client} sleep"), WAIT);
    assert_eq!(r.code, 0, "no sleep child seen");
    let sleep_pid: i32 = r.stdout.trim().parse().unwrap();
    assert!(!node.processes().is_empty());
    assert!(node.ipam_files().contains(&ip));
    // Each container is PID 1 of its PID namespace: SIGTERM reaches it only once it installed
    // a handler (as in Kubernetes), so a graceful delete waits until the server is up.
    wait_for_web(&node, &ip);

    let out = node.podrun(&["delete", "sidecar"]).ok().stdout;
    assert!(out.contains("pod \"sidecar\" deleted"), "{out}");
    assert!(
        !std::path::Path::new(&format!("/proc/{sup}")).exists() || common::cmdline(sup).is_empty()
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{sleep_pid}")).exists(),
        "the container's child survived"
    );
    node.assert_clean();
    // The IP is free again: the next pod may get it (round-robin gives the next one first).
    node.apply("pods/sidecar.yaml").ok();
    node.podrun(&["delete", "sidecar", "--now"]).ok();
    node.assert_clean();
}

#[test]
fn containers_start_only_once_the_pod_network_is_wired() {
    require_root!();
    let node = Node::new();
    // Init stages build root filesystems while the network is wired, but the container's own
    // process starts only after: its first look finds eth0 addressed, the default route and
    // the pod IP in /etc/hosts (restartPolicy Never: a miss would show as a failed pod).
    let f = write(
        &node,
        "wired.yaml",
        r#"{apiVersion: v1, kind: Pod, metadata: {name: wired}, spec: {restartPolicy: Never,
  containers: [{name: c, image: podrun.local/debug:1,
    env: [{name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}],
    command: [sh, -c, 'ip -4 -o addr show eth0 | grep -q "inet $POD_IP/" && ip route | grep -q "^default via" && grep -q "^$POD_IP" /etc/hosts || exit 7; echo wired; exec sleep 1000']}]}}"#,
    );
    node.podrun(&["apply", "-f", &f]).ok();
    let r = node.eventually(
        &format!(
            "PODRUN_ROOT={} {} logs wired | grep -q wired",
            node.root.path().display(),
            common::PODRUN
        ),
        WAIT,
    );
    assert_eq!(r.code, 0, "{}", node.podrun(&["logs", "wired"]).stdout);
    let pod = node.pod_json("wired");
    assert_eq!(pod["status"]["phase"], "Running", "{pod}");
    node.podrun(&["delete", "wired", "--now"]).ok();
    node.assert_clean();
}

#[test]
fn delete_removes_the_veth_while_another_process_holds_the_pod_netns() {
    require_root!();
    let node = Node::new();
    node.apply("pods/sidecar.yaml").ok();
    let veth = node.host_veth("sidecar");
    // As a user's `ip netns exec sidecar bash` left open: the namespace outlives the pause, so
    // its veth does not go with it and delete must remove it itself.
    let holder: i32 = node
        .sh("ip netns exec sidecar sleep 60 >/dev/null 2>&1 & echo $!")
        .ok()
        .stdout
        .trim()
        .parse()
        .unwrap();
    assert!(
        node.links().iter().any(|l| l.starts_with("veth")),
        "no veth before the delete"
    );
    node.podrun(&["delete", "sidecar", "--now"]).ok();
    let links = node.links();
    assert!(
        links.iter().all(|l| !l.starts_with("veth")),
        "veth {veth} left: {links:?}"
    );
    // The namespace itself lives on with its holder, but podrun's pin is gone.
    assert!(node.sh("ls /run/netns").ok().stdout.trim().is_empty());
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(holder),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = node.eventually(&format!("! kill -0 {holder} 2>/dev/null"), WAIT);
    node.assert_clean();
}

#[test]
fn init_stage_runs_as_podrun_init_or_falls_back_to_podrun_itself() {
    require_root!();
    let node = Node::new();
    // A podrun installed without podrun-init next to it runs `podrun __init` instead.
    let alone = node.root.path().join("bin");
    std::fs::create_dir(&alone).unwrap();
    std::fs::copy(common::PODRUN, alone.join("podrun")).unwrap();
    let pause = std::path::Path::new(common::PODRUN).with_file_name("podrun-pause");
    assert!(
        std::path::Path::new(common::PODRUN)
            .with_file_name("podrun-init")
            .is_file(),
        "cargo builds podrun-init next to podrun"
    );
    let run = |args: &str| {
        node.sh(&format!(
            "PODRUN_ROOT={} PODRUN_POD_CIDR={} PODRUN_CGROUP_PARENT={} PODRUN_IMAGE_ROOT={} \
             PODRUN_PAUSE={} {}/podrun {args}",
            node.root.path().display(),
            node.cidr,
            node.cgroup_parent,
            common::image_root().display(),
            pause.display(),
            alone.display()
        ))
    };
    // Which program runs the init stage, as doctor reports it.
    let doctor = node.podrun(&["doctor"]).stdout;
    assert!(doctor.contains("/podrun-init"), "{doctor}");
    let doctor = run("doctor").stdout;
    assert!(doctor.contains("/bin/podrun __init"), "{doctor}");
    run(&format!(
        "apply -f {}",
        common::repo_file("pods/sidecar.yaml").display()
    ))
    .ok();
    let ip = node.pod_ip("sidecar");
    wait_for_web(&node, &ip);
    let page = node
        .exec(
            "sidecar",
            "curl-client",
            &["curl", "-s", "http://127.0.0.1:80/"],
        )
        .ok()
        .stdout;
    assert!(page.contains(&ip), "{page}");
    run("delete sidecar --now").ok();
    node.assert_clean();
}

fn write(node: &Node, name: &str, text: &str) -> String {
    let p = node.root.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

#[track_caller]
fn refused(node: &Node, text: &str, expect: &str) {
    let f = write(node, "bad.yaml", text);
    let r = node.podrun(&["apply", "-f", &f]);
    assert_ne!(r.code, 0, "accepted: {text}");
    assert!(
        r.stderr.contains(expect),
        "expected {expect:?} in: {}",
        r.stderr
    );
    assert_eq!(node.state_entries(), 0);
    assert!(node.links().iter().all(|l| !l.starts_with("veth")));
    assert!(node.processes().is_empty());
}

#[test]
fn bad_input_is_refused_and_creates_nothing() {
    require_root!();
    let node = Node::new();
    refused(
        &node,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: x\n",
        "yaml",
    );
    refused(
        &node,
        "apiVersion: v1\nkind: Frobnicator\nmetadata: {name: x}\n",
        "no matches for kind \"Frobnicator\"",
    );
    refused(
        &node,
        "{apiVersion: v1, kind: Pod, metadata: {name: x}, spec: {containers: [{name: c, image: podrun.local/debug:1, command: [sleep, '1'], resources: {limits: {memory: 200Mx}}}]}}",
        "200Mx",
    );
    refused(
        &node,
        "{apiVersion: v1, kind: Pod, metadata: {name: x}, spec: {containers: [{name: c, command: [sleep, '1']}]}}",
        "spec.containers[0].image",
    );
    refused(
        &node,
        "{apiVersion: v1, kind: Pod, metadata: {}, spec: {containers: [{name: c, image: podrun.local/debug:1, command: [sleep, '1']}]}}",
        "metadata.name",
    );
    refused(
        &node,
        "{apiVersion: v1, kind: Pod, metadata: {name: x}, spec: {containers: [{name: c, image: podrun.local/debug:1, command: [sleep, '1']}, {name: c, image: podrun.local/debug:1, command: [sleep, '1']}]}}",
        "Duplicate value: \"c\"",
    );
    refused(
        &node,
        "{apiVersion: v1, kind: Pod, metadata: {name: x}, spec: {containers: [{name: c, image: podrun.local/debug:1, command: [sleep, '1'], resoures: {}}]}}",
        "unknown field \"spec.containers[0].resoures\"",
    );
    refused(
        &node,
        "{apiVersion: v1, kind: Pod, metadata: {name: x}, spec: {containers: [{name: c, image: podrun.local/debug:1, command: [sleep, '1'], livenessProbe: {exec: {command: ['true']}, successThreshold: 2}}]}}",
        "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
    );
    refused(
        &node,
        "{apiVersion: v1, kind: Pod, metadata: {name: x}, spec: {containers: [{name: c, image: podrun.local/debug:1, command: [sleep, '1'], tty: true}]}}",
        "field \"spec.containers[0].tty\" is not supported by podrun yet",
    );
}

#[test]
fn existing_name_is_unchanged_and_exhausted_range_is_refused() {
    require_root!();
    let node = Node::with_cidr("10.99.0.0/30"); // one usable address: .2
    let f = write(
        &node,
        "one.yaml",
        "{apiVersion: v1, kind: Pod, metadata: {name: one}, spec: {containers: [{name: c, image: podrun.local/debug:1, command: [sleep, '600']}]}}",
    );
    node.podrun(&["apply", "-f", &f]).ok();
    // Applied again (declarative apply, issue 21): the existing pod is left as it is.
    let again = node.podrun(&["apply", "-f", &f]).ok();
    assert_eq!(again.stdout, "pod/one unchanged\n");
    let g = write(
        &node,
        "two.yaml",
        "{apiVersion: v1, kind: Pod, metadata: {name: two}, spec: {containers: [{name: c, image: podrun.local/debug:1, command: [sleep, '600']}]}}",
    );
    let full = node.podrun(&["apply", "-f", &g]);
    assert_ne!(full.code, 0);
    assert!(
        full.stderr
            .contains("no IP addresses available in range 10.99.0.0/30"),
        "{}",
        full.stderr
    );
    assert_eq!(node.state_entries(), 1, "the failed pod left state");
    assert_eq!(node.veths().len(), 1);
    node.podrun(&["delete", "one", "--now"]).ok();
    node.assert_clean();
}

#[test]
fn failure_midway_rolls_back_everything() {
    require_root!();
    let node = Node::new();
    let f = write(
        &node,
        "broken.yaml",
        "{apiVersion: v1, kind: Pod, metadata: {name: broken}, spec: {containers: [{name: ok, image: podrun.local/debug:1, command: [sleep, '600']}, {name: bad, image: podrun.local/debug:1, command: [/nonexistent/binary]}]}}",
    );
    let r = node.podrun(&["apply", "-f", &f]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("bad") && r.stderr.contains("/nonexistent/binary"),
        "{}",
        r.stderr
    );
    // The bridge may stay only if another pod used it; here nothing else exists.
    node.assert_clean();
}

/// The node's network (bridge, masquerade rule) is made ahead, while the pause makes the
/// pod's namespaces: an apply that fails before the pod is wired (here the pause cannot
/// start) removes it again on a node where nothing else uses it.
#[test]
fn failure_before_wiring_removes_the_node_network_made_ahead() {
    require_root!();
    let node = Node::new();
    let manifest = common::repo_file("pods/sidecar.yaml");
    let missing = node.root.path().join("no-such-pause");
    let r = node.podrun_env(
        &["apply", "-f", manifest.to_str().unwrap()],
        &[("PODRUN_PAUSE", missing.to_str().unwrap())],
    );
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stderr.contains("no-such-pause"), "{}", r.stderr);
    node.assert_clean();
}

/// Traffic from a pod to an address off the pod network leaves the node from the node's own
/// address (the masquerade rule, written over nfnetlink). A network namespace of the test's
/// own stands for the outside: it has no route back to the pod CIDR, and its server answers
/// with the client address it sees.
#[test]
fn pod_traffic_leaving_the_node_is_masqueraded() {
    require_root!();
    let node = Node::new();
    node.apply("pods/sidecar.yaml").ok();
    node.sh(
        "ip netns add outside && ip link add out0 type veth peer name eth0 netns outside \
         && ip addr add 192.0.2.1/24 dev out0 && ip link set out0 up \
         && ip netns exec outside ip addr add 192.0.2.2/24 dev eth0 \
         && ip netns exec outside ip link set eth0 up",
    )
    .ok();
    let server = node.root.path().join("client-address.py");
    std::fs::write(
        &server,
        "import http.server as h\n\
         class H(h.BaseHTTPRequestHandler):\n\
         \x20   def do_GET(self):\n\
         \x20       body = self.client_address[0].encode()\n\
         \x20       self.send_response(200)\n\
         \x20       self.send_header('Content-Length', str(len(body)))\n\
         \x20       self.end_headers()\n\
         \x20       self.wfile.write(body)\n\
         h.HTTPServer(('192.0.2.2', 8080), H).serve_forever()\n",
    )
    .unwrap();
    // Bounded by `timeout` too, should the test fail before it is killed below.
    let pid = node
        .sh(&format!(
            "ip netns exec outside timeout 60 /usr/bin/python3 {} >/dev/null 2>&1 & echo $!",
            server.display()
        ))
        .ok()
        .stdout
        .trim()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = node.podrun(&["exec", "sidecar", "-c", "curl-client", "--", "true"]);
    while Instant::now() < deadline {
        seen = node.podrun(&[
            "exec",
            "sidecar",
            "-c",
            "curl-client",
            "--",
            "curl",
            "-s",
            "--max-time",
            "1",
            "http://192.0.2.2:8080/",
        ]);
        if seen.code == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    node.sh(&format!("kill {pid}; ip netns del outside")).ok();
    assert_eq!(seen.code, 0, "{}{}", seen.stdout, seen.stderr);
    assert_eq!(
        seen.stdout.trim(),
        "192.0.2.1",
        "the outside saw the pod's own address"
    );
    node.podrun(&["delete", "sidecar", "--now"]).ok();
    node.assert_clean();
}
