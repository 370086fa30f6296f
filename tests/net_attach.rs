//! Root integration tests for `podrun::net`. Every test runs on its own thread inside a fresh
//! network namespace (`unshare(CLONE_NEWNET)`), which plays the node; each "pod" is another fresh
//! netns held open by an fd. Subprocesses (`ip`, `nft`, `nsenter`) inherit the thread's netns, so
//! nothing touches the host's network namespace. Skipped with a message when not root.

use std::net::Ipv4Addr;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, unshare};
use podrun::net::{self, NetworkConfig, ipam::Ipam};

fn skip_unless_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return false;
    }
    eprintln!("SKIP {test}: needs root (creates network namespaces)");
    true
}

/// Run `f` on a new thread inside a new network namespace; the namespace dies with the thread
/// (and any fds to it).
fn in_fresh_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
            f()
        })
        .join()
        .expect("test thread panicked")
    })
}

/// A new network namespace, held open by the returned fd (made on a throwaway thread).
fn new_pod_netns() -> OwnedFd {
    in_fresh_netns(|| {
        std::fs::File::open("/proc/thread-self/ns/net")
            .expect("open own netns")
            .into()
    })
}

/// A path to `fd` that other processes (nsenter) can open.
fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/{}/fd/{}", std::process::id(), fd.as_raw_fd())
}

