//! A plain-http GET without hyper for the usual response, hyper for any other.
//!
//! The request is the bytes hyper's http1 client writes for it (request line, the headers in
//! the map's order without `transfer-encoding`, an empty line), written in one `write` on the
//! socket as it comes out of the connect. A response of the usual shape (`HTTP/1.x`, a status
//! 200-599, plain headers, a single `content-length` or none) is read here to the end of its
//! body or [`MAX_OUTPUT`] of it, and the connection closed. Anything else (another framing, a
//! 1xx, an odd byte in the head, an end or a read error before the body is complete) goes to
//! hyper as it was: the bytes read so far are replayed to it, and the request it writes again
//! is taken as already sent, so hyper sees the connection as if it had had it from the start
//! and says what it would have said.

use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use http::header::{self, HeaderMap};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::{GetError, MAX_OUTPUT};
use crate::probe::check::Connected;

/// A longer request goes to hyper whole (one `write` of a fresh socket takes this much).
const REQUEST_MAX: usize = 4096;
/// A longer response head goes to hyper.
const HEAD_MAX: usize = 4096;
/// hyper's limit of response headers (more go to hyper, which refuses them).
const HEADERS_MAX: usize = 100;
/// The response buffer: a whole head and [`MAX_OUTPUT`] of body fit.
const BUFFER: usize = HEAD_MAX + MAX_OUTPUT + 2048;

pub(super) async fn exchange(
    conn: Connected,
    path: &str,
    headers: HeaderMap,
    deadline: Instant,
) -> Result<u16, GetError> {
    let request = request_bytes(path, &headers)?;
    let (stream, written) = match conn {
        Connected::Now(std) => {
            let written = if request.len() <= REQUEST_MAX {
                (&std).write(&request).unwrap_or(0)
            } else {
                0
            };
            let stream = tokio::net::TcpStream::from_std(std).map_err(GetError::Tls)?;
            (stream, written)
        }
        Connected::Registered(stream) => {
            let written = if request.len() <= REQUEST_MAX {
                stream.try_write(&request).unwrap_or(0)
            } else {
                0
            };
            (stream, written)
        }
    };
    if written < request.len() {
        // Nothing or part of it went (or it is long): hyper writes it (what is already
        // sent taken as written).
        if written == 0 {
            let _ = stream.set_nodelay(true);
        }
        let replay = Replay::new(stream, Vec::new(), None, request, written);
        return super::exchange(replay, path, headers, deadline).await;
    }
    let head_seen = AtomicBool::new(false);
    let mut stream = stream;
    let mut buf = [MaybeUninit::<u8>::uninit(); BUFFER];
    let mut buf = ReadBuf::uninit(&mut buf);
    let read = tokio::time::timeout_at(deadline, read_response(&mut stream, &mut buf, &head_seen));
    let read = match read.await {
        Ok(read) => read,
        Err(_) if head_seen.load(Ordering::Relaxed) => return Err(GetError::ReadingBody),
        Err(_) => return Err(GetError::AwaitingHeaders),
    };
    match read {
        Read::Done(status) => Ok(status),
        Read::Other(error) => {
            let seen = buf.filled().to_vec();
            let replay = Replay::new(stream, seen, error, request, written);
            super::exchange(replay, path, headers, deadline).await
        }
    }
}

