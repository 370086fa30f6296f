//! The node bridge: created on first use with the gateway address, deleted when its last port is
//! gone (CNI bridge `ensureBridge`/`ensureAddr`, netavark `host_teardown`).

use std::net::IpAddr;
use std::path::Path;

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::{Handle, LinkBridge, LinkUnspec};
use serde::{Deserialize, Serialize};

use super::netlink::{
    self, all_links, delete_link, find_link, link_admin_up, link_alias, link_controller, link_kind,
    link_name, link_oper_state, oper_state_name,
};
use super::{BRIDGE_ALIAS_PREFIX, NetError, NetworkConfig, NlError};

/// What the kernel says about a bridge.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BridgeFacts {
    pub name: String,
    pub ifindex: u32,
    /// Link kind is `bridge` (false: a different device has the name).
    pub is_bridge: bool,
    /// IFF_UP is set.
    pub admin_up: bool,
    /// Operational state as `ip` prints it, lower-case ("up", "down", ...).
    pub oper_state: String,
    /// IPv4 addresses with their prefix.
    pub addresses: Vec<Ipv4Net>,
    /// Names of the enslaved ports.
    pub ports: Vec<String>,
}

/// Make sure the bridge exists, is a bridge, carries `gateway/prefix` and is up. Returns its
/// ifindex.
pub(crate) async fn ensure(handle: &Handle, cfg: &NetworkConfig) -> Result<u32, NetError> {
    let name = cfg.bridge.as_str();
    let mut link = find_link(handle, name).await?;
    if link.is_none() {
        check_cidr_free(handle, cfg).await?;
        create_owned(handle, cfg).await?;
        link = find_link(handle, name).await?;
    }
    let link = link.ok_or_else(|| NetError::LinkVanished {
        dev: name.to_string(),
    })?;
    if link_kind(&link).as_deref() != Some("bridge") {
        return Err(NetError::NotABridge {
            name: name.to_string(),
        });
    }
    // Another state root's bridge: its IPAM would hand out the addresses ours does.
    if let Some(owner) = other_roots_bridge(&link, cfg) {
        return Err(NetError::BridgeOfAnotherRoot {
            bridge: name.to_string(),
            owner: owner.to_string(),
            ours: cfg
                .bridge_alias()
                .trim_start_matches(BRIDGE_ALIAS_PREFIX)
                .to_owned(),
        });
    }
    let index = link.header.index;

    let gateway = cfg.gateway();
    let prefix = cfg.cidr.prefix_len();
    let want = Ipv4Net::new(gateway, prefix).expect("prefix validated");
    let have = ipv4_addresses(handle, index, name).await?;
    if !have.contains(&want) {
        if let Some(other) = have.first() {
            return Err(NetError::AddressConflict {
                dev: name.to_string(),
                want: want.to_string(),
                have: other.to_string(),
            });
        }
        let added = handle
            .address()
            .add(index, IpAddr::V4(gateway), prefix)
            .execute()
            .await
            .map_err(NlError::from_rtnetlink);
        match added {
            Err(e) if !e.is_errno(libc::EEXIST) => {
                return Err(NetError::AddAddress {
                    dev: name.to_string(),
                    addr: want.to_string(),
                    source: e,
                });
            }
            _ => {}
        }
    }
    if !link_admin_up(&link) {
        set_link(handle, LinkUnspec::new_with_index(index).up().build())
            .await
            .map_err(|source| NetError::LinkUp {
                dev: name.to_string(),
                source,
            })?;
    }
    Ok(index)
}

