//! One attempt of a handler, with the kubelet's outcome and messages.
//!
//! The messages are the kubelet's (`pkg/probe/{exec,http,tcp,grpc}`, which are Go's error
//! texts): they end up in `Unhealthy` events and hook failures, where a user compares them with
//! what a real cluster says. Each handler kind lives in a file of its own; this one dispatches
//! and keeps the few Go spellings they share (a dial error, a duration).

mod exec;
mod grpc;
mod http;
mod tcp;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{Handler, Outcome, Target};

/// Most output kept of an exec probe and most body read of an http probe (the kubelet's
/// `maxRespBodyLength`, 10 KiB).
pub(crate) const MAX_OUTPUT: usize = 10 * 1024;

/// Run `handler` once against `target`, failing after `timeout`.
pub async fn check(handler: &Handler, target: &Target, timeout: Duration) -> Outcome {
    match handler {
        Handler::Exec { command } => exec::check(command, target, timeout).await,
        Handler::HttpGet {
            scheme,
            host,
            port,
            path,
            headers,
        } => {
            let host = host_or_pod_ip(host.as_deref(), target);
            http::check(*scheme, &host, *port, path, headers, timeout).await
        }
        Handler::TcpSocket { host, port } => {
            let host = host_or_pod_ip(host.as_deref(), target);
            tcp::check(&host, *port, timeout).await
        }
        Handler::Grpc { port, service } => {
            grpc::check(
                IpAddr::V4(target.pod_ip),
                *port,
                service.as_deref().unwrap_or(""),
                timeout,
            )
            .await
        }
        // The caller bounds a hook's sleep (by the grace period), not `timeout`.
        Handler::Sleep { seconds } => {
            tokio::time::sleep(Duration::from_secs(*seconds)).await;
            Outcome::Success
        }
    }
}

/// [`check`] on a runtime of its own, for a caller with none (a preStop hook in the stop path).
pub fn check_blocking(handler: &Handler, target: &Target, timeout: Duration) -> Outcome {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(check(handler, target, timeout)),
        Err(e) => Outcome::Failure(format!("cannot start a runtime for the handler: {e}")),
    }
}

/// The handler's host, or the pod IP when it has none (an empty host is none, as in the API).
fn host_or_pod_ip(host: Option<&str>, target: &Target) -> String {
    match host {
        Some(h) if !h.is_empty() => h.to_string(),
        _ => target.pod_ip.to_string(),
    }
}

/// Go's `net.JoinHostPort`: an IPv6 address in brackets.
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Why a dial failed, as Go's net package says it after `dial tcp ADDR: `.
#[derive(Debug)]
enum DialError {
    /// The host name did not resolve (Go: `dial tcp: lookup HOST: ...`).
    Lookup(String, io::Error),
    Connect(String, io::Error),
    Timeout(String),
}

impl std::fmt::Display for DialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DialError::Lookup(host, e) => {
                write!(f, "dial tcp: lookup {host}: {}", go_error_text(e))
            }
            DialError::Connect(addr, e) => {
                write!(f, "dial tcp {addr}: connect: {}", go_error_text(e))
            }
            DialError::Timeout(addr) => write!(f, "dial tcp {addr}: i/o timeout"),
        }
    }
}

/// Connect to `host:port` (a name is resolved first), all within `timeout`; the socket is
/// not registered with the reactor if it connected at once.
async fn dial_socket(host: &str, port: u16, timeout: Duration) -> Result<Connected, DialError> {
    let deadline = tokio::time::Instant::now() + timeout;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return match connect(SocketAddr::new(ip, port), deadline).await {
            Ok(stream) => Ok(stream),
            Err(Some(e)) => Err(connect_error(host, port, e)),
            Err(None) => Err(DialError::Timeout(join_host_port(&ip.to_string(), port))),
        };
    }
    let shown = join_host_port(host, port);
    let addrs: Vec<SocketAddr> =
        match tokio::time::timeout_at(deadline, tokio::net::lookup_host((host, port))).await {
            Err(_) => return Err(DialError::Timeout(shown)),
            Ok(Err(e)) => return Err(DialError::Lookup(host.to_string(), e)),
            Ok(Ok(addrs)) => addrs.collect(),
        };
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no such host");
    for addr in addrs {
        match connect(addr, deadline).await {
            Err(None) => {
                return Err(DialError::Timeout(join_host_port(
                    &addr.ip().to_string(),
                    port,
                )));
            }
            Ok(stream) => return Ok(stream),
            Err(Some(e)) => last = e,
        }
    }
    Err(DialError::Connect(shown, last))
}

