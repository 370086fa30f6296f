//! Issue 20, acceptance 8: `ports[].hostPort` (and `hostIP`), TCP and UDP, as the CNI portmap
//! plugin does it, in podrun's `table inet podrun`. Everything happens inside the test node's
//! namespaces: its own address is 192.0.2.10 on a veth there.

mod common;

use std::time::Duration;

use common::Node;

const NODE_IP: &str = "192.0.2.10";

/// A web server on port 80 answering with its pod IP (and a UDP echo on 5300 doing the same),
/// published as hostPort 8080/TCP and 5300/UDP (`host_ip` as hostIP), and a debug container to
/// reach it from inside the pod.
fn web_pod(name: &str, host_ip: Option<&str>) -> String {
    let host_ip = host_ip
        .map(|ip| format!(", hostIP: {ip}"))
        .unwrap_or_default();
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: podrun.local/python:3.11-slim
    command: ["python3", "-S", "-u", "-c"]
    args:
    - |
      import os, signal, socket, threading
      signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
      import http.server, socketserver
      ip = os.environ["POD_IP"]
      def udp():
          s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
          s.bind(("", 5300))
          while True:
              data, peer = s.recvfrom(100)
              s.sendto(f"udp {{ip}}".encode(), peer)
      threading.Thread(target=udp, daemon=True).start()
      class Handler(http.server.BaseHTTPRequestHandler):
          def do_GET(self):
              body = f"pod {{ip}} sees {{self.client_address[0]}}\n".encode()
              self.send_response(200)
              self.send_header("Content-Length", str(len(body)))
              self.end_headers()
              self.wfile.write(body)
      socketserver.ThreadingTCPServer.allow_reuse_address = True
      socketserver.ThreadingTCPServer(("", 80), Handler).serve_forever()
    env:
    - name: POD_IP
      valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}
    ports:
    - {{containerPort: 80, hostPort: 8080{host_ip}}}
    - {{containerPort: 5300, protocol: UDP, hostPort: 5300{host_ip}}}
  - name: client
    image: podrun.local/debug:1
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 5 & wait; done"]
"#
    )
}

/// A node with an address of its own (a veth pair inside the node's namespace: no dummy module on every machine).
fn node_with_address() -> Node {
    let node = Node::new();
    node.sh(&format!(
        "ip link add node0 type veth peer name node0p && ip addr add {NODE_IP}/24 dev node0 \
         && ip link set node0p up && ip link set node0 up"
    ))
    .ok();
    node
}

/// `curl` on the node until it answers (bounded); its last output.
fn curl_on_node(node: &Node, url: &str) -> String {
    let r = node.eventually(
        &format!("curl -s --max-time 1 {url}"),
        Duration::from_secs(15),
    );
    assert_eq!(
        r.code, 0,
        "curl {url} on the node: {}{}",
        r.stdout, r.stderr
    );
    r.stdout
}

/// One UDP datagram to `addr`:`port` from the node; the answer (empty when none came).
fn udp_on_node(node: &Node, addr: &str, port: u16) -> String {
    udp_on_node_from(node, addr, port, 0)
}

/// [`udp_on_node`] from source port `source` (0: any), as a client that keeps its port does.
fn udp_on_node_from(node: &Node, addr: &str, port: u16, source: u16) -> String {
    let script = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('', {source}))\n\
         s.settimeout(1)\n\
         s.sendto(b'x', ('{addr}', {port}))\n\
         print(s.recvfrom(100)[0].decode())\n"
    );
    let mut answer = String::new();
    for _ in 0..15 {
        let out = node
            .command("/usr/bin/python3")
            .args(["-c", &script])
            .output()
            .expect("run python3");
        answer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() {
            break;
        }
    }
    answer
}

fn nft_table(node: &Node) -> String {
    let r = node.sh("nft list table inet podrun");
    r.stdout
}

