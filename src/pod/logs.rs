//! A container run's log, as `podrun logs` and the API's `pods/log` read it: the whole file,
//! its last lines (`--tail`, `tailLines`), its last bytes (`limitBytes`), and what it writes
//! next until that run ends or the pod is deleted (`-f`, `follow=true`).

use std::io::Read;
use std::time::Duration;

use super::read::{self, Run};
use super::{Result, failed};
use crate::config::Config;
use crate::state::{PodKey, PodRecord};

/// An open log of one run of one container.
pub struct Log {
    pub file: std::fs::File,
    key: PodKey,
    container: String,
    run: u32,
}

/// Open the log of `run` of `container` of pod `r`.
pub fn open(cfg: &Config, r: &PodRecord, container: &str, which: Run) -> Result<Log> {
    let (path, run) = read::log_of(cfg, r, container, which)?;
    let file = std::fs::File::open(&path)
        .map_err(|e| failed(format!("read log {}: {e}", path.display())))?;
    Ok(Log {
        file,
        key: r.key(),
        container: container.to_owned(),
        run,
    })
}

impl Log {
    /// What it holds now (the file read to its end).
    pub fn read_all(&mut self) -> Result<Vec<u8>> {
        let mut text = Vec::new();
        self.file
            .read_to_end(&mut text)
            .map_err(|e| failed(format!("read log of {}: {e}", self.container)))?;
        Ok(text)
    }

    /// Give `out` what the run writes next until it ends (and what it wrote last), or until
    /// `out` says stop (false).
    pub fn follow(&mut self, cfg: &Config, out: &mut dyn FnMut(&[u8]) -> bool) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut progressed = false;
            while let Ok(n) = self.file.read(&mut buf) {
                if n == 0 {
                    break;
                }
                progressed = true;
                if !out(&buf[..n]) {
                    return;
                }
            }
            if !read::run_is_live(cfg, &self.key, &self.container, self.run) && !progressed {
                while let Ok(n) = self.file.read(&mut buf) {
                    if n == 0 || !out(&buf[..n]) {
                        break;
                    }
                }
                return;
            }
            // An empty chunk: the caller may check whether its reader is still there.
            if !out(&[]) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The last `n` lines of `text` (all of it for None or a negative `n`).
pub fn tail(text: &[u8], n: Option<i64>) -> &[u8] {
    let Some(n) = n.filter(|n| *n >= 0) else {
        return text;
    };
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut count = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            count += 1;
            if count == n {
                return &text[i + 1..];
            }
        }
    }
    if n == 0 { &[] } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_lines() {
        assert_eq!(tail(b"a\nb\nc\n", Some(2)), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc", Some(1)), b"c");
        assert_eq!(tail(b"a\nb\n", Some(5)), b"a\nb\n");
        assert_eq!(tail(b"a\nb\n", Some(0)), b"");
        assert_eq!(tail(b"a\n", None), b"a\n");
    }
}
