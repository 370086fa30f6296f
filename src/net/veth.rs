//! The per-pod veth pair and the pod side of the wiring (CNI bridge ADD steps 4, 7 and 10).
//!
//! The pair is created in one RTM_NEWLINK: the host end carries IFLA_MASTER (the bridge) and
//! IFF_UP, and the peer message carries IFLA_NET_NS_FD so the kernel creates `eth0` directly in
//! the pod. Moving a device after creation costs ~34 ms here; this way it is ~1.5 ms.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use rtnetlink::packet_route::link::{InfoData, InfoVeth, State};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};
use serde::{Deserialize, Serialize};

use super::lock::NetworkLock;
use super::netlink::{
    self, find_link, link_admin_up, link_by_index, link_controller, link_kind, link_mac, link_name,
    link_oper_state, link_peer_index, oper_state_name,
};
use super::{
    BridgeFacts, NetError, NetworkConfig, NlError, POD_IFNAME, PodNetwork, bridge, sysctl,
};

/// What the kernel says about a pod's host veth.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VethFacts {
    pub name: String,
    pub ifindex: u32,
    /// Link kind is `veth`.
    pub is_veth: bool,
    /// IFF_UP is set.
    pub admin_up: bool,
    /// Operational state as `ip` prints it, lower-case ("up", "lowerlayerdown", ...).
    pub oper_state: String,
    pub mac: Option<String>,
    /// Name and ifindex of the bridge (or other controller) it is enslaved to.
    pub master: Option<String>,
    pub master_ifindex: Option<u32>,
    /// The peer's ifindex, inside the pod's network namespace (IFLA_LINK).
    pub peer_ifindex: Option<u32>,
    /// The master's facts, when the master is present.
    pub bridge: Option<BridgeFacts>,
}

/// Back-off between checks for the host veth being oper-up. CNI uses 0, 50, 500, 1000, 1000 ms;
/// the state normally flips within a millisecond, so start much finer.
const OPER_UP_BACKOFF_MS: &[u64] = &[0, 1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 1000];

pub(crate) fn attach(
    cfg: &NetworkConfig,
    pod_netns: BorrowedFd<'_>,
    host_veth: &str,
    ip: Ipv4Addr,
    lock: NetworkLock,
) -> Result<PodNetwork, NetError> {
    netlink::block_on_host(|handle| async move {
        let bridge_index = bridge::ensure(&handle, cfg).await?;
        tracing::debug!(bridge_index, "bridge ready");
        let host_index = create_pair(&handle, cfg, bridge_index, pod_netns, host_veth).await?;
        tracing::debug!(host_index, "veth pair created");
        // The veth is a bridge port now, so a teardown keeps the bridge: let others in.
        drop(lock);
        // From here on a failure leaves a half-wired pair: remove it so a retry starts clean.
        let wired = async {
            let gateway = cfg.gateway();
            let prefix_len = cfg.cidr.prefix_len();
            let (pod_ifindex, mac) =
                netlink::block_on_in_netns(pod_netns, move |pod| async move {
                    configure_pod_side(&pod, ip, prefix_len, gateway).await
                })?;
            tracing::debug!(pod_ifindex, "pod side configured");
            wait_oper_up(&handle, host_index, host_veth).await?;
            tracing::debug!("host veth operationally up");
            Ok(PodNetwork {
                host_veth: host_veth.to_string(),
                host_ifindex: host_index,
                pod_ifname: POD_IFNAME.to_string(),
                pod_ifindex,
                ip,
                prefix_len,
                gateway,
                bridge: cfg.bridge.clone(),
                mac,
            })
        }
        .await;
        if wired.is_err() {
            let _ = netlink::delete_link_named(&handle, host_veth).await;
        }
        wired
    })?
}

async fn create_pair(
    handle: &Handle,
    cfg: &NetworkConfig,
    bridge_index: u32,
    pod_netns: BorrowedFd<'_>,
    host_veth: &str,
) -> Result<u32, NetError> {
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(POD_IFNAME)
        .setns_by_fd(pod_netns.as_raw_fd())
        .build();
    let msg = LinkVeth::new(host_veth, POD_IFNAME)
        .controller(bridge_index)
        .up()
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    handle
        .link()
        .add(msg)
        .execute()
        .await
        .map_err(|e| NetError::CreateVeth {
            host: host_veth.to_string(),
            peer: POD_IFNAME.to_string(),
            bridge: cfg.bridge.clone(),
            source: NlError::from_rtnetlink(e),
        })?;
    let link = find_link(handle, host_veth)
        .await?
        .ok_or_else(|| NetError::LinkVanished {
            dev: host_veth.to_string(),
        })?;
    Ok(link.header.index)
}

