//! The channel between the supervisor and a container's init stage, both sides in one place:
//! one socketpair per init ([`pair`]), whose init end is handed over as descriptor 3 (with the
//! pod-level tmpfs mounts after it, numbered by [`InitFds`] for the supervisor and read back
//! by [`InheritedFds`] in the init). What travels on it, in order:
//!
//! 1. supervisor (or the sandbox thread) -> init: [`NAMESPACES`] with the pod's UTS, IPC and
//!    network namespace descriptors as SCM_RIGHTS (each joined by `setns` with no type: the
//!    kernel knows each descriptor's kind, so their order carries nothing);
//! 2. supervisor -> init: [`GATE_OPEN`], which lets the init exec the container's process;
//! 3. init -> supervisor: nothing, the init's end closing with the exec (CLOEXEC), or one
//!    [`InitFailure`] before it exits.
//!
//! The supervisor's end closing before (1) or (2) (the sandbox was not made, the supervisor
//! gave up or died) ends the init.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use crate::sandbox::NamespaceFds;

/// The first descriptor number handed to the init (0-2 are stdio).
const FIRST_FD: RawFd = 3;

pub const CHANNEL_FD_ENV: &str = "PODRUN_INIT_CHANNEL_FD";
/// `name=fd,...` of the pod-level tmpfs mounts.
pub const FDS_ENV: &str = "PODRUN_INIT_FDS";

/// The byte of the namespaces message (its descriptors ride on it).
pub const NAMESPACES: u8 = b'n';
/// The byte that opens the start gate.
pub const GATE_OPEN: u8 = b'g';

/// A new channel: the supervisor's end and the init's.
pub fn pair() -> std::io::Result<(SupervisorEnd, InitEnd)> {
    let (sup, init) = UnixStream::pair()?;
    Ok((SupervisorEnd(sup), InitEnd(init)))
}

/// The supervisor's end of an init's channel.
pub struct SupervisorEnd(UnixStream);

/// The init's end, until it is handed over at the fork.
pub struct InitEnd(UnixStream);

impl InitEnd {
    pub fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// A clone of a supervisor end that sends the namespaces (the sandbox thread's, when the init
/// is forked before the pause made them).
pub struct NamespaceSender(UnixStream);

impl SupervisorEnd {
    pub fn namespace_sender(&self) -> std::io::Result<NamespaceSender> {
        Ok(NamespaceSender(self.0.try_clone()?))
    }

    /// Open the gate (an init that already failed has closed its end: its reason is waiting).
    pub fn open_gate(&self) {
        let _ = (&self.0).write_all(&[GATE_OPEN]);
    }

