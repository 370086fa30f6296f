//! Masquerade for pod traffic leaving the node, in nftables.
//!
//! podrun owns `table inet podrun` and nothing else. Chain `postrouting` (nat, hook postrouting,
//! priority srcnat) holds one rule per network:
//! `ip saddr <cidr> oifname != "<bridge>" masquerade comment "podrun network <bridge> <cidr>"`.
//! The comment identifies the rule on removal (list the table, delete by handle, delete the table
//! once it has no rules). Changes are serialised by the caller holding the network lock
//! ([`NetworkLock`]), which also covers bridge creation and deletion.
//!
//! The table is read, and the rule added, over nfnetlink (`super::nfnetlink`: ~0.1 ms each, one
//! batch, applied whole or not at all), where an `nft` process costs several ms of CPU. The
//! rule is removed by `nft -f -`: removing it over nfnetlink made the last pod's delete 13-18
//! ms slower (median of 10, interleaved), apparently because it then reaches the kernel while
//! the pod's network namespace is still being dismantled (the masquerade notifiers' removal
//! waits for that), where `nft` starts ~20 ms later. A guess, not verified in the kernel;
//! measured 67-70 ms against 50-57 ms for a last pod's delete on a 2-core cgroup v1 VM.

use std::io::Write;
use std::process::{Command, Stdio};

use super::lock::NetworkLock;
use super::nfnetlink::{self, Addition, RuleInfo};
use super::nft_rule;

use super::{NetError, NetworkConfig};

pub(crate) const TABLE: &str = "podrun";
pub(crate) const CHAIN: &str = "postrouting";
/// `srcnat` priority.
const SRCNAT_PRIORITY: i32 = 100;
/// NF_INET_POST_ROUTING.
const HOOK_POSTROUTING: u32 = 4;

/// The comment that names a network's masquerade rule.
pub(crate) fn rule_comment(cfg: &NetworkConfig) -> String {
    format!("podrun network {} {}", cfg.bridge, cfg.cidr)
}

/// Add the masquerade rule unless it is already there. The caller holds the [`NetworkLock`].
pub(crate) fn ensure_masquerade(
    cfg: &NetworkConfig,
    _locked: &NetworkLock,
) -> Result<(), NetError> {
    if masquerade_present(cfg)? {
        return Ok(());
    }
    let comment = rule_comment(cfg);
    // Adding a table or chain that exists (with the same hook) is not an error.
    let changes = [
        Addition::Table { table: TABLE },
        Addition::BaseChain {
            table: TABLE,
            chain: CHAIN,
            kind: "nat",
            hook: HOOK_POSTROUTING,
            priority: SRCNAT_PRIORITY,
        },
        Addition::Rule {
            table: TABLE,
            chain: CHAIN,
            expressions: nft_rule::masquerade_from(cfg.cidr, &cfg.bridge),
            comment: &comment,
        },
    ];
    commit(&changes, "add masquerade rule")
}

/// Remove the network's masquerade rule, and the table when no rule is left. Idempotent. The
/// caller holds the [`NetworkLock`].
pub(crate) fn remove_masquerade(
    cfg: &NetworkConfig,
    _locked: &NetworkLock,
) -> Result<(), NetError> {
    let Some(rules) = list_table()? else {
        return Ok(());
    };
    let ours = matching_handles(&rules, &rule_comment(cfg));
    let total = rules.len();
    if ours.is_empty() && total > 0 {
        return Ok(());
    }
    let script = if ours.len() == total {
        // Nothing else lives in the table: drop it whole (rules and chains go with it).
        format!("delete table inet {TABLE}\n")
    } else {
        ours.iter()
            .map(|handle| format!("delete rule inet {TABLE} {CHAIN} handle {handle}\n"))
            .collect()
    };
    run_nft(&script, "remove masquerade rule")
}

pub(crate) fn table_rules() -> Result<Option<usize>, NetError> {
    Ok(list_table()?.map(|rules| rules.len()))
}

pub(crate) fn masquerade_present(cfg: &NetworkConfig) -> Result<bool, NetError> {
    Ok(list_table()?.is_some_and(|rules| !matching_handles(&rules, &rule_comment(cfg)).is_empty()))
}

/// The rules of `table inet podrun`, or `None` when the table does not exist.
fn list_table() -> Result<Option<Vec<RuleInfo>>, NetError> {
    nfnetlink::list_inet_rules(TABLE).map_err(|e| NetError::Firewall {
        step: format!("list table inet {TABLE}"),
        detail: format!("nfnetlink: {e}"),
    })
}

/// Handles of the rules in our chain that carry `comment`.
fn matching_handles(rules: &[RuleInfo], comment: &str) -> Vec<u64> {
    rules
        .iter()
        .filter(|r| r.chain == CHAIN && r.comment.as_deref() == Some(comment))
        .map(|r| r.handle)
        .collect()
}

/// Apply `changes` in one nfnetlink batch; `step` names it in the error.
fn commit(changes: &[Addition<'_>], step: &str) -> Result<(), NetError> {
    nfnetlink::commit(changes).map_err(|e| NetError::Firewall {
        step: step.to_string(),
        detail: format!("nfnetlink: {e}"),
    })
}

/// Run `script` with one `nft -f -` (one transaction).
fn run_nft(script: &str, step: &str) -> Result<(), NetError> {
    let err = |detail: String| NetError::Firewall {
        step: step.to_string(),
        detail,
    };
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("run nft: {e}")))?;
    let written = child
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(script.as_bytes());
    let out = child
        .wait_with_output()
        .map_err(|e| err(format!("wait for nft: {e}")))?;
    written.map_err(|e| err(format!("write to nft: {e}")))?;
    if !out.status.success() {
        return Err(err(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> NetworkConfig {
        NetworkConfig {
            bridge: "podrun0".into(),
            cidr: "10.244.0.0/24".parse().unwrap(),
            ipam_dir: "/tmp/x/networks/podrun0".into(),
        }
    }

    #[test]
    fn finds_rules_by_comment() {
        let rule = |chain: &str, handle, comment: Option<&str>| RuleInfo {
            chain: chain.into(),
            handle,
            comment: comment.map(Into::into),
        };
        let rules = vec![
            rule(
                "postrouting",
                2,
                Some("podrun network podrun0 10.244.0.0/24"),
            ),
            rule("postrouting", 3, Some("podrun network other 10.0.0.0/24")),
            rule("elsewhere", 4, Some("podrun network podrun0 10.244.0.0/24")),
            rule("postrouting", 5, None),
        ];
        assert_eq!(matching_handles(&rules, &rule_comment(&cfg())), vec![2]);
    }
}
