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

use ipnet::Ipv4Net;

use super::nfnetlink::{attribute, nested, nul_terminated};

const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFT_REG_1: u32 = 1;

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
