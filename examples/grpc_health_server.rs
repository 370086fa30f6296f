//! A grpc.health.v1 server for the probe tests: tonic's own health service, so podrun's
//! hand-written grpc probe client is checked against a real implementation.
//!
//! `grpc_health_server PORT [FILE]` listens on 0.0.0.0:PORT (a test pod's container listens
//! on all its addresses; the unit tests connect to 127.0.0.1 only). The server as a whole
//! (service "") is SERVING, the service `down` is NOT_SERVING, any other service is unknown
//! (NotFound). With FILE: while FILE exists the server as a whole is NOT_SERVING (polled every
//! 100 ms), so a test can flip a probe's result from outside.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tonic_health::ServingStatus;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .ok_or("usage: grpc_health_server PORT [FILE]")?
        .parse()?;
    let flag = args.next().map(PathBuf::from);
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    reporter
        .set_service_status("down", ServingStatus::NotServing)
        .await;
    if let Some(flag) = flag {
        tokio::spawn(async move {
            let mut last = None;
            loop {
                let status = if flag.exists() {
                    ServingStatus::NotServing
                } else {
                    ServingStatus::Serving
                };
                if last != Some(status) {
                    reporter.set_service_status("", status).await;
                    last = Some(status);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
    let addr = SocketAddr::from(([0, 0, 0, 0], port));
    println!("grpc health server listening on {addr}");
    tonic::transport::Server::builder()
        .add_service(service)
        .serve(addr)
        .await?;
    Ok(())
}
