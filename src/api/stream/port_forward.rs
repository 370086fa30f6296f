//! `pods/portforward` over SPDY (`portforward.k8s.io`; over a WebSocket tunnel for kubectl
//! 1.31 and later, the same SPDY inside binary messages): the client opens a pair of streams
//! per connection, `error` and `data`, with the same `requestID` and the pod's `port`. Each
//! pair becomes a TCP connection to that port on the pod's loopback
//! ([`crate::pod::port_forward`]), copied both ways; a failure is written on the error
//! stream in the kubelet's words.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::spdy::Stream;
use crate::config::Config;
use crate::state::PodKey;

/// Serve the session's stream pairs until the client ends it.
pub async fn over_spdy(mut streams: mpsc::Receiver<Stream>, cfg: Arc<Config>, key: PodKey) {
    let mut pending: HashMap<String, (Option<Stream>, Option<Stream>)> = HashMap::new();
    while let Some(s) = streams.recv().await {
        let request = s.header("requestid").unwrap_or_default().to_owned();
        let slot = pending.entry(request.clone()).or_default();
        match s.header("streamtype") {
            Some("error") => slot.0 = Some(s),
            Some("data") => slot.1 = Some(s),
            _ => {
                s.out.reset().await;
                continue;
            }
        }
        if let (Some(_), Some(_)) = slot
            && let Some((Some(error), Some(data))) = pending.remove(&request)
        {
            tokio::spawn(forward(cfg.clone(), key.clone(), error, data));
        }
    }
}

async fn forward(cfg: Arc<Config>, key: PodKey, error: Stream, mut data: Stream) {
    let port_text = data.header("port").unwrap_or_default().to_owned();
    let connected = match port_text.parse::<u16>() {
        Ok(port) if port > 0 => {
            let record = crate::pod::read::get(&cfg, &key.namespace, &key.name);
            tokio::task::spawn_blocking(move || {
                let r = record.map_err(|e| e.to_string())?;
                let uid = r.plan.uid.clone();
                crate::pod::port_forward::connect(&r, port).map_err(|e| {
                    format!(
                        "error forwarding port {port} to pod {}, uid {uid}: {e}",
                        key.name
                    )
                })
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
        }
        _ => Err(format!("unable to parse '{port_text}' as a port")),
    };
    let tcp = match connected.and_then(|s| {
        s.set_nonblocking(true)
            .and_then(|()| tokio::net::TcpStream::from_std(s))
            .map_err(|e| e.to_string())
    }) {
        Ok(t) => t,
        Err(text) => {
            let _ = error.out.write(text.as_bytes()).await;
            error.out.finish().await;
            data.out.finish().await;
            return;
        }
    };
    let (mut from_pod, mut to_pod) = tcp.into_split();
    // Client to pod; its FIN half-closes the connection.
    tokio::spawn(async move {
        while let Some(b) = data.incoming.recv().await {
            if to_pod.write_all(&b).await.is_err() {
                return;
            }
        }
        let _ = to_pod.shutdown().await;
    });
    let mut buf = vec![0u8; 32 * 1024];
    while let Ok(n @ 1..) = from_pod.read(&mut buf).await {
        if data.out.write(&buf[..n]).await.is_err() {
            break;
        }
    }
    data.out.finish().await;
    error.out.finish().await;
}
