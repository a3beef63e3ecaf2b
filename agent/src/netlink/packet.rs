//! The bridge to netlink-packet-route: its message types say what each rtnetlink request holds;
//! this turns one into the bytes a [`super::RouteSocket`] sends, with ipmpd's flags and sequence
//! number, and names the families the way its headers do.

use std::net::IpAddr;

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NlaBuffer, NlasIterator};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

/// `message` as one netlink request with `flags` (`NLM_F_*`) and sequence number `seq`.
#[must_use]
pub fn encode(message: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut m = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
    m.finalize();
    let mut out = vec![0; m.buffer_len()];
    m.serialize(&mut out);
    out
}

/// The attributes after the family header (`header_len` bytes) of a message body. Parsers walk
/// them and decode only the ones they need, each with the crate's own attribute type: decoding the
/// whole message would lose it to any one attribute the crate cannot read (an interface alias that
/// is not UTF-8, a field another kernel version sized differently), and with it an object the
/// reconciler must see. A malformed attribute ends the walk.
pub fn attributes(body: &[u8], header_len: usize) -> impl Iterator<Item = NlaBuffer<&[u8]>> {
    NlasIterator::new(body.get(header_len..).unwrap_or_default()).map_while(Result::ok)
}

/// The address family of `a`.
#[must_use]
pub fn family_of(a: IpAddr) -> AddressFamily {
    if a.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// The address family with number `af` (`AF_INET`, `AF_INET6`, or 0 for every family).
#[must_use]
pub fn family(af: u8) -> AddressFamily {
    AddressFamily::from(af)
}
