//! Pod networking: a node bridge, one veth pair per pod, host-local style IPAM and an nftables
//! masquerade rule: the CNI reference plugins' `bridge` (`isGateway`, `ipMasq`) with
//! `host-local` IPAM (containernetworking/plugins `plugins/main/bridge`,
//! `plugins/ipam/host-local`; the CNI spec's ADD/DEL semantics).
//!
//! Kernel interfaces: rtnetlink (rtnetlink(7), through the `rtnetlink` crate), `/proc/sys/net`
//! (per network namespace of the *calling thread*), nfnetlink for reading podrun's nftables
//! table and adding its rule (`nfnetlink`), and `nft -f -` for removing it (see `firewall`).
//!
//! Every public function is synchronous. Netlink work runs on a tokio current_thread runtime that
//! lives for the duration of one call; work inside a pod's network namespace runs on a scoped
//! helper thread that is joined before the call returns, so no thread of `net`'s outlives a
//! call (the supervisor, which forks, is left with only the threads it made itself).

mod bridge;
mod conntrack;
mod firewall;
pub mod hostport;
pub mod ipam;
mod lock;
mod netlink;
mod nfnetlink;
mod nft_rule;
mod sysctl;
mod veth;
mod warmup;

pub use warmup::NodeWarmup;

use std::fmt;
use std::net::Ipv4Addr;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use bridge::BridgeFacts;
pub use veth::VethFacts;

/// Default bridge name.
pub const DEFAULT_BRIDGE: &str = "podrun0";
/// Default pod CIDR.
pub const DEFAULT_CIDR: &str = "10.244.0.0/24";
/// Name of the pod end of the veth pair.
pub const POD_IFNAME: &str = "eth0";

/// How the alias of a bridge made by podrun begins; the owning state root follows.
pub const BRIDGE_ALIAS_PREFIX: &str = "podrun state root ";

/// One pod network: a bridge, its subnet and the IPAM directory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkConfig {
    /// Bridge device name (default `podrun0`).
    pub bridge: String,
    /// Pod subnet (default `10.244.0.0/24`); the first address is the gateway on the bridge.
    pub cidr: Ipv4Net,
    /// host-local style allocation directory, `<state root>/networks/<bridge>`.
    pub ipam_dir: PathBuf,
}

impl NetworkConfig {
    /// The default network (`podrun0`, `10.244.0.0/24`) with its IPAM directory under
    /// `<state_root>/networks/podrun0`.
    pub fn with_state_root(state_root: &std::path::Path) -> Self {
        NetworkConfig {
            bridge: DEFAULT_BRIDGE.to_string(),
            cidr: DEFAULT_CIDR.parse().expect("valid default cidr"),
            ipam_dir: state_root.join("networks").join(DEFAULT_BRIDGE),
        }
    }

    /// The state root whose pods use this network (`ipam_dir` is `<root>/networks/<bridge>`).
    pub fn state_root(&self) -> &std::path::Path {
        self.ipam_dir
            .parent()
            .and_then(|networks| networks.parent())
            .unwrap_or(&self.ipam_dir)
    }

    /// The alias a bridge podrun creates carries (`ip -d link show` prints it): which state
    /// root allocates its addresses, its path and its id.
    pub fn bridge_alias(&self) -> String {
        let root = self.state_root().display();
        match self.root_id() {
            Some(id) => format!("{BRIDGE_ALIAS_PREFIX}{root} (id {id})"),
            None => format!("{BRIDGE_ALIAS_PREFIX}{root}"),
        }
    }

    /// The id of the state root whose pods use this network ([`crate::state::root_id`]).
    pub fn root_id(&self) -> Option<String> {
        crate::state::root_id(self.state_root())
    }

    /// The gateway: the first address of the subnet (network + 1), put on the bridge.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.cidr.network()).wrapping_add(1))
    }

    /// Check the bridge name and the subnet.
    pub fn validate(&self) -> Result<(), NetError> {
        validate_ifname(&self.bridge)?;
        let len = self.cidr.prefix_len();
        if len > 30 {
            return Err(NetError::InvalidConfig(format!(
                "Network {} too small to allocate from",
                self.cidr
            )));
        }
        if self.cidr.addr() != self.cidr.network() {
            return Err(NetError::InvalidConfig(format!(
                "Network has host bits set. For a subnet mask of length {len} the network address is {}",
                self.cidr.network()
            )));
        }
        Ok(())
    }
}

