//! Finding podrun's objects that no record accounts for, and removing them.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;

use super::{Finding, FixReport};
use crate::cgroup::{Hierarchy, PodCgroup};
use crate::config::Config;
use crate::net::{self, ipam::Ipam};
use crate::procfs;
use crate::state::PodRecord;

/// A running pod's wired sandbox whose host veth is missing, or no longer a port of the
/// bridge it was attached to (someone deleted it, or the bridge was re-made without it).
fn network_gone(record: &PodRecord) -> Option<Finding> {
    let sb = record.sandbox.as_ref().filter(|s| s.ready)?;
    let wired = sb.network.as_ref()?;
    let why = match net::inspect_host_veth(&sb.host_veth) {
        Err(_) => return None,
        Ok(None) => "is gone".to_owned(),
        Ok(Some(v)) if v.master.as_deref() != Some(wired.bridge.as_str()) => {
            format!("is not a port of bridge {} any more", wired.bridge)
        }
        Ok(Some(_)) => return None,
    };
    Some(Finding::PodNetworkGone {
        pod: record.key().to_string(),
        veth: sb.host_veth.clone(),
        why,
    })
}

/// What the records say exists (the caller holds the state root lock).
struct Known {
    keys: HashSet<String>,
    uids: HashSet<String>,
    veths: HashSet<String>,
    ipam_owners: HashSet<String>,
    bridges: HashSet<String>,
}

impl Known {
    fn from(records: &[PodRecord]) -> Known {
        Known {
            keys: records.iter().map(|r| r.key().to_string()).collect(),
            uids: records.iter().map(|r| r.plan.uid.clone()).collect(),
            veths: records
                .iter()
                .map(|r| net::host_veth_name(&r.key().to_string()))
                .collect(),
            ipam_owners: records
                .iter()
                .filter_map(|r| r.sandbox.as_ref().map(|s| s.id.clone()))
                .collect(),
            bridges: records
                .iter()
                .map(|r| r.network_config.bridge.clone())
                .collect(),
        }
    }
}

/// Everything on the node (for this state root, bridge, netns dir and cgroup parent) that no
/// record accounts for, plus records whose supervisor is gone.
///
/// The node is read first, the records after: a pod's record exists, and its supervisor runs
/// under its own name, before any of its objects is made, so every object seen here belongs
/// to a record read below (of this root or of another live one) or to none. Read the other
/// way round, a pod another root makes meanwhile would look like a leftover (seen: an apply
/// into an empty root swept the pod another root was starting).
pub fn scan(cfg: &Config) -> Vec<Finding> {
    let network = cfg.network();
    let pod_cgroups = cgroups(cfg);
    let parent = cgroup_parent(cfg);
    let bridge = net::inspect_bridge(&network.bridge).ok().flatten();
    let masquerade = net::masquerade_present(&network).unwrap_or(false);
    let host_port_pods = net::hostport::pods_with_rules().unwrap_or_default();
    let pin_files = netns_pins(&cfg.netns_dir);
    // Read as IPAM reads them (owner of each address).
    let allocations = Ipam::new(&network).allocations().unwrap_or_default();

    let own = cfg.store().list();
    let records = with_other_roots(cfg, own.clone());
    let known = Known::from(&records);
    let own_known = Known::from(&own);
    let mut found = Vec::new();
    for r in &own {
        if r.supervisor.is_some_and(|s| !s.is_alive()) {
            found.push(Finding::LostSupervisor {
                pod: r.key().to_string(),
            });
        } else if let Some(f) = network_gone(r) {
            found.push(f);
        }
    }
    found.extend(supervisors(cfg, &own_known));
    let cgroups: Vec<Finding> = pod_cgroups
        .into_iter()
        .filter(|f| matches!(f, Finding::Cgroup { uid, .. } if !known.uids.contains(uid)))
        .collect();
    let orphan_netns: HashSet<u64> = cgroups
        .iter()
        .flat_map(|f| match f {
            Finding::Cgroup { pids, .. } => pids.clone(),
            _ => Vec::new(),
        })
        .filter_map(|pid| procfs::ns_inode(pid, "net"))
        .collect();
    found.extend(cgroups);
    let parent_used = records.iter().any(|r| {
        r.cgroup
            .as_ref()
            .is_some_and(|c| c.parent == cfg.cgroup_parent)
    });
    if !parent_used && let Some(f) = parent {
        found.push(f);
    }
    if let Some(b) = &bridge {
        found.extend(
            b.ports
                .iter()
                .filter(|p| !known.veths.contains(*p))
                .map(|p| Finding::Veth { name: p.clone() }),
        );
    }
    found.extend(pins(pin_files, &records, &orphan_netns));
    found.extend(
        allocations
            .into_iter()
            .filter(|(_, owner)| !known.ipam_owners.contains(owner))
            .map(|(ip, owner)| Finding::Address { ip, owner }),
    );
    found.extend(
        host_port_pods
            .into_iter()
            .filter(|uid| !known.uids.contains(uid))
            .map(|uid| Finding::HostPortRules { uid }),
    );
    if let Some(name) = net::half_made_bridge(&network) {
        found.push(Finding::HalfMadeBridge {
            name,
            bridge: network.bridge.clone(),
        });
    }
    if (bridge.is_some() || masquerade) && !known.bridges.contains(&network.bridge) {
        found.push(Finding::NodeNetwork {
            bridge: network.bridge.clone(),
        });
    }
    found
}