fn run(cmd: &[&str]) -> std::process::Output {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

fn json(cmd: &[&str]) -> serde_json::Value {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{cmd:?} JSON: {e}"))
}

fn in_pod(pod: &OwnedFd, cmd: &[&str]) -> Vec<String> {
    let mut v = vec!["nsenter".to_string(), format!("--net={}", fd_path(pod))];
    v.extend(cmd.iter().map(|s| s.to_string()));
    v
}

fn json_in_pod(pod: &OwnedFd, cmd: &[&str]) -> serde_json::Value {
    let v = in_pod(pod, cmd);
    json(&v.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Run `f` on a thread that has entered the network namespace `ns`.
fn in_netns<T: Send>(ns: &OwnedFd, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(ns, CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("netns thread panicked")
    })
}

/// TCP from netns `client` to `ip` inside netns `server` (`None`: the test thread's netns).
/// (There is no `ping` binary on the dev machine; a TCP handshake checks the same path.)
fn tcp_reaches(client: &OwnedFd, server: Option<&OwnedFd>, ip: Ipv4Addr) -> bool {
    let bind = || TcpListener::bind((ip, 0)).expect("bind listener");
    // A socket stays in the netns it was created in.
    let listener = match server {
        Some(ns) => in_netns(ns, bind),
        None => bind(),
    };
    let addr = listener.local_addr().unwrap();
    let connected = in_netns(client, || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
    });
    connected && listener.accept().is_ok()
}

fn config(tmp: &tempfile::TempDir) -> NetworkConfig {
    NetworkConfig::with_state_root(tmp.path())
}

#[test]
fn attach_two_pods_connect_and_teardown() {
    if skip_unless_root("attach_two_pods_connect_and_teardown") {
        return;
    }
    in_fresh_netns(|| {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(&tmp);
        let ipam = Ipam::new(&cfg);
        let pods: Vec<_> = ["default/a", "default/b"]
            .iter()
            .map(|key| {
                let fd = new_pod_netns();
                let ip = ipam.allocate(key, "eth0").unwrap();
                let veth = net::host_veth_name(key);
                let pn = net::attach_pod(&cfg, fd.as_fd(), &veth, ip).unwrap();
                (fd, pn)
            })
            .collect();

        // Bridge: exists, up, carries the gateway.
        let br = json(&["ip", "-j", "addr", "show", "dev", "podrun0"]);
        let addrs = br[0]["addr_info"].as_array().unwrap();
        assert!(
            addrs
                .iter()
                .any(|a| a["local"] == "10.244.0.1" && a["prefixlen"] == 24),
            "{br}"
        );
        assert!(br[0]["flags"].as_array().unwrap().iter().any(|f| f == "UP"));

        for (fd, pn) in &pods {
            assert_eq!(pn.bridge, "podrun0");
            assert_eq!(pn.gateway, Ipv4Addr::new(10, 244, 0, 1));
            assert_eq!(pn.prefix_len, 24);
            // Host veth: master is the bridge, up.
            let link = json(&["ip", "-j", "-d", "link", "show", "dev", &pn.host_veth]);
            assert_eq!(link[0]["master"], "podrun0", "{link}");
            assert_eq!(link[0]["operstate"], "UP", "{link}");
            assert_eq!(link[0]["ifindex"], pn.host_ifindex);
            assert_eq!(link[0]["link_index"], pn.pod_ifindex, "peer ifindex");
            // Pod side: eth0 with the address, default route via the gateway, arp_notify.
            let eth0 = json_in_pod(fd, &["ip", "-j", "addr", "show", "dev", "eth0"]);
            assert_eq!(eth0[0]["ifindex"], pn.pod_ifindex);
            assert_eq!(eth0[0]["address"], pn.mac.as_str());
            assert!(
                eth0[0]["addr_info"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| a["local"] == pn.ip.to_string() && a["prefixlen"] == 24),
                "{eth0}"
            );
            let routes = json_in_pod(fd, &["ip", "-j", "route", "show", "default"]);
            assert_eq!(routes[0]["gateway"], "10.244.0.1", "{routes}");
            assert_eq!(routes[0]["dev"], "eth0", "{routes}");
            let lo = json_in_pod(fd, &["ip", "-j", "link", "show", "dev", "lo"]);
            assert!(lo[0]["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
            let arp = in_pod(fd, &["cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify"]);
            let out = run(&arp.iter().map(String::as_str).collect::<Vec<_>>());
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");

            // inspect reads the same facts back.
            let facts = net::inspect_host_veth(&pn.host_veth).unwrap().unwrap();
            assert_eq!(facts.master.as_deref(), Some("podrun0"));
            assert_eq!(facts.peer_ifindex, Some(pn.pod_ifindex));
            assert_eq!(facts.oper_state, "up");
            let bf = facts.bridge.unwrap();
            assert!(bf.admin_up && bf.is_bridge);
            assert_eq!(bf.addresses, vec!["10.244.0.1/24".parse().unwrap()]);
        }
        assert_eq!(
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
                .unwrap()
                .trim(),
            "1"
        );

        // Masquerade rule.
        let table = json(&["nft", "-j", "list", "table", "inet", "podrun"]);
        let rules: Vec<_> = table["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o.get("rule"))
            .collect();
        assert_eq!(rules.len(), 1, "{table}");
        assert_eq!(rules[0]["comment"], "podrun network podrun0 10.244.0.0/24");
        assert!(net::masquerade_present(&cfg).unwrap());

        // Traffic: pod -> pod across the bridge, pod -> gateway.
        let (a, b) = (&pods[0], &pods[1]);
        assert!(tcp_reaches(&a.0, Some(&b.0), b.1.ip), "a -> b");
        assert!(tcp_reaches(&b.0, Some(&a.0), a.1.ip), "b -> a");
        assert!(
            tcp_reaches(&a.0, None, cfg.gateway()),
            "a -> node (gateway)"
        );

        // A second attach under the same name fails readably.
        let extra = new_pod_netns();
        let err = net::attach_pod(
            &cfg,
            extra.as_fd(),
            &a.1.host_veth,
            "10.244.0.50".parse().unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            format!(
                "create veth {} (peer eth0 in the pod) on bridge podrun0: File exists",
                a.1.host_veth
            )
        );

        // Teardown while a pod is left keeps the bridge; then everything goes.
        net::detach_pod(&a.1.host_veth).unwrap();
        net::detach_pod(&a.1.host_veth).unwrap(); // idempotent
        assert!(net::inspect_host_veth(&a.1.host_veth).unwrap().is_none());
        net::detach_pod(&b.1.host_veth).unwrap();
        for (key, _) in [("default/a", 0), ("default/b", 1)] {
            assert_eq!(ipam.release(key).unwrap().len(), 1);
        }
        net::teardown_network(&cfg, None).unwrap();
        net::teardown_network(&cfg, None).unwrap(); // idempotent

        let links = json(&["ip", "-j", "link", "show"]);
        let names: Vec<_> = links
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, vec!["lo".to_string()], "left over: {links}");
        assert!(
            !run(&["nft", "list", "table", "inet", "podrun"])
                .status
                .success()
        );
        assert!(!net::masquerade_present(&cfg).unwrap());
        // The pods' eth0 went with the host ends.
        let pod_links = json_in_pod(&a.0, &["ip", "-j", "link", "show"]);
        assert_eq!(pod_links.as_array().unwrap().len(), 1, "{pod_links}");
    });
}

#[test]
fn teardown_keeps_bridge_with_ports_and_foreign_rules() {
    if skip_unless_root("teardown_keeps_bridge_with_ports_and_foreign_rules") {
        return;
    }
    in_fresh_netns(|| {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(&tmp);
        let other = NetworkConfig {
            bridge: "podrun1".into(),
            cidr: "10.245.0.0/24".parse().unwrap(),
            ipam_dir: tmp.path().join("networks/podrun1"),
        };
        let pod = new_pod_netns();
        let pod2 = new_pod_netns();
        net::attach_pod(
            &cfg,
            pod.as_fd(),
            "vethtest0",
            "10.244.0.2".parse().unwrap(),
        )
        .unwrap();
        net::attach_pod(
            &other,
            pod2.as_fd(),
            "vethtest1",
            "10.245.0.2".parse().unwrap(),
        )
        .unwrap();

        // The bridge still has a port: it stays; our rule goes, the other network's stays.
        net::teardown_network(&cfg, None).unwrap();
        assert!(net::inspect_bridge("podrun0").unwrap().is_some());
        assert!(!net::masquerade_present(&cfg).unwrap());
        assert!(net::masquerade_present(&other).unwrap());

        net::detach_pod("vethtest0").unwrap();
        net::teardown_network(&cfg, None).unwrap();
        assert!(net::inspect_bridge("podrun0").unwrap().is_none());
        assert!(net::inspect_bridge("podrun1").unwrap().is_some());

        // A port named as leaving (the last pod's own veth, going with its sandbox) does not
        // keep the bridge; the veth is detached and stays until its owner removes it.
        net::teardown_network(&other, Some("vethtest-x")).unwrap();
        assert!(net::inspect_bridge("podrun1").unwrap().is_some());
        net::teardown_network(&other, Some("vethtest1")).unwrap();
        assert!(net::inspect_bridge("podrun1").unwrap().is_none());
        let veth = net::inspect_host_veth("vethtest1")
            .unwrap()
            .expect("veth kept");
        assert_eq!(veth.master, None);
        net::detach_pod("vethtest1").unwrap();
        assert!(
            !run(&["nft", "list", "table", "inet", "podrun"])
                .status
                .success()
        );
    });
}

#[test]
fn non_bridge_with_the_bridge_name_is_an_error() {
    if skip_unless_root("non_bridge_with_the_bridge_name_is_an_error") {
        return;
    }
    in_fresh_netns(|| {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(&tmp);
        assert!(
            run(&[
                "ip", "link", "add", "podrun0", "type", "veth", "peer", "name", "notbr0p"
            ])
            .status
            .success()
        );
        let pod = new_pod_netns();
        let err = net::attach_pod(
            &cfg,
            pod.as_fd(),
            "vethtest0",
            "10.244.0.2".parse().unwrap(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "podrun0 already exists but is not a bridge"
        );
        // teardown must not delete a device that is not a bridge it made.
        net::teardown_network(&cfg, None).unwrap();
        assert!(run(&["ip", "link", "show", "podrun0"]).status.success());
    });
}

#[test]
fn concurrent_attaches_share_one_bridge() {
    if skip_unless_root("concurrent_attaches_share_one_bridge") {
        return;
    }
    in_fresh_netns(|| {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(&tmp);
        let node: OwnedFd = std::fs::File::open("/proc/thread-self/ns/net")
            .unwrap()
            .into();
        // Eight supervisors at once, none finding the bridge or the nft table in place.
        let pods: Vec<_> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..8)
                .map(|i| {
                    let (cfg, node) = (&cfg, &node);
                    s.spawn(move || {
                        in_netns(node, || {
                            let key = format!("default/p{i}");
                            let ip = Ipam::new(cfg).allocate(&key, "eth0").unwrap();
                            let fd = new_pod_netns();
                            let pn =
                                net::attach_pod(cfg, fd.as_fd(), &net::host_veth_name(&key), ip)
                                    .unwrap();
                            (fd, pn)
                        })
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let bridge = net::inspect_bridge("podrun0").unwrap().unwrap();
        assert_eq!(bridge.ports.len(), 8, "{bridge:?}");
        assert_eq!(bridge.addresses, vec!["10.244.0.1/24".parse().unwrap()]);
        let table = json(&["nft", "-j", "list", "table", "inet", "podrun"]);
        let rules = table["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o.get("rule").is_some())
            .count();
        assert_eq!(rules, 1, "{table}");
        assert!(tcp_reaches(&pods[0].0, Some(&pods[7].0), pods[7].1.ip));
        for (_, pn) in &pods {
            net::detach_pod(&pn.host_veth).unwrap();
        }
        net::teardown_network(&cfg, None).unwrap();
        assert!(net::inspect_bridge("podrun0").unwrap().is_none());
        assert!(!net::masquerade_present(&cfg).unwrap());
    });
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `cargo test --test net_attach -- --ignored --nocapture bench`
#[test]
#[ignore = "benchmark; run explicitly"]
fn bench_attach_detach() {
    if skip_unless_root("bench_attach_detach") {
        return;
    }
    const PODS: usize = 30;
    in_fresh_netns(|| {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(&tmp);
        let ipam = Ipam::new(&cfg);
        let netns: Vec<_> = (0..PODS).map(|_| new_pod_netns()).collect();
        let mut attach = Vec::new();
        let mut names = Vec::new();
        for (i, fd) in netns.iter().enumerate() {
            let key = format!("bench/pod{i}");
            let ip = ipam.allocate(&key, "eth0").unwrap();
            let veth = net::host_veth_name(&key);
            let t = Instant::now();
            net::attach_pod(&cfg, fd.as_fd(), &veth, ip).unwrap();
            attach.push(t.elapsed());
            names.push(veth);
        }
        let mut detach = Vec::new();
        for veth in &names {
            let t = Instant::now();
            net::detach_pod(veth).unwrap();
            detach.push(t.elapsed());
        }
        let t = Instant::now();
        net::teardown_network(&cfg, None).unwrap();
        let teardown = t.elapsed();
        println!(
            "attach_pod: first {:?}, median {:?}, max {:?}",
            attach[0],
            median(attach.clone()),
            attach.iter().max().unwrap()
        );
        println!(
            "detach_pod: median {:?}, max {:?}",
            median(detach.clone()),
            detach.iter().max().unwrap()
        );
        println!("teardown_network: {teardown:?}");
    });
}
