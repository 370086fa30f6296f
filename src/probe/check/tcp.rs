//! tcpSocket: a connection within the timeout, closed at once (`pkg/probe/tcp`). The message
//! of a failure is Go's dial error, which is what the kubelet reports.

use std::time::Duration;

use crate::probe::Outcome;

pub(super) async fn check(host: &str, port: u16, timeout: Duration) -> Outcome {
    // Closed without meeting the reactor when it connected at once.
    match super::dial_socket(host, port, timeout).await {
        Ok(_) => Outcome::Success,
        Err(e) => Outcome::Failure(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn connects_to_a_listener() {
        let rt = rt();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let outcome = rt.block_on(check("127.0.0.1", port, Duration::from_secs(1)));
        assert_eq!(outcome, Outcome::Success);
    }

    #[test]
    fn a_closed_port_is_refused() {
        let rt = rt();
        let port = crate::probe::test_support::closed_port();
        let outcome = rt.block_on(check("127.0.0.1", port, Duration::from_secs(1)));
        assert_eq!(
            outcome,
            Outcome::Failure(format!(
                "dial tcp 127.0.0.1:{port}: connect: connection refused"
            ))
        );
    }

    #[test]
    fn a_timeout_is_an_io_timeout() {
        let rt = rt();
        let full = crate::probe::test_support::full_listener();
        let port = full.port;
        let t = Instant::now();
        let outcome = rt.block_on(check("127.0.0.1", port, Duration::from_millis(300)));
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(
            outcome,
            Outcome::Failure(format!("dial tcp 127.0.0.1:{port}: i/o timeout"))
        );
    }
}
