//! grpc: `grpc.health.v1.Health/Check` over HTTP/2 on plain TCP (`pkg/probe/grpc`: the
//! kubelet's grpc probe has no TLS), with the `h2` crate.
//!
//! The two messages are encoded by hand: `HealthCheckRequest { string service = 1; }` and
//! `HealthCheckResponse { ServingStatus status = 1; }` are one field each, a dozen lines of
//! protobuf; prost and tonic in the product (codegen, a build step, their tower stack) for
//! that are not worth it. tonic's own health server tests this client
//! (`tests/probe_grpc.rs`).
//!
//! Success only for SERVING. The messages are the kubelet's: `service unhealthy (responded
//! with "NOT_SERVING")`, `timeout: failed to connect service "IP:PORT" within 1s` (a refused
//! connection too: grpc-go's blocking dial retries until the deadline), `error: health rpc
//! probe failed: rpc error: code = NotFound desc = unknown service`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;

use crate::probe::Outcome;

/// The grpc user agent of the kubelet (grpc-go adds its own name and version).
const USER_AGENT: &str = "kube-probe/1.32";

/// Most bytes of response read (a health response is a few bytes).
const MAX_RESPONSE: usize = 64 * 1024;

pub(super) async fn check(ip: IpAddr, port: u16, service: &str, timeout: Duration) -> Outcome {
    let addr = SocketAddr::new(ip, port);
    let shown = addr.to_string();
    let deadline = Instant::now() + timeout;
    match health_check(addr, service, timeout, deadline).await {
        Err(RpcError::Connect) => Outcome::Failure(format!(
            "timeout: failed to connect service {shown:?} within {}",
            super::go_duration(timeout)
        )),
        Err(RpcError::Timeout) => Outcome::Failure(format!(
            "timeout: health rpc did not complete within {}",
            super::go_duration(timeout)
        )),
        Err(RpcError::Status(Code::Unimplemented, message)) => Outcome::Failure(format!(
            "this server does not implement the grpc health protocol (grpc.health.v1.Health): {message}"
        )),
        Err(RpcError::Status(Code::DeadlineExceeded, _)) => Outcome::Failure(format!(
            "timeout: health rpc did not complete within {}",
            super::go_duration(timeout)
        )),
        Err(RpcError::Status(code, message)) => Outcome::Failure(format!(
            "error: health rpc probe failed: rpc error: code = {} desc = {message}",
            code.name()
        )),
        Ok(1) => Outcome::Success,
        Ok(status) => Outcome::Failure(format!(
            "service unhealthy (responded with \"{}\")",
            serving_status_name(status)
        )),
    }
}

/// How the call failed.
#[derive(Debug)]
enum RpcError {
    /// No HTTP/2 connection within the timeout (refused, reset, not an HTTP/2 server, or no
    /// answer).
    Connect,
    /// The connection was made but the call ran out of time.
    Timeout,
    /// A gRPC status other than OK.
    Status(Code, String),
}

/// The call: the response's `status` field (0 when absent, as proto3 decodes it).
async fn health_check(
    addr: SocketAddr,
    service: &str,
    timeout: Duration,
    deadline: Instant,
) -> Result<u64, RpcError> {
    let connect = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
        let _ = tcp.set_nodelay(true);
        h2::client::handshake(tcp).await.ok()
    };
    let (client, connection) = tokio::time::timeout_at(deadline, connect)
        .await
        .ok()
        .flatten()
        .ok_or(RpcError::Connect)?;
    let mut connection = Box::pin(connection);
    let call = call(client, addr, service, timeout);
    tokio::pin!(call);
    // The connection is driven in this future, beside the call (no task to leak).
    let both = async {
        tokio::select! {
            r = &mut call => r,
            r = &mut connection => match r {
                Err(e) => Err(RpcError::Status(Code::Unavailable, e.to_string())),
                Ok(()) => Err(RpcError::Status(Code::Unavailable, "connection closed".into())),
            },
        }
    };
    tokio::time::timeout_at(deadline, both)
        .await
        .unwrap_or(Err(RpcError::Timeout))
}

