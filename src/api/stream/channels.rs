//! The channels of a streaming session (exec, attach), over the protocol the client
//! negotiated: WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`: one byte of channel
//! before each message; v5's `[255, channel]` closes one) or SPDY streams
//! (`v4.channel.k8s.io`: one stream per channel, named by its `streamType` header). A
//! [`Session`] reads what the client sends ([`Input`]), writes what goes back ([`Output`])
//! and returns the `metav1.Status` for the error channel.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::spdy;

/// The work on the channels: given the input and the output, the final status.
pub type Session = Box<
    dyn FnOnce(mpsc::Receiver<Input>, mpsc::Sender<Output>) -> BoxFuture<'static, Value> + Send,
>;

/// Which channels the client asked for (the query's stdin, stdout, stderr, tty).
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// What the client sends.
pub enum Input {
    Stdin(Bytes),
    StdinEnd,
    Resize(crate::sys::tty::WindowSize),
}

/// What goes back.
pub enum Output {
    Stdout(Bytes),
    Stderr(Bytes),
}

/// A resize message: `{"Width":80,"Height":24}` (client-go's `TerminalSize`).
pub fn resize(json: &[u8]) -> Option<Input> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Size {
        width: u16,
        height: u16,
    }
    let s: Size = serde_json::from_slice(json).ok()?;
    Some(Input::Resize(crate::sys::tty::WindowSize {
        ws_row: s.height,
        ws_col: s.width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }))
}

/// WebSocket channel numbers.
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5: `[255, channel]` closes the client's side of a channel.
const CLOSE: u8 = 255;

/// A session over a WebSocket (`v5.channel.k8s.io` or `v4.channel.k8s.io`).
pub async fn over_websocket<S>(ws: WebSocketStream<S>, session: Session)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let (in_tx, in_rx) = mpsc::channel(16);
    let (out_tx, mut out_rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            let event = match message {
                Message::Binary(b) if b.len() >= 2 && b[0] == CLOSE && b[1] == STDIN => {
                    Some(Input::StdinEnd)
                }
                Message::Binary(b) if b.first() == Some(&STDIN) => Some(Input::Stdin(b.slice(1..))),
                Message::Binary(b) if b.first() == Some(&RESIZE) => resize(&b[1..]),
                Message::Close(_) => break,
                _ => None,
            };
            if let Some(event) = event
                && in_tx.send(event).await.is_err()
            {
                break;
            }
        }
        let _ = in_tx.send(Input::StdinEnd).await;
    });
    let exec = tokio::spawn(session(in_rx, out_tx));
    while let Some(out) = out_rx.recv().await {
        let (channel, bytes) = match out {
            Output::Stdout(b) => (STDOUT, b),
            Output::Stderr(b) => (STDERR, b),
        };
        let mut frame = Vec::with_capacity(bytes.len() + 1);
        frame.push(channel);
        frame.extend_from_slice(&bytes);
        if sink.send(Message::Binary(frame.into())).await.is_err() {
            break;
        }
    }
    // A client that left stops the session's writers (their sends fail) before the wait.
    drop(out_rx);
    let status = exec
        .await
        .unwrap_or_else(|e| super::exec::internal_error(&e.to_string()));
    let mut frame = vec![ERROR];
    frame.extend(serde_json::to_vec(&status).unwrap_or_default());
    let _ = sink.send(Message::Binary(frame.into())).await;
    // A normal closure: client-go reads it as the end of every channel (anything else is
    // an error).
    let _ = sink.send(Message::Close(Some(normal_closure()))).await;
    let _ = sink.close().await;
}

pub fn normal_closure() -> tokio_tungstenite::tungstenite::protocol::CloseFrame {
    tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "".into(),
    }
}

/// Exec over SPDY (`v4.channel.k8s.io`): the client opens the error stream, then stdin,
/// stdout, stderr and resize as asked; the command starts once all are there.
pub async fn over_spdy(
    mut streams: mpsc::Receiver<spdy::Stream>,
    params: Wanted,
    session: Session,
) {
    let expected = 1
        + usize::from(params.stdin)
        + usize::from(params.stdout)
        + usize::from(params.stderr)
        + usize::from(params.tty);
    let mut by_type = std::collections::HashMap::new();
    // The kubelet waits 30 s for the streams (its streamCreationTimeout).
    let deadline = tokio::time::sleep(std::time::Duration::from_secs(30));
    tokio::pin!(deadline);
    while by_type.len() < expected {
        tokio::select! {
            _ = &mut deadline => return,
            s = streams.recv() => match s {
                Some(s) => {
                    let kind = s.header("streamtype").unwrap_or_default().to_owned();
                    by_type.insert(kind, s);
                }
                None => return,
            },
        }
    }
    let Some(error) = by_type.remove("error") else {
        return;
    };
    let (in_tx, in_rx) = mpsc::channel(16);
    if let Some(mut stdin) = by_type.remove("stdin") {
        let tx = in_tx.clone();
        tokio::spawn(async move {
            while let Some(b) = stdin.incoming.recv().await {
                if tx.send(Input::Stdin(b)).await.is_err() {
                    return;
                }
            }
            let _ = tx.send(Input::StdinEnd).await;
        });
    }
    if let Some(mut sizes) = by_type.remove("resize") {
        let tx = in_tx.clone();
        tokio::spawn(async move {
            // A stream of JSON objects, one after another.
            let mut pending = Vec::new();
            while let Some(b) = sizes.incoming.recv().await {
                pending.extend_from_slice(&b);
                let mut de = serde_json::Deserializer::from_slice(&pending).into_iter::<Value>();
                let mut used = 0;
                while let Some(Ok(v)) = de.next() {
                    used = de.byte_offset();
                    let raw = serde_json::to_vec(&v).unwrap_or_default();
                    if let Some(event) = resize(&raw)
                        && tx.send(event).await.is_err()
                    {
                        return;
                    }
                }
                pending.drain(..used);
            }
        });
    }
    drop(in_tx);
    let stdout = by_type.remove("stdout");
    let stderr = by_type.remove("stderr");
    let (out_tx, mut out_rx) = mpsc::channel(16);
    let exec = tokio::spawn(session(in_rx, out_tx));
    while let Some(out) = out_rx.recv().await {
        let (stream, bytes) = match out {
            Output::Stdout(b) => (&stdout, b),
            Output::Stderr(b) => (&stderr, b),
        };
        if let Some(s) = stream
            && s.out.write(&bytes).await.is_err()
        {
            break;
        }
    }
    // A client that left stops the session's writers (their sends fail) before the wait.
    drop(out_rx);
    let status = exec
        .await
        .unwrap_or_else(|e| super::exec::internal_error(&e.to_string()));
    for s in [&stdout, &stderr].into_iter().flatten() {
        s.out.finish().await;
    }
    let _ = error
        .out
        .write(&serde_json::to_vec(&status).unwrap_or_default())
        .await;
    error.out.finish().await;
    error.out.close_session().await;
}
