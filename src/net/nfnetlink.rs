//! podrun's nftables table, read and added to straight over nfnetlink: a table lookup and a rule
//! dump take ~0.1 ms, an addition (one batch, one transaction) about as little, where starting
//! `nft` takes several milliseconds of CPU (libnftables, its cache). Removal stays with `nft`
//! (see `super::firewall`).
//!
//! Changes are a batch between `NFNL_MSG_BATCH_BEGIN` and `NFNL_MSG_BATCH_END`, each message
//! asking for an ack; the kernel applies all of them or none. Rules are built from the same
//! expressions `nft` makes for them (`nft --debug=netlink` shows them; see `super::nft_rule`),
//! so `nft list ruleset` shows them as if `nft` had added them.
//!
//! Messages (include/uapi/linux/netfilter/nf_tables.h): a `nlmsghdr` whose type is
//! `NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_*`, a 4-byte `nfgenmsg` (family, version, res_id), then
//! netlink attributes. A rule's comment lives in `NFTA_RULE_USERDATA` as libnftnl's TLV
//! `NFTNL_UDATA_RULE_COMMENT` (type 0, one length byte, NUL-terminated text).

use std::io;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

/// nfnetlink: the nftables subsystem, the batch markers (linux/netfilter/nfnetlink.h).
mod nfnl {
    pub(super) const NFNL_SUBSYS_NFTABLES: u16 = 10;
    pub(super) const NFNL_MSG_BATCH_BEGIN: u16 = 16;
    pub(super) const NFNL_MSG_BATCH_END: u16 = 17;
    pub(super) const NFPROTO_INET: u8 = 1;
}

/// `enum nf_tables_msg_types` (linux/netfilter/nf_tables.h).
mod msg {
    pub(super) const NFT_MSG_NEWTABLE: u16 = 0;
    pub(super) const NFT_MSG_GETTABLE: u16 = 1;
    pub(super) const NFT_MSG_DELTABLE: u16 = 2;
    pub(super) const NFT_MSG_NEWCHAIN: u16 = 3;
}

/// `enum nf_tables_msg_types`, rules.
mod rule_msg {
    pub(super) const NFT_MSG_NEWRULE: u16 = 6;
    pub(super) const NFT_MSG_GETRULE: u16 = 7;
    pub(super) const NFT_MSG_DELRULE: u16 = 8;
}

/// `enum nft_table_attributes`, `nft_chain_attributes`.
mod chain_attr {
    pub(super) const NFTA_TABLE_NAME: u16 = 1;
    pub(super) const NFTA_CHAIN_TABLE: u16 = 1;
    pub(super) const NFTA_CHAIN_NAME: u16 = 3;
    pub(super) const NFTA_CHAIN_HOOK: u16 = 4;
    pub(super) const NFTA_CHAIN_TYPE: u16 = 7;
}

/// `enum nft_hook_attributes`.
mod hook_attr {
    pub(super) const NFTA_HOOK_HOOKNUM: u16 = 1;
    pub(super) const NFTA_HOOK_PRIORITY: u16 = 2;
}

/// `enum nft_rule_attributes`.
mod rule_attr {
    pub(super) const NFTA_RULE_TABLE: u16 = 1;
    pub(super) const NFTA_RULE_CHAIN: u16 = 2;
    pub(super) const NFTA_RULE_HANDLE: u16 = 3;
    pub(super) const NFTA_RULE_EXPRESSIONS: u16 = 4;
    pub(super) const NFTA_RULE_USERDATA: u16 = 7;
}

/// libnftnl's TLV of a rule's comment in its user data.
const NFTNL_UDATA_RULE_COMMENT: u8 = 0;

/// linux/netlink.h: message types and header flags.
mod nlm {
    pub(in crate::net) const NLMSG_ERROR: u16 = 2;
    pub(in crate::net) const NLMSG_DONE: u16 = 3;
    pub(in crate::net) const NLM_F_REQUEST: u16 = 0x1;
    pub(in crate::net) const NLM_F_ACK: u16 = 0x4;
    pub(in crate::net) const NLM_F_DUMP: u16 = 0x300;
}