fn connect_error(host: &str, port: u16, e: io::Error) -> DialError {
    DialError::Connect(join_host_port(host, port), e)
}

/// A connected socket, not yet registered with the runtime's reactor (a tcpSocket probe
/// closes it without ever registering it).
enum Connected {
    /// Connected within the connect call (the kernel ran the handshake with a local peer:
    /// loopback, or the veth to a pod), never registered.
    Now(std::net::TcpStream),
    Registered(tokio::net::TcpStream),
}

impl Connected {
    fn into_tokio(self) -> io::Result<tokio::net::TcpStream> {
        match self {
            Connected::Now(stream) => tokio::net::TcpStream::from_std(stream),
            Connected::Registered(stream) => Ok(stream),
        }
    }
}

/// Connect to `addr` by `deadline` (`Err(None)`: timed out). A non-blocking connect to a peer
/// on this machine has completed when the call returns (the handshake ran in it), which a
/// second connect call tells (0, where an unfinished one says EALREADY): such a socket never
/// meets the reactor. Only one still connecting is registered and waited for.
async fn connect(
    addr: SocketAddr,
    deadline: tokio::time::Instant,
) -> Result<Connected, Option<io::Error>> {
    use nix::errno::Errno;
    use nix::sys::socket::{self as sock, AddressFamily, SockFlag, SockType, SockaddrStorage};
    use std::os::fd::AsRawFd;

    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = sock::socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| Some(e.into()))?;
    let to = SockaddrStorage::from(addr);
    match sock::connect(fd.as_raw_fd(), &to) {
        Ok(()) => return Ok(Connected::Now(fd.into())),
        Err(Errno::EINPROGRESS) => {}
        Err(e) => return Err(Some(e.into())),
    }
    match sock::connect(fd.as_raw_fd(), &to) {
        Ok(()) | Err(Errno::EISCONN) => return Ok(Connected::Now(fd.into())),
        Err(Errno::EALREADY | Errno::EINPROGRESS) => {}
        Err(e) => return Err(Some(e.into())),
    }
    let stream = tokio::net::TcpStream::from_std(std::net::TcpStream::from(fd)).map_err(Some)?;
    match tokio::time::timeout_at(deadline, stream.writable()).await {
        Err(_) => Err(None),
        Ok(Err(e)) => Err(Some(e)),
        Ok(Ok(())) => match stream.take_error() {
            Ok(None) => Ok(Connected::Registered(stream)),
            Ok(Some(e)) | Err(e) => Err(Some(e)),
        },
    }
}

/// An error as Go prints a syscall error: the C library's text, lower-cased ("connection
/// refused"), without Rust's " (os error 111)".
fn go_error_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let desc = nix::errno::Errno::from_raw(code).desc();
            let mut chars = desc.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => desc.to_string(),
            }
        }
        None => e.to_string(),
    }
}

/// A duration as Go's `time.Duration` prints it for the probes' whole or milli seconds:
/// `1s`, `500ms`, `1m30s`.
fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m, s) = (ms / 3_600_000, ms / 60_000 % 60, ms % 60_000);
    let secs = if s % 1000 == 0 {
        format!("{}s", s / 1000)
    } else {
        let frac = format!("{:03}", s % 1000);
        format!("{}.{}s", s / 1000, frac.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_go_prints_them() {
        assert_eq!(go_duration(Duration::from_secs(1)), "1s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(60)), "1m0s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
    }

    #[test]
    fn errors_as_go_prints_them() {
        let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(go_error_text(&e), "connection refused");
        assert_eq!(join_host_port("::1", 80), "[::1]:80");
        assert_eq!(join_host_port("10.1.0.5", 80), "10.1.0.5:80");
    }
}
