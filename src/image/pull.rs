//! Pulling an image over the OCI distribution API (Docker Registry HTTP API v2) with the
//! oci-client crate: the endpoints of the registries config in order (mirrors, then the
//! upstream), credentials from the auth files, the manifest for this host's platform (an index
//! or manifest list is resolved by oci-client's current-platform rule), each blob verified
//! against its digest while it streams (oci-client), then the layers applied in order into the
//! image's root filesystem and the registry's image config kept as the image's.
//!
//! So far the store keeps one flattened root filesystem per image (the layered store is the
//! next step of this work).

use std::path::Path;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;

use super::copy::Tree;
use super::error::{ImageError, Result};
use super::{AuthFiles, Image, ImageStore, Reference, Registries};

/// Layer media types podrun applies (plain and gzip tar; OCI and Docker names).
const LAYER_TYPES: [&str; 5] = [
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

/// What a pull tells as it goes (the kubelet's `Pulling` / `Pulled` lines come from these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent {
    /// Trying this endpoint (`registry/repository`).
    Trying(String),
    /// An endpoint failed; the next is tried.
    Failed { endpoint: String, error: String },
    /// A layer is being fetched: its digest and size.
    Layer { digest: String, size: i64 },
}

/// Pull `reference` into `store`, named by it. Every endpoint is tried in turn; the error names
/// the image and each endpoint's failure.
pub fn pull(
    store: &ImageStore,
    registries: &Registries,
    auth: &AuthFiles,
    reference: &Reference,
    progress: &mut dyn FnMut(PullEvent),
) -> Result<Image> {
    let failed = |message: String| ImageError::Pull {
        image: reference.to_string(),
        message,
    };
    let endpoints = registries
        .endpoints(reference)
        .map_err(|e| failed(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(format!("start the HTTP runtime: {e}")))?;
    let mut errors = Vec::new();
    for endpoint in endpoints {
        let name = format!("{}/{}", endpoint.registry, endpoint.repository);
        progress(PullEvent::Trying(name.clone()));
        let config = client_config(&endpoint)?;
        let client = oci_client::Client::new(config);
        let target = match (&reference.digest, &reference.tag) {
            (Some(digest), _) => oci_client::Reference::with_digest(
                endpoint.registry.clone(),
                endpoint.repository.clone(),
                digest.clone(),
            ),
            (None, tag) => oci_client::Reference::with_tag(
                endpoint.registry.clone(),
                endpoint.repository.clone(),
                tag.clone().unwrap_or_else(|| "latest".into()),
            ),
        };
        let credentials = match auth.lookup(&endpoint.registry, &endpoint.repository) {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        let result = runtime.block_on(fetch(store, &client, &target, &credentials, progress));
        match result.and_then(|(config, fill)| {
            store.add(Some(reference.clone()), "pull", |rootfs| {
                Ok((fill(rootfs)?, config.into_bytes()))
            })
        }) {
            Ok(image) => return Ok(image),
            Err(e) => {
                progress(PullEvent::Failed {
                    endpoint: name.clone(),
                    error: e.to_string(),
                });
                errors.push(format!("{name}: {e}"));
            }
        }
    }
    Err(failed(errors.join("; ")))
}

type Fill = Box<dyn FnOnce(&Path) -> Result<Tree>>;

/// The image config of `target` (for this host's platform), its layers downloaded (each
/// verified against its digest), and how to apply them into a root filesystem.
async fn fetch(
    store: &ImageStore,
    client: &oci_client::Client,
    target: &oci_client::Reference,
    auth: &RegistryAuth,
    progress: &mut dyn FnMut(PullEvent),
) -> Result<(String, Fill)> {
    let (manifest, _digest, config) = client
        .pull_manifest_and_config(target, auth)
        .await
        .map_err(registry_error)?;
    for layer in &manifest.layers {
        if !LAYER_TYPES.contains(&layer.media_type.as_str()) {
            return Err(ImageError::Registry(format!(
                "layer {} has media type {}, which podrun does not unpack",
                layer.digest, layer.media_type
            )));
        }
    }
    let dir = store.work_dir("pull")?;
    let mut files = Vec::new();
    for (i, layer) in manifest.layers.iter().enumerate() {
        progress(PullEvent::Layer {
            digest: layer.digest.clone(),
            size: layer.size,
        });
        let path = dir.path.join(format!("layer{i}"));
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(ImageError::io("cannot create a layer file"))?;
        client
            .pull_blob(target, layer, file)
            .await
            .map_err(registry_error)?;
        files.push(path);
    }
    let fill: Fill = Box::new(move |rootfs: &Path| {
        let _keep = dir;
        std::fs::create_dir(rootfs).map_err(ImageError::io("cannot create the rootfs"))?;
        let mut size = 0;
        let mut digest = String::new();
        for path in &files {
            let file = std::fs::File::open(path).map_err(ImageError::io("cannot open a layer"))?;
            let tree = super::unpack::apply_layer(file, rootfs)?;
            size += tree.size;
            digest = tree.digest;
        }
        Ok(Tree { digest, size })
    });
    Ok((config, fill))
}

fn client_config(endpoint: &super::Endpoint) -> Result<ClientConfig> {
    let mut config = ClientConfig {
        protocol: if endpoint.insecure {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        ..Default::default()
    };
    for ca in &endpoint.ca_files {
        let data = std::fs::read(ca).map_err(ImageError::io(format!(
            "cannot read CA file {}",
            ca.display()
        )))?;
        config
            .extra_root_certificates
            .push(oci_client::client::Certificate {
                encoding: oci_client::client::CertificateEncoding::Pem,
                data,
            });
    }
    Ok(config)
}

/// The registry's answer, with its causes (a refused connection, a TLS failure, ...).
fn registry_error(e: oci_client::errors::OciDistributionError) -> ImageError {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    ImageError::Registry(text)
}