/// Check a Linux interface name: 1–15 bytes, no `/`, no whitespace or control characters, not
/// `.` or `..` (the kernel's `dev_valid_name`).
pub fn validate_ifname(name: &str) -> Result<(), NetError> {
    let bad = |why: &str| {
        Err(NetError::InvalidConfig(format!(
            "invalid interface name {name:?}: {why}"
        )))
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > 15 {
        return bad("longer than 15 bytes");
    }
    if name == "." || name == ".." {
        return bad("reserved name");
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return bad("contains '/', ':', whitespace or a control character");
    }
    Ok(())
}

/// What `attach_pod` set up, for the pod's state record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PodNetwork {
    pub host_veth: String,
    pub host_ifindex: u32,
    pub pod_ifname: String,
    pub pod_ifindex: u32,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    pub bridge: String,
    /// MAC address of the pod's eth0, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
}

/// Predictable host veth name: "veth" + first 8 hex chars of sha256(key) (key =
/// `<namespace>/<pod name>`).
pub fn host_veth_name(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("veth{hex}")
}

/// Ensure bridge (create if missing, with gateway/prefix address, up), `net.ipv4.ip_forward=1`,
/// and the masquerade rule; then create the veth pair in ONE RTM_NEWLINK with the peer named eth0
/// created directly inside `pod_netns` and the host end enslaved to the bridge and up. Inside the
/// pod: lo up, eth0 address ip/prefix, eth0 up, default route via the gateway, `arp_notify=1`.
/// Returns once the host veth is operationally up.
pub fn attach_pod(
    cfg: &NetworkConfig,
    pod_netns: BorrowedFd<'_>,
    host_veth: &str,
    ip: Ipv4Addr,
) -> Result<PodNetwork, NetError> {
    cfg.validate()?;
    validate_ifname(host_veth)?;
    if !cfg.cidr.contains(&ip) || ip == cfg.gateway() || ip == cfg.cidr.network() {
        return Err(NetError::InvalidConfig(format!(
            "pod address {ip} is not a usable host address of {}",
            cfg.cidr
        )));
    }
    // Held until the host veth is a port of the bridge (see `veth::attach`).
    let lock = lock::NetworkLock::take(cfg)?;
    sysctl::ensure_ip_forward()?;
    let network = veth::attach(cfg, pod_netns, host_veth, ip, lock)?;
    // Read-only, no lock needed: a pod that uses the network keeps teardown away. When the rule
    // is missing, add it under the lock.
    let ensured = match firewall::masquerade_present(cfg) {
        Ok(true) => Ok(()),
        Ok(false) => {
            lock::NetworkLock::take(cfg).and_then(|lock| firewall::ensure_masquerade(cfg, &lock))
        }
        Err(e) => Err(e),
    };
    tracing::debug!("masquerade rule checked");
    if let Err(e) = ensured {
        let _ = detach_pod(host_veth);
        return Err(e);
    }
    Ok(network)
}

/// How many rules podrun's nft table `inet podrun` holds (`None`: no table), read over
/// nfnetlink: what `doctor` shows to confirm the kernel's nf_tables answers.
pub fn nft_table_rules() -> Result<Option<usize>, NetError> {
    firewall::table_rules()
}

/// Delete the host veth (its peer goes with it). Idempotent: a missing link is Ok.
pub fn detach_pod(host_veth: &str) -> Result<(), NetError> {
    netlink::block_on_host(
        |handle| async move { netlink::delete_link_named(&handle, host_veth).await },
    )?
}

/// Remove the host veth of a pod whose network namespace has just lost its last reference (the
/// pause is gone, the pin removed, the caller's descriptors closed). The kernel removes the pair
/// with the namespace in its cleanup worker within a few ms, where an explicit RTM_DELLINK keeps
/// the caller waiting 17-29 ms for RCU (rcu_barrier in netdev_run_todo). Waits up to `grace`
/// for that, then deletes the veth (something else, such as an `ip netns exec` shell, still
/// holds the namespace). Only the pod's own veth is deleted: the one with index `ifindex`
/// (recorded once wired), or, with none recorded (the supervisor died between wiring and
/// saving), the one of that name that is a port of this state root's own bridge (`cfg`: a
/// root owns its bridge, and names its pods' veths uniquely). Idempotent.
pub fn detach_pod_with_netns(
    cfg: &NetworkConfig,
    host_veth: &str,
    ifindex: Option<u32>,
    grace: std::time::Duration,
) -> Result<(), NetError> {
    netlink::block_on_host(|handle| async move {
        let ours = match ifindex {
            Some(index) => veth::Owner::Index(index),
            None => match bridge::own_index(&handle, cfg).await? {
                Some(bridge) => veth::Owner::PortOf(bridge),
                None => veth::Owner::Unknown,
            },
        };
        veth::wait_gone_or_delete(&handle, host_veth, grace, ours).await
    })?
}

