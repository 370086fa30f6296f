//! The channels between the supervisor and a container's init stage, both sides in one place:
//! which descriptors the init gets and under which numbers ([`InitFds`] numbers them for the
//! supervisor, [`InheritedFds`] reads them back in the init), and what travels on each:
//!
//! - the **sync pipe** (init -> supervisor): nothing when the init exec'd the container's
//!   process (the pipe closes with the exec, CLOEXEC), or one [`InitFailure`];
//! - the **start gate** (supervisor -> init): one [`GATE_OPEN`] byte lets the init exec; the
//!   pipe closing without it (the supervisor gave up or died) ends the init;
//! - the **namespace socket** (supervisor or sandbox thread -> init): one message carrying the
//!   pod's UTS, IPC and network namespace descriptors as SCM_RIGHTS (each joined by `setns`
//!   with no type: the kernel knows each descriptor's kind, so their order carries nothing);
//!   the socket closing without it means the sandbox was not made;
//! - pod-level tmpfs mounts (detached mount descriptors), named in [`FDS_ENV`].

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{OwnedFd, RawFd};

/// The first descriptor number handed to the init (0-2 are stdio).
const FIRST_FD: RawFd = 3;

pub const SYNC_FD_ENV: &str = "PODRUN_INIT_SYNC_FD";
pub const GATE_FD_ENV: &str = "PODRUN_INIT_GATE_FD";
pub const NS_FD_ENV: &str = "PODRUN_INIT_NS_FD";
/// `name=fd,...` of the pod-level tmpfs mounts.
pub const FDS_ENV: &str = "PODRUN_INIT_FDS";

/// The byte that opens the start gate.
pub const GATE_OPEN: u8 = b'1';

/// The supervisor's side: its descriptors for an init, numbered as the init will see them
/// (in `pass` order from [`FIRST_FD`], as `sys::ChildSetup::pass_fds` hands them over).
pub struct InitFds {
    /// The descriptors to pass, in order.
    pub pass: Vec<RawFd>,
    /// The environment naming them.
    pub env: Vec<(&'static str, String)>,
}

impl InitFds {
    pub fn new(sync: RawFd, gate: RawFd, namespaces: RawFd, volumes: &[(&str, RawFd)]) -> Self {
        let mut pass = Vec::new();
        let mut number = |fd: RawFd| {
            pass.push(fd);
            FIRST_FD + pass.len() as RawFd - 1
        };
        let mut env = vec![
            (SYNC_FD_ENV, number(sync).to_string()),
            (GATE_FD_ENV, number(gate).to_string()),
            (NS_FD_ENV, number(namespaces).to_string()),
        ];
        let listed: Vec<String> = volumes
            .iter()
            .map(|(name, fd)| format!("{name}={}", number(*fd)))
            .collect();
        env.push((FDS_ENV, listed.join(",")));
        Self { pass, env }
    }
}

/// The init's side: the descriptors it was handed, by role.
#[derive(Default)]
pub struct InheritedFds {
    pub sync: Option<OwnedFd>,
    pub gate: Option<OwnedFd>,
    pub namespaces: Option<OwnedFd>,
    pub volumes: HashMap<String, OwnedFd>,
}

impl InheritedFds {
    /// Read back what [`InitFds`] numbered (from this process's environment).
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok(), crate::sys::inherited_fd)
    }

    fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        take: impl Fn(RawFd) -> Option<OwnedFd>,
    ) -> Self {
        let fd = |name: &str| var(name).and_then(|v| v.parse().ok()).and_then(&take);
        let mut volumes = HashMap::new();
        for pair in var(FDS_ENV).unwrap_or_default().split(',') {
            if let Some((name, n)) = pair.split_once('=')
                && let Some(fd) = n.parse().ok().and_then(&take)
            {
                volumes.insert(name.to_owned(), fd);
            }
        }
        Self {
            sync: fd(SYNC_FD_ENV),
            gate: fd(GATE_FD_ENV),
            namespaces: fd(NS_FD_ENV),
            volumes,
        }
    }
}

