//! `podrun doctor [--fix]`: check what podrun depends on, and find (and with `--fix` remove)
//! podrun objects that no pod record accounts for, e.g. after the state root was lost.

use clap::Args;

use super::{Result, table};
use crate::config::Config;
use crate::diagnostics;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Remove the leftovers found (processes, cgroups, veths, netns pins, addresses, bridge).
    #[arg(long)]
    pub fix: bool,
}

pub fn doctor(cfg: &Config, args: &DoctorArgs) -> Result<i32> {
    let checks = environment_checks(cfg);
    let mut rows = vec![vec!["CHECK".into(), "STATUS".into(), "DETAIL".into()]];
    let mut failed = false;
    for (name, result) in &checks {
        let (status, detail) = match result {
            Status::Ok(d) => ("ok", d.clone()),
            Status::Warn(d) => ("warn", d.clone()),
            Status::Fail(d) => {
                failed = true;
                ("FAIL", d.clone())
            }
        };
        rows.push(vec![name.to_string(), status.into(), detail]);
    }
    table::print(&rows);
    println!();

    let store = cfg.store();
    let _lock = store.lock()?;
    let findings = diagnostics::scan(cfg);
    if findings.is_empty() {
        println!("No leftovers: every podrun object on this node belongs to a pod record.");
        return Ok(i32::from(failed));
    }
    if !args.fix {
        let mut rows = vec![vec!["KIND".into(), "FOUND".into(), "FIX".into()]];
        for f in &findings {
            let fix = if f.fixable() {
                "podrun doctor --fix"
            } else {
                "see message"
            };
            rows.push(vec![f.kind().into(), f.to_string(), fix.into()]);
        }
        table::print(&rows);
        return Ok(1);
    }
    let mut rows = vec![vec!["KIND".into(), "FOUND".into(), "RESULT".into()]];
    for (f, result) in diagnostics::fix(cfg, &findings) {
        let outcome = match result {
            Ok(()) => "removed".to_string(),
            Err(e) => {
                failed = true;
                format!("NOT removed: {e}")
            }
        };
        rows.push(vec![f.kind().into(), f.to_string(), outcome]);
    }
    for f in findings.iter().filter(|f| !f.fixable()) {
        failed = true;
        rows.push(vec![f.kind().into(), f.to_string(), "left alone".into()]);
    }
    table::print(&rows);
    Ok(i32::from(failed))
}

/// A check's outcome: `warn` is something pods run without, but not as on a real node.
enum Status {
    Ok(String),
    Warn(String),
    Fail(String),
}

impl From<std::result::Result<String, String>> for Status {
    fn from(r: std::result::Result<String, String>) -> Self {
        match r {
            Ok(d) => Status::Ok(d),
            Err(d) => Status::Fail(d),
        }
    }
}

type Check = (&'static str, Status);

fn environment_checks(cfg: &Config) -> Vec<Check> {
    vec![
        ("cgroups", cgroups(cfg).into()),
        ("nftables", nft().into()),
        ("pause", pause().into()),
        ("init", init().into()),
        ("ip_forward", ip_forward().into()),
        ("oom_score_adj", oom_scores()),
        ("state root", state_root(cfg).into()),
        ("images", images(cfg).into()),
        ("controller", controller(cfg)),
    ]
}

/// Workloads recorded need a controller: running, or started now.
fn controller(cfg: &Config) -> Status {
    let store = cfg.store();
    let counts = format!(
        "{} deployments, {} replicasets, {} jobs",
        store.list_deployments().len(),
        store.list_replica_sets().len(),
        store.list_jobs().len()
    );
    if !store.has_workloads() {
        return Status::Ok("not needed (no workload recorded)".into());
    }
    if let Some(pid) = crate::controller::worker_pid(cfg) {
        return Status::Ok(format!("running (worker pid {pid}): {counts}"));
    }
    let notes = crate::controller::ensure_running(cfg);
    if notes.is_empty() {
        Status::Warn(format!("was not running with {counts} recorded: started"))
    } else {
        Status::Fail(format!(
            "not running with {counts} recorded: {}",
            notes.join("; ")
        ))
    }
}

/// Lowering a process's oom_score_adj takes CAP_SYS_RESOURCE. Without it (some sandboxes and
/// containers running podrun) the pause (-998) and Guaranteed containers (-997) keep 0.
/// Whether `uid_map` (the text of /proc/self/uid_map) is the initial user namespace's: every
/// uid mapped to itself.
fn is_initial_user_namespace(uid_map: &str) -> bool {
    uid_map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"]
}

fn oom_scores() -> Status {
    // The kernel asks for the capability in the initial user namespace.
    let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let initial = is_initial_user_namespace(&uid_map);
    let capable = caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_RESOURCE,
    );
    match capable {
        Ok(true) if initial => {
            Status::Ok("can lower scores: pause -998, Guaranteed -997, as the kubelet".into())
        }
        Ok(true) => Status::Warn(
            "in a user namespace: the pause (-998) and Guaranteed containers (-997) keep 0 (lowering needs CAP_SYS_RESOURCE in the initial one); raised scores apply".into(),
        ),
        _ => Status::Warn(
            "no CAP_SYS_RESOURCE: the pause (-998) and Guaranteed containers (-997) keep 0; raised scores (Burstable, BestEffort) apply".into(),
        ),
    }
}

