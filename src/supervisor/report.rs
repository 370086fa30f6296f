//! The supervisor's one message to `apply`, on the pipe apply gave it: how the pod's start
//! went. Written by the supervisor (or by the forked child that failed to become one), read by
//! apply; no message at all (the pipe closed) means the supervisor ended before it could say.

use std::io::{BufRead, Read, Write};
use std::os::fd::OwnedFd;

/// How a pod's first start went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartReport {
    /// Started: what apply prints (sandbox, network, each container: a line each).
    Started(String),
    /// Failed, everything the supervisor made rolled back: why.
    Failed(String),
}

const STARTED: &str = "ok";
const FAILED: &str = "error: ";

impl StartReport {
    /// Send it on `pipe` (and close it).
    pub fn send(&self, pipe: OwnedFd) {
        let text = match self {
            Self::Started(summary) => format!("{STARTED}\n{summary}"),
            Self::Failed(why) => format!("{FAILED}{}\n", why.replace('\n', " ")),
        };
        let _ = std::fs::File::from(pipe).write_all(text.as_bytes());
    }

    /// Read the report from `pipe` until it closes; None when none came.
    pub fn receive(pipe: impl Read) -> Option<Self> {
        let mut reader = std::io::BufReader::new(pipe);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let line = line.trim_end_matches('\n');
        if line == STARTED {
            let mut summary = String::new();
            let _ = reader.read_to_string(&mut summary);
            return Some(Self::Started(summary));
        }
        line.strip_prefix(FAILED)
            .map(|why| Self::Failed(why.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(report: StartReport) -> Option<StartReport> {
        let (rx, tx) = nix::unistd::pipe().unwrap();
        report.send(tx);
        StartReport::receive(std::fs::File::from(rx))
    }

    #[test]
    fn a_report_arrives_as_sent() {
        let started = StartReport::Started("sandbox ...\ncontainer c pid 7: sleep\n".into());
        assert_eq!(round_trip(started.clone()), Some(started));
        assert_eq!(
            round_trip(StartReport::Failed("volume v:\nno such file".into())),
            Some(StartReport::Failed("volume v: no such file".into()))
        );
        let (rx, tx) = nix::unistd::pipe().unwrap();
        drop(tx);
        assert_eq!(StartReport::receive(std::fs::File::from(rx)), None);
    }
}