#[test]
fn host_port_reaches_the_pod_from_the_node_localhost_and_itself() {
    require_root!();
    let node = node_with_address();
    node.apply_manifest("web.yaml", &web_pod("web", None)).ok();
    let ip = node.pod_ip("web");

    // From the node's address, the bridge's, and 127.0.0.1 (route_localnet + masquerade).
    let answer = curl_on_node(&node, &format!("http://{NODE_IP}:8080/"));
    assert!(answer.starts_with(&format!("pod {ip} sees ")), "{answer}");
    let answer = curl_on_node(&node, "http://10.244.0.1:8080/");
    assert!(answer.starts_with(&format!("pod {ip} sees ")), "{answer}");
    let answer = curl_on_node(&node, "http://127.0.0.1:8080/");
    assert_eq!(answer, format!("pod {ip} sees 10.244.0.1\n"));
    let route_localnet = node
        .sh("cat /proc/sys/net/ipv4/conf/podrun0/route_localnet")
        .ok()
        .stdout;
    assert_eq!(route_localnet.trim(), "1");

    // Hairpin: the pod through the node's address, answered through the node (masqueraded).
    let hairpin = node.exec(
        "web",
        "client",
        &[
            "curl",
            "-s",
            "--max-time",
            "2",
            &format!("http://{NODE_IP}:8080/"),
        ],
    );
    assert_eq!(
        hairpin.code,
        0,
        "{}{}\n{}\n{}",
        hairpin.stdout,
        hairpin.stderr,
        nft_table(&node),
        node.sh("bridge -d link").stdout
    );
    assert_eq!(hairpin.stdout, format!("pod {ip} sees 10.244.0.1\n"));

    // UDP.
    assert_eq!(udp_on_node(&node, NODE_IP, 5300), format!("udp {ip}"));

    // The rules read as if typed, and inspect shows them.
    let table = nft_table(&node);
    for needle in [
        "type nat hook prerouting priority dstnat",
        "type nat hook output priority -100",
        "fib daddr type local tcp dport 8080 dnat ip to "
            .to_string()
            .as_str(),
        &format!("dnat ip to {ip}:80"),
        &format!("ip saddr {ip} ip daddr {ip} tcp dport 80 masquerade"),
        &format!("ip saddr 127.0.0.1 ip daddr {ip} tcp dport 80 masquerade"),
        &format!("udp dport 5300 dnat ip to {ip}:5300"),
    ] {
        assert!(table.contains(needle), "{needle:?} not in\n{table}");
    }
    let inspect = node.inspect("web");
    assert_eq!(inspect["hostPorts"][0]["hostPort"], 8080, "{inspect}");
    assert_eq!(
        inspect["hostPortRules"].as_array().unwrap().len(),
        8,
        "{inspect}"
    );
    // Not leftovers while the pod lives.
    let doctor = node.podrun(&["doctor"]);
    assert!(
        doctor.stdout.contains("No leftovers") && !doctor.stdout.contains("hostPort rules"),
        "{}",
        doctor.stdout
    );

    // A second pod asking for 8080/TCP is refused, naming the first; nothing of it is made.
    let second = node.apply_manifest("web2.yaml", &web_pod("web2", None));
    assert_ne!(second.code, 0);
    assert!(
        second.stderr.contains("hostPort 8080/TCP") && second.stderr.contains("pod default/web"),
        "{}",
        second.stderr
    );
    assert_ne!(node.podrun(&["get", "pod", "web2"]).code, 0);
    assert_eq!(node.veths().len(), 1, "{:?}", node.veths());

    // A UDP client that keeps its source port has a conntrack entry DNATed to this address.
    assert_eq!(
        udp_on_node_from(&node, NODE_IP, 5300, 40555),
        format!("udp {ip}")
    );
    // The pause dies: the sandbox is re-made with a new address, and the hostPort follows it.
    node.kill_pause("web");
    let mut new_ip = ip.clone();
    for _ in 0..100 {
        // No podIP while the sandbox is being re-made.
        let pod = node.pod_json("web");
        new_ip = pod["status"]["podIP"].as_str().unwrap_or(&ip).to_owned();
        if new_ip != ip {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_ne!(new_ip, ip, "the sandbox was not re-made");
    let r = node.eventually(
        &format!("curl -s --max-time 1 http://{NODE_IP}:8080/ | grep -q 'pod {new_ip} '"),
        Duration::from_secs(20),
    );
    assert_eq!(r.code, 0, "hostPort does not reach {new_ip}");
    assert_eq!(udp_on_node(&node, NODE_IP, 5300), format!("udp {new_ip}"));
    // Its entry went with the old sandbox (as portmap flushes UDP entries to the hostPort):
    // the same source port reaches the new address.
    assert_eq!(
        udp_on_node_from(&node, NODE_IP, 5300, 40555),
        format!("udp {new_ip}"),
        "a stale UDP conntrack entry still points at {ip}"
    );
    let table = nft_table(&node);
    assert!(
        !table.contains(&format!("{ip}:")),
        "old rules left:\n{table}"
    );
    assert_eq!(table.matches("podrun hostport").count(), 8, "{table}");

    node.podrun(&["delete", "web", "--now"]).ok();
    let table = node.sh("nft -j list ruleset").ok().stdout;
    assert!(!table.contains("hostport"), "{table}");
    node.sh("ip link del node0").ok();
    node.assert_clean();
}

#[test]
fn host_ip_matches_only_that_address() {
    require_root!();
    let node = node_with_address();
    node.sh("ip addr add 192.0.2.11/24 dev node0").ok();
    node.apply_manifest("one.yaml", &web_pod("one", Some(NODE_IP)))
        .ok();
    // Another address: the same port is free there.
    node.apply_manifest("two.yaml", &web_pod("two", Some("192.0.2.11")))
        .ok();
    let (one, two) = (node.pod_ip("one"), node.pod_ip("two"));
    let answer = curl_on_node(&node, &format!("http://{NODE_IP}:8080/"));
    assert!(answer.starts_with(&format!("pod {one} ")), "{answer}");
    let answer = curl_on_node(&node, "http://192.0.2.11:8080/");
    assert!(answer.starts_with(&format!("pod {two} ")), "{answer}");
    // Not the bridge's address, nor 127.0.0.1: nothing listens on the node's own port 8080.
    let other = node.sh("curl -s --max-time 1 http://10.244.0.1:8080/");
    assert_ne!(other.code, 0, "{}", other.stdout);
    // Every address overlaps both.
    let any = node.apply_manifest("three.yaml", &web_pod("three", None));
    assert_ne!(any.code, 0);
    assert!(any.stderr.contains("pod default/one"), "{}", any.stderr);
    node.podrun(&["delete", "one", "two", "--now"]).ok();
    node.sh("ip link del node0").ok();
    node.assert_clean();
}

/// A supervisor killed outright: delete removes the pod's rules from its record.
#[test]
fn delete_after_a_killed_supervisor_removes_the_rules() {
    require_root!();
    let node = node_with_address();
    node.apply_manifest("web.yaml", &web_pod("web", None)).ok();
    let ip = node.pod_ip("web");
    let answer = curl_on_node(&node, &format!("http://{NODE_IP}:8080/"));
    assert!(answer.starts_with(&format!("pod {ip} ")), "{answer}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(node.supervisor_pid("web")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(nft_table(&node).contains("podrun hostport"));
    node.podrun(&["delete", "web", "--now"]).ok();
    let table = node.sh("nft -j list ruleset").ok().stdout;
    assert!(!table.contains("hostport"), "{table}");
    node.sh("ip link del node0").ok();
    node.assert_clean();
}

/// hostPort rules of a pod uid no record has (a lost state root) are leftovers: doctor lists
/// them, `--fix` removes them (and the table they were alone in).
#[test]
fn doctor_reports_and_fixes_rules_of_an_unknown_pod() {
    require_root!();
    let node = Node::new();
    node.sh("nft add table inet podrun \
         && nft add chain inet podrun prerouting '{ type nat hook prerouting priority dstnat; }' \
         && nft add rule inet podrun prerouting meta nfproto ipv4 tcp dport 8080 \
            dnat ip to 10.244.0.9:80 comment '\"podrun hostport deadbeef 8080/TCP dnat\"'")
        .ok();
    let report = node.podrun(&["doctor"]);
    assert_eq!(report.code, 1, "{}", report.stdout);
    assert!(
        report
            .stdout
            .contains("hostPort rules of pod uid deadbeef in table inet podrun, with no record"),
        "{}",
        report.stdout
    );
    node.podrun(&["doctor", "--fix"]);
    let tables = node.sh("nft list tables").ok().stdout;
    assert!(!tables.contains("podrun"), "{tables}");
    node.assert_clean();
}