/// linux/netlink.h: creation flags, attribute bits, header sizes.
mod nla {
    pub(super) const NLM_F_CREATE: u16 = 0x400;
    pub(super) const NLM_F_APPEND: u16 = 0x800;
    pub(super) const NLA_TYPE_MASK: u16 = 0x3fff;
    pub(super) const NLA_F_NESTED: u16 = 0x8000;
    pub(super) const HEADER_LEN: usize = 16;
}

use chain_attr::*;
use hook_attr::*;
use msg::*;
use nfnl::*;
use nla::*;
use nlm::NLMSG_ERROR;
pub(super) use nlm::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE};
use rule_attr::*;
use rule_msg::*;

pub(super) const NFGENMSG_LEN: usize = 4;

/// One rule of the table, as far as podrun needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleInfo {
    pub chain: String,
    pub handle: u64,
    pub comment: Option<String>,
}

/// Every rule of table `inet <table>`, or `None` when the table does not exist.
pub(crate) fn list_inet_rules(table: &str) -> io::Result<Option<Vec<RuleInfo>>> {
    let socket = connect()?;
    let name_attr = attribute(NFTA_TABLE_NAME, &nul_terminated(table));
    socket.send(&request(NFT_MSG_GETTABLE, NLM_F_REQUEST, 1, &name_attr), 0)?;
    // The table's NEWTABLE message, or an NLMSG_ERROR (ENOENT when there is no such table).
    match read_replies(&socket, |_, _| Ok(Flow::Done)) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        other => other?,
    }
    let table_attr = attribute(NFTA_RULE_TABLE, &nul_terminated(table));
    socket.send(
        &request(NFT_MSG_GETRULE, NLM_F_REQUEST | NLM_F_DUMP, 2, &table_attr),
        0,
    )?;
    let mut rules = Vec::new();
    read_replies(&socket, |kind, payload| {
        match kind {
            NLMSG_DONE => return Ok(Flow::Done),
            k if k == (NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWRULE) => {
                if let Some(rule) = parse_rule(payload) {
                    rules.push(rule);
                }
            }
            _ => {}
        }
        Ok(Flow::More)
    })?;
    Ok(Some(rules))
}

/// One change to an `inet` table, for [`commit`] (an addition, or the removal of a rule or of
/// the whole table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Addition<'a> {
    /// `add table inet <table>` (no error when it exists).
    Table { table: &'a str },
    /// `add chain inet <table> <chain> { type <kind> hook <hook number> priority <priority>; }`
    /// (no error when it exists with that hook).
    BaseChain {
        table: &'a str,
        chain: &'a str,
        kind: &'a str,
        hook: u32,
        priority: i32,
    },
    /// Append a rule: its expressions (`super::nft_rule`) and comment.
    Rule {
        table: &'a str,
        chain: &'a str,
        expressions: Vec<Vec<u8>>,
        comment: &'a str,
    },
    /// `delete rule inet <table> <chain> handle <handle>`.
    DeleteRule {
        table: &'a str,
        chain: &'a str,
        handle: u64,
    },
    /// `delete table inet <table>` (its chains and rules go with it).
    DeleteTable { table: &'a str },
}

impl Addition<'_> {
    /// The message type, flags and attributes of this change.
    fn message(&self) -> (u16, u16, Vec<u8>) {
        let create = NLM_F_CREATE;
        match self {
            Addition::Table { table } => (NFT_MSG_NEWTABLE, create, name(NFTA_TABLE_NAME, table)),
            Addition::BaseChain {
                table,
                chain,
                kind,
                hook,
                priority,
            } => {
                let hook = [
                    attribute(NFTA_HOOK_HOOKNUM, &hook.to_be_bytes()),
                    attribute(NFTA_HOOK_PRIORITY, &priority.to_be_bytes()),
                ]
                .concat();
                let attrs = [
                    name(NFTA_CHAIN_TABLE, table),
                    name(NFTA_CHAIN_NAME, chain),
                    nested(NFTA_CHAIN_HOOK, &hook),
                    name(NFTA_CHAIN_TYPE, kind),
                ];
                (NFT_MSG_NEWCHAIN, create, attrs.concat())
            }
            Addition::Rule {
                table,
                chain,
                expressions,
                comment,
            } => {
                let attrs = [
                    name(NFTA_RULE_TABLE, table),
                    name(NFTA_RULE_CHAIN, chain),
                    nested(NFTA_RULE_EXPRESSIONS, &expressions.concat()),
                    attribute(NFTA_RULE_USERDATA, &comment_udata(comment)),
                ];
                (NFT_MSG_NEWRULE, create | NLM_F_APPEND, attrs.concat())
            }
            Addition::DeleteRule {
                table,
                chain,
                handle,
            } => {
                let attrs = [
                    name(NFTA_RULE_TABLE, table),
                    name(NFTA_RULE_CHAIN, chain),
                    attribute(NFTA_RULE_HANDLE, &handle.to_be_bytes()),
                ];
                (NFT_MSG_DELRULE, 0, attrs.concat())
            }
            Addition::DeleteTable { table } => (NFT_MSG_DELTABLE, 0, name(NFTA_TABLE_NAME, table)),
        }
    }
}

