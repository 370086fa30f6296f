//! Pod-level files the kubelet and containerd manage and bind-mount into every container:
//! `/etc/hosts` (kubelet `managedHostsFileContent`, rewritten at every container start so a new
//! sandbox IP shows), `/etc/hostname` (containerd: the name and a newline) and
//! `/etc/resolv.conf` (kubelet `GetPodDNS` for the pod's `dnsPolicy` + `dnsConfig`).

use std::net::IpAddr;

use crate::spec::{DnsPlan, HostAlias};

/// What `/etc/hosts` says for a pod with `ip` (if it has one yet) and `hostname`.
pub fn hosts(ip: Option<&str>, hostname: &str, aliases: &[HostAlias]) -> String {
    let mut out = String::from("# Kubernetes-managed hosts file.\n");
    out.push_str("127.0.0.1\tlocalhost\n");
    out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    out.push_str("fe00::0\tip6-localnet\n");
    out.push_str("fe00::0\tip6-mcastprefix\n");
    out.push_str("fe00::1\tip6-allnodes\n");
    out.push_str("fe00::2\tip6-allrouters\n");
    if let Some(ip) = ip.filter(|ip| !ip.is_empty()) {
        out.push_str(&format!("{ip}\t{hostname}\n"));
    }
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            out.push_str(&format!("{}\t{}\n", a.ip, a.hostnames.join("\t")));
        }
    }
    out
}

pub fn hostname(name: &str) -> String {
    format!("{name}\n")
}

/// The parts of a resolv.conf the kubelet reads.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resolv {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// Parse a resolv.conf as the kubelet's `parseResolvConf` does (last `search` line wins).
pub fn parse_resolv_conf(text: &str) -> Resolv {
    let mut r = Resolv::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => r.nameservers.extend(words.next().map(str::to_owned)),
            Some("search") => r.searches = words.map(str::to_owned).collect(),
            Some("options") => r.options.extend(words.map(str::to_owned)),
            _ => {}
        }
    }
    r
}

fn is_loopback(server: &str) -> bool {
    server.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The kubelet's limits: 3 nameservers, 32 search domains.
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;

/// The pod's resolv.conf for its DNS plan; `host` is the node's resolv.conf. Returns the file
/// and whether ClusterFirst had to fall back to Default (the kubelet's `MissingClusterDNS`).
pub fn resolv_conf(dns: &DnsPlan, host: &str) -> (String, bool) {
    let cluster_first = matches!(
        dns.policy.as_str(),
        "" | "ClusterFirst" | "ClusterFirstWithHostNet"
    );
    let mut r = if dns.policy == "None" {
        Resolv::default()
    } else {
        // podrun has no cluster DNS: ClusterFirst behaves like a kubelet without clusterDNS.
        let mut host = parse_resolv_conf(host);
        // A loopback resolver of the node (systemd-resolved, dnsmasq) is unreachable from the
        // pod's network namespace.
        host.nameservers.retain(|s| !is_loopback(s));
        host
    };
    for s in &dns.nameservers {
        if !r.nameservers.contains(s) {
            r.nameservers.push(s.clone());
        }
    }
    for s in &dns.searches {
        if !r.searches.contains(s) {
            r.searches.push(s.clone());
        }
    }
    for (name, value) in &dns.options {
        r.options
            .retain(|o| o.split(':').next().unwrap_or("") != name.as_str());
        r.options.push(match value {
            Some(v) => format!("{name}:{v}"),
            None => name.clone(),
        });
    }
    r.nameservers.truncate(MAX_NAMESERVERS);
    r.searches.truncate(MAX_SEARCHES);
    let mut out = String::new();
    if !r.searches.is_empty() {
        out.push_str(&format!("search {}\n", r.searches.join(" ")));
    }
    for s in &r.nameservers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !r.options.is_empty() {
        out.push_str(&format!("options {}\n", r.options.join(" ")));
    }
    (out, cluster_first)
}

/// The kubelet's Warning event text when ClusterFirst falls back to Default.
pub const MISSING_CLUSTER_DNS: &str = "kubelet does not have ClusterDNS IP configured and cannot \
    create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_is_the_kubelets() {
        let text = hosts(Some("10.244.0.5"), "sidecar", &[]);
        assert_eq!(
            text,
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
             fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n\
             10.244.0.5\tsidecar\n"
        );
        let aliases = [HostAlias {
            ip: "10.1.2.3".into(),
            hostnames: vec!["foo.local".into(), "bar.local".into()],
        }];
        let text = hosts(Some("10.244.0.5"), "web", &aliases);
        assert!(text.ends_with(
            "10.244.0.5\tweb\n\n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n"
        ));
    }

    #[test]
    fn resolv_conf_default_drops_loopback() {
        let host = "# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch corp.example\noptions edns0 trust-ad\n";
        let dns = DnsPlan {
            policy: "Default".into(),
            ..Default::default()
        };
        let (text, fallback) = resolv_conf(&dns, host);
        assert_eq!(
            text,
            "search corp.example\nnameserver 10.0.0.2\noptions edns0 trust-ad\n"
        );
        assert!(!fallback);
    }

    #[test]
    fn cluster_first_falls_back_and_dns_config_appends() {
        let dns = DnsPlan {
            policy: "ClusterFirst".into(),
            nameservers: vec!["1.1.1.1".into(), "10.0.0.2".into()],
            searches: vec!["svc.example".into()],
            options: vec![("ndots".into(), Some("2".into())), ("edns0".into(), None)],
        };
        let (text, fallback) = resolv_conf(&dns, "nameserver 10.0.0.2\noptions ndots:1\n");
        assert!(fallback);
        assert_eq!(
            text,
            "search svc.example\nnameserver 10.0.0.2\nnameserver 1.1.1.1\noptions ndots:2 edns0\n"
        );
    }

    #[test]
    fn none_uses_dns_config_only() {
        let dns = DnsPlan {
            policy: "None".into(),
            nameservers: vec!["9.9.9.9".into()],
            ..Default::default()
        };
        let (text, _) = resolv_conf(&dns, "nameserver 10.0.0.2\nsearch x\n");
        assert_eq!(text, "nameserver 9.9.9.9\n");
    }
}
