//! `cargo bench --bench prober` (no root): what the prober thread costs and how exactly it
//! keeps time.
//!
//! 15 containers with a tcpSocket liveness probe and an httpGet readiness probe each: 30
//! probes at `periodSeconds: 1`, for 10 s (`PODRUN_BENCH_SECS`), against loopback servers of
//! this process (one listener per probe, so every connection is one attempt of one probe).
//! (Startup probes stop at their first success, so they would not add a steady load.)
//!
//! Two numbers:
//! - CPU per attempt: the prober thread's on-CPU time (`/proc/self/task/TID/schedstat`, ns)
//!   over the run, divided by the attempts the servers saw. Target: < 0.1 ms.
//! - period jitter: each attempt's arrival at its server minus its scheduled time (the watch
//!   plus a whole number of periods), median, p99 and max. Target: p99 < 50 ms.

#[path = "support/stats.rs"]
mod stats;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use podrun::probe::{ContainerProbes, Handler, Probe, Prober, Scheme, Target};

const CONTAINERS: usize = 15;
const PERIOD: Duration = Duration::from_secs(1);

/// One probe's server: every accepted connection's time.
struct Server {
    port: u16,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

fn server(http: bool) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = listener.local_addr().unwrap().port();
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let seen = arrivals.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let at = Instant::now();
            let Ok(mut conn) = conn else { continue };
            seen.lock().unwrap().push(at);
            if http {
                answer(&mut conn);
            }
        }
    });
    Server { port, arrivals }
}

fn answer(conn: &mut TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
}

fn probe(handler: Handler) -> Probe {
    Probe {
        handler,
        initial_delay_seconds: 0,
        period_seconds: PERIOD.as_secs() as u32,
        timeout_seconds: 1,
        success_threshold: 1,
        failure_threshold: 3,
        termination_grace_period_seconds: None,
    }
}

/// The prober thread's on-CPU nanoseconds so far.
fn prober_cpu_ns() -> u64 {
    for task in std::fs::read_dir("/proc/self/task").expect("read /proc/self/task") {
        let dir = task.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() == podrun::probe::PROBER_THREAD_NAME {
            let stat = std::fs::read_to_string(dir.join("schedstat")).expect("schedstat");
            return stat.split_whitespace().next().unwrap().parse().unwrap();
        }
    }
    panic!("no prober thread");
}

fn main() {
    let secs: u64 = std::env::var("PODRUN_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let (_wake, theirs) = UnixStream::pair().unwrap();
    let prober = Prober::start(theirs).expect("start the prober");
    let target = Target {
        pod_ip: "127.0.0.1".parse().unwrap(),
        exec_program: "/bin/false".into(),
        exec_args: Vec::new(),
    };
    let mut watched = Vec::new();
    for container in 0..CONTAINERS {
        let (tcp, http) = (server(false), server(true));
        let probes = ContainerProbes {
            startup: None,
            liveness: Some(probe(Handler::TcpSocket {
                host: None,
                port: tcp.port,
            })),
            readiness: Some(probe(Handler::HttpGet {
                scheme: Scheme::Http,
                host: None,
                port: http.port,
                path: "/healthz".into(),
                headers: Vec::new(),
            })),
        };
        let at = Instant::now();
        prober.watch(
            container,
            format!("c{container}"),
            probes,
            target.clone(),
            at,
        );
        watched.push((at, tcp, http));
    }
    let cpu_start = prober_cpu_ns();
    std::thread::sleep(Duration::from_secs(secs) + PERIOD / 2);
    let cpu = prober_cpu_ns() - cpu_start;
    drop(prober);

    let mut jitter = Vec::new();
    let mut attempts = 0usize;
    for (watched_at, tcp, http) in &watched {
        for server in [tcp, http] {
            for at in server.arrivals.lock().unwrap().iter() {
                let since = at.duration_since(*watched_at).as_secs_f64();
                let k = (since / PERIOD.as_secs_f64()).round();
                let late = (since - k * PERIOD.as_secs_f64()).max(0.0);
                jitter.push(Duration::from_secs_f64(late));
                attempts += 1;
            }
        }
    }
    jitter.sort();
    let p99 = jitter[(jitter.len() * 99 / 100).min(jitter.len() - 1)];
    let max = *jitter.last().unwrap();
    let expected = CONTAINERS * 2 * (secs as usize + 1);
    println!(
        "prober: {} probes (tcpSocket + httpGet) at periodSeconds 1 for {secs} s, loopback servers",
        CONTAINERS * 2
    );
    println!("  attempts seen by the servers: {attempts} (expected {expected})");
    println!(
        "  prober thread CPU: {:.1} ms in all, {:.4} ms per attempt (target < 0.1 ms)",
        cpu as f64 / 1e6,
        cpu as f64 / 1e6 / attempts.max(1) as f64
    );
    println!(
        "  period jitter (arrival - schedule): median {:.3} ms, p99 {:.3} ms, max {:.3} ms (target p99 < 50 ms)",
        stats::ms(stats::median(jitter.clone())),
        stats::ms(p99),
        stats::ms(max)
    );
}
