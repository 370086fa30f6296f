//! `podrun serve`: the node as a Kubernetes API endpoint, so the real kubectl reads its pods,
//! workloads, namespaces and the node itself.
//!
//! HTTPS (hyper's http1 server over tokio-rustls) on loopback by default, a CA and serving
//! certificate made on first start (`tls`), a bearer token (`auth`) and the kubeconfig that
//! carries both (`kubeconfig`), all under `<state root>/api/`. Requests go through `router`
//! (discovery, resources, selectors, server-side Tables) on the blocking pool; everything
//! they show comes from the pod library, as the CLI's verbs show it. The server holds no
//! state of its own: it can stop and start again while pods run.

pub mod auth;
pub mod config;
pub mod discovery;
pub mod kubeconfig;
pub mod logs;
pub mod metrics;
pub mod openapi;
pub mod paging;
pub mod patch;
pub mod protobuf;
pub mod router;
pub mod stream;
pub mod table;
pub mod tls;
pub mod watch;
pub mod write;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::signal::unix::{SignalKind, signal};

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("tls: {0}")]
    Tls(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn io(context: impl AsRef<Path>, source: std::io::Error) -> Self {
        ApiError::Io {
            context: context.as_ref().display().to_string(),
            source,
        }
    }
}

/// Write `bytes` to `path` with mode 0600 (through a temporary file renamed into place).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ApiError> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| ApiError::io(&tmp, e))?;
    std::io::Write::write_all(&mut f, bytes).map_err(|e| ApiError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ApiError::io(path, e))
}

/// How `podrun serve` was asked to run.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub address: IpAddr,
    pub port: u16,
    /// Where the kubeconfig goes (default `<state root>/api/kubeconfig`).
    pub kubeconfig: Option<PathBuf>,
}

/// The API directory of a state root.
pub fn api_dir(cfg: &Config) -> PathBuf {
    cfg.root.join("api")
}

/// Serve until SIGTERM or SIGINT.
pub fn serve(cfg: Config, opts: ServeOptions) -> Result<(), ApiError> {
    let dir = api_dir(&cfg);
    std::fs::create_dir_all(&dir).map_err(|e| ApiError::io(&dir, e))?;
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .map_err(|e| ApiError::io(&dir, e))?;
    let id = tls::load_or_create(&dir, &tls::serving_names(opts.address))?;
    let token = auth::load_or_create(&dir)?;
    let tls_config = tls::server_config(&id)?;
    // A long-running process with tokio's signal registry: it execs the supervisors of
    // the pods it creates.
    crate::pod::exec_supervisors();
    // Memory (issue 22's target: under 20 MiB with 250 pods): requests run on a small
    // blocking pool sharing two malloc arenas.
    crate::sys::limit_malloc_arenas(2);
    // Every list re-reads the pod records: parse each only when its file changed.
    crate::state::record_cache::enable();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(16)
        .build()
        .map_err(|e| ApiError::io("tokio runtime", e))?;
    runtime.block_on(run(cfg, opts, id, token, tls_config))
}

async fn run(
    cfg: Config,
    opts: ServeOptions,
    id: tls::Identity,
    token: String,
    tls_config: Arc<rustls::ServerConfig>,
) -> Result<(), ApiError> {
    let bind = SocketAddr::new(opts.address, opts.port);
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| ApiError::io(format!("listen on {bind}"), e))?;
    let local = listener
        .local_addr()
        .map_err(|e| ApiError::io("listener", e))?;
    let host = if opts.address.is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        opts.address
    };
    let reach = SocketAddr::new(host, local.port()).to_string();
    let server = format!("https://{reach}");
    let kubeconfig = opts
        .kubeconfig
        .clone()
        .unwrap_or_else(|| api_dir(&cfg).join("kubeconfig"));
    kubeconfig::write(&kubeconfig, &server, &id.ca_pem, &token)?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| ApiError::io("SIGTERM", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| ApiError::io("SIGINT", e))?;
    // Whoever started the server may have stopped reading its output: no panic on EPIPE.
    let mut out = std::io::stdout();
    let _ = std::io::Write::write_all(
        &mut out,
        format!(
            "serving {server}\nexport KUBECONFIG={}\n",
            kubeconfig.display()
        )
        .as_bytes(),
    );
    let _ = std::io::Write::flush(&mut out);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls_config);
    let ctx = Arc::new(router::Context {
        cfg,
        address: reach,
    });
    let token: Arc<str> = token.into();
    loop {
        let (stream, peer) = tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let ctx = ctx.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(stream).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!("tls handshake with {peer}: {e}");
                    return;
                }
            };
            let service =
                hyper::service::service_fn(move |req| handle(ctx.clone(), token.clone(), req));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades()
                .await
            {
                tracing::debug!("connection from {peer}: {e}");
            }
        });
    }
    Ok(())
}

