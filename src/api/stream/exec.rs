//! `pods/exec`: the command runs through [`crate::pod::exec_child`] (a child `podrun exec`:
//! the server stays in its own namespaces); its stdio travel on the channels of the protocol
//! the client negotiated, WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`: one byte of
//! channel before each message) or SPDY streams (`v4.channel.k8s.io`: one stream per
//! channel, named by its `streamType` header). The end is a `metav1.Status` on the error
//! channel, with the exit code as the kubelet reports it.

use std::io::{Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::spdy;
use crate::config::Config;
use crate::pod::exec_child::{self, Running};
use crate::state::PodRecord;

/// The query of an exec request.
#[derive(Debug, Clone)]
pub struct Params {
    pub container: String,
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// What the client sends.
enum Input {
    Stdin(Bytes),
    StdinEnd,
    Resize(crate::sys::tty::WindowSize),
}

/// What goes back.
enum Output {
    Stdout(Bytes),
    Stderr(Bytes),
}

/// A resize message: `{"Width":80,"Height":24}` (client-go's `TerminalSize`).
fn resize(json: &[u8]) -> Option<Input> {
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

fn success() -> Value {
    json!({"metadata": {}, "status": "Success"})
}

/// The kubelet's status for a command that exited non-zero.
fn exit_status(command: &[String], code: i32) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            command.join(" ")
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

fn internal_error(text: &str) -> Value {
    let text = text.trim_end();
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: error executing command in container: {text}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": format!("error executing command in container: {text}")}]},
        "code": 500,
    })
}

/// Run the command, relaying `input` to it and its output to `output`, until it ends; the
/// status for the error channel.
async fn run(
    cfg: Arc<Config>,
    record: PodRecord,
    params: Params,
    input: mpsc::Receiver<Input>,
    output: mpsc::Sender<Output>,
) -> Value {
    let req = exec_child::Request {
        record: &record,
        container: &params.container,
        command: &params.command,
        stdin: params.stdin,
        tty: params.tty,
    };
    let running = match exec_child::start(&cfg, &req).await {
        Ok(r) => r,
        Err(text) => return internal_error(&text),
    };
    let Running {
        mut child,
        terminal,
    } = running;
    let copies = match terminal {
        Some(master) => relay_terminal(master, input, output),
        None => relay_pipes(&mut child, input, output),
    };
    let status = child.wait().await;
    // The output is whole once the pipes (or the pty) reached their end.
    copies.await;
    match status {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            match s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)) {
                0 => success(),
                code => exit_status(&params.command, code),
            }
        }
        Err(e) => internal_error(&format!("wait for podrun exec: {e}")),
    }
}

/// The waits for every copy of a relay.
type Copies = futures_util::future::BoxFuture<'static, ()>;

fn relay_pipes(
    child: &mut tokio::process::Child,
    mut input: mpsc::Receiver<Input>,
    output: mpsc::Sender<Output>,
) -> Copies {
    if let Some(mut stdin) = child.stdin.take() {
        tokio::spawn(async move {
            while let Some(event) = input.recv().await {
                match event {
                    Input::Stdin(b) if stdin.write_all(&b).await.is_err() => break,
                    Input::Stdin(_) | Input::Resize(_) => {}
                    Input::StdinEnd => break,
                }
            }
        });
    }
    fn copy(
        pipe: Option<impl AsyncRead + Unpin + Send + 'static>,
        output: mpsc::Sender<Output>,
        wrap: fn(Bytes) -> Output,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let Some(mut pipe) = pipe else { return };
            let mut buf = vec![0u8; 32 * 1024];
            while let Ok(n @ 1..) = pipe.read(&mut buf).await {
                if output
                    .send(wrap(Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        })
    }
    let out = copy(child.stdout.take(), output.clone(), Output::Stdout);
    let err = copy(child.stderr.take(), output, Output::Stderr);
    Box::pin(async move {
        let _ = out.await;
        let _ = err.await;
    })
}

/// The pty master: its output to stdout (until EIO: every slave is closed), stdin and
/// resizes into it.
fn relay_terminal(
    master: std::fs::File,
    mut input: mpsc::Receiver<Input>,
    output: mpsc::Sender<Output>,
) -> Copies {
    let Ok(mut writer) = master.try_clone() else {
        return Box::pin(async {});
    };
    let (writes_tx, writes_rx) = std::sync::mpsc::channel::<Bytes>();
    let resize_fd = writer.try_clone().ok();
    tokio::spawn(async move {
        while let Some(event) = input.recv().await {
            match event {
                Input::Stdin(b) => {
                    if writes_tx.send(b).is_err() {
                        break;
                    }
                }
                Input::Resize(ws) => {
                    if let Some(fd) = &resize_fd {
                        use std::os::fd::AsFd;
                        let _ = crate::sys::tty::set_window_size(fd.as_fd(), &ws);
                    }
                }
                Input::StdinEnd => {}
            }
        }
    });
    std::thread::spawn(move || {
        while let Ok(b) = writes_rx.recv() {
            if writer.write_all(&b).is_err() {
                break;
            }
        }
    });
    let reader = tokio::task::spawn_blocking(move || {
        let mut master = master;
        let mut buf = vec![0u8; 32 * 1024];
        while let Ok(n @ 1..) = master.read(&mut buf) {
            if output
                .blocking_send(Output::Stdout(Bytes::copy_from_slice(&buf[..n])))
                .is_err()
            {
                break;
            }
        }
    });
    Box::pin(async move {
        let _ = reader.await;
    })
}

/// WebSocket channel numbers.
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5: `[255, channel]` closes the client's side of a channel.
const CLOSE: u8 = 255;

/// Exec over a WebSocket (`v5.channel.k8s.io` or `v4.channel.k8s.io`).
pub async fn over_websocket<S>(
    ws: WebSocketStream<S>,
    cfg: Arc<Config>,
    record: PodRecord,
    params: Params,
) where
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
    let exec = tokio::spawn(run(cfg, record, params, in_rx, out_tx));
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
    let status = exec
        .await
        .unwrap_or_else(|e| internal_error(&e.to_string()));
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
    cfg: Arc<Config>,
    record: PodRecord,
    params: Params,
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
    let exec = tokio::spawn(run(cfg, record, params, in_rx, out_tx));
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
    let status = exec
        .await
        .unwrap_or_else(|e| internal_error(&e.to_string()));
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