    /// Read until the init's end closes: `Ok` when it exec'd (nothing came), else its failure.
    pub fn outcome(self) -> Result<(), InitFailure> {
        let mut message = String::new();
        let _ = (&self.0).read_to_string(&mut message);
        if message.is_empty() {
            Ok(())
        } else {
            Err(InitFailure(message))
        }
    }
}

impl NamespaceSender {
    /// Hand the pod's namespaces over. The message waits in the socket until the init reads
    /// it; an init that already failed (or was never forked) has closed its end.
    pub fn send(self, ns: &NamespaceFds) {
        send_namespaces(&self.0, ns);
    }
}

fn send_namespaces(socket: &UnixStream, ns: &NamespaceFds) {
    let fds: Vec<RawFd> = ns.fds.iter().map(|(fd, _)| fd.as_raw_fd()).collect();
    let _ = crate::sys::send_fds(socket.as_fd(), NAMESPACES, &fds);
}

impl SupervisorEnd {
    /// Send the namespaces from this end itself (the sandbox is up).
    pub fn send_namespaces(&self, ns: &NamespaceFds) {
        send_namespaces(&self.0, ns);
    }
}

/// The supervisor's side: its descriptors for an init, numbered as the init will see them
/// (in `pass` order from [`FIRST_FD`], as `sys::ChildSetup::pass_fds` hands them over).
pub struct InitFds {
    /// The descriptors to pass, in order.
    pub pass: Vec<RawFd>,
    /// The environment naming them.
    pub env: Vec<(&'static str, String)>,
}

impl InitFds {
    pub fn new(channel: RawFd, volumes: &[(&str, RawFd)]) -> Self {
        let mut pass = Vec::new();
        let mut number = |fd: RawFd| {
            pass.push(fd);
            FIRST_FD + pass.len() as RawFd - 1
        };
        let mut env = vec![(CHANNEL_FD_ENV, number(channel).to_string())];
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
    pub channel: Option<OwnedFd>,
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
        let mut volumes = HashMap::new();
        for pair in var(FDS_ENV).unwrap_or_default().split(',') {
            if let Some((name, n)) = pair.split_once('=')
                && let Some(fd) = n.parse().ok().and_then(&take)
            {
                volumes.insert(name.to_owned(), fd);
            }
        }
        Self {
            channel: var(CHANNEL_FD_ENV)
                .and_then(|v| v.parse().ok())
                .and_then(&take),
            volumes,
        }
    }
}

/// Why an init stage failed, as it reports it on its channel (the whole message; nothing else
/// travels that way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitFailure(pub String);

impl InitFailure {
    /// The init's side: report it (and close the channel).
    pub fn send(&self, channel: OwnedFd) -> std::io::Result<()> {
        std::fs::File::from(channel).write_all(self.0.as_bytes())
    }
}

/// What the init hears on its channel instead of what it waits for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("start gate closed before the container was started")]
    GateClosed,
    #[error("the pod sandbox was not made (no namespaces handed over)")]
    NoNamespaces,
    #[error("{what}: unexpected message {byte:?}")]
    Unexpected { what: &'static str, byte: u8 },
    #[error("{what}: {message}")]
    Read { what: &'static str, message: String },
}

/// The init's side: receive the pod's namespaces.
pub fn receive_namespaces(channel: &OwnedFd) -> Result<Vec<OwnedFd>, ChannelError> {
    let what = "receive the pod's namespaces";
    match crate::sys::recv_fds(channel.as_fd()) {
        Ok((None, _)) => Err(ChannelError::NoNamespaces),
        Ok((Some(NAMESPACES), fds)) if !fds.is_empty() => Ok(fds),
        Ok((Some(byte), _)) => Err(ChannelError::Unexpected { what, byte }),
        Err(e) => Err(ChannelError::Read {
            what,
            message: e.to_string(),
        }),
    }
}

/// The init's side: block until the gate opens.
pub fn wait_at_gate(channel: &OwnedFd) -> Result<(), ChannelError> {
    let mut byte = [0u8; 1];
    match (&std::fs::File::from(channel.try_clone().map_err(|e| ChannelError::Read {
        what: "start gate",
        message: e.to_string(),
    })?))
        .read(&mut byte)
    {
        Ok(1) if byte[0] == GATE_OPEN => Ok(()),
        Ok(1) => Err(ChannelError::Unexpected {
            what: "start gate",
            byte: byte[0],
        }),
        Ok(_) => Err(ChannelError::GateClosed),
        Err(e) => Err(ChannelError::Read {
            what: "start gate",
            message: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inode(fd: RawFd) -> u64 {
        std::fs::metadata(format!("/proc/self/fd/{fd}"))
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap_or(0)
    }

    #[test]
    fn both_sides_number_the_descriptors_alike() {
        let fds = InitFds::new(40, &[("dshm", 43), ("cache", 44)]);
        assert_eq!(fds.pass, [40, 43, 44]);
        let env: HashMap<&str, String> = fds.env.iter().cloned().collect();
        // The init sees pass[i] as FIRST_FD + i: pipes stand in for what it would find there.
        let pipes: Vec<(OwnedFd, OwnedFd)> = (0..3).map(|_| nix::unistd::pipe().unwrap()).collect();
        let got = InheritedFds::from_vars(
            |name| env.get(name).cloned(),
            |n| pipes.get((n - FIRST_FD) as usize)?.0.try_clone().ok(),
        );
        let stands_for =
            |fd: &OwnedFd, i: usize| inode(fd.as_raw_fd()) == inode(pipes[i].0.as_raw_fd());
        assert!(stands_for(got.channel.as_ref().unwrap(), 0));
        assert!(stands_for(&got.volumes["dshm"], 1));
        assert!(stands_for(&got.volumes["cache"], 2));
    }

    /// The whole conversation, on one socketpair: namespaces, the gate, the outcome.
    #[test]
    fn the_channel_carries_namespaces_then_the_gate_then_the_outcome() {
        let own = NamespaceFds::open(std::process::id() as i32).expect("open own namespaces");
        let (sup, init) = pair().unwrap();
        let init = OwnedFd::from(init.0);
        sup.namespace_sender().unwrap().send(&own);
        let got = receive_namespaces(&init).unwrap();
        assert_eq!(got.len(), own.fds.len());
        for ((sent, _), received) in own.fds.iter().zip(&got) {
            assert_eq!(inode(sent.as_raw_fd()), inode(received.as_raw_fd()));
        }
        sup.open_gate();
        assert_eq!(wait_at_gate(&init), Ok(()));
        InitFailure("mount /proc: EPERM".into()).send(init).unwrap();
        assert_eq!(sup.outcome(), Err(InitFailure("mount /proc: EPERM".into())));
        // The init exec'd: its end closed with nothing said.
        let (sup, init) = pair().unwrap();
        drop(init);
        assert_eq!(sup.outcome(), Ok(()));
        // The supervisor gave up: no namespaces, no gate.
        let (sup, init) = pair().unwrap();
        let init = OwnedFd::from(init.0);
        drop(sup);
        assert_eq!(
            receive_namespaces(&init).err(),
            Some(ChannelError::NoNamespaces)
        );
        assert_eq!(wait_at_gate(&init), Err(ChannelError::GateClosed));
    }
}
