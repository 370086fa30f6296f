//! httpGet: one GET on a connection of its own (`pkg/probe/http`; the kubelet's transport
//! disables keep-alive and compression and follows no redirect here since a 3xx already
//! counts as success), hyper's http1 client over a tokio stream, TLS without verification
//! for https (the kubelet's `InsecureSkipVerify`). A plain-http response of the usual shape
//! is read without hyper ([`plain`]: a probe's CPU is mostly its connection's, hyper's
//! request and connection tasks were a good part of the rest), hyper taking any other.
//!
//! Success is 200 <= status < 400; at most 10 KiB of the body is read. The failure messages
//! are Go's `http.Client` errors: `Get "URL": dial tcp ...`, `Get "URL": context deadline
//! exceeded (Client.Timeout exceeded while awaiting headers)`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::MAX_OUTPUT;
use crate::probe::{Outcome, Scheme};

/// The kubelet's user agent (`kube-probe/<major>.<minor>`), for the Kubernetes version podrun
/// follows.
const USER_AGENT: &str = "kube-probe/1.32";

pub(super) async fn check(
    scheme: Scheme,
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Outcome {
    let authority = super::join_host_port(host, port);
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let url = match scheme {
        Scheme::Http => format!("http://{authority}{path}"),
        Scheme::Https => format!("https://{authority}{path}"),
    };
    let deadline = Instant::now() + timeout;
    match get(scheme, host, port, &authority, &path, headers, deadline).await {
        Ok(status) if (200..400).contains(&status) => Outcome::Success,
        Ok(status) => Outcome::Failure(format!("HTTP probe failed with statuscode: {status}")),
        Err(e) => Outcome::Failure(format!("Get {url:?}: {e}")),
    }
}

/// Why a GET failed, in Go's words (after `Get "URL": `).
#[derive(Debug, thiserror::Error)]
enum GetError {
    #[error("{0}")]
    Dial(super::DialError),
    #[error("context deadline exceeded (Client.Timeout exceeded while awaiting headers)")]
    AwaitingHeaders,
    #[error(
        "context deadline exceeded (Client.Timeout or context cancellation while reading body)"
    )]
    ReadingBody,
    #[error("{0}")]
    Tls(std::io::Error),
    #[error("net/http: invalid header field {0:?}")]
    InvalidHeader(String),
    #[error("{0}")]
    Http(hyper::Error),
}

async fn get(
    scheme: Scheme,
    host: &str,
    port: u16,
    authority: &str,
    path: &str,
    headers: &[(String, String)],
    deadline: Instant,
) -> Result<u16, GetError> {
    let headers = request_headers(authority, headers)?;
    let remaining = deadline.saturating_duration_since(Instant::now());
    let tcp = super::dial_socket(host, port, remaining)
        .await
        .map_err(|e| match e {
            super::DialError::Timeout(_) => GetError::AwaitingHeaders,
            e => GetError::Dial(e),
        })?;
    match scheme {
        Scheme::Http => plain::exchange(tcp, path, headers, deadline).await,
        Scheme::Https => {
            let tcp = tcp
                .into_tokio()
                .map_err(|e| GetError::Dial(super::connect_error(host, port, e)))?;
            let _ = tcp.set_nodelay(true);
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| GetError::Tls(std::io::Error::other(e)))?;
            let tls = tokio_rustls::TlsConnector::from(tls_config());
            let stream = tokio::time::timeout_at(deadline, tls.connect(name, tcp))
                .await
                .map_err(|_| GetError::AwaitingHeaders)?
                .map_err(GetError::Tls)?;
            exchange(stream, path, headers, deadline).await
        }
    }
}

/// The request's headers: the kubelet's defaults unless the probe sets them, then the probe's
/// (a `Host` among them is the request's Host).
fn request_headers(
    authority: &str,
    probe_headers: &[(String, String)],
) -> Result<HeaderMap, GetError> {
    let mut map = HeaderMap::new();
    for (name, value) in probe_headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| GetError::InvalidHeader(name.clone()))?;
        let value =
            HeaderValue::from_str(value).map_err(|_| GetError::InvalidHeader(name.to_string()))?;
        map.append(name, value);
    }
    let defaults = [
        (header::HOST, authority),
        (header::USER_AGENT, USER_AGENT),
        (header::ACCEPT, "*/*"),
    ];
    for (name, value) in defaults {
        if !map.contains_key(&name) {
            let value = HeaderValue::from_str(value)
                .map_err(|_| GetError::InvalidHeader(name.to_string()))?;
            map.insert(name, value);
        }
    }
    // Keep-alive is off in the kubelet's transport: Go then says so on the wire.
    map.insert(header::CONNECTION, HeaderValue::from_static("close"));
    Ok(map)
}

