//! A plain-http GET without hyper for the usual response, hyper for any other.
//!
//! The request is the bytes hyper's http1 client writes for it (request line, the headers in
//! the map's order without `transfer-encoding`, an empty line), written in one `write` on the
//! socket as it comes out of the connect. The response head is parsed by httparse, the parser
//! hyper uses, and a response of the usual shape (a status 200-599, a single `content-length`
//! or none, see [`parse_head`]) is read here to the end of its body or [`MAX_OUTPUT`] of it, and
//! the connection closed. Anything else (another framing, a 1xx, a head httparse refuses, an
//! end or a read error before the body is complete) goes to hyper as it was: the bytes read so
//! far are replayed to it, and the request it writes again is taken as already sent, so hyper
//! sees the connection as if it had had it from the start and says what it would have said.

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

/// What [`parse_head`] made of the bytes read so far.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    Incomplete,
    /// Not the usual response: for hyper.
    Other,
    Usual {
        status: u16,
        /// None: the body goes to the end of the connection.
        length: Option<u64>,
        /// The head's length (where the body starts).
        len: usize,
    },
}

/// The head parsed by httparse as hyper parses it (its default `ParserConfig` and header
/// limit), so a head taken here is one hyper reads the same way; this path only takes the
/// framings it reads itself (a length or to the end) and leaves hyper the rest: 1xx, another
/// status than hyper's usual ones, `transfer-encoding`, a content-length hyper may read
/// otherwise (several, a list, not digits), a head hyper may refuse (too long, too many
/// headers, not http).
fn parse_head(buf: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= HEAD_MAX => len,
        Ok(httparse::Status::Partial) if buf.len() < HEAD_MAX => return Head::Incomplete,
        _ => return Head::Other,
    };
    let status = match response.code {
        Some(status @ 200..=599) => status,
        _ => return Head::Other,
    };
    let mut length = None;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Head::Other;
        }
        if header.name.eq_ignore_ascii_case("content-length") {
            match (length, content_length(header.value)) {
                (None, Some(n)) => length = Some(n),
                _ => return Head::Other,
            }
        }
    }
    // No body whatever the headers say (RFC 9112 6.3, as hyper).
    if matches!(status, 204 | 304) {
        length = Some(0);
    }
    Head::Usual {
        status,
        length,
        len,
    }
}

/// A content-length of digits only (hyper's `from_digits`: `u64::from_str` takes a `+`),
/// below hyper's maximum body length.
fn content_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
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
        let many_headers = format!(
            "HTTP/1.1 200 OK\r\n{}content-length: 0\r\n\r\n",
            "x: y\r\n".repeat(HEADERS_MAX)
        );
        let long_head = format!(
            "HTTP/1.1 200 OK\r\nx: {}\r\ncontent-length: 0\r\n\r\n",
            "y".repeat(HEAD_MAX)
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
            vec![b"HTTP/1.1 200\r\ncontent-length: 2\r\n\r\nok"],
            vec![b"HTTP/1.1 200 OK\r\ncontent-length: +2\r\n\r\nok"],
            vec![b"HTTP/1.1 200 OK\r\ncontent-length: 2, 2\r\n\r\nok"],
            vec![b"HTTP/1.1 200 OK\r\ncontent-length:  2 \r\n\r\nok"],
            vec![b"HTTP/1.1 200 OK\r\n folded\r\n\r\n"],
            vec![b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n"],
            vec![b"HTTP/1.1 600 Odd\r\ncontent-length: 0\r\n\r\n"],
            vec![many_headers.as_bytes()],
            vec![long_head.as_bytes()],
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
        // Bare LFs: httparse (so hyper) takes them.
        let head = b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok";
        assert_eq!(
            parse_head(head),
            Head::Usual {
                status: 200,
                length: Some(2),
                len: head.len() - 2
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
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
            b"HTTP/1.1 600 Odd\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: +2\r\n\r\n",
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
