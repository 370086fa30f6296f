//! Pulling an image over the OCI distribution API (Docker Registry HTTP API v2) with the
//! oci-client crate: the endpoints of the registries config in order (mirrors, then the
//! upstream), credentials from the auth files (and a pod's pull secrets), the manifest for this
//! host's platform (an index or manifest list resolved by [`platform`]), then every layer the
//! store does not have yet fetched in parallel and unpacked while it streams (gzip, zstd or
//! plain tar; whiteouts in overlayfs's form), each checked against its digest and size from the
//! manifest and its diff ID from the image config. Nothing reaches the store before all of it
//! is checked: a failed or interrupted pull leaves only work directories in `tmp/`, which go
//! with it (or with the next change, after a crash).
//!
//! One pull of a name at a time ([`ImageStore::pull_lock`]): concurrent applies of pods naming
//! one new image pull it once.

use std::cell::RefCell;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;
use oci_client::RegistryOperation;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;

use super::assemble::{
    LayerWork, check_layer_count, check_layer_type, commit_image, created, diff_ids, platform,
};
use super::error::{CredentialsUsed, ImageError, Result};
use super::store::{NewLayer, Origin};
use super::{AuthFiles, Image, ImageStore, Reference, Registries};

/// Layers fetched at once (containerd's and docker's default is 3).
const PARALLEL_LAYERS: usize = 3;

/// What a pull tells as it goes (the kubelet's `Pulling` / `Pulled` lines come from these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent {
    /// Trying this endpoint (`registry/repository`).
    Trying(String),
    /// An endpoint failed; the next is tried.
    Failed { endpoint: String, error: String },
    /// The manifest is known: the layers to fetch (digest, size) and how many the store has.
    Manifest {
        fetch: Vec<(String, u64)>,
        present: usize,
    },
    /// Bytes of a layer arrived (`done` of its size so far).
    Progress { digest: String, done: u64 },
    /// A layer is fetched, checked and unpacked.
    LayerDone { digest: String },
}

/// Pull `reference` into `store`, named by it (every endpoint in turn; the error names the
/// image and each endpoint's failure), unless the store has it already and `always` is false
/// (the `IfNotPresent` policy: a lookup, no registry round trip). True when it pulled.
pub fn ensure(
    store: &ImageStore,
    registries: &Registries,
    auth: &AuthFiles,
    reference: &Reference,
    always: bool,
    progress: &mut dyn FnMut(PullEvent),
) -> Result<(Image, bool)> {
    let present = |store: &ImageStore| store.resolve(&reference.to_string()).ok();
    if !always && let Some(image) = present(store) {
        return Ok((image, false));
    }
    let _one_at_a_time = store.pull_lock(reference)?;
    // Another process may have pulled it while this one waited for the lock.
    if !always && let Some(image) = present(store) {
        return Ok((image, false));
    }
    let image = pull_unlocked(store, registries, auth, reference, progress)?;
    Ok((image, true))
}

fn pull_unlocked(
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
    // A supervisor forked after this would inherit tokio's signal registry.
    crate::pod::exec_supervisors();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(format!("start the HTTP runtime: {e}")))?;
    let progress = RefCell::new(progress);
    let mut errors = Vec::new();
    for endpoint in endpoints {
        let name = format!("{}/{}", endpoint.registry, endpoint.repository);
        (progress.borrow_mut())(PullEvent::Trying(name.clone()));
        let client = oci_client::Client::new(client_config(&endpoint)?);
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
        let found = auth.find(&endpoint.registry, &endpoint.repository);
        let credentials = match found {
            Some((c, _)) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        let used = match found {
            Some((c, source)) => CredentialsUsed::User {
                username: c.username.clone(),
                source: source.to_owned(),
            },
            None => CredentialsUsed::None {
                registry: endpoint.registry.clone(),
                searched: auth.sources().iter().map(|s| s.to_string()).collect(),
            },
        };
        let from = Endpoint {
            store,
            client: &client,
            target: &target,
            progress: &progress,
        };
        // A layer removed by a concurrent `image rm` between the check and the commit: again.
        let mut result = runtime.block_on(from.fetch(reference, &credentials));
        if matches!(result, Err(ImageError::LayerGone { .. })) {
            result = runtime.block_on(from.fetch(reference, &credentials));
        }
        match result {
            Ok(image) => return Ok(image),
            Err(e) => {
                let text = redact(&explain(e, &endpoint, used).to_string(), found.map(|f| f.0));
                (progress.borrow_mut())(PullEvent::Failed {
                    endpoint: name.clone(),
                    error: text.clone(),
                });
                errors.push(format!("{name}: {text}"));
            }
        }
    }
    Err(failed(errors.join("; ")))
}

