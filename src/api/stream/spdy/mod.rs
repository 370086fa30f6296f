//! A server's SPDY/3.1 session over an upgraded connection (or a WebSocket tunnel): the
//! client opens streams (SYN_STREAM with the Kubernetes `streamType` headers), each gets its
//! SYN_REPLY at once and is handed to the caller as a [`Stream`]: its headers, the bytes the
//! client sends on it (ending at the client's FIN or reset), and a writer. One task reads
//! frames, one writes them, in order, from every stream's writer.

pub mod frame;

use std::collections::HashMap;
use std::io;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use frame::{FLAG_FIN, Frame, MAX_DATA, RST_CANCEL, Reader, Writer};

/// A stream the client opened.
pub struct Stream {
    pub headers: Vec<(String, String)>,
    /// What the client sends on it; closed at its FIN, its reset or the connection's end.
    pub incoming: mpsc::Receiver<Bytes>,
    pub out: StreamWriter,
}

impl Stream {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

enum Out {
    Reply(u32),
    Data {
        id: u32,
        fin: bool,
        data: Bytes,
    },
    Reset(u32),
    Ping(u32),
    /// GOAWAY, then the connection's write side is shut.
    Close,
}

/// Writes on one stream (and can end the session).
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    tx: mpsc::Sender<Out>,
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "spdy: the connection is gone")
}

impl StreamWriter {
    pub async fn write(&self, data: &[u8]) -> io::Result<()> {
        for chunk in data.chunks(MAX_DATA) {
            self.tx
                .send(Out::Data {
                    id: self.id,
                    fin: false,
                    data: Bytes::copy_from_slice(chunk),
                })
                .await
                .map_err(|_| gone())?;
        }
        Ok(())
    }

    /// Our half of the stream ends (FIN).
    pub async fn finish(&self) {
        let _ = self
            .tx
            .send(Out::Data {
                id: self.id,
                fin: true,
                data: Bytes::new(),
            })
            .await;
    }

    pub async fn reset(&self) {
        let _ = self.tx.send(Out::Reset(self.id)).await;
    }

    /// End the whole session: GOAWAY after everything queued, then the write side shuts.
    pub async fn close_session(&self) {
        let _ = self.tx.send(Out::Close).await;
    }
}

/// Serve a session on `io`: the streams the client opens, until the connection ends.
pub fn serve<IO>(io: IO) -> mpsc::Receiver<Stream>
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    let (out_tx, out_rx) = mpsc::channel(64);
    let (streams_tx, streams_rx) = mpsc::channel(16);
    tokio::spawn(write_frames(write, out_rx));
    tokio::spawn(async move {
        if let Err(e) = read_frames(read, out_tx, streams_tx).await {
            tracing::debug!("spdy session: {e}");
        }
    });
    streams_rx
}

async fn read_frames(
    mut read: impl AsyncRead + Unpin,
    out: mpsc::Sender<Out>,
    streams: mpsc::Sender<Stream>,
) -> io::Result<()> {
    let mut reader = Reader::default();
    let mut open: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    loop {
        while let Some(frame) = reader.next_frame()? {
            match frame {
                Frame::SynStream { id, flags, headers } => {
                    out.send(Out::Reply(id)).await.map_err(|_| gone())?;
                    let (tx, rx) = mpsc::channel(64);
                    if flags & FLAG_FIN == 0 {
                        open.insert(id, tx);
                    }
                    let stream = Stream {
                        headers,
                        incoming: rx,
                        out: StreamWriter {
                            id,
                            tx: out.clone(),
                        },
                    };
                    if streams.send(stream).await.is_err() {
                        // Nobody takes streams any more: refuse it.
                        let _ = out.send(Out::Reset(id)).await;
                    }
                }
                Frame::Data { id, flags, data } => {
                    if let Some(tx) = open.get(&id)
                        && !data.is_empty()
                        && tx.send(data).await.is_err()
                    {
                        open.remove(&id);
                    }
                    if flags & FLAG_FIN != 0 {
                        open.remove(&id);
                    }
                }
                Frame::RstStream { id } => {
                    open.remove(&id);
                }
                Frame::Ping { id } => {
                    let _ = out.send(Out::Ping(id)).await;
                }
                Frame::GoAway => return Ok(()),
                Frame::Ignored => {}
            }
        }
        let buf = reader.buffer();
        buf.reserve(16 * 1024);
        if read.read_buf(buf).await? == 0 {
            return Ok(());
        }
    }
}

async fn write_frames(mut write: impl AsyncWrite + Unpin, mut rx: mpsc::Receiver<Out>) {
    let mut writer = Writer::default();
    let mut buf = BytesMut::with_capacity(MAX_DATA + 64);
    let mut last_id = 0;
    while let Some(first) = rx.recv().await {
        // Everything queued goes out in one write.
        let mut next = Some(first);
        let mut close = false;
        while let Some(out) = next.take() {
            match out {
                Out::Reply(id) => {
                    last_id = last_id.max(id);
                    if writer.syn_reply(&mut buf, id, 0).is_err() {
                        return;
                    }
                }
                Out::Data { id, fin, data } => {
                    Writer::data(&mut buf, id, if fin { FLAG_FIN } else { 0 }, &data)
                }
                Out::Reset(id) => Writer::rst_stream(&mut buf, id, RST_CANCEL),
                Out::Ping(id) => Writer::ping(&mut buf, id),
                Out::Close => {
                    Writer::go_away(&mut buf, last_id);
                    close = true;
                    break;
                }
            }
            if buf.len() < 64 * 1024 {
                next = rx.try_recv().ok();
            }
        }
        if write.write_all(&buf).await.is_err() || write.flush().await.is_err() {
            return;
        }
        buf.clear();
        if close {
            let _ = write.shutdown().await;
            return;
        }
    }
}