/// Make bridge `cfg.bridge` so that it never shows under that name without this root's alias:
/// created (down) under a temporary name of this root's, given the alias, then renamed. When
/// another root made the name first, the rename fails (EEXIST) and the temporary bridge goes;
/// the caller then finds the other root's alias. A crash before the rename leaves the
/// temporary bridge, which this root's next creation removes first (it holds the root's
/// network lock, so no other creation of this root is under way).
async fn create_owned(handle: &Handle, cfg: &NetworkConfig) -> Result<(), NetError> {
    let name = cfg.bridge.as_str();
    let temporary = temporary_name(cfg);
    let create_err = |source| NetError::CreateBridge {
        name: name.to_string(),
        source,
    };
    if let Some(stale) = find_link(handle, &temporary).await? {
        delete_link(handle, stale.header.index, &temporary).await?;
    }
    handle
        .link()
        // Down: older kernels (Debian 12's 6.1) refuse to rename a link that is up (EBUSY).
        .add(LinkBridge::new(&temporary).down().build())
        .execute()
        .await
        .map_err(|e| create_err(NlError::from_rtnetlink(e)))?;
    let index = match find_link(handle, &temporary).await {
        Ok(Some(link)) => link.header.index,
        found => {
            // Not left behind for doctor: removed by name at once, if it is there.
            let _ = netlink::delete_link_named(handle, &temporary).await;
            return Err(found.err().unwrap_or(NetError::LinkVanished {
                dev: temporary.clone(),
            }));
        }
    };
    let named = async {
        // The kernel takes an alias only on a link that exists.
        let mut alias = LinkUnspec::new_with_index(index).build();
        alias
            .attributes
            .push(LinkAttribute::IfAlias(cfg.bridge_alias()));
        set_link(handle, alias)
            .await
            .map_err(|source| NetError::SetAlias {
                dev: temporary.clone(),
                source,
            })?;
        let renamed = set_link(handle, LinkUnspec::new_with_index(index).name(name).build()).await;
        match renamed {
            Ok(()) => Ok(true),
            // Another root's supervisor made the name first: the caller finds its alias.
            Err(e) if e.is_errno(libc::EEXIST) => Ok(false),
            Err(e) => Err(create_err(e)),
        }
    }
    .await;
    if !matches!(named, Ok(true))
        && let Err(e) = delete_link(handle, index, &temporary).await
    {
        // The first failure says more; this one is in the log and doctor finds the bridge.
        tracing::warn!(error = %e, bridge = %temporary, "remove temporary bridge");
        if named.is_ok() {
            return Err(e);
        }
    }
    named.map(|_| ())
}

/// The name this root's bridge has while it is being made: `prn` and a hash of the root (path
/// and id) and the bridge name (an interface name holds 15 bytes).
pub(crate) fn temporary_name(cfg: &NetworkConfig) -> String {
    // FNV-1a: the same name from every build, so a newer podrun finds an older one's leftover.
    let id = cfg.root_id().unwrap_or_default();
    let key = format!("{}\0{id}\0{}", cfg.state_root().display(), cfg.bridge);
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("prn{:012x}", hash & 0xffff_ffff_ffff)
}

/// The state root named in the alias of bridge `link` (`PATH (id ID)`) when it is not `cfg`'s:
/// another path, or the same path with another id (another mount namespace's root). A bridge
/// without podrun's alias (made by hand) belongs to whoever uses it; one without an id (an
/// older podrun's) to the root of its path.
fn other_roots_bridge<'a>(link: &'a LinkMessage, cfg: &NetworkConfig) -> Option<&'a str> {
    let owner = link_alias(link)?.strip_prefix(BRIDGE_ALIAS_PREFIX)?;
    let (path, id) = match owner.strip_suffix(')').and_then(|o| o.rsplit_once(" (id ")) {
        Some((path, id)) => (path, Some(id)),
        None => (owner, None),
    };
    if Path::new(path) != cfg.state_root() {
        return Some(owner);
    }
    match (id, cfg.root_id()) {
        (Some(theirs), Some(ours)) if theirs != ours => Some(owner),
        _ => None,
    }
}

/// Whether bridge `cfg.bridge` exists and belongs to another state root: then neither it nor
/// the masquerade rule of its subnet is this root's to remove.
/// The index of the bridge when it is this state root's own (its alias names the root).
pub(crate) async fn own_index(
    handle: &Handle,
    cfg: &NetworkConfig,
) -> Result<Option<u32>, NetError> {
    let link = find_link(handle, &cfg.bridge).await?;
    Ok(link
        .filter(|l| {
            link_kind(l).as_deref() == Some("bridge") && other_roots_bridge(l, cfg).is_none()
        })
        .map(|l| l.header.index))
}

pub(crate) async fn is_other_roots(handle: &Handle, cfg: &NetworkConfig) -> Result<bool, NetError> {
    let link = find_link(handle, &cfg.bridge).await?;
    Ok(link.is_some_and(|l| other_roots_bridge(&l, cfg).is_some()))
}

async fn set_link(handle: &Handle, message: LinkMessage) -> Result<(), NlError> {
    handle
        .link()
        .set(message)
        .execute()
        .await
        .map_err(NlError::from_rtnetlink)
}

/// IPv4 addresses on link `index`, called `name` (for the error).
async fn ipv4_addresses(handle: &Handle, index: u32, name: &str) -> Result<Vec<Ipv4Net>, NetError> {
    let all = ipv4_addresses_of(handle, Some(index))
        .await
        .map_err(|source| NetError::GetAddress {
            dev: name.to_string(),
            source,
        })?;
    Ok(all.into_iter().map(|(_, a)| a).collect())
}