/// `own` and the records of the other state roots whose supervisors run on this node: they
/// share the node's bridge, cgroup parent and netns dir, and theirs are not leftovers of ours.
fn with_other_roots(cfg: &Config, mut own: Vec<PodRecord>) -> Vec<PodRecord> {
    for root in other_live_roots(&cfg.root) {
        let theirs = crate::state::Store::new(&root).list();
        tracing::debug!(root = %root.display(), pods = theirs.len(), "another live state root");
        own.extend(theirs);
    }
    own
}

/// A running `podrun --root ROOT __supervise POD` process.
struct LiveSupervisor {
    pid: i32,
    root: String,
    pod: String,
}

impl LiveSupervisor {
    /// Where this process reads the supervisor's state root: the same path when both run in
    /// one mount namespace, else through `/proc/<pid>/root` (the same path names another
    /// directory in another mount namespace, such as another node's tmpfs).
    fn root_seen_here(&self) -> PathBuf {
        let own_mnt = procfs::ns_inode(std::process::id() as i32, "mnt");
        if own_mnt.is_some() && procfs::ns_inode(self.pid, "mnt") == own_mnt {
            return PathBuf::from(&self.root);
        }
        let relative = self.root.trim_start_matches('/');
        Path::new(&format!("/proc/{}/root", self.pid)).join(relative)
    }

    /// True when its state root is the directory `root` names here (not only the same path).
    fn serves(&self, root: &Path) -> bool {
        if self.root != root.to_string_lossy() {
            return false;
        }
        let seen = self.root_seen_here();
        if seen == root {
            return true;
        }
        let id = |p: &Path| fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
        id(&seen).is_some() && id(&seen) == id(root)
    }
}

/// Every podrun supervisor running on this node, of any state root.
fn live_supervisors() -> Vec<LiveSupervisor> {
    procfs::pids()
        .filter_map(|pid| {
            let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let mut argv: Vec<String> = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            // A supervisor forked by apply and renamed setproctitle-style: one string.
            if let [title] = argv.as_slice() {
                argv = title.split(' ').map(str::to_owned).collect();
            }
            let at = argv.iter().position(|a| a == "__supervise")?;
            let root_at = argv.iter().position(|a| a == "--root")?;
            Some(LiveSupervisor {
                pid,
                root: argv.get(root_at + 1)?.clone(),
                pod: argv.get(at + 1)?.clone(),
            })
        })
        .collect()
}

/// The state roots, other than `own`, of the supervisors running on this node: in this
/// process's network namespace (supervisors of other nodes, such as the tests' throwaway
/// ones, describe other bridges and veths, which may have the same names).
fn other_live_roots(own: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Some(node_net) = procfs::ns_inode(std::process::id() as i32, "net") else {
        return Vec::new();
    };
    let mut roots: Vec<std::path::PathBuf> = live_supervisors()
        .into_iter()
        .filter(|s| !s.serves(own) && procfs::ns_inode(s.pid, "net") == Some(node_net))
        .map(|s| s.root_seen_here())
        .collect();
    roots.sort();
    roots.dedup();
    roots
}