fn cgroups(cfg: &Config) -> std::result::Result<String, String> {
    let h = crate::cgroup::Hierarchy::detect(&cfg.cgroup_root).map_err(|e| e.to_string())?;
    Ok(match h.mode() {
        crate::cgroup::Mode::V2 => format!(
            "v2 (unified) at {}, pods under {}/{}",
            h.root().display(),
            h.root().display(),
            cfg.cgroup_parent
        ),
        crate::cgroup::Mode::V1 => format!(
            "v1 (hybrid): {} under {}/<controller>/{}",
            h.v1_mounts()
                .iter()
                .map(|m| m.controllers.join(","))
                .collect::<Vec<_>>()
                .join(" "),
            h.root().display(),
            cfg.cgroup_parent
        ),
    })
}

/// nf_tables as podrun uses it: over nfnetlink, and the `nft` program (rule removal).
fn nft() -> std::result::Result<String, String> {
    let table = match crate::net::nft_table_rules() {
        Ok(None) => "no table inet podrun yet".to_string(),
        Ok(Some(n)) => format!("table inet podrun: {n} rule(s)"),
        Err(e) => return Err(format!("{e} (is the nf_tables kernel module available?)")),
    };
    // podrun adds its rule over nfnetlink but removes it with `nft` (see net::firewall).
    let tool = match std::process::Command::new("nft").arg("--version").output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        Err(e) => {
            return Err(format!(
                "nft not runnable ({e}); install the nftables package"
            ));
        }
    };
    Ok(format!("nf_tables over nfnetlink, {table}; {tool}"))
}

fn pause() -> std::result::Result<String, String> {
    let p = crate::config::pause_binary();
    if p.is_file() {
        Ok(p.display().to_string())
    } else {
        Err(format!("{} missing (set PODRUN_PAUSE)", p.display()))
    }
}

/// The containers' init stage: `podrun-init`, or the (slower to start) `podrun __init`.
fn init() -> std::result::Result<String, String> {
    let init = crate::config::init_program();
    if init.args.is_empty() {
        return if init.path.is_file() {
            Ok(init.path.display().to_string())
        } else {
            Err(format!("{} missing (PODRUN_INIT)", init.path.display()))
        };
    }
    Ok(format!(
        "{} {} (no podrun-init next to it: each container start ~1 ms slower)",
        init.path.display(),
        init.args.join(" ")
    ))
}

fn ip_forward() -> std::result::Result<String, String> {
    let v = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").map_err(|e| e.to_string())?;
    Ok(match v.trim() {
        "1" => "1".into(),
        other => format!("{other} (podrun sets it to 1 when it wires a pod)"),
    })
}

fn state_root(cfg: &Config) -> std::result::Result<String, String> {
    let pods = cfg.store().list().len();
    Ok(format!("{} ({pods} pods)", cfg.root.display()))
}

fn images(cfg: &Config) -> std::result::Result<String, String> {
    match cfg.images().list() {
        Ok(list) => Ok(format!(
            "{} ({} images)",
            cfg.image_root.display(),
            list.len()
        )),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_identity_uid_map_is_the_initial_user_namespace() {
        assert!(is_initial_user_namespace(
            "         0          0 4294967295\n"
        ));
        assert!(!is_initial_user_namespace(
            "         0     100000      65536\n"
        ));
        assert!(!is_initial_user_namespace(""));
    }
}