/// Apply `changes` in one nfnetlink batch (one transaction: all of them or none) and wait for
/// the kernel's answer to each; the first error is returned.
pub(crate) fn commit(changes: &[Addition<'_>]) -> io::Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let socket = connect()?;
    socket.send(&batch(changes), 0)?;
    read_acks(&socket, changes.len())
}

/// Wait for `count` acks (NLMSG_ERROR with code 0); an error code ends the wait with its
/// errno (the kernel aborted the whole batch).
fn read_acks(socket: &Socket, count: usize) -> io::Result<()> {
    let mut acked = 0;
    while acked < count {
        let (buf, _) = socket.recv_from_full()?;
        for message in messages(&buf) {
            let (kind, payload) = message?;
            if kind == NLMSG_ERROR {
                match error_code(payload) {
                    0 => acked += 1,
                    code => return Err(io::Error::from_raw_os_error(-code)),
                }
            }
        }
    }
    Ok(())
}

/// The messages of one datagram: type and payload (after the header) of each.
fn messages(mut rest: &[u8]) -> impl Iterator<Item = io::Result<(u16, &[u8])>> {
    std::iter::from_fn(move || {
        if rest.len() < HEADER_LEN {
            return None;
        }
        let len = u32::from_ne_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        let kind = u16::from_ne_bytes(rest[4..6].try_into().expect("2 bytes"));
        if len < HEADER_LEN || len > rest.len() {
            rest = &[];
            return Some(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "truncated netlink message",
            )));
        }
        let payload = &rest[HEADER_LEN..len];
        rest = &rest[align(len).min(rest.len())..];
        Some(Ok((kind, payload)))
    })
}

/// The (negative errno, or 0) code of an NLMSG_ERROR payload.
fn error_code(payload: &[u8]) -> i32 {
    payload
        .get(0..4)
        .map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes")))
        .unwrap_or(0)
}

