//! The server's CA and serving certificate, made with rcgen on first start and kept under
//! `<state root>/api/` (`ca.crt`, `ca.key`, `server.crt`, `server.key`, keys mode 0600). A restart
//! reuses them; the serving certificate is signed again (by the same CA) only when the names it
//! must carry change (another `--address`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{ApiError, write_private};

const CA_NAME: &str = "podrun-ca";

/// The PEM files of one state root's API identity.
pub struct Identity {
    pub ca_pem: String,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

fn ca_params() -> Result<CertificateParams, ApiError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::CommonName, CA_NAME);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(p)
}

/// The names the serving certificate carries: loopback always, plus the bound address.
pub fn serving_names(address: std::net::IpAddr) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if !address.is_unspecified() && !names.contains(&address.to_string()) {
        names.push(address.to_string());
    }
    names.push(crate::config::hostname());
    names
}

/// Load the CA and serving certificate of `dir`, making what is missing.
pub fn load_or_create(dir: &Path, names: &[String]) -> Result<Identity, ApiError> {
    let ca_crt = dir.join("ca.crt");
    let ca_key = dir.join("ca.key");
    let cert_path = dir.join("server.crt");
    let key_path = dir.join("server.key");
    let sans_path = dir.join("server.names");
    let ca_params = ca_params()?;
    let (ca_pem, ca_keypair) = match (
        std::fs::read_to_string(&ca_crt),
        std::fs::read_to_string(&ca_key),
    ) {
        (Ok(pem), Ok(key)) => (pem, KeyPair::from_pem(&key)?),
        _ => {
            let key = KeyPair::generate()?;
            let cert = ca_params.self_signed(&key)?;
            write_private(&ca_key, key.serialize_pem().as_bytes())?;
            write_private(&ca_crt, cert.pem().as_bytes())?;
            // A new CA: any serving certificate left is not its own.
            let _ = std::fs::remove_file(&cert_path);
            (cert.pem(), key)
        }
    };
    let wanted = names.join(",");
    let current = std::fs::read_to_string(&sans_path).unwrap_or_default();
    if current != wanted || !cert_path.exists() || !key_path.exists() {
        let issuer = Issuer::new(ca_params, ca_keypair);
        let mut params = CertificateParams::new(names.to_vec())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "podrun-apiserver");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        write_private(&key_path, key.serialize_pem().as_bytes())?;
        write_private(&cert_path, cert.pem().as_bytes())?;
        write_private(&sans_path, wanted.as_bytes())?;
    }
    Ok(Identity {
        ca_pem,
        cert_path,
        key_path,
    })
}

/// The rustls server configuration of an identity (HTTP/1.1 only: kubectl's requests here
/// need nothing more).
pub fn server_config(id: &Identity) -> Result<Arc<rustls::ServerConfig>, ApiError> {
    let certs = CertificateDer::pem_file_iter(&id.cert_path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ApiError::Tls(format!("{}: {e}", id.cert_path.display())))?;
    let key = PrivateKeyDer::from_pem_file(&id.key_path)
        .map_err(|e| ApiError::Tls(format!("{}: {e}", id.key_path.display())))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ApiError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ApiError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