/// [`teardown_network`] unless the bridge belongs to another state root (its alias says so):
/// what a pod's delete or rollback calls, so that a pod refused on another root's bridge does
/// not take that root's bridge and masquerade rule down.
pub fn teardown_own_network(
    cfg: &NetworkConfig,
    leaving_port: Option<&str>,
) -> Result<(), NetError> {
    // A failed lookup does not stop the teardown (best-effort, as below).
    let foreign =
        netlink::block_on_host(|handle| async move { bridge::is_other_roots(&handle, cfg).await });
    if matches!(foreign, Ok(Ok(true))) {
        return Ok(());
    }
    teardown_network(cfg, leaving_port)
}

/// When no pod uses the network any more: remove podrun's masquerade rule for this cidr (and
/// podrun's nft table when it is empty) and delete the bridge if it has no ports left but
/// `leaving_port` (the last pod's own veth, which goes with its sandbox). Idempotent and
/// best-effort: every step runs, all failures are returned.
pub fn teardown_network(cfg: &NetworkConfig, leaving_port: Option<&str>) -> Result<(), NetError> {
    // Without the lock (unwritable state dir) the steps still run: best-effort.
    let (lock, mut errors) = match lock::NetworkLock::take(cfg) {
        Ok(lock) => (lock, Vec::new()),
        Err(e) => (lock::NetworkLock::not_held(), vec![e]),
    };

    // nftables and links have separate kernel locks: remove the rule and the bridge at once
    // (each costs the kernel tens of ms of RCU grace periods).
    let (firewall, bridge) = std::thread::scope(|s| {
        let firewall = s.spawn(|| firewall::remove_masquerade(cfg, &lock));
        let bridge = netlink::block_on_host(|handle| async move {
            bridge::delete_if_unused(&handle, &cfg.bridge, leaving_port).await
        });
        (firewall.join(), bridge)
    });
    match firewall {
        Ok(Ok(())) => {}
        Ok(Err(e)) => errors.push(e),
        Err(_) => errors.push(NetError::InvalidConfig("nft helper thread panicked".into())),
    }
    match bridge {
        Ok(Ok(())) => {}
        Ok(Err(e)) | Err(e) => errors.push(e),
    }
    drop(lock);
    NetError::from_list(errors)
}

/// The bridge this root was making when its podrun stopped (a crash between the bridge's
/// creation under its temporary name and its rename), if there is one.
pub fn half_made_bridge(cfg: &NetworkConfig) -> Option<String> {
    let name = bridge::temporary_name(cfg);
    matches!(inspect_bridge(&name), Ok(Some(_))).then_some(name)
}

/// Remove [`half_made_bridge`], under the root's network lock (held by whoever makes the
/// bridge, so one being made right now is finished first). False when there was none left
/// to remove (its maker had named it meanwhile).
pub fn remove_half_made_bridge(cfg: &NetworkConfig) -> Result<bool, NetError> {
    let _lock = lock::NetworkLock::take(cfg)?;
    let Some(name) = half_made_bridge(cfg) else {
        return Ok(false);
    };
    netlink::block_on_host(
        |handle| async move { netlink::delete_link_named(&handle, &name).await },
    )??;
    Ok(true)
}

/// Facts read back from the kernel about a host veth (`None` if it does not exist), including
/// the bridge it is enslaved to.
pub fn inspect_host_veth(host_veth: &str) -> Result<Option<VethFacts>, NetError> {
    netlink::block_on_host(|handle| async move { veth::inspect(&handle, host_veth).await })?
}

/// Facts read back from the kernel about a bridge (`None` if no link of that name exists).
pub fn inspect_bridge(name: &str) -> Result<Option<BridgeFacts>, NetError> {
    netlink::block_on_host(|handle| async move { bridge::inspect(&handle, name).await })?
}

/// Whether podrun's masquerade rule for this network is in `table inet podrun`.
pub fn masquerade_present(cfg: &NetworkConfig) -> Result<bool, NetError> {
    firewall::masquerade_present(cfg)
}

