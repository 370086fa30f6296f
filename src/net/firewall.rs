//! Masquerade for pod traffic leaving the node, in nftables (libnftables-json(5), via `nft -j`).
//!
//! podrun owns `table inet podrun` and nothing else. Chain `postrouting` (nat, hook postrouting,
//! priority srcnat) holds one rule per network:
//! `ip saddr <cidr> oifname != "<bridge>" masquerade comment "podrun network <bridge> <cidr>"`.
//! The comment identifies the rule on removal (list the table, delete by handle, delete the table
//! once it has no rules). Changes are serialised by the caller holding [`lock`]
//! (`<ipam_dir>/../firewall.lock`), which also covers bridge creation/deletion.
//! The table is read over nfnetlink (`super::nfnetlink`, ~0.1 ms); `nft` (a few ms to start)
//! only runs to change it, so an attach that finds the rule in place runs no process at all.

use std::borrow::Cow;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::nfnetlink::{self, RuleInfo};

use nftables::batch::Batch;
use nftables::expr::{Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix};
use nftables::schema::{Chain, NfListObject, Rule, Table};
use nftables::stmt::{Match, Operator, Statement};
use nftables::types::{NfChainType, NfFamily, NfHook};

use super::{NetError, NetworkConfig};

pub(crate) const TABLE: &str = "podrun";
pub(crate) const CHAIN: &str = "postrouting";
/// `srcnat` priority.
const SRCNAT_PRIORITY: i32 = 100;

/// The comment that names a network's masquerade rule.
pub(crate) fn rule_comment(cfg: &NetworkConfig) -> String {
    format!("podrun network {} {}", cfg.bridge, cfg.cidr)
}

/// Add the masquerade rule unless it is already there. The caller holds [`lock`].
pub(crate) fn ensure_masquerade(
    cfg: &NetworkConfig,
    _locked: &NetworkLock,
) -> Result<(), NetError> {
    if masquerade_present(cfg)? {
        return Ok(());
    }
    let mut batch = Batch::new();
    // `add` of an existing table/chain is a no-op in nft.
    batch.add(NfListObject::Table(Table {
        family: NfFamily::INet,
        name: TABLE.into(),
        handle: None,
    }));
    batch.add(NfListObject::Chain(Chain {
        family: NfFamily::INet,
        table: TABLE.into(),
        name: CHAIN.into(),
        _type: Some(NfChainType::NAT),
        hook: Some(NfHook::Postrouting),
        prio: Some(SRCNAT_PRIORITY),
        ..Chain::default()
    }));
    batch.add(NfListObject::Rule(masquerade_rule(cfg)));
    apply(batch, "add masquerade rule")
}

/// Remove the network's masquerade rule, and the table when no rule is left. Idempotent. The
/// caller holds [`lock`].
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
    let mut batch = Batch::new();
    if ours.len() == total {
        // Nothing else lives in the table: drop it whole (rules and chains go with it).
        batch.delete(NfListObject::Table(Table {
            family: NfFamily::INet,
            name: TABLE.into(),
            handle: None,
        }));
    } else {
        for handle in ours {
            batch.delete(NfListObject::Rule(Rule {
                family: NfFamily::INet,
                table: TABLE.into(),
                chain: CHAIN.into(),
                expr: Cow::Owned(Vec::new()),
                handle: u32::try_from(handle).ok(),
                index: None,
                comment: None,
            }));
        }
    }
    apply(batch, "remove masquerade rule")
}

pub(crate) fn masquerade_present(cfg: &NetworkConfig) -> Result<bool, NetError> {
    Ok(list_table()?.is_some_and(|rules| !matching_handles(&rules, &rule_comment(cfg)).is_empty()))
}

fn masquerade_rule(cfg: &NetworkConfig) -> Rule<'static> {
    let saddr = Statement::Match(Match {
        left: Expression::Named(NamedExpression::Payload(Payload::PayloadField(
            PayloadField {
                protocol: "ip".into(),
                field: "saddr".into(),
            },
        ))),
        right: Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(Expression::String(cfg.cidr.network().to_string().into())),
            len: u32::from(cfg.cidr.prefix_len()),
        })),
        op: Operator::EQ,
    });
    let not_bridge = Statement::Match(Match {
        left: Expression::Named(NamedExpression::Meta(Meta {
            key: MetaKey::Oifname,
        })),
        right: Expression::String(cfg.bridge.clone().into()),
        op: Operator::NEQ,
    });
    Rule {
        family: NfFamily::INet,
        table: TABLE.into(),
        chain: CHAIN.into(),
        expr: Cow::Owned(vec![saddr, not_bridge, Statement::Masquerade(None)]),
        handle: None,
        index: None,
        comment: Some(rule_comment(cfg).into()),
    }
}

/// Exclusive flock on `<ipam_dir>/../firewall.lock`, released on drop. Held while podrun's nft
/// table or a bridge is changed, so a teardown cannot delete the bridge or table that a
/// concurrent attach is about to use.
pub(crate) fn lock(cfg: &NetworkConfig) -> Result<NetworkLock, NetError> {
    let dir = cfg
        .ipam_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| cfg.ipam_dir.clone());
    std::fs::DirBuilder::new()
        .recursive(true)
        .create(&dir)
        .map_err(|source| NetError::Io {
            op: "create directory",
            path: dir.clone(),
            source,
        })?;
    let path = dir.join("firewall.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| NetError::Io {
            op: "open",
            path: path.clone(),
            source,
        })?;
    file.lock().map_err(|source| NetError::Io {
        op: "lock",
        path,
        source,
    })?;
    Ok(NetworkLock { _held: Some(file) })
}

/// Proof that the caller holds [`lock`] (or, for best-effort teardown, that it tried).
pub(crate) struct NetworkLock {
    /// Kept open for the flock; closing it unlocks.
    _held: Option<File>,
}

impl NetworkLock {
    /// For teardown when the lock file cannot be taken: proceed without it.
    pub(crate) fn not_held() -> Self {
        NetworkLock { _held: None }
    }
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

/// Apply a batch with one `nft -j -f -`.
fn apply(batch: Batch<'_>, step: &str) -> Result<(), NetError> {
    let err = |detail: String| NetError::Firewall {
        step: step.to_string(),
        detail,
    };
    let payload =
        serde_json::to_string(&batch.to_nftables()).map_err(|e| err(format!("encode: {e}")))?;
    let mut child = Command::new("nft")
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("run nft: {e}")))?;
    let written = child
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(payload.as_bytes());
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
    fn rule_json_shape() {
        let json = serde_json::to_value(masquerade_rule(&cfg())).unwrap();
        assert_eq!(json["comment"], "podrun network podrun0 10.244.0.0/24");
        let expr = json["expr"].as_array().unwrap();
        assert_eq!(expr[0]["match"]["right"]["prefix"]["addr"], "10.244.0.0");
        assert_eq!(expr[0]["match"]["right"]["prefix"]["len"], 24);
        assert_eq!(expr[1]["match"]["op"], "!=");
        assert_eq!(expr[1]["match"]["right"], "podrun0");
        assert!(expr[2].get("masquerade").is_some());
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
