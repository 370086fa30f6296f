//! host-local style IPAM (containernetworking/plugins `plugins/ipam/host-local`, its
//! `backend/disk` store), same layout:
//!
//! * the directory (mode 0755) holds one file per allocated IP, named by the IP, created with
//!   `O_EXCL`, mode 0600, containing `<owner>\r\n<ifname>`;
//! * `last_reserved_ip.0` holds the last IP handed out (no newline);
//! * `lock` is held with an exclusive flock for each whole operation.
//!
//! Allocation is round-robin from `last_reserved_ip + 1` over network+1 .. broadcast-1, skipping
//! the gateway, for one lap. So a crash-looping pod does not get its old IP back right away.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use super::{NetError, NetworkConfig};
use crate::lockfile::LockFile;

const LAST_RESERVED: &str = "last_reserved_ip.0";
const LOCK: &str = "lock";

/// The allocator for one network.
#[derive(Debug, Clone)]
pub struct Ipam {
    dir: PathBuf,
    range: Ipv4Net,
    gateway: Ipv4Addr,
}

impl Ipam {
    pub fn new(cfg: &NetworkConfig) -> Self {
        Ipam {
            dir: cfg.ipam_dir.clone(),
            range: cfg.cidr,
            gateway: cfg.gateway(),
        }
    }

    /// The allocation directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reserve the next free IP for `owner` (e.g. the pod UID or `<namespace>/<name>`) on
    /// `ifname`.
    pub fn allocate(&self, owner: &str, ifname: &str) -> Result<Ipv4Addr, NetError> {
        self.create_dir()?;
        let _lock = self.lock()?;

        let content = format!("{owner}\r\n{ifname}");
        for (ip, held_by) in self.read_allocations()? {
            if held_by == content {
                return Err(NetError::IpamDuplicate {
                    ip,
                    owner: owner.to_string(),
                });
            }
        }

        let first = u32::from(self.range.network()) + 1;
        let last = u32::from(self.range.broadcast()) - 1;
        let size = last - first + 1;
        let start = match self.last_reserved() {
            Some(ip) if (first..=last).contains(&u32::from(ip)) => {
                if u32::from(ip) == last {
                    first
                } else {
                    u32::from(ip) + 1
                }
            }
            _ => first,
        };
        for step in 0..size {
            let ip = Ipv4Addr::from(first + (start - first + step) % size);
            if ip == self.gateway {
                continue;
            }
            let path = self.dir.join(ip.to_string());
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path);
            let mut file = match file {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(io_err("create", &path, source)),
            };
            if let Err(source) = file.write_all(content.as_bytes()) {
                let _ = fs::remove_file(&path);
                return Err(io_err("write", &path, source));
            }
            self.write_last_reserved(ip)?;
            return Ok(ip);
        }
        Err(NetError::IpamExhausted { range: self.range })
    }

    /// Release every IP held by `owner` (any ifname, and the old owner-only format). A missing
    /// directory is fine. Returns the released IPs.
    pub fn release(&self, owner: &str) -> Result<Vec<Ipv4Addr>, NetError> {
        if !self.dir.is_dir() {
            return Ok(Vec::new());
        }
        let _lock = self.lock()?;
        let prefix = format!("{owner}\r\n");
        let mut released = Vec::new();
        for (ip, content) in self.read_allocations()? {
            if content == owner || content.starts_with(&prefix) {
                let path = self.dir.join(ip.to_string());
                match fs::remove_file(&path) {
                    Ok(()) => released.push(ip),
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(source) => return Err(io_err("remove", &path, source)),
                }
            }
        }
        released.sort();
        Ok(released)
    }

    /// Current allocations as (IP, owner), sorted by IP.
    pub fn allocations(&self) -> Result<Vec<(Ipv4Addr, String)>, NetError> {
        if !self.dir.is_dir() {
            return Ok(Vec::new());
        }
        Ok(self
            .read_allocations()?
            .into_iter()
            .map(|(ip, content)| {
                let owner = content.split("\r\n").next().unwrap_or_default().to_string();
                (ip, owner)
            })
            .collect())
    }

    /// (IP, raw file content) for every IP file in the range.
    fn read_allocations(&self) -> Result<Vec<(Ipv4Addr, String)>, NetError> {
        let entries =
            fs::read_dir(&self.dir).map_err(|e| io_err("read directory", &self.dir, e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_err("read directory", &self.dir, e))?;
            let Some(ip) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            if !self.range.contains(&ip) {
                continue;
            }
            match fs::read_to_string(entry.path()) {
                Ok(content) => out.push((ip, content.trim().to_string())),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("read", &entry.path(), e)),
            }
        }
        out.sort();
        Ok(out)
    }

    fn last_reserved(&self) -> Option<Ipv4Addr> {
        fs::read_to_string(self.dir.join(LAST_RESERVED))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    fn write_last_reserved(&self, ip: Ipv4Addr) -> Result<(), NetError> {
        let path = self.dir.join(LAST_RESERVED);
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(ip.to_string().as_bytes()))
            .map_err(|e| io_err("write", &path, e))
    }

    fn create_dir(&self) -> Result<(), NetError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&self.dir)
            .map_err(|e| io_err("create directory", &self.dir, e))
    }

    /// Exclusive flock on `<dir>/lock`, released when dropped.
    fn lock(&self) -> Result<LockFile, NetError> {
        Ok(LockFile::exclusive(&self.dir.join(LOCK), 0o600)?)
    }
}

