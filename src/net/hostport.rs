//! hostPort, as the CNI `portmap` plugin does it (plugins/meta/portmap/portmap_nftables.go), in
//! podrun's own `table inet podrun`:
//!
//! ```text
//! chain prerouting  { type nat hook prerouting priority dstnat; }   (packets arriving)
//! chain output      { type nat hook output priority dstnat; }       (the node's own packets)
//! chain postrouting { type nat hook postrouting priority srcnat; }  (shared with the masquerade)
//! ```
//!
//! Per mapping, each rule carrying the comment `podrun hostport <pod uid> [<hostIP>:]<port>/<proto> <what>`:
//! - prerouting and output: `meta nfproto ipv4 fib daddr type local [ip daddr <hostIP>] meta
//!   l4proto <proto> th dport <hostPort> dnat ip to <pod IP>:<containerPort>`: every local
//!   address of the node (portmap's `--dst-type LOCAL` / `fib daddr type local`, 127.0.0.1 and
//!   the bridge address included), or only `hostIP`;
//! - postrouting: `ip saddr <pod IP> ip daddr <pod IP> ... masquerade` (hairpin: a pod reaching
//!   its own hostPort gets the answer through the node) and `ip saddr 127.0.0.1 ip daddr <pod
//!   IP> ... masquerade` (from localhost on the node, routed thanks to `route_localnet=1` on the
//!   bridge, which portmap sets as well and leaves set).
//!
//! The rules are found again by the pod uid in their comments: the pod's record (its plan) is
//! all a removal needs, after any crash. Adding first removes whatever rules of that pod are
//! left (a sandbox re-created with a new address), in the same transaction. Changes hold the
//! [`NetworkLock`], as the masquerade's do.

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::firewall::{self, TABLE};
use super::lock::NetworkLock;
use super::nfnetlink::{self, Addition, RuleInfo};
use super::{NetError, NetworkConfig, PodNetwork, netlink, nft_rule, sysctl, veth};

pub(crate) const PREROUTING: &str = "prerouting";
pub(crate) const OUTPUT: &str = "output";
/// `dstnat` priority.
const DSTNAT_PRIORITY: i32 = -100;
const SRCNAT_PRIORITY: i32 = 100;
/// NF_INET_PRE_ROUTING, NF_INET_LOCAL_OUT, NF_INET_POST_ROUTING.
const HOOK_PREROUTING: u32 = 0;
const HOOK_OUTPUT: u32 = 3;
const HOOK_POSTROUTING: u32 = 4;

/// A port's transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    /// `TCP`, `UDP` or `SCTP` (as in a pod spec).
    pub fn parse(name: &str) -> Option<Protocol> {
        match name {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The IP protocol number.
    fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

/// One `ports[]` entry with a `hostPort`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostPort {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
    /// `None`: every address of the node.
    #[serde(rename = "hostIP")]
    pub host_ip: Option<Ipv4Addr>,
    /// The container that asked for it.
    pub container: String,
}

impl HostPort {
    /// Whether both want the same port: same number and protocol, and the same host address
    /// or either of them every address (the scheduler's NodePorts check).
    pub fn conflicts_with(&self, other: &HostPort) -> bool {
        self.host_port == other.host_port
            && self.protocol == other.protocol
            && (self.host_ip.is_none() || other.host_ip.is_none() || self.host_ip == other.host_ip)
    }
}

impl fmt::Display for HostPort {
    /// `8080/TCP` or `192.0.2.7:8080/TCP`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ip) = self.host_ip {
            write!(f, "{ip}:")?;
        }
        write!(f, "{}/{}", self.host_port, self.protocol)
    }
}

/// The hostPorts a pod asks for, in container and port order.
pub fn of_plan(plan: &crate::spec::PodPlan) -> Vec<HostPort> {
    plan.containers
        .iter()
        .flat_map(|c| {
            c.ports.iter().filter_map(|p| {
                Some(HostPort {
                    host_port: p.host_port?,
                    container_port: p.container_port,
                    protocol: Protocol::parse(&p.protocol)?,
                    host_ip: p.host_ip,
                    container: c.name.clone(),
                })
            })
        })
        .collect()
}

/// The first of `wanted` that one of `held` already takes: (wanted, held).
pub fn conflict<'a>(
    wanted: &'a [HostPort],
    held: &'a [HostPort],
) -> Option<(&'a HostPort, &'a HostPort)> {
    wanted
        .iter()
        .find_map(|w| held.iter().find(|h| w.conflicts_with(h)).map(|h| (w, h)))
}

/// Start of the comment of every hostPort rule of the pod with `uid`.
fn comment_prefix(uid: &str) -> String {
    format!("podrun hostport {uid} ")
}

