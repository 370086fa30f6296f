//! Loopback servers and targets for the probe tests (127.0.0.1 only).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;

use super::Target;

/// A target whose exec runs the command itself (`sh -c 'exec "$@"' sh COMMAND...`).
pub fn target() -> Target {
    Target {
        pod_ip: "127.0.0.1".parse().unwrap(),
        exec_program: "/bin/sh".into(),
        exec_args: vec!["-c".into(), "exec \"$@\"".into(), "sh".into()],
    }
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// An HTTP server on 127.0.0.1 answering every request with `status`; each request's head
/// (request line and headers) comes out of the receiver.
pub fn http_server(status: u16) -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let head = read_head(&mut conn);
            let _ = tx.send(head);
            let body = "hello";
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, rx)
}

/// A server on 127.0.0.1 that accepts and reads but never answers.
pub fn silent_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = read_head(&mut conn);
            held.push(conn);
        }
    });
    port
}

fn read_head(conn: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A listener on 127.0.0.1 whose accept queue is full: the kernel drops new SYNs, so a
/// connect to it neither succeeds nor is refused until it gives up (a timeout, on loopback).
/// Keep the value alive for the test.
pub struct FullListener {
    pub port: u16,
    _listener: backlog::Listener,
    _queued: Vec<TcpStream>,
}

pub fn full_listener() -> FullListener {
    let listener = backlog::listen_backlog_0();
    let port = listener.port();
    let mut queued = Vec::new();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    // Backlog 0 still queues one or two connections: fill it until a connect hangs.
    for _ in 0..8 {
        match TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200)) {
            Ok(s) => queued.push(s),
            Err(_) => break,
        }
    }
    FullListener {
        port,
        _listener: listener,
        _queued: queued,
    }
}

/// A listening socket with a backlog of 0 (std's bind always listens with 128), through
/// tokio's socket builder on a runtime of its own.
mod backlog {
    pub struct Listener(std::net::TcpListener);

    impl Listener {
        pub fn port(&self) -> u16 {
            self.0.local_addr().unwrap().port()
        }
    }

    pub fn listen_backlog_0() -> Listener {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        Listener(listener.into_std().unwrap())
    }
}
