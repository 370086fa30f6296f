//! Parsers for cgroup stat files: flat keyed files (`cpu.stat`, `memory.events`, `memory.stat`,
//! v1 `memory.oom_control`) and single values (`memory.current`, `memory.max`, `cpuacct.usage`).

use std::collections::BTreeMap;
use std::path::Path;

use super::{CgroupError, read_file};

/// Parses "key value" lines; lines whose value is not a u64 are skipped.
pub fn parse_flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.split_whitespace();
            let key = it.next()?;
            let value = it.next()?.parse().ok()?;
            Some((key.to_owned(), value))
        })
        .collect()
}

/// Reads a flat keyed file.
pub(super) fn read_flat_keyed(path: &Path) -> Result<BTreeMap<String, u64>, CgroupError> {
    Ok(parse_flat_keyed(&read_file(path)?))
}

/// Reads a single number; `max` → `None`.
pub(super) fn read_single(path: &Path) -> Result<Option<u64>, CgroupError> {
    let text = read_file(path)?;
    parse_single(&text).map_err(|reason| CgroupError::Parse {
        path: path.to_owned(),
        data: text.trim().to_owned(),
        reason,
    })
}

pub(super) fn parse_single(text: &str) -> Result<Option<u64>, String> {
    match text.trim() {
        "max" => Ok(None),
        t => t
            .parse()
            .map(Some)
            .map_err(|e| format!("not a number or `max`: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keyed() {
        let m = parse_flat_keyed(
            "usage_usec 1234\nuser_usec 1000\nsystem_usec 234\nnr_periods 10\nnr_throttled 3\nthrottled_usec 4567\nbad line x\n\n",
        );
        assert_eq!(m["usage_usec"], 1234);
        assert_eq!(m["nr_throttled"], 3);
        assert_eq!(m["throttled_usec"], 4567);
        assert!(!m.contains_key("bad"));
    }

    #[test]
    fn single() {
        assert_eq!(parse_single("max\n"), Ok(None));
        assert_eq!(parse_single("209715200\n"), Ok(Some(209_715_200)));
        assert!(parse_single("-1").is_err());
    }
}