/// One rule to add: chain, expressions, comment.
type Rule = (&'static str, Vec<Vec<u8>>, String);

/// The rules of `ports` for a pod with `uid` at `ip`.
pub(crate) fn rules(uid: &str, ip: Ipv4Addr, ports: &[HostPort]) -> Vec<Rule> {
    let mut out = Vec::new();
    for port in ports {
        let proto = port.protocol.number();
        let comment = |what: &str| format!("{}{port} {what}", comment_prefix(uid));
        let dnat =
            || nft_rule::dnat_local(port.host_ip, proto, port.host_port, ip, port.container_port);
        out.push((PREROUTING, dnat(), comment("dnat")));
        out.push((OUTPUT, dnat(), comment("dnat")));
        let hairpin = nft_rule::masquerade_between(ip, ip, proto, port.container_port);
        out.push((firewall::CHAIN, hairpin, comment("hairpin")));
        let localhost =
            nft_rule::masquerade_between(Ipv4Addr::LOCALHOST, ip, proto, port.container_port);
        out.push((firewall::CHAIN, localhost, comment("localhost")));
    }
    out
}

/// The rules of the pod with `uid` among `rules`.
fn of_pod<'a>(rules: &'a [RuleInfo], uid: &str) -> impl Iterator<Item = &'a RuleInfo> {
    let prefix = comment_prefix(uid);
    rules
        .iter()
        .filter(move |r| r.comment.as_deref().is_some_and(|c| c.starts_with(&prefix)))
}

/// Program the pod's hostPorts to its address (replacing any rules of the pod from before, in
/// the same transaction), set `route_localnet` on the bridge and hairpin mode on the pod's
/// bridge port (the CNI bridge plugin's `hairpinMode`, which portmap's hairpin relies on).
/// Nothing to do without hostPorts.
pub fn add(
    cfg: &NetworkConfig,
    uid: &str,
    pod: &PodNetwork,
    ports: &[HostPort],
) -> Result<(), NetError> {
    if ports.is_empty() {
        return Ok(());
    }
    let (index, veth) = (pod.host_ifindex, pod.host_veth.clone());
    netlink::block_on_host(
        |handle| async move { veth::set_hairpin(&handle, index, &veth).await },
    )??;
    let ip = pod.ip;
    let _lock = NetworkLock::take(cfg)?;
    sysctl::write(&format!("net/ipv4/conf/{}/route_localnet", cfg.bridge), "1")?;
    let stale = list()?.unwrap_or_default();
    let mut changes: Vec<Addition<'_>> = of_pod(&stale, uid)
        .map(|r| Addition::DeleteRule {
            table: TABLE,
            chain: chain_name(&r.chain),
            handle: r.handle,
        })
        .collect();
    changes.push(Addition::Table { table: TABLE });
    for (chain, hook, priority) in [
        (PREROUTING, HOOK_PREROUTING, DSTNAT_PRIORITY),
        (OUTPUT, HOOK_OUTPUT, DSTNAT_PRIORITY),
        (firewall::CHAIN, HOOK_POSTROUTING, SRCNAT_PRIORITY),
    ] {
        changes.push(Addition::BaseChain {
            table: TABLE,
            chain,
            kind: "nat",
            hook,
            priority,
        });
    }
    let rules = rules(uid, ip, ports);
    changes.extend(
        rules
            .iter()
            .map(|(chain, expressions, comment)| Addition::Rule {
                table: TABLE,
                chain,
                expressions: expressions.clone(),
                comment,
            }),
    );
    commit(&changes, "add hostPort rules")?;
    // As portmap: UDP entries to the port made before these rules (to an old address of the
    // pod, or to nothing) would keep their DNAT; TCP connections get new entries.
    for hp in ports.iter().filter(|p| p.protocol == Protocol::Udp) {
        if let Err(e) = super::conntrack::delete_udp_to_port(hp.host_port) {
            tracing::warn!(port = hp.host_port, error = %e, "flush UDP conntrack entries");
        }
    }
    Ok(())
}

/// Remove the hostPort rules of the pod with `uid`, and the table when no rule is left in it.
/// Idempotent.
pub fn remove(cfg: &NetworkConfig, uid: &str) -> Result<(), NetError> {
    // Nothing of the pod's there: no need to wait for the lock (a last pod's delete holds it
    // while it takes the bridge down).
    if present(uid)?.is_empty() {
        return Ok(());
    }
    let _lock = NetworkLock::take(cfg)?;
    let Some(rules) = list()? else {
        return Ok(());
    };
    let ours: Vec<&RuleInfo> = of_pod(&rules, uid).collect();
    if ours.is_empty() {
        return Ok(());
    }
    let changes: Vec<Addition<'_>> = if ours.len() == rules.len() {
        vec![Addition::DeleteTable { table: TABLE }]
    } else {
        ours.iter()
            .map(|r| Addition::DeleteRule {
                table: TABLE,
                chain: chain_name(&r.chain),
                handle: r.handle,
            })
            .collect()
    };
    commit(&changes, "remove hostPort rules")
}

/// The hostPort rules of the pod with `uid` now in the table: chain, handle, comment.
pub fn present(uid: &str) -> Result<Vec<(String, u64, String)>, NetError> {
    let rules = list()?.unwrap_or_default();
    Ok(of_pod(&rules, uid)
        .map(|r| {
            let comment = r.comment.clone().unwrap_or_default();
            (r.chain.clone(), r.handle, comment)
        })
        .collect())
}

