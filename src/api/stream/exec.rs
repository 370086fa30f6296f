//! `pods/exec`: the command runs through [`crate::pod::exec_child`] (a child `podrun exec`:
//! the server stays in its own namespaces); its stdio travel on the [`super::channels`] of
//! the protocol the client negotiated. The end is a `metav1.Status` on the error channel,
//! with the exit code as the kubelet reports it.

use std::io::{Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::channels::{Input, Output};
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

pub fn success() -> Value {
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

pub fn internal_error(text: &str) -> Value {
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
pub async fn run(
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