async fn handle(
    ctx: Arc<router::Context>,
    token: Arc<str>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let authorization = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let reply = if !auth::authorized(authorization, &token) {
        router::status(401, "Unauthorized", "Unauthorized", None)
    } else if let Some(target) = stream::target(req.uri().path())
        .filter(|_| req.headers().contains_key(http::header::UPGRADE))
    {
        return Ok(match stream::upgrade(ctx, req, target).await {
            Ok(response) => response,
            Err(reply) => respond(reply),
        });
    } else {
        let header = |name: http::header::HeaderName| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let accept = header(http::header::ACCEPT);
        let content_type = header(http::header::CONTENT_TYPE);
        let started = std::time::Instant::now();
        let (parts, body) = req.into_parts();
        let body =
            match http_body_util::BodyExt::collect(http_body_util::Limited::new(body, 1 << 20))
                .await
            {
                Ok(b) => b.to_bytes(),
                Err(e) => {
                    return Ok(respond(router::status(
                        400,
                        "BadRequest",
                        &format!("request body: {e}"),
                        None,
                    )));
                }
            };
        let (body, content_type) = if protobuf::is_protobuf(&content_type) {
            match protobuf::to_json(&body) {
                Ok(json) => (Bytes::from(json), "application/json".to_owned()),
                Err(text) => {
                    return Ok(respond(router::status(
                        415,
                        "UnsupportedMediaType",
                        &text,
                        None,
                    )));
                }
            }
        } else {
            (body, content_type)
        };
        let uri = parts.uri.clone();
        let method = parts.method.clone();
        let reply = tokio::task::spawn_blocking(move || {
            let call = router::Call {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                query: parts.uri.query().unwrap_or_default(),
                accept: &accept,
                content_type: &content_type,
                body: &body,
            };
            let reply = router::route(&ctx, &call);
            // A list's objects (megabytes with hundreds of pods) were freed: hand the
            // pages back rather than keep the peak resident.
            crate::sys::release_free_memory();
            reply
        })
        .await
        .unwrap_or_else(|e| router::status(500, "InternalError", &e.to_string(), None));
        tracing::debug!(
            "{method} {uri} -> {} in {:?}",
            reply.status,
            started.elapsed()
        );
        reply
    };
    Ok(respond(reply))
}

/// A response body: whole, or streamed from a channel (a watch).
pub type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A body of the chunks a channel carries, ended when its sender goes.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

fn respond(reply: router::Reply) -> Response<Body> {
    use http_body_util::BodyExt;
    if let Some(stream) = reply.stream {
        return Response::builder()
            .status(200)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(ChannelBody(stream).boxed())
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()));
    }
    let (content_type, body) = match reply.raw {
        Some((content_type, bytes)) => (content_type, bytes),
        None => (
            "application/json",
            serde_json::to_vec(&reply.body).unwrap_or_default(),
        ),
    };
    let mut response = Response::builder()
        .status(reply.status)
        .header(http::header::CONTENT_TYPE, content_type);
    for warning in &reply.warnings {
        // The API server's form: code 299, agent "-", the text quoted.
        let text = format!("299 - \"{}\"", warning.replace('"', "\\\""));
        response = response.header(http::header::WARNING, text);
    }
    response
        .body(Full::new(Bytes::from(body)).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}