/// The request as hyper's client encodes a GET without a body.
fn request_bytes(path: &str, headers: &HeaderMap) -> Result<Vec<u8>, GetError> {
    // What `http::Request::get(path)` checks, with its error.
    let uri: http::Uri = path.parse().map_err(|e: http::uri::InvalidUri| {
        GetError::InvalidHeader(http::Error::from(e).to_string())
    })?;
    // hyper removes it from a request without a body (the map's last entry takes its place).
    let without_te;
    let headers = if headers.contains_key(header::TRANSFER_ENCODING) {
        let mut h = headers.clone();
        h.remove(header::TRANSFER_ENCODING);
        without_te = h;
        &without_te
    } else {
        headers
    };
    let mut out = Vec::with_capacity(128);
    let _ = write!(out, "GET {uri} HTTP/1.1\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

/// How reading a response ended.
enum Read {
    /// The usual response, read: its status.
    Done(u16),
    /// For hyper, with the read error met, if any.
    Other(Option<io::Error>),
}

async fn read_response(
    stream: &mut tokio::net::TcpStream,
    buf: &mut ReadBuf<'_>,
    head_seen: &AtomicBool,
) -> Read {
    let (status, length, head_len) = loop {
        match read_some(stream, buf).await {
            Ok(0) => return Read::Other(None),
            Ok(_) => {}
            Err(e) => return Read::Other(Some(e)),
        }
        match parse_head(buf.filled()) {
            Head::Incomplete => continue,
            Head::Other => return Read::Other(None),
            Head::Usual {
                status,
                length,
                len,
            } => break (status, length, len),
        }
    };
    head_seen.store(true, Ordering::Relaxed);
    // hyper's read: to the end of a sized body, or MAX_OUTPUT of it, or of one to the end.
    let wanted = match length {
        Some(n) => n.min(MAX_OUTPUT as u64) as usize,
        None => MAX_OUTPUT,
    };
    while buf.filled().len() - head_len < wanted {
        match read_some(stream, buf).await {
            Ok(0) if length.is_none() => break,
            Ok(0) => return Read::Other(None),
            Ok(_) => {}
            Err(e) => return Read::Other(Some(e)),
        }
    }
    Read::Done(status)
}

async fn read_some(stream: &mut tokio::net::TcpStream, buf: &mut ReadBuf<'_>) -> io::Result<usize> {
    let before = buf.filled().len();
    if buf.remaining() == 0 {
        // Cannot happen: a head and MAX_OUTPUT of body fit.
        return Err(io::Error::other("response buffer full"));
    }
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_read(cx, buf)).await?;
    Ok(buf.filled().len() - before)
}

#[derive(Debug, PartialEq, Eq)]
enum Head {
    Incomplete,
    /// Not the usual shape: for hyper.
    Other,
    /// Status, body length (None: to the end), head length.
    Usual {
        status: u16,
        length: Option<u64>,
        len: usize,
    },
}

fn parse_head(buf: &[u8]) -> Head {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        let bare_lf = buf
            .iter()
            .enumerate()
            .any(|(i, &b)| b == b'\n' && (i == 0 || buf[i - 1] != b'\r'));
        if bare_lf || buf.len() >= HEAD_MAX || !b"HTTP/1.".starts_with(&buf[..buf.len().min(7)]) {
            return Head::Other;
        }
        return Head::Incomplete;
    };
    if end + 4 > HEAD_MAX {
        return Head::Other;
    }
    // Lines of CRLF, no bare CR or LF.
    let head = &buf[..end];
    for (i, &b) in head.iter().enumerate() {
        let bare = match b {
            b'\n' => i == 0 || head[i - 1] != b'\r',
            b'\r' => head.get(i + 1) != Some(&b'\n'),
            _ => false,
        };
        if bare {
            return Head::Other;
        }
    }
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let Some(status) = lines.next().and_then(status_line) else {
        return Head::Other;
    };
    let mut length = None;
    for (count, line) in lines.enumerate() {
        if count >= HEADERS_MAX {
            return Head::Other;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Head::Other;
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Head::Other;
        }
        if !value
            .iter()
            .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80)
        {
            return Head::Other;
        }
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Head::Other;
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            if length.is_some()
                || value.is_empty()
                || value.len() > 19
                || !value.iter().all(u8::is_ascii_digit)
            {
                return Head::Other;
            }
            length = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
        }
    }
    let length = match status {
        204 | 304 => Some(0),
        _ => length,
    };
    Head::Usual {
        status,
        length,
        len: end + 4,
    }
}