/// `podrun __supervise <key>` processes of this state root whose pod has no record. A
/// supervisor whose `--root` is the same path in another mount namespace serves another
/// directory (another node's): not ours, even when this one's is empty.
fn supervisors(cfg: &Config, known: &Known) -> Vec<Finding> {
    live_supervisors()
        .into_iter()
        .filter(|s| !known.keys.contains(&s.pod) && s.serves(&cfg.root))
        .map(|s| Finding::Supervisor {
            pid: s.pid,
            start: procfs::start_time(s.pid),
            pod: s.pod,
        })
        .collect()
}

/// Every `<parent>/pod<uid>` directory, with its processes (the caller keeps those whose uid
/// no record has).
fn cgroups(cfg: &Config) -> Vec<Finding> {
    let Ok(h) = Hierarchy::detect(&cfg.cgroup_root) else {
        return Vec::new();
    };
    let probe = PodCgroup::open(&h, &cfg.cgroup_parent, "probe");
    let mut uids: Vec<String> = Vec::new();
    for dir in probe.pod_dirs() {
        let Some(parent) = dir.parent() else { continue };
        for e in fs::read_dir(parent).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(uid) = name.strip_prefix("pod")
                && e.path().is_dir()
                && !uids.iter().any(|u| u == uid)
            {
                uids.push(uid.to_owned());
            }
        }
    }
    uids.into_iter()
        .map(|uid| {
            let pod = PodCgroup::open(&h, &cfg.cgroup_parent, &uid);
            let dirs = pod.paths();
            let mut pids: Vec<i32> = dirs.iter().flat_map(|d| procs(d)).collect();
            pids.sort_unstable();
            pids.dedup();
            Finding::Cgroup { uid, dirs, pids }
        })
        .collect()
}

/// The cgroup parent's directories, when they exist (the caller knows no record uses them).
fn cgroup_parent(cfg: &Config) -> Option<Finding> {
    let h = Hierarchy::detect(&cfg.cgroup_root).ok()?;
    let dirs: Vec<PathBuf> = PodCgroup::open(&h, &cfg.cgroup_parent, "probe")
        .pod_dirs()
        .iter()
        .filter_map(|d| d.parent().map(Path::to_path_buf))
        .filter(|d| d.is_dir())
        .collect();
    (!dirs.is_empty()).then_some(Finding::CgroupParent { dirs })
}

fn procs(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The entries of the netns dir, with the inode of the namespace each one holds.
fn netns_pins(dir: &Path) -> Vec<(PathBuf, u64)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .map(|path| {
            let inode = fs::metadata(&path).map(|m| m.ino()).unwrap_or(0);
            (path, inode)
        })
        .collect()
}

/// Pins in the netns dir that no record names: those holding an orphaned pod's namespace are
/// podrun's; the others are reported as unknown.
fn pins(
    pins: Vec<(PathBuf, u64)>,
    records: &[PodRecord],
    orphan_netns: &HashSet<u64>,
) -> Vec<Finding> {
    let recorded: HashSet<PathBuf> = records
        .iter()
        .filter_map(|r| r.sandbox.as_ref().map(|s| s.netns_path.clone()))
        .collect();
    pins.into_iter()
        .filter(|(p, _)| !recorded.contains(p))
        .map(|(path, inode)| {
            if orphan_netns.contains(&inode) {
                Finding::Pin { path }
            } else {
                Finding::UnknownPin { path }
            }
        })
        .collect()
}

/// Remove what `scan` found (the caller holds the state root lock). Supervisors go first, so
/// nothing re-creates what is being removed; processes before their cgroups; veths and pins
/// before the bridge.
pub fn fix(cfg: &Config, findings: &[Finding]) -> FixReport {
    let mut order: Vec<&Finding> = findings.iter().filter(|f| f.fixable()).collect();
    order.sort_by_key(|f| match f {
        Finding::Supervisor { .. } => 0,
        Finding::Cgroup { .. } => 1,
        Finding::CgroupParent { .. } => 2,
        Finding::Veth { .. } => 2,
        Finding::Pin { .. } => 3,
        Finding::Address { .. } => 4,
        _ => 5,
    });
    order
        .into_iter()
        .map(|f| (f.clone(), fix_one(cfg, f)))
        .collect()
}

/// Every record of this root and of the other roots live on the node, read now.
fn live_records(cfg: &Config) -> Vec<PodRecord> {
    with_other_roots(cfg, cfg.store().list())
}