/// One registry endpoint being pulled from.
struct Endpoint<'a, 'p> {
    store: &'a ImageStore,
    client: &'a oci_client::Client,
    target: &'a oci_client::Reference,
    progress: &'a RefCell<&'p mut dyn FnMut(PullEvent)>,
}

impl Endpoint<'_, '_> {
    fn tell(&self, event: PullEvent) {
        (self.progress.borrow_mut())(event);
    }

    /// The manifest and config of the image, its missing layers fetched and unpacked, and
    /// the image added to the store.
    async fn fetch(&self, reference: &Reference, auth: &RegistryAuth) -> Result<Image> {
        // Authenticate first, so that a token server refusing the credentials is the error
        // (the manifest request would otherwise go on anonymously and only say 401).
        self.client
            .auth(self.target, auth, RegistryOperation::Pull)
            .await
            .map_err(registry_error)?;
        let (manifest, digest, config, list_digest) = self
            .client
            .pull_manifest_and_config_and_list_digest(self.target, auth)
            .await
            .map_err(registry_error)?;
        for layer in &manifest.layers {
            check_layer_type(&layer.digest, &layer.media_type)?;
        }
        let diff_ids = diff_ids(&config)?;
        check_layer_count(manifest.layers.len(), &diff_ids)?;
        let missing: Vec<(&OciDescriptor, &String)> = manifest
            .layers
            .iter()
            .zip(&diff_ids)
            .filter(|(_, diff_id)| self.store.layer(diff_id).is_none())
            .collect();
        self.tell(PullEvent::Manifest {
            fetch: missing
                .iter()
                .map(|(l, _)| (l.digest.clone(), l.size.max(0) as u64))
                .collect(),
            present: diff_ids.len() - missing.len(),
        });
        let cancel = AtomicBool::new(false);
        // Every fetch runs to its end (a failure makes the others stop early), so no
        // unpacking thread outlives its work directory.
        let fetched: Vec<Result<NewLayer>> = futures_util::stream::iter(
            missing
                .iter()
                .map(|(layer, diff_id)| self.fetch_layer(layer, diff_id, &cancel)),
        )
        .buffered(PARALLEL_LAYERS)
        .collect()
        .await;
        let mut unpacked = std::collections::BTreeMap::new();
        let mut errors = Vec::new();
        for result in fetched {
            match result {
                Ok(layer) => {
                    unpacked.insert(layer.diff_id.clone(), layer);
                }
                Err(e) => errors.push(e),
            }
        }
        // The failure that made the others stop, not their "cancelled".
        if let Some(i) = errors
            .iter()
            .position(|e| !matches!(e, ImageError::Cancelled))
        {
            return Err(errors.swap_remove(i));
        }
        if let Some(e) = errors.pop() {
            return Err(e);
        }
        let manifest_digest = list_digest.unwrap_or(digest);
        let origin = Origin {
            names: vec![reference.clone()],
            repo_digest: Some(format!("{}@{manifest_digest}", reference.repository())),
            created: created(&config),
        };
        commit_image(
            self.store,
            origin,
            config.as_bytes(),
            &diff_ids,
            &mut unpacked,
        )
    }

    /// Layer `layer`: streamed from the registry into an unpacking thread, its digest and size
    /// checked as it streams (oci-client's verifying stream, and the byte count here), its
    /// uncompressed content against `diff_id`.
    async fn fetch_layer(
        &self,
        layer: &OciDescriptor,
        diff_id: &str,
        cancel: &AtomicBool,
    ) -> Result<NewLayer> {
        let result = self.stream_layer(layer, diff_id, cancel).await;
        if result.is_err() {
            cancel.store(true, Ordering::Relaxed);
        }
        result
    }