/// A netlink failure, shown the way `ip` shows it ("File exists").
#[derive(Debug, Clone)]
pub struct NlError {
    /// The errno from the kernel's NLMSG_ERROR, when there was one.
    pub errno: Option<i32>,
    detail: String,
}

impl NlError {
    pub(crate) fn from_rtnetlink(err: rtnetlink::Error) -> Self {
        if let rtnetlink::Error::NetlinkError(msg) = &err
            && let Some(code) = msg.code
        {
            let errno = -code.get();
            let text = std::io::Error::from_raw_os_error(errno).to_string();
            // "File exists (os error 17)" -> "File exists"
            let detail = match text.rfind(" (os error") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            return NlError {
                errno: Some(errno),
                detail,
            };
        }
        NlError {
            errno: None,
            detail: err.to_string(),
        }
    }

    pub(crate) fn is_errno(&self, errno: i32) -> bool {
        self.errno == Some(errno)
    }
}

impl fmt::Display for NlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for NlError {}

/// Everything that can go wrong in `net`. Each variant names the step and carries the object.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{0}")]
    InvalidConfig(String),
    #[error("open netlink socket{}: {source}", if *in_pod { " in the pod network namespace" } else { "" })]
    Connect {
        in_pod: bool,
        source: std::io::Error,
    },
    #[error("build netlink runtime: {source}")]
    Runtime { source: std::io::Error },
    #[error("enter the pod network namespace: {source}")]
    EnterNetns { source: nix::Error },
    #[error("pod network namespace helper thread panicked")]
    HelperPanicked,
    #[error("look up link {name}: {source}")]
    GetLink { name: String, source: NlError },
    #[error("{name} already exists but is not a bridge")]
    NotABridge { name: String },
    #[error(
        "bridge {bridge} belongs to the pods of state root {owner} (their addresses are \
         allocated there): use that root, or give state root {ours} another --bridge and \
         --pod-cidr (if that root and its pods are gone, `podrun doctor --fix` removes the \
         bridge)"
    )]
    BridgeOfAnotherRoot {
        bridge: String,
        owner: String,
        ours: String,
    },
    #[error("create bridge {name}: {source}")]
    CreateBridge { name: String, source: NlError },
    #[error("set hairpin mode on bridge port {dev}: {source}")]
    SetHairpin { dev: String, source: NlError },
    #[error("set {dev} up: {source}")]
    LinkUp { dev: String, source: NlError },
    #[error("pod CIDR {cidr} overlaps {addr} on {dev}: choose another --pod-cidr")]
    CidrInUse {
        cidr: String,
        dev: String,
        addr: String,
    },
    #[error("set the alias of {dev}: {source}")]
    SetAlias { dev: String, source: NlError },
    #[error("add address {addr} to {dev}: {source}")]
    AddAddress {
        dev: String,
        addr: String,
        source: NlError,
    },
    #[error("list addresses of {dev}: {source}")]
    GetAddress { dev: String, source: NlError },
    #[error("{dev} already has an IP address different from {want}: {have}")]
    AddressConflict {
        dev: String,
        want: String,
        have: String,
    },
    #[error("create veth {host} (peer {peer} in the pod) on bridge {bridge}: {source}")]
    CreateVeth {
        host: String,
        peer: String,
        bridge: String,
        source: NlError,
    },
    #[error("{dev} missing right after creating it")]
    LinkVanished { dev: String },
    #[error("add default route via {gateway} on {dev}: {source}")]
    AddRoute {
        dev: String,
        gateway: Ipv4Addr,
        source: NlError,
    },
    #[error("bridge port {dev} in error state: {state}")]
    PortNotUp { dev: String, state: String },
    #[error("delete link {name}: {source}")]
    DeleteLink { name: String, source: NlError },
    #[error("list links: {source}")]
    ListLinks { source: NlError },
    #[error("write {value} to {path}: {source}")]
    Sysctl {
        path: String,
        value: String,
        source: std::io::Error,
    },
    #[error("nftables: {step}: {detail}")]
    Firewall { step: String, detail: String },
    #[error("{op} {path}: {source}", path = path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no IP addresses available in range {range}")]
    IpamExhausted { range: Ipv4Net },
    #[error("{ip} has been allocated to {owner}, duplicate allocation is not allowed")]
    IpamDuplicate { ip: Ipv4Addr, owner: String },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Multiple(Vec<NetError>),
}

