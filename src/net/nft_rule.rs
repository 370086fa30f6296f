//! nftables rule expressions, encoded for nfnetlink as `nft` itself encodes them (what
//! `nft --debug=netlink add rule ...` prints), so that `nft list ruleset` shows a rule podrun
//! added exactly as if it had been typed. Only what podrun's masquerade rule needs:
//!
//! ```text
//! ip saddr 10.244.0.0/24 oifname != "podrun0" masquerade
//!   [ meta load nfproto => reg 1 ]                      (inet table: IPv4 packets only)
//!   [ cmp eq reg 1 0x00000002 ]
//!   [ payload load 3b @ network header + 12 => reg 1 ]  (whole bytes of the prefix;
//!   [ cmp eq reg 1 0x0000f40a ]                          4 bytes and a mask otherwise)
//!   [ meta load oifname => reg 1 ]
//!   [ cmp neq reg 1 0x72646f70 0x00306e75 0x00000000 0x00000000 ]
//!   [ masq ]
//! ```
//! (include/uapi/linux/netfilter/nf_tables.h; registers and numbers are big-endian u32.)
//!
//! and the hostPort rules (`super::hostport`), as `nft --debug=netlink` shows them:
//!
//! ```text
//! meta nfproto ipv4 fib daddr type local ip daddr 192.0.2.7 meta l4proto tcp th dport 8080 dnat ip to 10.244.0.5:80
//!   [ meta load nfproto => reg 1 ] [ cmp eq reg 1 0x00000002 ]
//!   [ fib daddr type => reg 1 ]    [ cmp eq reg 1 0x00000002 ]   (RTN_LOCAL, host order)
//!   [ payload load 4b @ network header + 16 => reg 1 ] [ cmp eq reg 1 0x070200c0 ]
//!   [ meta load l4proto => reg 1 ] [ cmp eq reg 1 0x00000006 ]
//!   [ payload load 2b @ transport header + 2 => reg 1 ] [ cmp eq reg 1 0x0000901f ]
//!   [ immediate reg 1 0x0500f40a ] [ immediate reg 2 0x00005000 ]
//!   [ nat dnat ip addr_min reg 1 proto_min reg 2 ]
//! ip saddr 10.244.0.5 ip daddr 10.244.0.5 meta l4proto tcp th dport 80 masquerade
//! ```

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::nfnetlink::{attribute, nested, nul_terminated};

const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFT_REG_1: u32 = 1;
const NFT_REG_2: u32 = 2;
const NFT_META_L4PROTO: u32 = 16;
/// Offsets in the IPv4 header and (for TCP, UDP and SCTP alike) the transport header.
const IPV4_DADDR_OFFSET: u32 = 16;
const DPORT_OFFSET: u32 = 2;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;

const NFTA_FIB_DREG: u16 = 1;
const NFTA_FIB_RESULT: u16 = 2;
const NFTA_FIB_FLAGS: u16 = 3;
const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
const NFTA_FIB_F_DADDR: u32 = 2;
const RTN_LOCAL: u32 = 2;

const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;

const NFTA_NAT_TYPE: u16 = 1;
const NFTA_NAT_FAMILY: u16 = 2;
const NFTA_NAT_REG_ADDR_MIN: u16 = 3;
const NFTA_NAT_REG_PROTO_MIN: u16 = 5;
const NFT_NAT_DNAT: u32 = 1;

const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFT_META_OIFNAME: u32 = 7;
const NFT_META_NFPROTO: u32 = 15;

const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;

const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
/// Offset of the source address in the IPv4 header.
const IPV4_SADDR_OFFSET: u32 = 12;

const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;

const NFPROTO_IPV4: u8 = 2;
/// Interface names are compared over IFNAMSIZ bytes, NUL-padded.
const IFNAMSIZ: usize = 16;

/// `ip saddr <cidr> oifname != "<not_oif>" masquerade`, in an inet table.
pub(crate) fn masquerade_from(cidr: Ipv4Net, not_oif: &str) -> Vec<Vec<u8>> {
    let mut out = vec![meta(NFT_META_NFPROTO), cmp(NFT_CMP_EQ, &[NFPROTO_IPV4])];
    out.extend(saddr_in(cidr));
    let mut name = not_oif.as_bytes().to_vec();
    name.resize(IFNAMSIZ, 0);
    out.push(meta(NFT_META_OIFNAME));
    out.push(cmp(NFT_CMP_NEQ, &name));
    out.push(expression("masq", &[]));
    out
}