/// The datagram for `changes`: batch begin, one message per change (sequence 1, 2, ...), end.
fn batch(changes: &[Addition<'_>]) -> Vec<u8> {
    let last = changes.len() as u32 + 1;
    let mut out = batch_marker(NFNL_MSG_BATCH_BEGIN, 0);
    for (seq, change) in (1..).zip(changes) {
        let (msg, flags, attrs) = change.message();
        out.extend(request(msg, NLM_F_REQUEST | NLM_F_ACK | flags, seq, &attrs));
    }
    out.extend(batch_marker(NFNL_MSG_BATCH_END, last));
    out
}

/// A batch begin or end message: `nfgenmsg` with family AF_UNSPEC and the subsystem, in
/// network byte order, as its resource id.
fn batch_marker(kind: u16, seq: u32) -> Vec<u8> {
    let len = HEADER_LEN + NFGENMSG_LEN;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.push(0);
    out.push(0);
    out.extend_from_slice(&NFNL_SUBSYS_NFTABLES.to_be_bytes());
    out
}

/// libnftnl's rule comment TLV: type, length (with the NUL), text, NUL.
fn comment_udata(comment: &str) -> Vec<u8> {
    let text = nul_terminated(comment);
    let mut out = vec![NFTNL_UDATA_RULE_COMMENT, text.len() as u8];
    out.extend(text);
    out
}

/// A NUL-terminated string attribute.
fn name(kind: u16, value: &str) -> Vec<u8> {
    attribute(kind, &nul_terminated(value))
}

/// A nested attribute holding `inner` (attributes already encoded).
pub(super) fn nested(kind: u16, inner: &[u8]) -> Vec<u8> {
    attribute(kind | NLA_F_NESTED, inner)
}

/// A netfilter netlink socket bound to the kernel. Replies are waited for at most
/// [`REPLY_TIMEOUT`] (the kernel answers at once; this bounds a wait under the network lock).
pub(super) fn connect() -> io::Result<Socket> {
    use nix::sys::socket::{setsockopt, sockopt::ReceiveTimeout};
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let timeout = nix::sys::time::TimeVal::new(REPLY_TIMEOUT.as_secs() as _, 0);
    setsockopt(&socket, ReceiveTimeout, &timeout)?;
    Ok(socket)
}

const REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub(super) enum Flow {
    More,
    Done,
}

/// Receive datagrams and hand each message (type, payload after the header) to `each` until it
/// says done; an NLMSG_ERROR with a non-zero code becomes that errno.
pub(super) fn read_replies(
    socket: &Socket,
    mut each: impl FnMut(u16, &[u8]) -> io::Result<Flow>,
) -> io::Result<()> {
    loop {
        let (buf, _) = socket.recv_from_full()?;
        for message in messages(&buf) {
            let (kind, payload) = message?;
            if kind == NLMSG_ERROR {
                let code = error_code(payload);
                if code != 0 {
                    return Err(io::Error::from_raw_os_error(-code));
                }
                return Ok(());
            }
            if let Flow::Done = each(kind, payload)? {
                return Ok(());
            }
        }
    }
}

/// A rule message's payload (after the netlink header): chain, handle, comment.
fn parse_rule(payload: &[u8]) -> Option<RuleInfo> {
    let mut chain = None;
    let mut handle = None;
    let mut comment = None;
    for (kind, value) in attributes(payload.get(NFGENMSG_LEN..)?) {
        match kind {
            NFTA_RULE_CHAIN => chain = Some(c_string(value)),
            NFTA_RULE_HANDLE => handle = Some(u64::from_be_bytes(value.get(..8)?.try_into().ok()?)),
            NFTA_RULE_USERDATA => comment = rule_comment(value),
            _ => {}
        }
    }
    Some(RuleInfo {
        chain: chain?,
        handle: handle?,
        comment,
    })
}

/// The comment TLV of a rule's user data.
fn rule_comment(mut udata: &[u8]) -> Option<String> {
    while udata.len() >= 2 {
        let (kind, len) = (udata[0], udata[1] as usize);
        let value = udata.get(2..2 + len)?;
        if kind == NFTNL_UDATA_RULE_COMMENT {
            return Some(c_string(value));
        }
        udata = &udata[2 + len..];
    }
    None
}

pub(super) fn attributes(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([data[0], data[1]]) as usize;
        let kind = u16::from_ne_bytes([data[2], data[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > data.len() {
            return None;
        }
        let value = &data[4..len];
        data = &data[align(len).min(data.len())..];
        Some((kind, value))
    })
}

fn c_string(value: &[u8]) -> String {
    let end = value.iter().position(|b| *b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end]).into_owned()
}

pub(super) fn nul_terminated(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn align(len: usize) -> usize {
    (len + 3) & !3
}

pub(super) fn attribute(kind: u16, value: &[u8]) -> Vec<u8> {
    let len = 4 + value.len();
    let mut out = Vec::with_capacity(align(len));
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(align(len), 0);
    out
}

fn request(msg: u16, flags: u16, seq: u32, attrs: &[u8]) -> Vec<u8> {
    subsystem_request(NFNL_SUBSYS_NFTABLES, msg, NFPROTO_INET, flags, seq, attrs)
}

/// A message of netfilter subsystem `subsystem` (nf_tables, ctnetlink) for `family`.
pub(super) fn subsystem_request(
    subsystem: u16,
    msg: u16,
    family: u8,
    flags: u16,
    seq: u32,
    attrs: &[u8],
) -> Vec<u8> {
    let len = HEADER_LEN + NFGENMSG_LEN + attrs.len();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&(subsystem << 8 | msg).to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&[family, 0, 0, 0]);
    out.extend_from_slice(attrs);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Type, flags and sequence number of each message of a datagram.
    fn headers(mut data: &[u8]) -> Vec<(u16, u16, u32)> {
        let mut out = Vec::new();
        while data.len() >= HEADER_LEN {
            let len = u32::from_ne_bytes(data[0..4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes(data[4..6].try_into().unwrap());
            let flags = u16::from_ne_bytes(data[6..8].try_into().unwrap());
            let seq = u32::from_ne_bytes(data[8..12].try_into().unwrap());
            out.push((kind, flags, seq));
            data = &data[align(len)..];
        }
        out
    }

    #[test]
    fn a_batch_is_framed_and_every_change_asks_for_an_ack() {
        let changes = [
            Addition::Table { table: "podrun" },
            Addition::BaseChain {
                table: "podrun",
                chain: "postrouting",
                kind: "nat",
                hook: 4,
                priority: 100,
            },
        ];
        let data = batch(&changes);
        let sub = NFNL_SUBSYS_NFTABLES << 8;
        let ack = NLM_F_REQUEST | NLM_F_ACK;
        assert_eq!(
            headers(&data),
            vec![
                (NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0),
                (sub | NFT_MSG_NEWTABLE, ack | NLM_F_CREATE, 1),
                (sub | NFT_MSG_NEWCHAIN, ack | NLM_F_CREATE, 2),
                (NFNL_MSG_BATCH_END, NLM_F_REQUEST, 3),
            ]
        );
        // The batch markers name the nftables subsystem, big-endian, as their resource id.
        assert_eq!(&data[HEADER_LEN + 2..HEADER_LEN + 4], &[0, 10]);
        // Hook number and priority are big-endian.
        assert!(data.windows(4).any(|w| w == 100i32.to_be_bytes()));
        assert_eq!(comment_udata("ab"), vec![0, 3, b'a', b'b', 0]);
    }

    #[test]
    fn attributes_round_trip_with_padding() {
        let mut data = attribute(NFTA_RULE_CHAIN, b"post\0");
        data.extend(attribute(NFTA_RULE_HANDLE, &7u64.to_be_bytes()));
        let parsed: Vec<_> = attributes(&data).collect();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0], (NFTA_RULE_CHAIN, &b"post\0"[..]));
        assert_eq!(parsed[1].0, NFTA_RULE_HANDLE);
    }

    #[test]
    fn rule_message_gives_chain_handle_and_comment() {
        let comment = b"podrun network podrun0 10.244.0.0/24\0";
        let mut udata = vec![NFTNL_UDATA_RULE_COMMENT, comment.len() as u8];
        udata.extend_from_slice(comment);
        let mut payload = vec![NFPROTO_INET, 0, 0, 0];
        payload.extend(attribute(NFTA_RULE_TABLE, b"podrun\0"));
        payload.extend(attribute(NFTA_RULE_CHAIN, b"postrouting\0"));
        payload.extend(attribute(NFTA_RULE_HANDLE, &42u64.to_be_bytes()));
        payload.extend(attribute(NFTA_RULE_USERDATA, &udata));
        assert_eq!(
            parse_rule(&payload),
            Some(RuleInfo {
                chain: "postrouting".into(),
                handle: 42,
                comment: Some("podrun network podrun0 10.244.0.0/24".into()),
            })
        );
    }

    #[test]
    fn rule_without_comment_has_none() {
        let mut payload = vec![NFPROTO_INET, 0, 0, 0];
        payload.extend(attribute(NFTA_RULE_CHAIN, b"c\0"));
        payload.extend(attribute(NFTA_RULE_HANDLE, &1u64.to_be_bytes()));
        assert_eq!(parse_rule(&payload).unwrap().comment, None);
    }

    #[test]
    fn request_header_carries_subsystem_and_length() {
        let msg = request(NFT_MSG_GETRULE, NLM_F_REQUEST | NLM_F_DUMP, 9, &[0; 8]);
        assert_eq!(msg.len(), 28);
        assert_eq!(u32::from_ne_bytes(msg[0..4].try_into().unwrap()), 28);
        assert_eq!(
            u16::from_ne_bytes(msg[4..6].try_into().unwrap()),
            (10 << 8) | 7
        );
        assert_eq!(msg[16], NFPROTO_INET);
    }
}
