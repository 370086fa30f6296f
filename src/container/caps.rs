//! Capability sets, as containerd's CRI plugin computes them: the default set of containerd's
//! `pkg/oci/spec.go` `defaultUnixCaps` (Docker's list; containerd 2.x still includes
//! `CAP_NET_RAW`), then `capabilities.drop` (`ALL` clears everything), then `capabilities.add`
//! (`ALL` adds every capability), `privileged` gives all of them. Names are accepted with or
//! without the `CAP_` prefix, in any case, as containerd does.

use std::collections::BTreeSet;
use std::str::FromStr;

use crate::spec::SecurityPlan;

/// containerd's (and Docker's) default capabilities of a container.
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// A capability by its Kubernetes name (`NET_RAW`) or its kernel name (`CAP_NET_RAW`).
pub fn parse(name: &str) -> Option<caps::Capability> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    caps::Capability::from_str(&full).ok()
}

/// Every capability this build knows, by kernel name.
fn all() -> BTreeSet<String> {
    caps::all().iter().map(|c| c.to_string()).collect()
}

/// The container's capability set (kernel names, sorted).
pub fn effective_set(security: &SecurityPlan) -> BTreeSet<String> {
    if security.privileged {
        return all();
    }
    let is_all = |n: &String| n.eq_ignore_ascii_case("ALL");
    let mut set: BTreeSet<String> = if security.capabilities_drop.iter().any(is_all) {
        BTreeSet::new()
    } else {
        DEFAULT_CAPS.iter().map(|s| s.to_string()).collect()
    };
    for name in &security.capabilities_drop {
        if let Some(c) = parse(name) {
            set.remove(&c.to_string());
        }
    }
    for name in &security.capabilities_add {
        if is_all(name) {
            set.extend(all());
        } else if let Some(c) = parse(name) {
            set.insert(c.to_string());
        }
    }
    set
}

/// The set as a `CapEff` mask, as `/proc/<pid>/status` prints it.
pub fn mask(set: &BTreeSet<String>) -> u64 {
    set.iter()
        .filter_map(|n| caps::Capability::from_str(n).ok())
        .fold(0, |m, c| m | c.bitmask())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sec(add: &[&str], drop: &[&str]) -> SecurityPlan {
        SecurityPlan {
            capabilities_add: add.iter().map(|s| s.to_string()).collect(),
            capabilities_drop: drop.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn names_with_or_without_prefix() {
        assert_eq!(parse("NET_RAW"), Some(caps::Capability::CAP_NET_RAW));
        assert_eq!(
            parse("cap_net_admin"),
            Some(caps::Capability::CAP_NET_ADMIN)
        );
        assert_eq!(parse("NET_RAWW"), None);
    }

    #[test]
    fn default_is_dockers_list() {
        let set = effective_set(&SecurityPlan::default());
        assert_eq!(set.len(), 14);
        // the well-known CapEff of a default Docker/containerd root container
        assert_eq!(format!("{:016x}", mask(&set)), "00000000a80425fb");
    }

    #[test]
    fn drop_all_then_add() {
        assert!(effective_set(&sec(&[], &["ALL"])).is_empty());
        let set = effective_set(&sec(&["NET_RAW"], &["ALL"]));
        assert_eq!(set.into_iter().collect::<Vec<_>>(), ["CAP_NET_RAW"]);
        let set = effective_set(&sec(&["SYS_TIME"], &["NET_RAW", "CHOWN"]));
        assert!(set.contains("CAP_SYS_TIME"));
        assert!(!set.contains("CAP_NET_RAW") && !set.contains("CAP_CHOWN"));
        assert_eq!(set.len(), 13);
    }

    #[test]
    fn privileged_gets_everything() {
        let p = SecurityPlan {
            privileged: true,
            capabilities_drop: vec!["ALL".into()],
            ..Default::default()
        };
        assert!(effective_set(&p).contains("CAP_SYS_ADMIN"));
    }
}