/// IPv4 addresses with their link's index: of link `index`, or of every link.
async fn ipv4_addresses_of(
    handle: &Handle,
    index: Option<u32>,
) -> Result<Vec<(u32, Ipv4Net)>, NlError> {
    let mut request = handle.address().get();
    if let Some(i) = index {
        request = request.set_link_index_filter(i);
    }
    let msgs: Vec<AddressMessage> = request
        .execute()
        .try_collect()
        .await
        .map_err(NlError::from_rtnetlink)?;
    Ok(msgs
        .iter()
        .filter(|m| index.is_none_or(|i| m.header.index == i))
        .filter_map(|m| Some((m.header.index, ipv4_of(m)?)))
        .collect())
}

fn ipv4_of(m: &AddressMessage) -> Option<Ipv4Net> {
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS the peer on p2p links.
    let local = m.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
        _ => None,
    });
    let addr = m.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
        _ => None,
    });
    local
        .or(addr)
        .and_then(|ip| Ipv4Net::new(ip, m.header.prefix_len).ok())
}

/// Refuse a pod CIDR that overlaps an address already on the node (another bridge's subnet,
/// a host interface): its pods' routes would compete with that link's. Checked before the
/// bridge is made, as Docker does for its networks.
async fn check_cidr_free(handle: &Handle, cfg: &NetworkConfig) -> Result<(), NetError> {
    let addresses =
        ipv4_addresses_of(handle, None)
            .await
            .map_err(|source| NetError::GetAddress {
                dev: "the node".into(),
                source,
            })?;
    let clash = addresses
        .into_iter()
        .find(|(_, a)| a.trunc().contains(&cfg.cidr.network()) || cfg.cidr.contains(&a.addr()));
    let Some((index, addr)) = clash else {
        return Ok(());
    };
    let links = all_links(handle).await.unwrap_or_default();
    let dev = links
        .iter()
        .find(|l| l.header.index == index)
        .and_then(link_name)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("link {index}"));
    Err(NetError::CidrInUse {
        cidr: cfg.cidr.to_string(),
        dev,
        addr: addr.to_string(),
    })
}

/// Delete the bridge if it exists, is a bridge and has no ports. Idempotent.
pub(crate) async fn delete_if_unused(
    handle: &Handle,
    name: &str,
    leaving_port: Option<&str>,
) -> Result<(), NetError> {
    let Some(link) = find_link(handle, name).await? else {
        return Ok(());
    };
    if link_kind(&link).as_deref() != Some("bridge") {
        // Not ours to delete.
        return Ok(());
    }
    let index = link.header.index;
    let links = all_links(handle)
        .await
        .map_err(|source| NetError::ListLinks { source })?;
    if links.iter().any(|l| {
        link_controller(l) == Some(index)
            && (leaving_port.is_none() || link_name(l) != leaving_port)
    }) {
        return Ok(());
    }
    delete_link(handle, index, name).await
}

/// Read the bridge's state back from the kernel.
pub(crate) async fn inspect(handle: &Handle, name: &str) -> Result<Option<BridgeFacts>, NetError> {
    let Some(link) = find_link(handle, name).await? else {
        return Ok(None);
    };
    let index = link.header.index;
    let addresses = ipv4_addresses(handle, index, name).await?;
    let links = all_links(handle)
        .await
        .map_err(|source| NetError::ListLinks { source })?;
    let ports = links
        .iter()
        .filter(|l| link_controller(l) == Some(index))
        .filter_map(|l| link_name(l).map(str::to_string))
        .collect();
    Ok(Some(BridgeFacts {
        name: name.to_string(),
        ifindex: index,
        is_bridge: link_kind(&link).as_deref() == Some("bridge"),
        admin_up: link_admin_up(&link),
        oper_state: oper_state_name(link_oper_state(&link)),
        addresses,
        ports,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_name_is_a_valid_interface_name_of_one_root_and_bridge() {
        let dir = tempfile::tempdir().unwrap();
        let a = NetworkConfig::with_state_root(&dir.path().join("a"));
        let b = NetworkConfig::with_state_root(&dir.path().join("b"));
        std::fs::create_dir_all(a.state_root()).unwrap();
        let name = temporary_name(&a);
        assert!(name.len() <= 15 && name.starts_with("prn"), "{name}");
        assert_eq!(name, temporary_name(&a));
        assert_ne!(name, temporary_name(&b));
        // The same path with another id (another mount namespace's root): another name.
        std::fs::write(a.state_root().join("id"), "0123456789ab\n").unwrap();
        assert_ne!(name, temporary_name(&a));
        let other_bridge = NetworkConfig {
            bridge: "podrun1".into(),
            ..a.clone()
        };
        assert_ne!(name, temporary_name(&other_bridge));
    }
}
