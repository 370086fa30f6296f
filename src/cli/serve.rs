//! `podrun serve [--address 127.0.0.1] [--port 6443] [--kubeconfig PATH]`: the Kubernetes API
//! endpoint of this node (`crate::api`), until SIGTERM or SIGINT.

use std::net::IpAddr;
use std::path::PathBuf;

use super::{Result, msg};
use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (loopback unless told otherwise).
    #[arg(long, default_value = "127.0.0.1")]
    pub address: IpAddr,
    /// Port to listen on.
    #[arg(long, default_value_t = 6443)]
    pub port: u16,
    /// Where to write the kubeconfig (default `<state root>/api/kubeconfig`).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
}

pub fn serve(cfg: &Config, args: &ServeArgs) -> Result<i32> {
    let opts = crate::api::ServeOptions {
        address: args.address,
        port: args.port,
        kubeconfig: args
            .kubeconfig
            .as_ref()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())),
    };
    crate::api::serve(cfg.clone(), opts).map_err(|e| msg(e.to_string()))?;
    Ok(0)
}
