//! STUB: replaced by the net branch. Types only, to let the rest compile.
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NetError(pub String);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkConfig {
    pub bridge: String,
    pub cidr: ipnet::Ipv4Net,
    pub ipam_dir: PathBuf,
}
impl NetworkConfig {
    pub fn gateway(&self) -> Ipv4Addr {
        todo!()
    }
    pub fn validate(&self) -> Result<(), NetError> {
        todo!()
    }
}
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
    pub mac: String,
}
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VethFacts {}
pub fn host_veth_name(_key: &str) -> String {
    todo!()
}
pub fn attach_pod(
    _cfg: &NetworkConfig,
    _pod_netns: BorrowedFd<'_>,
    _host_veth: &str,
    _ip: Ipv4Addr,
) -> Result<PodNetwork, NetError> {
    todo!()
}
pub fn detach_pod(_host_veth: &str) -> Result<(), NetError> {
    todo!()
}
pub fn teardown_network(_cfg: &NetworkConfig) -> Result<(), NetError> {
    todo!()
}
pub fn inspect_host_veth(_host_veth: &str) -> Result<Option<VethFacts>, NetError> {
    todo!()
}
pub fn masquerade_present(_cfg: &NetworkConfig) -> Result<bool, NetError> {
    todo!()
}
pub mod ipam {
    use super::*;
    pub struct Ipam {}
    impl Ipam {
        pub fn new(_cfg: &NetworkConfig) -> Self {
            todo!()
        }
        pub fn allocate(&self, _owner: &str, _ifname: &str) -> Result<Ipv4Addr, NetError> {
            todo!()
        }
        pub fn release(&self, _owner: &str) -> Result<Vec<Ipv4Addr>, NetError> {
            todo!()
        }
        pub fn allocations(&self) -> Result<Vec<(Ipv4Addr, String)>, NetError> {
            todo!()
        }
    }
}