async fn call(
    client: h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
    service: &str,
    timeout: Duration,
) -> Result<u64, RpcError> {
    let unavailable = |e: h2::Error| RpcError::Status(Code::Unavailable, e.to_string());
    let mut client = client.ready().await.map_err(|_| RpcError::Connect)?;
    let request = http::Request::post(format!("http://{addr}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", USER_AGENT)
        .header("grpc-timeout", format!("{}m", timeout.as_millis().max(1)))
        .body(())
        .map_err(|e| RpcError::Status(Code::Internal, e.to_string()))?;
    let (response, mut body) = client.send_request(request, false).map_err(unavailable)?;
    body.send_data(frame(&encode_request(service)), true)
        .map_err(unavailable)?;
    let response = response.await.map_err(unavailable)?;
    let (head, mut body) = response.into_parts();
    if head.status != http::StatusCode::OK {
        return Err(RpcError::Status(
            Code::from_http(head.status.as_u16()),
            format!(
                "unexpected HTTP status code received from server: {} ({})",
                head.status.as_u16(),
                head.status.canonical_reason().unwrap_or("")
            ),
        ));
    }
    // A trailers-only response (every error of tonic) has its status in the headers.
    if let Some(status) = grpc_status(&head.headers) {
        status?;
    }
    let mut data = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(unavailable)?;
        let _ = body.flow_control().release_capacity(chunk.len());
        if data.len() + chunk.len() > MAX_RESPONSE {
            return Err(RpcError::Status(
                Code::ResourceExhausted,
                "response larger than a health response".into(),
            ));
        }
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.map_err(unavailable)?;
    match trailers.as_ref().and_then(grpc_status) {
        Some(status) => status?,
        None => {
            return Err(RpcError::Status(
                Code::Internal,
                "server closed the stream without sending trailers".into(),
            ));
        }
    }
    let message = unframe(&data)
        .ok_or_else(|| RpcError::Status(Code::Internal, "malformed gRPC response frame".into()))?;
    decode_status(message)
        .ok_or_else(|| RpcError::Status(Code::Internal, "malformed HealthCheckResponse".into()))
}

/// The `grpc-status` (and `grpc-message`) of a header block, when it has one.
fn grpc_status(headers: &http::HeaderMap) -> Option<Result<(), RpcError>> {
    let code: u32 = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if code == 0 {
        return Some(Ok(()));
    }
    let message = headers
        .get("grpc-message")
        .map(|v| percent_decode(v.as_bytes()))
        .unwrap_or_default();
    Some(Err(RpcError::Status(Code::from_u32(code), message)))
}

/// `grpc-message` is percent-encoded (the gRPC HTTP/2 spec).
fn percent_decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if raw[i] == b'%'
            && i + 2 < raw.len()
            && let (Some(h), Some(l)) = (hex(raw[i + 1]), hex(raw[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `HealthCheckRequest { string service = 1; }`: field 1, wire type 2 (length-delimited);
/// proto3 leaves out an empty string.
fn encode_request(service: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(service.len() + 6);
    if !service.is_empty() {
        out.push(0x0a);
        put_varint(&mut out, service.len() as u64);
        out.extend_from_slice(service.as_bytes());
    }
    out
}

/// `HealthCheckResponse { ServingStatus status = 1; }`: field 1, wire type 0 (varint); other
/// fields are skipped as protobuf wants. None when the bytes are not a message.
fn decode_status(mut msg: &[u8]) -> Option<u64> {
    let mut status = 0;
    while !msg.is_empty() {
        let key = get_varint(&mut msg)?;
        match (key >> 3, key & 7) {
            (1, 0) => status = get_varint(&mut msg)?,
            (_, 0) => {
                get_varint(&mut msg)?;
            }
            (_, 1) => msg = msg.get(8..)?,
            (_, 2) => {
                let len = usize::try_from(get_varint(&mut msg)?).ok()?;
                msg = msg.get(len..)?;
            }
            (_, 5) => msg = msg.get(4..)?,
            _ => return None,
        }
    }
    Some(status)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// A gRPC length-prefixed message: 0 (not compressed), the length (4 bytes, big-endian),
/// the message.
fn frame(message: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    Bytes::from(out)
}

/// The one uncompressed message of a response body.
fn unframe(data: &[u8]) -> Option<&[u8]> {
    let (&compressed, rest) = data.split_first()?;
    if compressed != 0 || rest.len() < 4 {
        return None;
    }
    let len = u32::from_be_bytes(rest[..4].try_into().ok()?) as usize;
    rest[4..].get(..len)
}

/// `HealthCheckResponse.ServingStatus` as Go's generated `String()` spells it.
fn serving_status_name(status: u64) -> String {
    match status {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        n => n.to_string(),
    }
}

/// gRPC status codes (`google.golang.org/grpc/codes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    Canceled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl Code {
    fn from_u32(code: u32) -> Code {
        use Code::*;
        [
            Unknown,
            Canceled,
            Unknown,
            InvalidArgument,
            DeadlineExceeded,
            NotFound,
            AlreadyExists,
            PermissionDenied,
            ResourceExhausted,
            FailedPrecondition,
            Aborted,
            OutOfRange,
            Unimplemented,
            Internal,
            Unavailable,
            DataLoss,
            Unauthenticated,
        ]
        .get(code as usize)
        .copied()
        .unwrap_or(Unknown)
    }

    /// grpc-go's mapping of a non-200 HTTP status (`HTTPStatusConvTab`).
    fn from_http(status: u16) -> Code {
        match status {
            400 => Code::Internal,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::Unimplemented,
            429 | 502 | 503 | 504 => Code::Unavailable,
            _ => Code::Unknown,
        }
    }

    /// As grpc-go's `codes.Code.String()`.
    fn name(self) -> &'static str {
        match self {
            Code::Canceled => "Canceled",
            Code::Unknown => "Unknown",
            Code::InvalidArgument => "InvalidArgument",
            Code::DeadlineExceeded => "DeadlineExceeded",
            Code::NotFound => "NotFound",
            Code::AlreadyExists => "AlreadyExists",
            Code::PermissionDenied => "PermissionDenied",
            Code::ResourceExhausted => "ResourceExhausted",
            Code::FailedPrecondition => "FailedPrecondition",
            Code::Aborted => "Aborted",
            Code::OutOfRange => "OutOfRange",
            Code::Unimplemented => "Unimplemented",
            Code::Internal => "Internal",
            Code::Unavailable => "Unavailable",
            Code::DataLoss => "DataLoss",
            Code::Unauthenticated => "Unauthenticated",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_encoding() {
        assert_eq!(encode_request(""), b"");
        assert_eq!(encode_request("down"), b"\x0a\x04down");
        let long = "s".repeat(200);
        let enc = encode_request(&long);
        assert_eq!(&enc[..3], b"\x0a\xc8\x01");
        assert_eq!(&frame(b"\x0a\x04down")[..], b"\0\0\0\0\x06\x0a\x04down");
    }

    #[test]
    fn response_decoding() {
        assert_eq!(decode_status(b""), Some(0));
        assert_eq!(decode_status(b"\x08\x01"), Some(1));
        assert_eq!(decode_status(b"\x08\x02"), Some(2));
        // An unknown string field 2 before the status is skipped.
        assert_eq!(decode_status(b"\x12\x02ab\x08\x03"), Some(3));
        assert_eq!(decode_status(b"\x08"), None);
        assert_eq!(unframe(b"\0\0\0\0\x02\x08\x01"), Some(&b"\x08\x01"[..]));
        assert_eq!(unframe(b"\x01\0\0\0\x02\x08\x01"), None);
    }

    #[test]
    fn grpc_messages_are_percent_decoded() {
        assert_eq!(percent_decode(b"unknown%20service"), "unknown service");
        assert_eq!(percent_decode(b"100%"), "100%");
        assert_eq!(Code::from_u32(12).name(), "Unimplemented");
        assert_eq!(Code::from_u32(99), Code::Unknown);
    }

    #[test]
    fn a_closed_port_fails_to_connect() {
        let port = crate::probe::test_support::closed_port();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let outcome = rt.block_on(check(
            "127.0.0.1".parse().unwrap(),
            port,
            "",
            Duration::from_secs(1),
        ));
        assert_eq!(
            outcome,
            Outcome::Failure(format!(
                "timeout: failed to connect service \"127.0.0.1:{port}\" within 1s"
            ))
        );
    }
}
