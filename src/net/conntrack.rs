//! Stale UDP conntrack entries to a hostPort, removed as the CNI portmap plugin removes them
//! when it sets a pod's rules up (`deleteConntrackEntriesForDstPort`): a UDP "flow" that keeps
//! its source port (a DNS client, a syslog sender) would otherwise go on reaching the old pod
//! address after a sandbox re-creation, until its entry times out (the DNAT is decided once
//! per entry). TCP needs nothing: a new connection gets a new entry.
//!
//! Over ctnetlink (include/uapi/linux/netfilter/nfnetlink_conntrack.h): a dump of the IPv4
//! table, then one `IPCTNL_MSG_CT_DELETE` per UDP entry whose original destination port is
//! the hostPort, naming it by its original tuple. Entries of this network namespace only.

use std::io;

use super::nfnetlink::{
    Flow, NFGENMSG_LEN, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, attributes, connect,
    nested, read_replies, subsystem_request,
};

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_DST_PORT: u16 = 3;
const AF_INET: u8 = libc::AF_INET as u8;
const IPPROTO_UDP: u8 = libc::IPPROTO_UDP as u8;

/// Delete every UDP conntrack entry whose original destination port is `port`; how many.
pub fn delete_udp_to_port(port: u16) -> io::Result<usize> {
    let socket = connect()?;
    let dump = subsystem_request(
        NFNL_SUBSYS_CTNETLINK,
        IPCTNL_MSG_CT_GET,
        AF_INET,
        NLM_F_REQUEST | NLM_F_DUMP,
        1,
        &[],
    );
    socket.send(&dump, 0)?;
    let mut tuples: Vec<Vec<u8>> = Vec::new();
    read_replies(&socket, |kind, payload| {
        if kind == NLMSG_DONE {
            return Ok(Flow::Done);
        }
        if kind == NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_NEW
            && let Some(tuple) = matching_tuple(payload, port)
        {
            tuples.push(tuple.to_vec());
        }
        Ok(Flow::More)
    })?;
    let mut deleted = 0;
    for (seq, tuple) in (2..).zip(&tuples) {
        let delete = subsystem_request(
            NFNL_SUBSYS_CTNETLINK,
            IPCTNL_MSG_CT_DELETE,
            AF_INET,
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
            &nested(CTA_TUPLE_ORIG, tuple),
        );
        socket.send(&delete, 0)?;
        match read_replies(&socket, |_, _| Ok(Flow::Done)) {
            Ok(()) => deleted += 1,
            // Gone meanwhile (timed out, or the flow ended).
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

/// The original tuple (its attributes) of a conntrack message when it is UDP to `port`.
fn matching_tuple(payload: &[u8], port: u16) -> Option<&[u8]> {
    let (_, tuple) =
        attributes(payload.get(NFGENMSG_LEN..)?).find(|(k, _)| *k == CTA_TUPLE_ORIG)?;
    let (_, proto) = attributes(tuple).find(|(k, _)| *k == CTA_TUPLE_PROTO)?;
    let mut number = None;
    let mut dst_port = None;
    for (kind, value) in attributes(proto) {
        match kind {
            CTA_PROTO_NUM => number = value.first().copied(),
            CTA_PROTO_DST_PORT if value.len() >= 2 => {
                dst_port = Some(u16::from_be_bytes([value[0], value[1]]))
            }
            _ => {}
        }
    }
    (number == Some(IPPROTO_UDP) && dst_port == Some(port)).then_some(tuple)
}

#[cfg(test)]
mod tests {
    use super::super::nfnetlink::attribute;
    use super::*;

    fn tuple(proto: u8, dport: u16) -> Vec<u8> {
        let proto = [
            attribute(CTA_PROTO_NUM, &[proto]),
            attribute(CTA_PROTO_DST_PORT, &dport.to_be_bytes()),
        ]
        .concat();
        nested(CTA_TUPLE_PROTO, &proto)
    }

    #[test]
    fn only_udp_entries_to_the_port_match() {
        let message = |proto, dport| {
            let mut payload = vec![AF_INET, 0, 0, 0];
            payload.extend(nested(CTA_TUPLE_ORIG, &tuple(proto, dport)));
            payload
        };
        let udp = message(IPPROTO_UDP, 8080);
        assert_eq!(
            matching_tuple(&udp, 8080),
            Some(&tuple(IPPROTO_UDP, 8080)[..])
        );
        assert_eq!(matching_tuple(&udp, 53), None);
        assert_eq!(
            matching_tuple(&message(libc::IPPROTO_TCP as u8, 8080), 8080),
            None
        );
        assert_eq!(matching_tuple(&[AF_INET, 0, 0, 0], 8080), None);
    }
}