/// End a supervisor and everything it started (its pause, its containers and what they
/// forked): killed alone, they would run on unsupervised, reparented to init. The whole tree
/// is stopped first, and read again until no new process appears, so nothing forks away or
/// is restarted meanwhile; then all of it is killed. `start` (from the scan) keeps a recycled
/// pid safe.
fn kill_supervisor_tree(pid: i32, start: Option<u64>) {
    if start.is_none() || !procfs::is_same_process(pid, start) {
        return;
    }
    procfs::signal_if_same(pid, start, Signal::SIGSTOP);
    let mut tree: Vec<(i32, Option<u64>)> = Vec::new();
    for _ in 0..10 {
        let new: Vec<(i32, Option<u64>)> = procfs::descendants(pid)
            .into_iter()
            .filter(|p| !tree.iter().any(|(t, _)| t == p))
            .map(|p| (p, procfs::start_time(p)))
            .collect();
        if new.is_empty() {
            break;
        }
        for (p, started) in &new {
            procfs::signal_if_same(*p, *started, Signal::SIGSTOP);
        }
        tree.extend(new);
    }
    procfs::signal_if_same(pid, start, Signal::SIGKILL);
    for (p, started) in tree {
        procfs::signal_if_same(p, started, Signal::SIGKILL);
    }
}

fn fix_one(cfg: &Config, finding: &Finding) -> Result<(), String> {
    match finding {
        Finding::Supervisor { pid, start, .. } => {
            kill_supervisor_tree(*pid, *start);
            Ok(())
        }
        // A pod applied since the scan (of another root: this one's are locked out) may use
        // them now: look once more, and leave them to it.
        Finding::Cgroup { uid, .. } if live_records(cfg).iter().any(|r| &r.plan.uid == uid) => {
            Err("a pod record names it now: left".into())
        }
        Finding::CgroupParent { .. }
            if live_records(cfg).iter().any(|r| {
                r.cgroup
                    .as_ref()
                    .is_some_and(|c| c.parent == cfg.cgroup_parent)
            }) =>
        {
            Err("a pod uses it now: left".into())
        }
        Finding::Cgroup { uid, .. } => {
            let h = Hierarchy::detect(&cfg.cgroup_root).map_err(|e| e.to_string())?;
            let pod = PodCgroup::open(&h, &cfg.cgroup_parent, uid);
            pod.kill_all().map_err(|e| e.to_string())?;
            pod.remove().map_err(|e| e.to_string())
        }
        Finding::CgroupParent { dirs } => {
            for dir in dirs {
                match fs::remove_dir(dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(format!("{}: {e}", dir.display()));
                    }
                    _ => {}
                }
            }
            Ok(())
        }
        Finding::Veth { name } => net::detach_pod(name).map_err(|e| e.to_string()),
        Finding::Pin { path } => crate::sandbox::unpin_netns(path).map_err(|e| e.to_string()),
        // A supervisor may have recorded (and allocated for) a new sandbox since the scan:
        // look at the owners once more. Else released as IPAM releases any (by owner, under
        // its lock); sandbox ids are never reused.
        Finding::Address { owner, .. }
            if Known::from(&cfg.store().list()).ipam_owners.contains(owner) =>
        {
            Err("a pod record names its owner now: left".into())
        }
        Finding::Address { owner, .. } => Ipam::new(&cfg.network())
            .release(owner)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Finding::HalfMadeBridge { .. } => match net::remove_half_made_bridge(&cfg.network()) {
            Ok(true) => Ok(()),
            Ok(false) => Err("it was being made, and is named now: left".into()),
            Err(e) => Err(e.to_string()),
        },
        Finding::HostPortRules { uid } if live_records(cfg).iter().any(|r| &r.plan.uid == uid) => {
            Err("a pod record names it now: left".into())
        }
        Finding::HostPortRules { uid } => {
            net::hostport::remove(&cfg.network(), uid).map_err(|e| e.to_string())
        }
        Finding::NodeNetwork { .. } => {
            net::teardown_network(&cfg.network(), None).map_err(|e| e.to_string())
        }
        Finding::UnknownPin { .. }
        | Finding::LostSupervisor { .. }
        | Finding::PodNetworkGone { .. } => Ok(()),
    }
}
