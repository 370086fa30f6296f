//! podrun: a pod runtime for one Linux machine.
//!
//! One module per kernel concern: `spec` (manifests), `sandbox` (pause + namespaces), `net`
//! (bridge, veth, IPAM, nftables), `cgroup`, `container` (fork/setns/exec), `supervisor` (the
//! per-pod shim), `state` (on-disk records), `image` (the image store), `pod` (the lifecycle as a library:
//! apply, delete, status, what every front end calls), `workload` (the controllers' rules,
//! pure) and `controller` (the process that keeps Deployments, ReplicaSets and Jobs), `cli` (the kubectl-shaped verbs). `sys` is the only module allowed to use `unsafe`.
#![deny(unsafe_code)]

pub mod api;
pub mod cgroup;
pub mod cli;
pub mod config;
pub mod container;
pub mod controller;
pub mod diagnostics;
pub mod image;
pub mod lockfile;
pub mod net;
pub mod objects;
pub mod pod;
pub mod probe;
pub mod procfs;
pub mod resources;
pub mod sandbox;
pub mod spec;
pub mod state;
pub mod supervisor;
#[allow(unsafe_code)]
pub mod sys;
pub mod workload;
