//! The hand-written grpc probe client (`probe::check`, `Handler::Grpc`) against tonic's own
//! health server (`examples/grpc_health_server.rs`), on 127.0.0.1. No root needed.
//!
//! Cargo builds the examples with the tests but gives no `CARGO_BIN_EXE_` for them: the
//! binary is found in `examples/` beside the test's own `deps/` directory.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use podrun::probe::{Handler, Outcome, Target, check_blocking};

fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let bin = profile_dir.join("examples").join("grpc_health_server");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build --examples` (cargo test does)",
        bin.display()
    );
    bin
}

/// The server on a free loopback port, killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(flag: Option<&std::path::Path>) -> Server {
        let port = free_port();
        let mut cmd = Command::new(server_binary());
        cmd.arg(port.to_string()).stdout(Stdio::null());
        if let Some(flag) = flag {
            cmd.arg(flag);
        }
        let child = cmd.spawn().unwrap();
        let server = Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn check(&self, service: Option<&str>) -> Outcome {
        grpc(self.port, service)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn target() -> Target {
    Target {
        pod_ip: Ipv4Addr::LOCALHOST,
        exec_program: "/bin/false".into(),
        exec_args: Vec::new(),
    }
}

fn grpc(port: u16, service: Option<&str>) -> Outcome {
    let handler = Handler::Grpc {
        port,
        service: service.map(str::to_string),
    };
    check_blocking(&handler, &target(), Duration::from_secs(1))
}

#[test]
fn serving_is_success() {
    let server = Server::start(None);
    assert_eq!(server.check(None), Outcome::Success);
    assert_eq!(server.check(Some("")), Outcome::Success);
}

#[test]
fn a_service_not_serving_is_a_failure() {
    let server = Server::start(None);
    assert_eq!(
        server.check(Some("down")),
        Outcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
    );
}

#[test]
fn an_unknown_service_is_not_found() {
    let server = Server::start(None);
    // tonic-health's words for a service it has no status for.
    assert_eq!(
        server.check(Some("nosuch")),
        Outcome::Failure(
            "error: health rpc probe failed: rpc error: code = NotFound desc = service not registered"
                .into()
        )
    );
}

#[test]
fn the_flag_file_turns_the_server_not_serving() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("down");
    let server = Server::start(Some(&flag));
    assert_eq!(server.check(None), Outcome::Success);
    std::fs::write(&flag, "").unwrap();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        server.check(None),
        Outcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
    );
    std::fs::remove_file(&flag).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(server.check(None), Outcome::Success);
}

#[test]
fn a_closed_port_fails_to_connect() {
    let port = free_port();
    assert_eq!(
        grpc(port, None),
        Outcome::Failure(format!(
            "timeout: failed to connect service \"127.0.0.1:{port}\" within 1s"
        ))
    );
}