/// Why an init stage failed, as it reports it on the sync pipe (the whole message; the
/// pipe carries nothing else).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitFailure(pub String);

impl InitFailure {
    pub fn send(&self, pipe: OwnedFd) -> std::io::Result<()> {
        std::fs::File::from(pipe).write_all(self.0.as_bytes())
    }

    /// Read the sync pipe to its end: `Ok` when the init exec'd (nothing came), else its failure.
    pub fn receive(pipe: &mut std::fs::File) -> Result<(), InitFailure> {
        let mut message = String::new();
        let _ = pipe.read_to_string(&mut message);
        if message.is_empty() {
            Ok(())
        } else {
            Err(InitFailure(message))
        }
    }
}

/// How the start gate ended for the init.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    #[error("start gate closed before the container was started")]
    Closed,
    #[error("start gate: {0}")]
    Read(String),
}

/// The supervisor's side: open the gate (an init that already failed has closed its end).
pub fn open_gate(gate: &mut std::fs::File) {
    let _ = gate.write_all(&[GATE_OPEN]);
}

/// The init's side: block until the gate opens.
pub fn wait_at_gate(gate: OwnedFd) -> Result<(), GateError> {
    let mut byte = [0u8; 1];
    match std::fs::File::from(gate).read(&mut byte) {
        Ok(1) if byte[0] == GATE_OPEN => Ok(()),
        Ok(_) => Err(GateError::Closed),
        Err(e) => Err(GateError::Read(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn inode(fd: RawFd) -> u64 {
        std::fs::metadata(format!("/proc/self/fd/{fd}"))
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap_or(0)
    }

    #[test]
    fn both_sides_number_the_descriptors_alike() {
        let fds = InitFds::new(40, 41, 42, &[("dshm", 43), ("cache", 44)]);
        assert_eq!(fds.pass, [40, 41, 42, 43, 44]);
        let env: HashMap<&str, String> = fds.env.iter().cloned().collect();
        // The init sees pass[i] as FIRST_FD + i: pipes stand in for what it would find there.
        let pipes: Vec<(OwnedFd, OwnedFd)> = (0..5).map(|_| nix::unistd::pipe().unwrap()).collect();
        let got = InheritedFds::from_vars(
            |name| env.get(name).cloned(),
            |n| pipes.get((n - FIRST_FD) as usize)?.0.try_clone().ok(),
        );
        let stands_for =
            |fd: &OwnedFd, i: usize| inode(fd.as_raw_fd()) == inode(pipes[i].0.as_raw_fd());
        assert!(stands_for(got.sync.as_ref().unwrap(), 0));
        assert!(stands_for(got.gate.as_ref().unwrap(), 1));
        assert!(stands_for(got.namespaces.as_ref().unwrap(), 2));
        assert!(stands_for(&got.volumes["dshm"], 3));
        assert!(stands_for(&got.volumes["cache"], 4));
    }

    #[test]
    fn the_gate_and_the_sync_pipe_say_what_happened() {
        let (rx, tx) = nix::unistd::pipe().unwrap();
        let mut tx = std::fs::File::from(tx);
        open_gate(&mut tx);
        assert_eq!(wait_at_gate(rx), Ok(()));
        let (rx, tx) = nix::unistd::pipe().unwrap();
        drop(tx);
        assert_eq!(wait_at_gate(rx), Err(GateError::Closed));
        let (rx, tx) = nix::unistd::pipe().unwrap();
        InitFailure("mount /proc: EPERM".into()).send(tx).unwrap();
        assert_eq!(
            InitFailure::receive(&mut std::fs::File::from(rx)),
            Err(InitFailure("mount /proc: EPERM".into()))
        );
        let (rx, tx) = nix::unistd::pipe().unwrap();
        drop(tx);
        assert_eq!(InitFailure::receive(&mut std::fs::File::from(rx)), Ok(()));
    }
}
