//! Routes: one type for what ipmpd asks for and what the kernel reports (dumps and
//! notifications), multipath included, so the two can be compared.

use std::net::IpAddr;

use netlink_packet_core::ParseableParametrized as _;
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    route::{
        RouteAddress, RouteAttribute, RouteHeader, RouteLwEnCapType, RouteMessage, RouteNextHop,
    },
};

use super::{
    msg::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST},
    packet::{attributes, encode, family, family_of},
    socket::{NetlinkError, RouteSocket},
};
use crate::ip::Prefix;

/// `RTM_NEWROUTE`.
pub const RTM_NEWROUTE: u16 = 24;
/// `RTM_DELROUTE`.
pub const RTM_DELROUTE: u16 = 25;
/// Length of `struct rtmsg`.
const RTMSG_LEN: usize = 12;
/// `RT_SCOPE_UNIVERSE`.
pub const RT_SCOPE_UNIVERSE: u8 = 0;
/// `RT_SCOPE_LINK`.
pub const RT_SCOPE_LINK: u8 = 253;
/// `RTN_UNICAST`.
pub const RTN_UNICAST: u8 = 1;
/// The main routing table.
pub const RT_TABLE_MAIN: u32 = 254;

/// `rtm_protocol` of every route and rule ipmpd makes, so they can be told apart from everyone
/// else's (`ip route show proto ipmpd` with `packaging/rt_protos.d/ipmpd.conf` installed). No
/// routing daemon uses it: FRR's zebra takes 186-198 (187 is IS-IS), BIRD 12, keepalived 18,
/// systemd-networkd and NetworkManager the kernel's own (boot, static, dhcp, ra).
pub const RTPROT_IPMPD: u8 = 233;

/// One next hop: an interface, and a gateway unless the destination is on-link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NextHop {
    pub ifindex: u32,
    pub gateway: Option<IpAddr>,
}

/// A unicast route.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    pub table: u32,
    /// Destination network (`0.0.0.0/0` or `::/0` for a default route).
    pub dst: Prefix,
    pub protocol: u8,
    pub scope: u8,
    /// `rtm_type` (RTN_UNICAST, RTN_LOCAL, ...).
    pub kind: u8,
    /// The source the kernel prefers for traffic that takes this route.
    pub prefsrc: Option<IpAddr>,
    /// The metric (`RTA_PRIORITY`), when set.
    pub metric: Option<u32>,
    /// One next hop, or several for a multipath route.
    pub hops: Vec<NextHop>,
}

impl Route {
    /// Gateways of every next hop.
    pub fn gateways(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.hops.iter().filter_map(|h| h.gateway)
    }
}

/// The message every request about `r` starts with: the rtmsg, table and destination.
fn head(r: &Route) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = family_of(r.dst.addr);
    m.header.destination_prefix_length = r.dst.len;
    m.header.protocol = r.protocol.into();
    m.header.scope = r.scope.into();
    m.header.kind = r.kind.into();
    // The table goes in RTA_TABLE (32 bits); the header's 8-bit field stays RT_TABLE_UNSPEC.
    m.attributes = vec![
        RouteAttribute::Table(r.table),
        RouteAttribute::Destination(r.dst.network().addr.into()),
    ];
    m
}

/// RTM_NEWROUTE (create or replace) of `r`: one next hop as RTA_OIF/RTA_GATEWAY, several as
/// RTA_MULTIPATH.
#[must_use]
pub fn route_request(seq: u32, r: &Route) -> Vec<u8> {
    let mut m = head(r);
    if let Some(src) = r.prefsrc {
        m.attributes.push(RouteAttribute::PrefSource(src.into()));
    }
    if let Some(metric) = r.metric {
        m.attributes.push(RouteAttribute::Priority(metric));
    }
    if let [hop] = r.hops.as_slice() {
        m.attributes.push(RouteAttribute::Oif(hop.ifindex));
        if let Some(g) = hop.gateway {
            m.attributes.push(RouteAttribute::Gateway(g.into()));
        }
    } else {
        let hops = r
            .hops
            .iter()
            .map(|h| {
                let mut hop = RouteNextHop::default();
                hop.interface_index = h.ifindex;
                hop.attributes = h
                    .gateway
                    .map(|g| RouteAttribute::Gateway(g.into()))
                    .into_iter()
                    .collect();
                hop
            })
            .collect();
        m.attributes.push(RouteAttribute::MultiPath(hops));
    }
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    encode(RouteNetlinkMessage::NewRoute(m), flags, seq)
}

