//! The worker rules against loopback servers, with periods of one second (each test takes
//! about three seconds at most).

use std::io::Read;
use std::net::TcpListener;

use super::*;
use crate::probe::test_support::{closed_port, target};

/// A probe with a period of 1 s and the given handler.
fn probe(handler: Handler) -> Probe {
    Probe {
        handler,
        initial_delay_seconds: 0,
        period_seconds: 1,
        timeout_seconds: 1,
        success_threshold: 1,
        failure_threshold: 3,
        termination_grace_period_seconds: None,
    }
}

fn tcp(port: u16) -> Handler {
    Handler::TcpSocket {
        host: Some("127.0.0.1".into()),
        port,
    }
}

/// A port that accepts (the kernel does, from the backlog) for the whole test.
fn open_port() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

struct Harness {
    prober: Prober,
    wake: UnixStream,
    t0: Instant,
}

impl Harness {
    fn new() -> Harness {
        let (ours, theirs) = UnixStream::pair().unwrap();
        Harness {
            prober: Prober::start(theirs).unwrap(),
            wake: ours,
            t0: Instant::now(),
        }
    }

    fn watch(&mut self, id: &str, probes: ContainerProbes) {
        self.t0 = Instant::now();
        self.prober.watch(0, id.into(), probes, target(), self.t0);
    }

    /// The reports until `until` after the watch, each with its time since the watch.
    fn collect(&self, until: Duration) -> Vec<(Duration, Report)> {
        let mut got = Vec::new();
        loop {
            let left = until.saturating_sub(self.t0.elapsed());
            if left.is_zero() {
                return got;
            }
            self.wake.set_read_timeout(Some(left)).unwrap();
            let mut byte = [0u8; 64];
            let _ = (&self.wake).read(&mut byte);
            let at = self.t0.elapsed();
            got.extend(self.prober.take_reports().into_iter().map(|r| (at, r)));
        }
    }
}

fn kinds(reports: &[(Duration, Report)]) -> Vec<(Kind, Option<bool>)> {
    reports
        .iter()
        .filter_map(|(_, r)| match r {
            Report::Probe { kind, changed, .. } => Some((*kind, *changed)),
            _ => None,
        })
        .collect()
}

#[test]
fn thresholds_and_liveness_on_hold() {
    let (_l, open) = open_port();
    let mut h = Harness::new();
    h.watch(
        "c1",
        ContainerProbes {
            liveness: Some(Probe {
                failure_threshold: 2,
                ..probe(tcp(closed_port()))
            }),
            readiness: Some(Probe {
                success_threshold: 2,
                ..probe(tcp(open))
            }),
            startup: None,
        },
    );
    let reports = h.collect(Duration::from_millis(2700));
    let mut got = kinds(&reports);
    got.sort_by_key(|(k, c)| (*k as u8, *c));
    // Liveness: a failure (run 1), then the threshold (result set: Failure), then on hold
    // (nothing at 2 s). Readiness: its second success sets the result.
    assert_eq!(
        got,
        vec![
            (Kind::Liveness, None),
            (Kind::Liveness, Some(false)),
            (Kind::Readiness, Some(true)),
        ],
        "{reports:?}"
    );
    for (at, r) in &reports {
        if let Report::Probe {
            kind: Kind::Readiness,
            container_id,
            outcome,
            ..
        } = r
        {
            assert!(*at >= Duration::from_millis(950), "{at:?}");
            assert_eq!(container_id, "c1");
            assert_eq!(outcome, &Outcome::Success);
        }
    }
}

#[test]
fn startup_gates_liveness_and_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("started");
    let (_l, open) = open_port();
    let mut h = Harness::new();
    h.watch(
        "c1",
        ContainerProbes {
            startup: Some(Probe {
                failure_threshold: 10,
                ..probe(Handler::Exec {
                    command: vec!["test".into(), "-e".into(), flag.display().to_string()],
                })
            }),
            liveness: Some(probe(tcp(closed_port()))),
            readiness: Some(probe(tcp(open))),
        },
    );
    std::thread::sleep(Duration::from_millis(1400));
    std::fs::write(&flag, "").unwrap();
    let reports = h.collect(Duration::from_millis(2600));
    let got = kinds(&reports);
    assert_eq!(got.len(), 5, "{reports:?}");
    assert_eq!(
        got[..3],
        [
            (Kind::Startup, None),
            (Kind::Startup, None),
            (Kind::Startup, Some(true)),
        ],
        "{reports:?}"
    );
    // Then both others at once (not a period later), in either order.
    assert!(got[3..].contains(&(Kind::Liveness, None)), "{reports:?}");
    assert!(
        got[3..].contains(&(Kind::Readiness, Some(true))),
        "{reports:?}"
    );
    let at = |kind: Kind, changed: Option<bool>| {
        reports
            .iter()
            .find(|(_, r)| matches!(r, Report::Probe { kind: k, changed: c, .. } if *k == kind && *c == changed))
            .map(|(at, _)| *at)
            .unwrap_or_else(|| panic!("no {kind:?} {changed:?} in {reports:?}"))
    };
    let started = at(Kind::Startup, Some(true));
    assert!(started >= Duration::from_millis(1900), "{reports:?}");
    assert!(at(Kind::Readiness, Some(true)) - started < Duration::from_millis(300));
    assert!(at(Kind::Liveness, None) - started < Duration::from_millis(300));
}

