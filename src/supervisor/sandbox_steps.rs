//! The steps of making a sandbox, in their order, each written into the record by one helper
//! ([`Supervisor::record_step`]) that holds podrun's rule: every kernel object is in the record
//! before it is made, so a teardown from the record (after any crash) finds it. What each step
//! must save, and why not more:
//!
//! | step | recorded | saved at once? |
//! |---|---|---|
//! | `Planned` | sandbox id (the IPAM owner), netns pin path, host veth name | yes: they name the pin, the veth and the address before any exists |
//! | `Forked` | the pause's pid | only without cgroups (with them, the pause is found through its cgroup) |
//! | `Addressed` | the pod IP | no: the address file names the saved sandbox id as its owner |
//! | `Namespaces` | their inodes | no: informational (`inspect`); the pin path was saved |
//! | `Wired` | the veth's details; ready | no: its name was saved; the caller saves once the containers run |
//!
//! `Forked` and `Addressed` may come in either order (the address is reserved while the pause
//! starts); `Namespaces` follows `Forked`; `Wired` follows both.

use std::net::Ipv4Addr;

use super::Supervisor;
use crate::net::PodNetwork;
use crate::state::{NsInodes, ProcessId, SandboxRecord};

pub(super) enum SandboxStep {
    Planned(SandboxRecord),
    Forked(ProcessId),
    Addressed(Ipv4Addr),
    Namespaces(NsInodes),
    Wired(PodNetwork),
}

impl Supervisor {
    /// Write sandbox step `step` into the record, saving it when the step requires.
    pub(super) fn record_step(&mut self, step: SandboxStep) {
        let save = match step {
            SandboxStep::Planned(planned) => {
                self.record.sandbox = Some(planned);
                true
            }
            step => {
                let with_cgroups = self.cgroup.is_some();
                let sb = self
                    .record
                    .sandbox
                    .as_mut()
                    .expect("a sandbox is planned before its first step");
                match step {
                    SandboxStep::Planned(_) => unreachable!("handled above"),
                    SandboxStep::Forked(pause) => {
                        let new = sb.pause.map(|p| p.pid) != Some(pause.pid);
                        sb.pause = Some(pause);
                        new && !with_cgroups
                    }
                    SandboxStep::Addressed(ip) => {
                        sb.ip = Some(ip);
                        false
                    }
                    SandboxStep::Namespaces(inodes) => {
                        debug_assert!(sb.pause.is_some(), "namespaces before the pause");
                        sb.namespaces = Some(inodes);
                        false
                    }
                    SandboxStep::Wired(network) => {
                        debug_assert!(sb.ip.is_some() && sb.namespaces.is_some());
                        sb.network = Some(network);
                        sb.ready = true;
                        false
                    }
                }
            }
        };
        if save {
            self.save();
        }
    }
}