/// RTM_DELROUTE of `r` (table, destination, protocol and metric identify it).
#[must_use]
pub fn route_delete_request(seq: u32, r: &Route) -> Vec<u8> {
    let mut m = head(r);
    if let Some(metric) = r.metric {
        m.attributes.push(RouteAttribute::Priority(metric));
    }
    encode(
        RouteNetlinkMessage::DelRoute(m),
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
    )
}

/// The RTM_GETROUTE dump request for `family` (AF_INET / AF_INET6): every table.
#[must_use]
pub fn dump_request(seq: u32, af: u8) -> Vec<u8> {
    let mut m = RouteMessage::default();
    m.header.address_family = family(af);
    encode(
        RouteNetlinkMessage::GetRoute(m),
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
    )
}

fn ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some((*v4).into()),
        RouteAddress::Inet6(v6) => Some((*v6).into()),
        _ => None,
    }
}

fn gateway_of(attributes: &[RouteAttribute]) -> Option<IpAddr> {
    attributes.iter().find_map(|a| match a {
        RouteAttribute::Gateway(g) => ip(g),
        _ => None,
    })
}

/// A route from one RTM_NEWROUTE / RTM_DELROUTE body (IPv4 and IPv6 only; `None` for any
/// other family or a malformed body).
#[must_use]
pub fn parse_route(body: &[u8]) -> Option<Route> {
    let header = RouteHeader::parse(body).ok()?;
    let mut dst = match header.address_family {
        AddressFamily::Inet => IpAddr::from([0u8; 4]),
        AddressFamily::Inet6 => IpAddr::from([0u8; 16]),
        _ => return None,
    };
    let param = (
        header.address_family,
        header.kind,
        RouteLwEnCapType::default(),
    );
    let attrs: Vec<RouteAttribute> = attributes(body, RTMSG_LEN)
        .filter_map(|nla| RouteAttribute::parse_with_param(&nla, param).ok())
        .collect();
    let mut table = u32::from(header.table);
    let (mut prefsrc, mut metric, mut oif) = (None, None, None);
    let gateway = gateway_of(&attrs);
    let mut hops = Vec::new();
    for a in &attrs {
        match a {
            RouteAttribute::Destination(d) => dst = ip(d)?,
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::PrefSource(p) => prefsrc = ip(p),
            RouteAttribute::Priority(p) => metric = Some(*p),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::MultiPath(next) => {
                hops = next
                    .iter()
                    .map(|h| NextHop {
                        ifindex: h.interface_index,
                        gateway: gateway_of(&h.attributes),
                    })
                    .collect();
            }
            _ => {}
        }
    }
    if hops.is_empty() && (oif.is_some() || gateway.is_some()) {
        hops.push(NextHop {
            ifindex: oif.unwrap_or(0),
            gateway,
        });
    }
    Some(Route {
        table,
        dst: Prefix {
            addr: dst,
            len: header.destination_prefix_length,
        },
        protocol: header.protocol.into(),
        scope: header.scope.into(),
        kind: header.kind.into(),
        prefsrc,
        metric,
        hops,
    })
}

impl RouteSocket {
    /// Every route of `family` (AF_INET / AF_INET6) in every table.
    ///
    /// # Errors
    /// On a socket error or a refusal by the kernel.
    pub fn dump_routes(&mut self, family: u8) -> Result<Vec<Route>, NetlinkError> {
        let seq = self.next_seq();
        let mut out = Vec::new();
        self.request(&dump_request(seq, family), |kind, body| {
            if kind == RTM_NEWROUTE
                && let Some(r) = parse_route(body)
            {
                out.push(r);
            }
        })?;
        Ok(out)
    }