/// The uids of the pods that have hostPort rules in the table.
pub fn pods_with_rules() -> Result<Vec<String>, NetError> {
    let rules = list()?.unwrap_or_default();
    let mut uids: Vec<String> = rules
        .iter()
        .filter_map(|r| r.comment.as_deref()?.strip_prefix("podrun hostport "))
        .filter_map(|rest| rest.split(' ').next())
        .map(str::to_string)
        .collect();
    uids.sort();
    uids.dedup();
    Ok(uids)
}

/// Our chains have static names; a rule listed in another chain keeps its own.
fn chain_name(chain: &str) -> &'static str {
    match chain {
        PREROUTING => PREROUTING,
        OUTPUT => OUTPUT,
        _ => firewall::CHAIN,
    }
}

fn list() -> Result<Option<Vec<RuleInfo>>, NetError> {
    nfnetlink::list_inet_rules(TABLE).map_err(|e| NetError::Firewall {
        step: format!("list table inet {TABLE}"),
        detail: format!("nfnetlink: {e}"),
    })
}

fn commit(changes: &[Addition<'_>], step: &str) -> Result<(), NetError> {
    nfnetlink::commit(changes).map_err(|e| NetError::Firewall {
        step: step.to_string(),
        detail: format!("nfnetlink: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(host_port: u16, protocol: Protocol, host_ip: Option<&str>) -> HostPort {
        HostPort {
            host_port,
            container_port: 80,
            protocol,
            host_ip: host_ip.map(|ip| ip.parse().unwrap()),
            container: "web".into(),
        }
    }

    #[test]
    fn same_port_protocol_and_overlapping_address_conflict() {
        let any = port(8080, Protocol::Tcp, None);
        let one = port(8080, Protocol::Tcp, Some("192.0.2.7"));
        let other = port(8080, Protocol::Tcp, Some("192.0.2.8"));
        assert!(any.conflicts_with(&any));
        assert!(any.conflicts_with(&one) && one.conflicts_with(&any));
        assert!(one.conflicts_with(&one));
        assert!(!one.conflicts_with(&other));
        assert!(!any.conflicts_with(&port(8080, Protocol::Udp, None)));
        assert!(!any.conflicts_with(&port(8081, Protocol::Tcp, None)));
        let held = [port(53, Protocol::Udp, None), one.clone()];
        assert_eq!(
            conflict(std::slice::from_ref(&any), &held),
            Some((&any, &one))
        );
        assert_eq!(conflict(&[other], &held), None);
        assert_eq!(one.to_string(), "192.0.2.7:8080/TCP");
    }

    #[test]
    fn each_mapping_gets_dnat_in_both_hooks_and_two_masquerades() {
        let ip: Ipv4Addr = "10.244.0.5".parse().unwrap();
        let uid = "0b7c";
        let rules = rules(uid, ip, &[port(8080, Protocol::Tcp, None)]);
        let summary: Vec<(&str, &str)> = rules.iter().map(|(c, _, m)| (*c, m.as_str())).collect();
        assert_eq!(
            summary,
            [
                ("prerouting", "podrun hostport 0b7c 8080/TCP dnat"),
                ("output", "podrun hostport 0b7c 8080/TCP dnat"),
                ("postrouting", "podrun hostport 0b7c 8080/TCP hairpin"),
                ("postrouting", "podrun hostport 0b7c 8080/TCP localhost"),
            ]
        );
        assert!(rules.iter().all(|(_, _, m)| m.len() < 128));
    }

    #[test]
    fn rules_are_found_by_pod_uid() {
        let rule = |handle, comment: &str| RuleInfo {
            chain: "prerouting".into(),
            handle,
            comment: Some(comment.into()),
        };
        let rules = [
            rule(1, "podrun hostport aa 8080/TCP dnat"),
            rule(2, "podrun hostport aab 8080/TCP dnat"),
            rule(3, "podrun network podrun0 10.244.0.0/24"),
        ];
        let handles: Vec<u64> = of_pod(&rules, "aa").map(|r| r.handle).collect();
        assert_eq!(handles, [1]);
    }

    #[test]
    fn a_plan_lists_only_ports_with_a_host_port() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  \
                    - name: c\n    image: busybox\n    command: [sleep, '1']\n    ports:\n    \
                    - {containerPort: 80, hostPort: 8080}\n    \
                    - {containerPort: 53, protocol: UDP, hostPort: 5353, hostIP: 192.0.2.7}\n    \
                    - {containerPort: 9000}\n";
        let objects = crate::spec::load_str(text, "p.yaml").unwrap();
        let crate::spec::Object::Pod(plan) = &objects[0] else {
            panic!("a pod");
        };
        let ports = of_plan(plan);
        assert_eq!(
            ports.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["8080/TCP", "192.0.2.7:5353/UDP"]
        );
        assert_eq!(ports[1].container_port, 53);
        assert_eq!(ports[0].container, "c");
    }
}
