//! A head start for the node's side of the pod network while a pod's namespaces are made.

use super::{NetError, NetworkConfig, bridge, firewall, netlink, sysctl};

/// The node's side of the pod network (`net.ipv4.ip_forward`, the bridge, the masquerade
/// rule), made ready on a thread of its own while the pause makes the pod's namespaces: on a
/// node without them, making the bridge (~6 ms: create, alias, rename, address, up) no longer
/// waits for the namespaces, nor do the namespaces wait for it. Only a head start:
/// [`super::attach_pod`] ensures all of it again under the network lock (a lookup when present), so a
/// teardown that removes them in between (another pod's last delete) is repaired there, and an
/// error here is reported there. Joined on [`NodeWarmup::finish`] or drop, so nothing runs on
/// after the pod's start or its rollback.
pub struct NodeWarmup(Option<std::thread::JoinHandle<()>>);

impl NodeWarmup {
    /// Start the head start, unless the bridge exists (one ioctl): then the node is set up
    /// already, and a thread would only cost the pod CPU (measured: ~1 ms of apply).
    pub fn start(cfg: &NetworkConfig) -> Self {
        if nix::net::if_::if_nametoindex(cfg.bridge.as_str()).is_ok() {
            return NodeWarmup(None);
        }
        let cfg = cfg.clone();
        let thread = std::thread::Builder::new()
            .name("node-network".into())
            .spawn(move || {
                if let Err(e) = prepare_node(&cfg) {
                    tracing::debug!(error = %e, "node network not prepared ahead");
                }
            })
            .ok();
        NodeWarmup(thread)
    }

    /// Wait until the head start is over.
    pub fn finish(mut self) {
        self.join();
    }

    fn join(&mut self) {
        if let Some(thread) = self.0.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for NodeWarmup {
    fn drop(&mut self) {
        self.join();
    }
}

/// Ensure `net.ipv4.ip_forward=1`, the bridge and the masquerade rule, under the network lock.
fn prepare_node(cfg: &NetworkConfig) -> Result<(), NetError> {
    cfg.validate()?;
    let lock = super::lock::NetworkLock::take(cfg)?;
    sysctl::ensure_ip_forward()?;
    netlink::block_on_host(|handle| async move { bridge::ensure(&handle, cfg).await })??;
    firewall::ensure_masquerade(cfg, &lock)?;
    tracing::debug!("node network prepared");
    Ok(())
}