    /// Creates or replaces `r`.
    ///
    /// # Errors
    /// The kernel's refusal.
    pub fn set_route(&mut self, r: &Route) -> Result<(), NetlinkError> {
        let seq = self.next_seq();
        self.request(&route_request(seq, r), |_, _| {})
    }

    /// Deletes `r`; absent is fine.
    ///
    /// # Errors
    /// The kernel's refusal.
    pub fn del_route(&mut self, r: &Route) -> Result<(), NetlinkError> {
        let seq = self.next_seq();
        match self.request(&route_delete_request(seq, r), |_, _| {}) {
            Err(NetlinkError::Refused(libc::ESRCH | libc::ENOENT)) => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: [u8; 4], len: u8) -> Prefix {
        Prefix {
            addr: a.into(),
            len,
        }
    }

    fn on_link(table: u32, dst: Prefix, ifs: &[u32]) -> Route {
        Route {
            table,
            dst,
            protocol: RTPROT_IPMPD,
            scope: RT_SCOPE_LINK,
            kind: RTN_UNICAST,
            prefsrc: None,
            metric: None,
            hops: ifs
                .iter()
                .map(|&ifindex| NextHop {
                    ifindex,
                    gateway: None,
                })
                .collect(),
        }
    }

    #[test]
    fn multipath_request_golden() {
        #[rustfmt::skip]
        assert_eq!(route_request(5, &on_link(1000, p([192, 0, 2, 100], 24), &[3, 4])), [
            64, 0, 0, 0,  24, 0,  0x05, 0x05,  5, 0, 0, 0,  0, 0, 0, 0, // RTM_NEWROUTE, REQ|ACK|REPLACE|CREATE
            2, 24, 0, 0, 0, 233, 253, 1,  0, 0, 0, 0,   // AF_INET /24, proto ipmpd, scope link, unicast
            8, 0, 15, 0,  0xe8, 0x03, 0, 0,             // RTA_TABLE 1000
            8, 0, 1, 0,  192, 0, 2, 0,                  // RTA_DST 192.0.2.0
            20, 0, 9, 0,                                // RTA_MULTIPATH
              8, 0, 0, 0,  3, 0, 0, 0,                  //   dev 3
              8, 0, 0, 0,  4, 0, 0, 0,                  //   dev 4
        ]);
    }

    #[test]
    fn what_is_asked_for_parses_back_the_same() {
        let mut r = on_link(254, p([198, 51, 100, 0], 24), &[3, 4]);
        r.scope = RT_SCOPE_UNIVERSE;
        r.prefsrc = Some([192, 0, 2, 100].into());
        for h in &mut r.hops {
            h.gateway = Some([192, 0, 2, 1].into());
        }
        let m = route_request(1, &r);
        assert_eq!(parse_route(&m[16..]), Some(r.clone()));
        let single = on_link(1000, p([192, 0, 2, 0], 24), &[7]);
        let m = route_request(1, &single);
        assert_eq!(parse_route(&m[16..]), Some(single));
        for cut in 0..m.len() - 16 {
            let _ = parse_route(&m[16..16 + cut]);
        }
    }

    #[test]
    fn the_protocol_is_named_for_ip_route_in_the_packaged_file() {
        let text = include_str!("../../../packaging/rt_protos.d/ipmpd.conf");
        let line = text
            .lines()
            .find(|l| !l.starts_with('#') && !l.trim().is_empty())
            .unwrap();
        let mut w = line.split_whitespace();
        assert_eq!(w.next(), Some(RTPROT_IPMPD.to_string().as_str()));
        assert_eq!(w.next(), Some("ipmpd"));
    }

    #[test]
    fn delete_request_names_table_destination_and_protocol() {
        let r = on_link(1000, p([192, 0, 2, 0], 24), &[7]);
        let m = route_delete_request(3, &r);
        assert_eq!(&m[4..6], &[25, 0], "RTM_DELROUTE");
        assert_eq!(m[16 + 5], RTPROT_IPMPD);
    }
}