/// `HTTP/1.x DDD reason`, the status 200-599 (what hyper reads the usual way).
fn status_line(line: &[u8]) -> Option<u16> {
    let rest = line
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| line.strip_prefix(b"HTTP/1.0 "))?;
    let (code, reason) = (rest.get(..3)?, rest.get(3..)?);
    if !(b'2'..=b'5').contains(&code[0]) || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let reason = reason.strip_prefix(b" ")?;
    if !reason
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80)
    {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The connection as hyper gets it after the fast path: first the bytes already read (and
/// the read error met), then the socket; the first `sent` bytes it writes (the request, which
/// hyper encodes as [`request_bytes`] does) already went.
struct Replay {
    stream: tokio::net::TcpStream,
    seen: Vec<u8>,
    at: usize,
    error: Option<io::Error>,
    request: Vec<u8>,
    sent: usize,
    matched: usize,
    /// A read that waits for hyper to have "sent" the request (hyper takes a response that
    /// comes before its request for an unexpected message).
    reader: Option<std::task::Waker>,
}

impl Replay {
    fn new(
        stream: tokio::net::TcpStream,
        seen: Vec<u8>,
        error: Option<io::Error>,
        request: Vec<u8>,
        sent: usize,
    ) -> Replay {
        Replay {
            stream,
            seen,
            at: 0,
            error,
            request,
            sent,
            matched: 0,
            reader: None,
        }
    }
}

impl AsyncRead for Replay {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.matched < this.sent {
            this.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if this.at < this.seen.len() {
            let n = buf.remaining().min(this.seen.len() - this.at);
            buf.put_slice(&this.seen[this.at..this.at + n]);
            this.at += n;
            return Poll::Ready(Ok(()));
        }
        if let Some(e) = this.error.take() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.matched < this.sent {
            let already = &this.request[this.matched..this.sent];
            let n = already.iter().zip(buf).take_while(|(a, b)| a == b).count();
            if n > 0 {
                this.matched += n;
                if this.matched == this.sent
                    && let Some(reader) = this.reader.take()
                {
                    reader.wake();
                }
                return Poll::Ready(Ok(n));
            }
            // Not the request sent (cannot happen): write what hyper writes.
            this.matched = this.sent;
            if let Some(reader) = this.reader.take() {
                reader.wake();
            }
        }
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::time::Duration;

    /// A server answering one connection with `response` (in pieces, a pause between them),
    /// then closing it; the request bytes it read come out of the receiver.
    fn raw_server(response: Vec<Vec<u8>>) -> (u16, std::sync::mpsc::Receiver<Vec<u8>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = tx.send(head);
            for piece in response {
                let _ = conn.write_all(&piece);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        (port, rx)
    }

    /// The outcome and the request of one GET, by this module or by hyper alone.
    fn get(response: &[&[u8]], fast: bool, timeout: Duration) -> (Result<u16, String>, String) {
        let (port, request) = raw_server(response.iter().map(|p| p.to_vec()).collect());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let authority = format!("127.0.0.1:{port}");
        let headers = super::super::request_headers(
            &authority,
            &[
                ("X-Probe".into(), "1".into()),
                ("Transfer-Encoding".into(), "x".into()),
            ],
        )
        .unwrap();
        let result = rt.block_on(async {
            let deadline = Instant::now() + timeout;
            let conn = crate::probe::check::dial_socket("127.0.0.1", port, timeout)
                .await
                .unwrap();
            if fast {
                exchange(conn, "/healthz", headers, deadline).await
            } else {
                let stream = conn.into_tokio().unwrap();
                let _ = stream.set_nodelay(true);
                super::super::exchange(stream, "/healthz", headers, deadline).await
            }
        });
        let request = String::from_utf8(request.recv().unwrap())
            .unwrap()
            .replace(&format!(":{port}"), ":PORT");
        (result.map_err(|e| e.to_string()), request)
    }

    #[test]
    fn as_hyper_alone() {
        let big = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: 20000\r\n\r\n{}",
            "x".repeat(12000)
        );
        let cases: Vec<Vec<&[u8]>> = vec![
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"],
            vec![b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n"],
            vec![b"HTTP/1.1 302 Found\r\nlocation: /x\r\n\r\nmoved"],
            vec![b"HTTP/1.0 200 OK\r\n\r\nto the end"],
            vec![
                b"HTTP/1.1 200 OK\r\nContent-",
                b"Length: 4\r\n\r\nab",
                b"cd",
            ],
            vec![b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"],
            vec![b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n"],
            vec![
                b"HTTP/1.1 100 Continue\r\n\r\n",
                b"HTTP/1.1 404 No\r\ncontent-length: 0\r\n\r\n",
            ],
            vec![b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort"],
            vec![b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok"],
            vec![b"HTTP/1.1 200 OK\ncontent-length: 2\n\nok"],
            vec![b"HTTP/1.1 20"],
            vec![b"garbage\r\n\r\n"],
            vec![b""],
            vec![b"HTTP/1.1 204 No Content\r\n\r\n"],
            vec![big.as_bytes()],
        ];
        for case in cases {
            let fast = get(&case, true, Duration::from_secs(2));
            let hyper = get(&case, false, Duration::from_secs(2));
            assert_eq!(fast, hyper, "{:?}", String::from_utf8_lossy(&case.concat()));
        }
    }

    #[test]
    fn timeouts_as_hyper_alone() {
        // Headers, then a body that does not come; no headers at all.
        for case in [
            vec![
                &b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab"[..],
                &[][..],
            ],
            vec![&b"HTTP/1.1 200 OK\r\n"[..]],
        ] {
            let mut slow = case.clone();
            // The server keeps the connection past the deadline.
            slow.extend(std::iter::repeat_n(&b""[..], 30));
            let fast = get(&slow, true, Duration::from_millis(300));
            let hyper = get(&slow, false, Duration::from_millis(300));
            assert!(fast.0.is_err(), "{fast:?}");
            assert_eq!(fast, hyper);
        }
    }

    #[test]
    fn usual_heads() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
        assert_eq!(
            parse_head(head),
            Head::Usual {
                status: 200,
                length: Some(2),
                len: head.len() - 2
            }
        );
        assert_eq!(
            parse_head(b"HTTP/1.0 503 \r\nx: y\r\n\r\n"),
            Head::Usual {
                status: 503,
                length: None,
                len: 23
            }
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n"),
            Head::Usual {
                status: 204,
                length: Some(0),
                len: 46
            }
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Le"),
            Head::Incomplete
        );
        assert_eq!(parse_head(b"HTT"), Head::Incomplete);
    }

    #[test]
    fn other_heads_go_to_hyper() {
        for head in [
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"[..],
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 200\r\n\r\n",
            b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 2, 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n folded\r\n\r\n",
            b"HTTP/2 200 OK\r\n\r\n",
            b"SSH-2.0-OpenSSH\r\n",
        ] {
            assert_eq!(
                parse_head(head),
                Head::Other,
                "{}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn the_request_is_what_hyper_writes() {
        let mut headers = HeaderMap::new();
        headers.append("x-a", "1".parse().unwrap());
        headers.append("x-a", "2".parse().unwrap());
        headers.insert(header::TRANSFER_ENCODING, "gzip".parse().unwrap());
        headers.insert(header::HOST, "h:1".parse().unwrap());
        assert_eq!(
            String::from_utf8(request_bytes("/p?q=1", &headers).unwrap()).unwrap(),
            "GET /p?q=1 HTTP/1.1\r\nx-a: 1\r\nx-a: 2\r\nhost: h:1\r\n\r\n"
        );
    }
}