/// Runs on the helper thread inside the pod: arp_notify, lo up, address, eth0 up, default route.
/// Returns eth0's ifindex and MAC.
async fn configure_pod_side(
    pod: &Handle,
    ip: Ipv4Addr,
    prefix_len: u8,
    gateway: Ipv4Addr,
) -> Result<(u32, String), NetError> {
    // Before the link goes up, so the gratuitous ARP on up announces a re-used IP's new MAC.
    // /proc/sys/net follows the netns of this thread.
    sysctl::write(&format!("net/ipv4/conf/{POD_IFNAME}/arp_notify"), "1")?;

    let vanished = |name: &str| NetError::LinkVanished {
        dev: name.to_string(),
    };
    let eth0 = find_link(pod, POD_IFNAME)
        .await?
        .ok_or_else(|| vanished(POD_IFNAME))?;
    let eth0_index = eth0.header.index;
    let mac = link_mac(&eth0).unwrap_or_default();

    let lo = find_link(pod, "lo").await?.ok_or_else(|| vanished("lo"))?;
    if !link_admin_up(&lo) {
        set_up(pod, lo.header.index, "lo").await?;
    }
    pod.address()
        .add(eth0_index, IpAddr::V4(ip), prefix_len)
        .execute()
        .await
        .map_err(|e| NetError::AddAddress {
            dev: POD_IFNAME.to_string(),
            addr: format!("{ip}/{prefix_len}"),
            source: NlError::from_rtnetlink(e),
        })?;
    set_up(pod, eth0_index, POD_IFNAME).await?;
    pod.route()
        .add(
            RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(gateway)
                .output_interface(eth0_index)
                .build(),
        )
        .execute()
        .await
        .map_err(|e| NetError::AddRoute {
            dev: POD_IFNAME.to_string(),
            gateway,
            source: NlError::from_rtnetlink(e),
        })?;
    Ok((eth0_index, mac))
}

/// `ip link set <name> type bridge_slave hairpin on`: frames may leave by the port they came in
/// on (a pod reaching its own hostPort: br_netfilter DNATs it back to the pod while bridging).
pub(crate) async fn set_hairpin(handle: &Handle, index: u32, name: &str) -> Result<(), NetError> {
    handle
        .link()
        .set_port(rtnetlink::LinkBridgePort::new(index).hairpin(true).build())
        .execute()
        .await
        .map_err(|e| NetError::SetHairpin {
            dev: name.to_string(),
            source: NlError::from_rtnetlink(e),
        })
}

async fn set_up(handle: &Handle, index: u32, name: &str) -> Result<(), NetError> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| NetError::LinkUp {
            dev: name.to_string(),
            source: NlError::from_rtnetlink(e),
        })
}

/// Wait until the host end is operationally up (CNI bridge step 10). Sending right after wiring
/// otherwise stalls ~1 s while the port is not yet forwarding.
async fn wait_oper_up(handle: &Handle, index: u32, name: &str) -> Result<(), NetError> {
    let mut last = None;
    for ms in OPER_UP_BACKOFF_MS {
        if *ms > 0 {
            // Blocking is fine: this runtime has nothing else to do between requests.
            std::thread::sleep(Duration::from_millis(*ms));
        }
        let link = link_by_index(handle, index)
            .await
            .map_err(|source| NetError::GetLink {
                name: name.to_string(),
                source,
            })?
            .ok_or_else(|| NetError::LinkVanished {
                dev: name.to_string(),
            })?;
        last = link_oper_state(&link);
        if last == Some(State::Up) {
            return Ok(());
        }
    }
    Err(NetError::PortNotUp {
        dev: name.to_string(),
        state: oper_state_name(last),
    })
}

/// How a pod's host veth is told from another link of its name.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Owner {
    /// Its index, recorded once wired.
    Index(u32),
    /// A port of this bridge (index): the state root's own.
    PortOf(u32),
    /// Neither known: no link of its name is taken for the pod's.
    Unknown,
}

/// Wait up to `grace` for the link to vanish on its own (its network namespace is dying), then
/// delete it if it is the pod's ([`Owner`]). A link of that name that is not, such as another
/// state root's pod of the same name, stays. Polls every 250 µs: the kernel's netns cleanup
/// removes the pair within a few ms.
pub(crate) async fn wait_gone_or_delete(
    handle: &Handle,
    name: &str,
    grace: Duration,
    owner: Owner,
) -> Result<(), NetError> {
    let deadline = std::time::Instant::now() + grace;
    loop {
        let Some(link) = find_link(handle, name).await? else {
            return Ok(());
        };
        let ours = match owner {
            Owner::Index(index) => link.header.index == index,
            Owner::PortOf(bridge) => link_controller(&link) == Some(bridge),
            Owner::Unknown => false,
        };
        if !ours {
            tracing::debug!(veth = name, "not this pod's veth: left");
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            break;
        }
        // Nothing else runs on this single-threaded runtime.
        std::thread::sleep(Duration::from_micros(250));
    }
    tracing::debug!(veth = name, "netns still alive, deleting the veth");
    netlink::delete_link_named(handle, name).await
}

pub(crate) async fn inspect(handle: &Handle, name: &str) -> Result<Option<VethFacts>, NetError> {
    let Some(link) = find_link(handle, name).await? else {
        return Ok(None);
    };
    let master_ifindex = link_controller(&link);
    let master_link = match master_ifindex {
        Some(i) => link_by_index(handle, i)
            .await
            .map_err(|source| NetError::GetLink {
                name: format!("ifindex {i}"),
                source,
            })?,
        None => None,
    };
    let master = master_link
        .as_ref()
        .and_then(|l| link_name(l).map(str::to_string));
    let bridge = match &master {
        Some(m) => bridge::inspect(handle, m).await?,
        None => None,
    };
    Ok(Some(VethFacts {
        name: name.to_string(),
        ifindex: link.header.index,
        is_veth: link_kind(&link).as_deref() == Some("veth"),
        admin_up: link_admin_up(&link),
        oper_state: oper_state_name(link_oper_state(&link)),
        mac: link_mac(&link),
        master,
        master_ifindex,
        peer_ifindex: link_peer_index(&link),
        bridge,
    }))
}