/// Send the GET on `stream`, wait for the status, read at most [`MAX_OUTPUT`] of the body.
async fn exchange<S>(
    stream: S,
    path: &str,
    headers: HeaderMap,
    deadline: Instant,
) -> Result<u16, GetError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = http::Request::get(path);
    if let Some(h) = builder.headers_mut() {
        *h = headers;
    }
    let request = builder
        .body(Empty::<Bytes>::new())
        .map_err(|e| GetError::InvalidHeader(e.to_string()))?;
    // One deadline for the whole exchange (one timer), and the connection driven in this
    // task beside the request (no task of its own per attempt).
    let headers_seen = std::sync::atomic::AtomicBool::new(false);
    let work = async {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(GetError::Http)?;
        let exchange = async {
            let response = sender.send_request(request).await.map_err(GetError::Http)?;
            headers_seen.store(true, std::sync::atomic::Ordering::Relaxed);
            let status = response.status().as_u16();
            let mut body = response.into_body();
            let mut read = 0;
            while read < MAX_OUTPUT {
                match body.frame().await {
                    None => break,
                    Some(Err(e)) => return Err(GetError::Http(e)),
                    Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
                }
            }
            Ok(status)
        };
        tokio::pin!(exchange);
        tokio::pin!(connection);
        tokio::select! {
            result = &mut exchange => result,
            ended = &mut connection => match ended {
                Err(e) => Err(GetError::Http(e)),
                // Closed after the response: what it delivered is read.
                Ok(()) => exchange.await,
            },
        }
    };
    match tokio::time::timeout_at(deadline, work).await {
        Ok(result) => result,
        Err(_) if headers_seen.load(std::sync::atomic::Ordering::Relaxed) => {
            Err(GetError::ReadingBody)
        }
        Err(_) => Err(GetError::AwaitingHeaders),
    }
}

mod plain;

/// The one TLS client configuration: no certificate verification, ALPN http/1.1.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("the provider supports the default TLS versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        })
        .clone()
}

/// Accepts any server certificate (the kubelet's `InsecureSkipVerify`: a probe checks that
/// the server answers, not who it is), still checking the handshake's signatures as Go does.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::test_support::{closed_port, http_server, silent_server};

    fn run(port: u16, path: &str, headers: &[(&str, &str)], timeout: Duration) -> Outcome {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(check(
            Scheme::Http,
            "127.0.0.1",
            port,
            path,
            &headers,
            timeout,
        ))
    }

    #[test]
    fn ok_is_success_with_the_kubelet_headers() {
        let (port, heads) = http_server(200);
        assert_eq!(
            run(port, "/healthz", &[], Duration::from_secs(1)),
            Outcome::Success
        );
        let head = heads.recv().unwrap().to_ascii_lowercase();
        assert!(head.starts_with("get /healthz http/1.1\r\n"), "{head}");
        assert!(
            head.contains(&format!("host: 127.0.0.1:{port}\r\n")),
            "{head}"
        );
        assert!(head.contains("user-agent: kube-probe/1.32\r\n"), "{head}");
        assert!(head.contains("accept: */*\r\n"), "{head}");
    }

    #[test]
    fn probe_headers_override_host_and_defaults() {
        let (port, heads) = http_server(302);
        let headers = [
            ("Host", "example.test"),
            ("X-Probe", "1"),
            ("Accept", "text/plain"),
        ];
        assert_eq!(
            run(port, "ready?x=1", &headers, Duration::from_secs(1)),
            Outcome::Success
        );
        let head = heads.recv().unwrap().to_ascii_lowercase();
        assert!(head.starts_with("get /ready?x=1 http/1.1\r\n"), "{head}");
        assert!(head.contains("host: example.test\r\n"), "{head}");
        assert!(!head.contains("host: 127.0.0.1"), "{head}");
        assert!(head.contains("x-probe: 1\r\n"), "{head}");
        assert!(head.contains("accept: text/plain\r\n"), "{head}");
        assert!(!head.contains("*/*"), "{head}");
    }

    #[test]
    fn server_error_is_a_failure() {
        let (port, _heads) = http_server(500);
        assert_eq!(
            run(port, "/healthz", &[], Duration::from_secs(1)),
            Outcome::Failure("HTTP probe failed with statuscode: 500".into())
        );
    }

    #[test]
    fn refused_as_go_says_it() {
        let port = closed_port();
        assert_eq!(
            run(port, "/healthz", &[], Duration::from_secs(1)),
            Outcome::Failure(format!(
                "Get \"http://127.0.0.1:{port}/healthz\": dial tcp 127.0.0.1:{port}: connect: connection refused"
            ))
        );
    }

    #[test]
    fn a_silent_server_times_out() {
        let port = silent_server();
        let t = std::time::Instant::now();
        let outcome = run(port, "/healthz", &[], Duration::from_millis(300));
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert_eq!(
            outcome,
            Outcome::Failure(format!(
                "Get \"http://127.0.0.1:{port}/healthz\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            ))
        );
    }
}

#[cfg(test)]
mod tls_tests {
    use super::*;
    use std::sync::mpsc;

    /// An https server on 127.0.0.1 with a self-signed certificate for another name (so only
    /// a client that verifies nothing gets through): one connection, answered 200; the ALPN
    /// the client got comes out of the receiver.
    fn https_server() -> (u16, mpsc::Receiver<Option<Vec<u8>>>) {
        let cert =
            rcgen::generate_simple_self_signed(vec!["not-this-host.test".to_string()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
                let mut tls = acceptor.accept(tcp).await.unwrap();
                let _ = tx.send(tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec));
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = tls.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&buf[..n]);
                }
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
                let _ = tls.shutdown().await;
            });
        });
        (port, rx)
    }

    #[test]
    fn https_accepts_any_certificate_with_alpn_http1() {
        let (port, alpn) = https_server();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let outcome = rt.block_on(check(
            Scheme::Https,
            "127.0.0.1",
            port,
            "/healthz",
            &[],
            Duration::from_secs(2),
        ));
        assert_eq!(outcome, Outcome::Success);
        assert_eq!(alpn.recv().unwrap(), Some(b"http/1.1".to_vec()));
    }
}
