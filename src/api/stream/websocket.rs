//! The WebSocket side of an upgrade: the 101 answer (RFC 6455's accept key, the chosen
//! subprotocol) and the tunnel that carries a byte stream in binary messages (client-go's
//! `TunnelingConnection`, port-forward's SPDY for kubectl 1.31 and later).

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// The subprotocols a client offers (`Sec-WebSocket-Protocol`, comma-separated, maybe in
/// several headers).
pub fn offered(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The 101 response accepting the WebSocket with `protocol`.
pub fn accept(headers: &http::HeaderMap, protocol: &str) -> http::response::Builder {
    let key = headers
        .get(http::header::SEC_WEBSOCKET_KEY)
        .map(|k| k.as_bytes())
        .unwrap_or_default();
    http::Response::builder()
        .status(101)
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "websocket")
        .header(
            http::header::SEC_WEBSOCKET_ACCEPT,
            tokio_tungstenite::tungstenite::handshake::derive_accept_key(key),
        )
        .header(http::header::SEC_WEBSOCKET_PROTOCOL, protocol)
}

/// A byte stream whose bytes travel as the WebSocket's binary messages, both ways.
pub fn tunnel<S>(ws: WebSocketStream<S>) -> DuplexStream
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (mut read, mut write) = tokio::io::split(theirs);
    let (mut sink, mut stream) = ws.split();
    tokio::spawn(async move {
        while let Some(Ok(m)) = stream.next().await {
            match m {
                Message::Binary(b) if write.write_all(&b).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = write.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        while let Ok(n @ 1..) = read.read(&mut buf).await {
            if sink
                .send(Message::Binary(buf[..n].to_vec().into()))
                .await
                .is_err()
            {
                return;
            }
        }
        let _ = sink
            .send(Message::Close(Some(super::channels::normal_closure())))
            .await;
        let _ = sink.close().await;
    });
    ours
}