/// `meta nfproto ipv4 fib daddr type local [ip daddr <only_to>] meta l4proto <proto> th dport
/// <port> dnat ip to <to>:<to_port>`: a hostPort's DNAT, in an inet table.
pub(crate) fn dnat_local(
    only_to: Option<Ipv4Addr>,
    l4proto: u8,
    port: u16,
    to: Ipv4Addr,
    to_port: u16,
) -> Vec<Vec<u8>> {
    let mut out = vec![meta(NFT_META_NFPROTO), cmp(NFT_CMP_EQ, &[NFPROTO_IPV4])];
    out.push(fib_daddr_type());
    out.push(cmp(NFT_CMP_EQ, &RTN_LOCAL.to_ne_bytes()));
    if let Some(address) = only_to {
        out.push(payload(IPV4_DADDR_OFFSET, 4));
        out.push(cmp(NFT_CMP_EQ, &address.octets()));
    }
    out.extend(dport(l4proto, port));
    out.push(immediate(NFT_REG_1, &to.octets()));
    out.push(immediate(NFT_REG_2, &to_port.to_be_bytes()));
    let nat = [
        reg(NFTA_NAT_TYPE, NFT_NAT_DNAT),
        reg(NFTA_NAT_FAMILY, u32::from(NFPROTO_IPV4)),
        reg(NFTA_NAT_REG_ADDR_MIN, NFT_REG_1),
        reg(NFTA_NAT_REG_PROTO_MIN, NFT_REG_2),
    ];
    out.push(expression("nat", &nat.concat()));
    out
}

/// `ip saddr <from> ip daddr <to> meta l4proto <proto> th dport <port> masquerade`, in an inet
/// table.
pub(crate) fn masquerade_between(
    from: Ipv4Addr,
    to: Ipv4Addr,
    l4proto: u8,
    port: u16,
) -> Vec<Vec<u8>> {
    let mut out = vec![meta(NFT_META_NFPROTO), cmp(NFT_CMP_EQ, &[NFPROTO_IPV4])];
    out.push(payload(IPV4_SADDR_OFFSET, 4));
    out.push(cmp(NFT_CMP_EQ, &from.octets()));
    out.push(payload(IPV4_DADDR_OFFSET, 4));
    out.push(cmp(NFT_CMP_EQ, &to.octets()));
    out.extend(dport(l4proto, port));
    out.push(expression("masq", &[]));
    out
}

/// `meta l4proto <proto> th dport <port>`.
fn dport(l4proto: u8, port: u16) -> Vec<Vec<u8>> {
    vec![
        meta(NFT_META_L4PROTO),
        cmp(NFT_CMP_EQ, &[l4proto]),
        transport_payload(DPORT_OFFSET, 2),
        cmp(NFT_CMP_EQ, &port.to_be_bytes()),
    ]
}

/// `fib daddr type` into reg 1.
fn fib_daddr_type() -> Vec<u8> {
    let attrs = [
        reg(NFTA_FIB_DREG, NFT_REG_1),
        reg(NFTA_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE),
        reg(NFTA_FIB_FLAGS, NFTA_FIB_F_DADDR),
    ];
    expression("fib", &attrs.concat())
}

fn immediate(dreg: u32, value: &[u8]) -> Vec<u8> {
    let attrs = [
        reg(NFTA_IMMEDIATE_DREG, dreg),
        data(NFTA_IMMEDIATE_DATA, value),
    ];
    expression("immediate", &attrs.concat())
}

fn transport_payload(offset: u32, len: u32) -> Vec<u8> {
    let attrs = [
        reg(NFTA_PAYLOAD_DREG, NFT_REG_1),
        reg(NFTA_PAYLOAD_BASE, NFT_PAYLOAD_TRANSPORT_HEADER),
        reg(NFTA_PAYLOAD_OFFSET, offset),
        reg(NFTA_PAYLOAD_LEN, len),
    ];
    expression("payload", &attrs.concat())
}

/// `ip saddr <cidr>`: the prefix's whole bytes compared, or all four masked first.
fn saddr_in(cidr: Ipv4Net) -> Vec<Vec<u8>> {
    let prefix = u32::from(cidr.prefix_len());
    if prefix == 0 {
        return Vec::new();
    }
    let address = cidr.network().octets();
    if prefix % 8 == 0 {
        let len = prefix / 8;
        return vec![
            payload(IPV4_SADDR_OFFSET, len),
            cmp(NFT_CMP_EQ, &address[..len as usize]),
        ];
    }
    vec![
        payload(IPV4_SADDR_OFFSET, 4),
        bitwise(&cidr.netmask().octets()),
        cmp(NFT_CMP_EQ, &address),
    ]
}

fn reg(kind: u16, value: u32) -> Vec<u8> {
    attribute(kind, &value.to_be_bytes())
}

fn data(kind: u16, value: &[u8]) -> Vec<u8> {
    nested(kind, &attribute(NFTA_DATA_VALUE, value))
}

fn meta(key: u32) -> Vec<u8> {
    expression(
        "meta",
        &[reg(NFTA_META_DREG, NFT_REG_1), reg(NFTA_META_KEY, key)].concat(),
    )
}

fn cmp(op: u32, value: &[u8]) -> Vec<u8> {
    let attrs = [
        reg(NFTA_CMP_SREG, NFT_REG_1),
        reg(NFTA_CMP_OP, op),
        data(NFTA_CMP_DATA, value),
    ];
    expression("cmp", &attrs.concat())
}

