//! podrun: a pod runtime for one Linux machine.
//!
//! One module per kernel concern: `spec` (manifests), `sandbox` (pause + namespaces), `net`
//! (bridge, veth, IPAM, nftables), `cgroup`, `container` (fork/setns/exec), `supervisor` (the
//! per-pod shim), `state` (on-disk records), `diagnostics` (inspect/doctor). `sys` is the only
//! module allowed to use `unsafe`.
#![deny(unsafe_code)]

pub mod cgroup;
pub mod net;
pub mod spec;
