//! The kubeconfig `podrun serve` writes: cluster `podrun` (the server's URL and its CA), user
//! `podrun` (the bearer token), context `podrun`, current. Written as JSON, which kubectl's
//! loader reads as it reads YAML.

use std::path::Path;

use base64::Engine;
use serde_json::json;

use super::{ApiError, write_private};

pub fn write(path: &Path, server: &str, ca_pem: &str, token: &str) -> Result<(), ApiError> {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "podrun", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": "podrun", "user": {"token": token}}],
        "contexts": [{"name": "podrun", "context": {"cluster": "podrun", "user": "podrun", "namespace": "default"}}],
        "current-context": "podrun",
        "preferences": {}
    });
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| ApiError::io(parent, e))?;
    }
    let text = serde_json::to_string_pretty(&config).unwrap_or_default() + "\n";
    write_private(path, text.as_bytes())
}