fn payload(offset: u32, len: u32) -> Vec<u8> {
    let attrs = [
        reg(NFTA_PAYLOAD_DREG, NFT_REG_1),
        reg(NFTA_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER),
        reg(NFTA_PAYLOAD_OFFSET, offset),
        reg(NFTA_PAYLOAD_LEN, len),
    ];
    expression("payload", &attrs.concat())
}

/// `reg 1 = (reg 1 & mask) ^ 0`.
fn bitwise(mask: &[u8]) -> Vec<u8> {
    let attrs = [
        reg(NFTA_BITWISE_SREG, NFT_REG_1),
        reg(NFTA_BITWISE_DREG, NFT_REG_1),
        reg(NFTA_BITWISE_LEN, mask.len() as u32),
        data(NFTA_BITWISE_MASK, mask),
        data(NFTA_BITWISE_XOR, &vec![0; mask.len()]),
    ];
    expression("bitwise", &attrs.concat())
}

/// One element of a rule's expression list: its name and its (nested) data.
fn expression(name: &str, attrs: &[u8]) -> Vec<u8> {
    let inner = [
        attribute(NFTA_EXPR_NAME, &nul_terminated(name)),
        nested(NFTA_EXPR_DATA, attrs),
    ];
    nested(NFTA_LIST_ELEM, &inner.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The name of each expression (its `NFTA_EXPR_NAME`, right after the list element's
    /// header).
    fn names(exprs: &[Vec<u8>]) -> Vec<String> {
        exprs
            .iter()
            .map(|e| {
                // LIST_ELEM header (4), EXPR_NAME header (4), then the name.
                let len = u16::from_ne_bytes([e[4], e[5]]) as usize - 4;
                String::from_utf8_lossy(&e[8..8 + len - 1]).into_owned()
            })
            .collect()
    }

    #[test]
    fn byte_aligned_prefix_compares_its_bytes() {
        let exprs = masquerade_from("10.244.0.0/24".parse().unwrap(), "podrun0");
        assert_eq!(
            names(&exprs),
            ["meta", "cmp", "payload", "cmp", "meta", "cmp", "masq"]
        );
        // cmp eq 3 bytes 10.244.0
        assert!(exprs[3].windows(3).any(|w| w == [10, 244, 0]));
        assert!(exprs[2].windows(4).any(|w| w == 3u32.to_be_bytes()));
        let mut name = b"podrun0".to_vec();
        name.resize(16, 0);
        assert!(exprs[5].windows(16).any(|w| w == name.as_slice()));
    }

    #[test]
    fn hostport_dnat_checks_local_destination_then_port() {
        let pod: Ipv4Addr = "10.244.0.5".parse().unwrap();
        let exprs = dnat_local(None, 6, 8080, pod, 80);
        assert_eq!(
            names(&exprs),
            [
                "meta",
                "cmp",
                "fib",
                "cmp",
                "meta",
                "cmp",
                "payload",
                "cmp",
                "immediate",
                "immediate",
                "nat"
            ]
        );
        assert!(exprs[3].windows(4).any(|w| w == 2u32.to_ne_bytes()));
        assert!(exprs[5].windows(1).any(|w| w == [6]));
        assert!(exprs[7].windows(2).any(|w| w == 8080u16.to_be_bytes()));
        assert!(exprs[8].windows(4).any(|w| w == [10, 244, 0, 5]));
        assert!(exprs[9].windows(2).any(|w| w == 80u16.to_be_bytes()));

        let only = dnat_local(Some("192.0.2.7".parse().unwrap()), 17, 53, pod, 5353);
        assert_eq!(names(&only)[4..6], ["payload", "cmp"]);
        assert!(only[4].windows(4).any(|w| w == 16u32.to_be_bytes()));
        assert!(only[5].windows(4).any(|w| w == [192, 0, 2, 7]));
        assert!(only[7].windows(1).any(|w| w == [17]));
    }

    #[test]
    fn hairpin_masquerade_matches_both_addresses() {
        let pod: Ipv4Addr = "10.244.0.5".parse().unwrap();
        let exprs = masquerade_between(pod, pod, 6, 80);
        assert_eq!(
            names(&exprs),
            [
                "meta", "cmp", "payload", "cmp", "payload", "cmp", "meta", "cmp", "payload", "cmp",
                "masq"
            ]
        );
        assert!(exprs[2].windows(4).any(|w| w == 12u32.to_be_bytes()));
        assert!(exprs[4].windows(4).any(|w| w == 16u32.to_be_bytes()));
    }

    #[test]
    fn other_prefixes_are_masked() {
        let exprs = masquerade_from("10.240.0.0/12".parse().unwrap(), "br");
        assert_eq!(
            names(&exprs),
            [
                "meta", "cmp", "payload", "bitwise", "cmp", "meta", "cmp", "masq"
            ]
        );
        assert!(exprs[3].windows(4).any(|w| w == [255, 240, 0, 0]));
        assert!(exprs[4].windows(4).any(|w| w == [10, 240, 0, 0]));
    }
}