fn io_err(op: &'static str, path: &Path, source: std::io::Error) -> NetError {
    NetError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn ipam(dir: &Path, cidr: &str) -> Ipam {
        Ipam::new(&NetworkConfig {
            bridge: "podrun0".into(),
            cidr: cidr.parse().unwrap(),
            ipam_dir: dir.join("networks/podrun0"),
        })
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn layout_matches_host_local() {
        let tmp = tempfile::tempdir().unwrap();
        let ipam = ipam(tmp.path(), "10.244.0.0/24");
        assert_eq!(
            ipam.allocate("default/web", "eth0").unwrap(),
            ip("10.244.0.2")
        );
        let dir = ipam.dir();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir), 0o755);
        assert_eq!(mode(&dir.join("10.244.0.2")), 0o600);
        assert_eq!(
            fs::read_to_string(dir.join("10.244.0.2")).unwrap(),
            "default/web\r\neth0"
        );
        assert_eq!(
            fs::read_to_string(dir.join("last_reserved_ip.0")).unwrap(),
            "10.244.0.2"
        );
        assert!(dir.join("lock").exists());
    }

    #[test]
    fn round_robin_and_wrap_skips_gateway_and_broadcast() {
        let tmp = tempfile::tempdir().unwrap();
        let ipam = ipam(tmp.path(), "10.0.0.0/29"); // .2 .. .6 usable
        let got: Vec<_> = (0..5)
            .map(|i| ipam.allocate(&format!("p{i}"), "eth0").unwrap())
            .collect();
        assert_eq!(
            got,
            ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"].map(ip)
        );
        // Release .3; next allocation wraps around (skipping .0, .1 and .7) and finds .3.
        assert_eq!(ipam.release("p1").unwrap(), vec![ip("10.0.0.3")]);
        assert_eq!(ipam.allocate("p5", "eth0").unwrap(), ip("10.0.0.3"));
    }

    #[test]
    fn round_robin_does_not_reuse_immediately() {
        let tmp = tempfile::tempdir().unwrap();
        let ipam = ipam(tmp.path(), "10.244.0.0/24");
        assert_eq!(ipam.allocate("a", "eth0").unwrap(), ip("10.244.0.2"));
        ipam.release("a").unwrap();
        // A restarted pod gets the next address, not its old one.
        assert_eq!(ipam.allocate("a", "eth0").unwrap(), ip("10.244.0.3"));
    }

    #[test]
    fn exhaustion_message() {
        let tmp = tempfile::tempdir().unwrap();
        let ipam = ipam(tmp.path(), "10.0.0.0/29");
        for i in 0..5 {
            ipam.allocate(&format!("p{i}"), "eth0").unwrap();
        }
        let err = ipam.allocate("p9", "eth0").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no IP addresses available in range 10.0.0.0/29"
        );
    }

    #[test]
    fn duplicate_owner_message() {
        let tmp = tempfile::tempdir().unwrap();
        let ipam = ipam(tmp.path(), "10.244.0.0/24");
        ipam.allocate("default/web", "eth0").unwrap();
        let err = ipam.allocate("default/web", "eth0").unwrap_err();
        assert_eq!(
            err.to_string(),
            "10.244.0.2 has been allocated to default/web, duplicate allocation is not allowed"
        );
        // Another interface of the same owner is fine.
        assert_eq!(
            ipam.allocate("default/web", "net1").unwrap(),
            ip("10.244.0.3")
        );
    }

    #[test]
    fn release_matches_both_formats_and_tolerates_missing_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let ipam = ipam(tmp.path(), "10.244.0.0/24");
        assert!(ipam.release("nobody").unwrap().is_empty());
        assert!(ipam.allocations().unwrap().is_empty());
        ipam.allocate("a", "eth0").unwrap();
        ipam.allocate("b", "eth0").unwrap();
        fs::write(ipam.dir().join("10.244.0.9"), "a").unwrap(); // old id-only format
        fs::write(ipam.dir().join("10.244.0.10"), "ab\r\neth0").unwrap(); // prefix, not owner
        assert_eq!(
            ipam.release("a").unwrap(),
            vec![ip("10.244.0.2"), ip("10.244.0.9")]
        );
        assert_eq!(
            ipam.allocations().unwrap(),
            vec![
                (ip("10.244.0.3"), "b".into()),
                (ip("10.244.0.10"), "ab".into())
            ]
        );
    }

    #[test]
    fn state_persists_across_instances() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(
            ipam(tmp.path(), "10.244.0.0/24")
                .allocate("a", "eth0")
                .unwrap(),
            ip("10.244.0.2")
        );
        let again = ipam(tmp.path(), "10.244.0.0/24");
        assert_eq!(again.allocate("b", "eth0").unwrap(), ip("10.244.0.3"));
        assert_eq!(
            again.allocations().unwrap(),
            vec![
                (ip("10.244.0.2"), "a".into()),
                (ip("10.244.0.3"), "b".into())
            ]
        );
    }

    #[test]
    fn concurrent_allocations_are_unique() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().to_path_buf();
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let path = path.clone();
                // A fresh instance per thread, as separate supervisors would have.
                std::thread::spawn(move || {
                    ipam(&path, "10.244.0.0/24")
                        .allocate(&format!("pod{i}"), "eth0")
                        .unwrap()
                })
            })
            .collect();
        let ips: HashSet<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(ips.len(), 20);
        assert_eq!(
            ipam(&path, "10.244.0.0/24").allocations().unwrap().len(),
            20
        );
        assert!(!ips.contains(&ip("10.244.0.1")));
    }
}