    async fn stream_layer(
        &self,
        layer: &OciDescriptor,
        diff_id: &str,
        cancel: &AtomicBool,
    ) -> Result<NewLayer> {
        if cancel.load(Ordering::Relaxed) {
            return Err(ImageError::Cancelled);
        }
        let work = LayerWork::new(self.store)?;
        let mut stream = self
            .client
            .pull_blob_stream(self.target, layer)
            .await
            .map_err(|e| layer_error(layer, registry_error(e)))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<bytes::Bytes>>(64);
        let into = work.dir.clone();
        let unpacking = tokio::task::spawn_blocking(move || {
            super::unpack::unpack_layer(ChannelReader::new(rx), &into)
        });
        let mut done = 0u64;
        let mut failure: Option<ImageError> = None;
        while let Some(chunk) = stream.next().await {
            if cancel.load(Ordering::Relaxed) {
                failure = Some(ImageError::Cancelled);
                break;
            }
            match chunk {
                Ok(bytes) => {
                    done += bytes.len() as u64;
                    self.tell(PullEvent::Progress {
                        digest: layer.digest.clone(),
                        done,
                    });
                    if tx.send(Ok(bytes)).await.is_err() {
                        break; // the unpacker stopped: its error says why
                    }
                }
                Err(e) => {
                    let text = e.to_string();
                    let _ = tx.send(Err(io::Error::other(text.clone()))).await;
                    failure = Some(layer_error(layer, ImageError::Registry(text)));
                    break;
                }
            }
        }
        drop(tx);
        let unpacked = unpacking.await.map_err(|e| ImageError::Io {
            context: format!("unpacking layer {}", layer.digest),
            source: io::Error::other(e.to_string()),
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        let unpacked = unpacked.map_err(|e| layer_error(layer, e))?;
        if layer.size >= 0 && done != layer.size as u64 {
            return Err(layer_error(
                layer,
                ImageError::Registry(format!(
                    "the registry sent {done} bytes, the manifest says {}",
                    layer.size
                )),
            ));
        }
        let new = work
            .finish(unpacked, diff_id)
            .map_err(|e| layer_error(layer, e))?;
        self.tell(PullEvent::LayerDone {
            digest: layer.digest.clone(),
        });
        Ok(new)
    }
}

/// `layer sha256:...: <what went wrong>`.
fn layer_error(layer: &OciDescriptor, e: ImageError) -> ImageError {
    ImageError::Registry(format!("layer {}: {e}", layer.digest))
}

/// A blocking reader over the chunks the download sends (the unpacker's side).
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<bytes::Bytes>>,
    chunk: bytes::Bytes,
}

impl ChannelReader {
    fn new(rx: tokio::sync::mpsc::Receiver<io::Result<bytes::Bytes>>) -> Self {
        ChannelReader {
            rx,
            chunk: bytes::Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(chunk) => self.chunk = chunk?,
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

fn client_config(endpoint: &super::Endpoint) -> Result<ClientConfig> {
    let mut config = ClientConfig {
        protocol: if endpoint.insecure {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        platform_resolver: Some(Box::new(platform)),
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

/// The registry's answer, with its causes (a refused connection, a TLS failure, ...): a 401
/// (or a token server's refusal) is [`ImageError::Unauthorized`], a certificate the client
/// does not trust [`ImageError::Tls`].
fn registry_error(e: oci_client::errors::OciDistributionError) -> ImageError {
    use oci_client::errors::OciDistributionError as E;
    match &e {
        E::UnsupportedSchemaVersionError(1) => {
            return ImageError::Registry(
                "the manifest is Docker schema 1 (application/vnd.docker.distribution.manifest.v1+prettyjws), which podrun does not pull: push the image again with a current client".into(),
            );
        }
        E::UnauthorizedError { url } => {
            return ImageError::Unauthorized {
                detail: format!("authentication required (401 for {url})"),
                credentials: None,
            };
        }
        E::AuthenticationFailure(answer) => {
            return ImageError::Unauthorized {
                detail: format!("the token server refused: {}", short(answer)),
                credentials: None,
            };
        }
        E::RegistryError { envelope, .. }
            if envelope
                .errors
                .iter()
                .any(|e| e.code == oci_client::errors::OciErrorCode::Unauthorized) =>
        {
            let said: Vec<String> = envelope.errors.iter().map(|e| e.message.clone()).collect();
            return ImageError::Unauthorized {
                detail: short(&said.join("; ")),
                credentials: None,
            };
        }
        _ => {}
    }
    let mut text = e.to_string();
    let mut untrusted = false;
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let more = c.to_string();
        // rustls's words for a certificate chain it cannot verify (unknown issuer, expired,
        // not valid for the name, ...).
        untrusted |= more.contains("invalid peer certificate");
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    if untrusted {
        return ImageError::Tls {
            detail: text,
            certs_dir: None,
        };
    }
    ImageError::Registry(text)
}

/// A server's message on one line, at most 300 characters.
fn short(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(300) {
        Some((end, _)) => format!("{}...", &line[..end]),
        None => line,
    }
}

/// An endpoint's failure with what only the endpoint knows: the credentials sent (for an
/// unauthorized), the directory of its CA certificates (for an untrusted certificate).
fn explain(e: ImageError, endpoint: &super::Endpoint, used: CredentialsUsed) -> ImageError {
    match e {
        ImageError::Unauthorized { detail, .. } => ImageError::Unauthorized {
            detail,
            credentials: Some(used),
        },
        ImageError::Tls { detail, .. } => ImageError::Tls {
            detail,
            certs_dir: Some(endpoint.certs_dir.clone()),
        },
        e => e,
    }
}

/// `text` without `credentials`' password or their base64 `user:password` form, should a
/// server have echoed them into a message.
fn redact(text: &str, credentials: Option<&super::Credentials>) -> String {
    use base64::Engine;
    let Some(c) = credentials else {
        return text.to_owned();
    };
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password));
    let mut text = text.replace(&encoded, "<redacted>");
    // A password of one or two characters would blank out ordinary letters of the message.
    if c.password.len() >= 3 {
        text = text.replace(&c.password, "<redacted>");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unauthorized_names_the_credentials_sent_and_never_their_secret() {
        let e = ImageError::Unauthorized {
            detail: "authentication required".into(),
            credentials: Some(CredentialsUsed::User {
                username: "alice".into(),
                source: "secret default/regcred".into(),
            }),
        };
        assert_eq!(
            e.to_string(),
            "unauthorized: authentication required; sent the credentials of user \"alice\" from secret default/regcred"
        );
        let none = CredentialsUsed::None {
            registry: "r.example:5000".into(),
            searched: vec!["/run/containers/0/auth.json".into()],
        };
        assert_eq!(
            none.to_string(),
            "no credentials for r.example:5000 in /run/containers/0/auth.json"
        );
        let c = super::super::Credentials {
            username: "alice".into(),
            password: "hunter2".into(),
        };
        let echoed = format!(
            "bad: hunter2 / Basic {}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "alice:hunter2")
        );
        assert_eq!(
            redact(&echoed, Some(&c)),
            "bad: <redacted> / Basic <redacted>"
        );
        assert_eq!(short(&format!("a\n  b{}", "x".repeat(400))).len(), 303);
    }

    #[test]
    fn the_channel_reader_hands_over_chunks_and_errors() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.try_send(Ok(bytes::Bytes::from_static(b"abc"))).unwrap();
        tx.try_send(Ok(bytes::Bytes::from_static(b"de"))).unwrap();
        tx.try_send(Err(io::Error::other("digest"))).unwrap();
        drop(tx);
        let mut r = ChannelReader::new(rx);
        let mut buf = [0u8; 2];
        assert_eq!(r.read(&mut buf).unwrap(), 2);
        assert_eq!(&buf, b"ab");
        let mut rest = Vec::new();
        let e = r.read_to_end(&mut rest).unwrap_err();
        assert_eq!(rest, b"cde");
        assert_eq!(e.to_string(), "digest");
    }
}