#[test]
fn no_attempt_before_the_initial_delay() {
    let (_l, open) = open_port();
    let mut h = Harness::new();
    h.watch(
        "c1",
        ContainerProbes {
            readiness: Some(Probe {
                initial_delay_seconds: 2,
                ..probe(tcp(open))
            }),
            ..Default::default()
        },
    );
    let reports = h.collect(Duration::from_millis(2600));
    assert_eq!(kinds(&reports), vec![(Kind::Readiness, Some(true))]);
    assert!(reports[0].0 >= Duration::from_secs(2), "{reports:?}");
}

#[test]
fn forget_and_rewatch_stop_the_old_workers() {
    let mut h = Harness::new();
    let failing = ContainerProbes {
        readiness: Some(Probe {
            failure_threshold: 100,
            ..probe(tcp(closed_port()))
        }),
        ..Default::default()
    };
    h.watch("old", failing.clone());
    h.watch("new", failing);
    let reports = h.collect(Duration::from_millis(1500));
    let ids: Vec<&str> = reports
        .iter()
        .filter_map(|(_, r)| match r {
            Report::Probe { container_id, .. } => Some(container_id.as_str()),
            _ => None,
        })
        .collect();
    // The old run may have had its first attempt before the new watch replaced it.
    assert_eq!(ids.iter().filter(|id| **id == "new").count(), 2, "{ids:?}");
    assert!(
        ids.iter().filter(|id| **id == "old").count() <= 1,
        "{ids:?}"
    );
    h.prober.forget(0);
    let after = h.collect(Duration::from_millis(2700));
    assert!(after.is_empty(), "{after:?}");
}

#[test]
fn hooks_report_their_outcome_and_drop_joins() {
    let h = Harness::new();
    h.prober.run_hook(
        7,
        Handler::Exec {
            command: vec!["sh".into(), "-c".into(), "echo no; exit 1".into()],
        },
        target(),
        Duration::from_secs(2),
    );
    h.prober.run_hook(
        8,
        Handler::Sleep { seconds: 60 },
        target(),
        Duration::from_secs(1),
    );
    let reports = h.collect(Duration::from_millis(1000));
    assert_eq!(
        reports.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
        vec![Report::Hook {
            token: 7,
            outcome: Outcome::Failure("no\n".into())
        }]
    );
    let t = Instant::now();
    drop(h);
    assert!(t.elapsed() < Duration::from_millis(500));
}

#[test]
fn a_slow_attempt_delays_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("attempts");
    let script = format!("echo x >> {}; sleep 1.5", log.display());
    let mut h = Harness::new();
    h.watch(
        "c1",
        ContainerProbes {
            readiness: Some(Probe {
                timeout_seconds: 3,
                ..probe(Handler::Exec {
                    command: vec!["sh".into(), "-c".into(), script],
                })
            }),
            ..Default::default()
        },
    );
    let reports = h.collect(Duration::from_millis(2700));
    // Attempts at 0 and 1.5 s (the tick at 1 s waited for the first), none at 2 s.
    let attempts = std::fs::read_to_string(&log).unwrap().lines().count();
    assert_eq!(attempts, 2);
    assert_eq!(kinds(&reports), vec![(Kind::Readiness, Some(true))]);
    assert!(reports[0].0 >= Duration::from_millis(1400), "{reports:?}");
}

#[test]
fn an_attempt_is_bounded_by_its_timeout() {
    let mut h = Harness::new();
    h.watch(
        "c1",
        ContainerProbes {
            liveness: Some(probe(Handler::Exec {
                command: vec!["sleep".into(), "5".into()],
            })),
            ..Default::default()
        },
    );
    let reports = h.collect(Duration::from_millis(1500));
    assert_eq!(reports.len(), 1, "{reports:?}");
    let (at, report) = &reports[0];
    assert!(*at >= Duration::from_millis(950) && *at < Duration::from_millis(1400));
    assert_eq!(
        report,
        &Report::Probe {
            container: 0,
            container_id: "c1".into(),
            kind: Kind::Liveness,
            outcome: Outcome::Failure("command \"sleep 5\" timed out".into()),
            changed: None,
        }
    );
}