impl From<crate::lockfile::LockError> for NetError {
    fn from(e: crate::lockfile::LockError) -> Self {
        NetError::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        }
    }
}

impl NetError {
    /// `Ok` for no errors, the error itself for one, `Multiple` otherwise.
    pub(crate) fn from_list(mut errors: Vec<NetError>) -> Result<(), NetError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(NetError::Multiple(errors)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(cidr: &str) -> NetworkConfig {
        NetworkConfig {
            bridge: "podrun0".into(),
            cidr: cidr.parse().unwrap(),
            ipam_dir: "/nonexistent".into(),
        }
    }

    #[test]
    fn veth_name_is_predictable() {
        let a = host_veth_name("default/web");
        assert_eq!(a, host_veth_name("default/web"));
        assert_ne!(a, host_veth_name("default/web2"));
        assert_eq!(a.len(), 12);
        assert!(a.starts_with("veth"));
        assert!(a[4..].chars().all(|c| c.is_ascii_hexdigit()));
        // sha256("default/web") starts with these 4 bytes.
        let d = Sha256::digest(b"default/web");
        assert_eq!(
            &a[4..],
            &format!("{:02x}{:02x}{:02x}{:02x}", d[0], d[1], d[2], d[3])
        );
        validate_ifname(&a).unwrap();
    }

    #[test]
    fn bridge_alias_names_the_state_root_and_its_id() {
        let n = NetworkConfig::with_state_root(std::path::Path::new("/nonexistent/podrun"));
        assert_eq!(n.state_root(), std::path::Path::new("/nonexistent/podrun"));
        // No id where the root cannot be written.
        assert_eq!(n.bridge_alias(), "podrun state root /nonexistent/podrun");
        let dir = tempfile::tempdir().unwrap();
        let n = NetworkConfig::with_state_root(dir.path());
        let id = n.root_id().expect("an id is made");
        assert_eq!(id.len(), 12);
        assert_eq!(n.root_id(), Some(id.clone()), "kept");
        assert_eq!(
            n.bridge_alias(),
            format!("podrun state root {} (id {id})", dir.path().display())
        );
    }

    #[test]
    fn gateway_is_first_address() {
        assert_eq!(cfg("10.244.0.0/24").gateway(), Ipv4Addr::new(10, 244, 0, 1));
        assert_eq!(cfg("10.88.0.0/16").gateway(), Ipv4Addr::new(10, 88, 0, 1));
    }

    #[test]
    fn validate_rejects_host_bits() {
        let err = cfg("10.244.0.5/24").validate().unwrap_err().to_string();
        assert_eq!(
            err,
            "Network has host bits set. For a subnet mask of length 24 the network address is 10.244.0.0"
        );
    }

    #[test]
    fn validate_rejects_tiny_networks() {
        assert!(cfg("10.0.0.0/30").validate().is_ok());
        let err = cfg("10.0.0.0/31").validate().unwrap_err().to_string();
        assert_eq!(err, "Network 10.0.0.0/31 too small to allocate from");
    }

    #[test]
    fn validate_checks_bridge_name() {
        let mut c = cfg("10.244.0.0/24");
        assert!(c.validate().is_ok());
        for bad in ["", "a-very-long-bridge0", "br/0", "br 0", ".", ".."] {
            c.bridge = bad.into();
            assert!(c.validate().is_err(), "{bad:?} accepted");
        }
        c.bridge = "abcdefghijklmno".into(); // exactly 15
        assert!(c.validate().is_ok());
    }

    #[test]
    fn default_config() {
        let c = NetworkConfig::with_state_root(std::path::Path::new("/run/podrun"));
        assert_eq!(c.bridge, "podrun0");
        assert_eq!(c.cidr.to_string(), "10.244.0.0/24");
        assert_eq!(c.ipam_dir, PathBuf::from("/run/podrun/networks/podrun0"));
        c.validate().unwrap();
    }

    #[test]
    fn netlink_errors_read_like_ip() {
        let e = NlError {
            errno: Some(libc::EEXIST),
            detail: "File exists".into(),
        };
        let err = NetError::CreateVeth {
            host: "veth1a2b3c4d".into(),
            peer: "eth0".into(),
            bridge: "podrun0".into(),
            source: e,
        };
        assert_eq!(
            err.to_string(),
            "create veth veth1a2b3c4d (peer eth0 in the pod) on bridge podrun0: File exists"
        );
    }
}
