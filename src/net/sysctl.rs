//! `/proc/sys/net` writes. The files resolve to the network namespace of the *calling thread*
//! at open time, so writes for a pod must happen on the thread that is inside the pod netns.

use std::io::Write;

use super::NetError;

/// Write `value` to `/proc/sys/<key>` (key like `net/ipv4/ip_forward`).
pub(crate) fn write(key: &str, value: &str) -> Result<(), NetError> {
    let path = format!("/proc/sys/{key}");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|source| NetError::Sysctl {
            path,
            value: value.to_string(),
            source,
        })
}

/// `net.ipv4.ip_forward=1` in the calling thread's netns; skips the write when already set.
pub(crate) fn ensure_ip_forward() -> Result<(), NetError> {
    const KEY: &str = "net/ipv4/ip_forward";
    match std::fs::read_to_string(format!("/proc/sys/{KEY}")) {
        Ok(v) if v.trim() == "1" => Ok(()),
        _ => write(KEY, "1"),
    }
}
