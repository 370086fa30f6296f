//! The streaming subresources, `pods/exec` and `pods/portforward`: an HTTP upgrade to a
//! WebSocket (kubectl 1.30 and later for exec, 1.31 and later for port-forward) or to
//! SPDY/3.1 (older clients, and the fallback every kubectl tries when a WebSocket is
//! refused), negotiated as the kubelet does, then the session on the upgraded connection.

pub mod attach;
pub mod channels;
pub mod exec;
pub mod port_forward;
pub mod spdy;
pub mod websocket;

use std::sync::Arc;

use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::router::{self, Context, Reply};
use crate::state::PodKey;

/// What a streaming path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Exec,
    Attach,
    PortForward,
}

/// The streaming subresource `path` names: namespace, pod and kind.
pub fn target(path: &str) -> Option<(String, String, Kind)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["api", "v1", "namespaces", ns, "pods", name, sub] => {
            let kind = match *sub {
                "exec" => Kind::Exec,
                "attach" => Kind::Attach,
                "portforward" => Kind::PortForward,
                _ => return None,
            };
            Some(((*ns).to_owned(), (*name).to_owned(), kind))
        }
        _ => None,
    }
}

/// The exec protocols over WebSocket, most preferred first.
const EXEC_WEBSOCKET: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];
/// Port-forward's SPDY inside a WebSocket (client-go's tunneling dialer).
const PORT_FORWARD_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";
const EXEC_SPDY: &str = "v4.channel.k8s.io";
const PORT_FORWARD_SPDY: &str = "portforward.k8s.io";

enum Transport {
    WebSocket(String),
    Spdy(String),
}

fn bad_request(text: &str) -> Reply {
    router::status(400, "BadRequest", text, None)
}

/// Pick the protocol from the request's upgrade headers; the refusal to answer if none fits
/// (a refused WebSocket makes kubectl try SPDY).
fn negotiate(headers: &http::HeaderMap, kind: Kind) -> Result<Transport, Reply> {
    let upgrade = headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if upgrade == "websocket" {
        let offered = websocket::offered(headers);
        let ours: &[&str] = match kind {
            Kind::Exec | Kind::Attach => EXEC_WEBSOCKET,
            Kind::PortForward => &[PORT_FORWARD_TUNNEL],
        };
        return ours
            .iter()
            .find(|p| offered.iter().any(|o| o == *p))
            .map(|p| Transport::WebSocket((*p).to_owned()))
            .ok_or_else(|| {
                bad_request(&format!(
                    "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports {ours:?}"
                ))
            });
    }
    if upgrade.starts_with("spdy/3.1") {
        let want = match kind {
            Kind::Exec | Kind::Attach => EXEC_SPDY,
            Kind::PortForward => PORT_FORWARD_SPDY,
        };
        let offered: Vec<&str> = headers
            .get_all("x-stream-protocol-version")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        return if offered.contains(&want) {
            Ok(Transport::Spdy(want.to_owned()))
        } else {
            Err(router::status(
                403,
                "Forbidden",
                &format!(
                    "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports [\"{want}\"]"
                ),
                None,
            ))
        };
    }
    Err(bad_request(
        "Upgrade request required: this resource needs a WebSocket or SPDY/3.1 upgrade",
    ))
}

/// The query's exec (or attach: no command) parameters, checked against the pod.
fn exec_params(
    query: &str,
    record: &crate::state::PodRecord,
    kind: Kind,
) -> Result<exec::Params, Reply> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let flag = |k: &str| pairs.iter().any(|(n, v)| n == k && router::truthy(v));
    let command: Vec<String> = pairs
        .iter()
        .filter(|(n, _)| n == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if command.is_empty() && kind == Kind::Exec {
        return Err(bad_request(
            "you must specify at least one command for the container",
        ));
    }
    let container = pairs
        .iter()
        .find(|(n, _)| n == "container")
        .map(|(_, v)| v.clone())
        .or_else(|| record.containers.first().map(|c| c.name.clone()))
        .unwrap_or_default();
    let Some(c) = record.container(&container) else {
        return Err(bad_request(&format!(
            "container {container} is not valid for pod {}",
            record.plan.name
        )));
    };
    if !c.process.is_some_and(|p| p.is_alive()) {
        return Err(bad_request(&format!(
            "unable to upgrade connection: container not found (\"{container}\")"
        )));
    }
    let params = exec::Params {
        container,
        command,
        stdin: flag("stdin"),
        stdout: flag("stdout"),
        stderr: flag("stderr"),
        tty: flag("tty"),
    };
    if !(params.stdin || params.stdout || params.stderr) {
        return Err(bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    Ok(params)
}

/// Answer an upgrade request for `kind` on pod `ns/name`: the 101 and, once the connection
/// is upgraded, its session; or the Status that refuses it.
pub async fn upgrade(
    ctx: Arc<Context>,
    req: Request<Incoming>,
    (ns, name, kind): (String, String, Kind),
) -> Result<hyper::Response<super::Body>, Reply> {
    use http_body_util::BodyExt;
    let cfg = Arc::new(ctx.cfg.clone());
    let record = crate::pod::read::get(&cfg, &ns, &name).map_err(|_| {
        router::not_found(
            super::discovery::resource("", "pods").expect("pods are served"),
            &name,
        )
    })?;
    let params = match kind {
        Kind::Exec | Kind::Attach => Some(exec_params(
            req.uri().query().unwrap_or_default(),
            &record,
            kind,
        )?),
        Kind::PortForward => None,
    };
    let transport = negotiate(req.headers(), kind)?;
    let response = match &transport {
        Transport::WebSocket(p) => websocket::accept(req.headers(), p),
        Transport::Spdy(p) => hyper::Response::builder()
            .status(101)
            .header(http::header::CONNECTION, "Upgrade")
            .header(http::header::UPGRADE, "SPDY/3.1")
            .header("X-Stream-Protocol-Version", p.as_str()),
    };
    let key = PodKey::new(&ns, &name);
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => TokioIo::new(u),
            Err(e) => {
                tracing::debug!("upgrade of {kind:?} {key}: {e}");
                return;
            }
        };
        let Some(params) = params else {
            let streams = match transport {
                Transport::WebSocket(_) => {
                    spdy::serve(websocket::tunnel(ws_server(upgraded).await))
                }
                Transport::Spdy(_) => spdy::serve(upgraded),
            };
            port_forward::over_spdy(streams, cfg, key).await;
            return;
        };
        let wanted = channels::Wanted {
            stdin: params.stdin,
            stdout: params.stdout,
            stderr: params.stderr,
            tty: params.tty,
        };
        let session: channels::Session = match kind {
            Kind::Attach => {
                let container = params.container.clone();
                Box::new(move |input, output| {
                    Box::pin(attach::run(cfg, record, container, input, output))
                })
            }
            _ => Box::new(move |input, output| {
                Box::pin(exec::run(cfg, record, params, input, output))
            }),
        };
        match transport {
            Transport::WebSocket(_) => {
                channels::over_websocket(ws_server(upgraded).await, session).await
            }
            Transport::Spdy(_) => channels::over_spdy(spdy::serve(upgraded), wanted, session).await,
        }
    });
    Ok(response
        .body(http_body_util::Full::new(bytes::Bytes::new()).boxed())
        .unwrap_or_else(|_| hyper::Response::new(http_body_util::Full::default().boxed())))
}

async fn ws_server<S>(io: S) -> tokio_tungstenite::WebSocketStream<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tokio_tungstenite::WebSocketStream::from_raw_socket(
        io,
        tokio_tungstenite::tungstenite::protocol::Role::Server,
        None,
    )
    .await
}
