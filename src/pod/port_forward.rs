//! Port-forward's connection: a TCP connection to `localhost:PORT` inside the pod's network
//! namespace, as the kubelet's (CRI's) port-forward makes it. A fresh thread joins the
//! namespace (setns changes only the calling thread's), opens the socket, and ends: the socket
//! keeps the namespace it was made in.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};

use nix::sched::CloneFlags;

use crate::state::PodRecord;

/// Connect to `port` on the pod's loopback.
pub fn connect(r: &PodRecord, port: u16) -> Result<TcpStream, String> {
    let sandbox = r
        .sandbox
        .as_ref()
        .filter(|s| s.pause.is_some_and(|p| p.is_alive()))
        .ok_or_else(|| format!("pod {} has no running sandbox", r.plan.name))?;
    let netns = std::fs::File::open(&sandbox.netns_path)
        .map_err(|e| format!("open {}: {e}", sandbox.netns_path.display()))?;
    let sandbox_id = sandbox.id.clone();
    std::thread::spawn(move || {
        nix::sched::setns(&netns, CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("setns into the pod's network namespace: {e}"))?;
        TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).map_err(|e| {
            // The kubelet's wording (CRI port-forward through the sandbox's netns).
            format!(
                "failed to connect to localhost:{port} inside namespace \"{sandbox_id}\", IPv4: {e} IPv6 dial tcp6 [::1]:{port}: connect: cannot assign requested address"
            )
        })
    })
    .join()
    .map_err(|_| "port-forward thread panicked".to_string())?
}
