//! Routes: one type for what ipmpd asks for and what the kernel reports (dumps and
//! notifications), multipath included, so the two can be compared.

use std::net::IpAddr;

use super::{
    msg::{
        Builder, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST, attr, attrs,
        family, ip_bytes, ip_of, u16_at, u32_at,
    },
    socket::{NetlinkError, RouteSocket},
};
use crate::ip::Prefix;

/// `RTM_NEWROUTE`.
pub const RTM_NEWROUTE: u16 = 24;
/// `RTM_DELROUTE`.
pub const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const RTMSG_LEN: usize = 12;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_PREFSRC: u16 = 7;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
/// `RT_SCOPE_UNIVERSE`.
pub const RT_SCOPE_UNIVERSE: u8 = 0;
/// `RT_SCOPE_LINK`.
pub const RT_SCOPE_LINK: u8 = 253;
/// `RTN_UNICAST`.
pub const RTN_UNICAST: u8 = 1;
/// The main routing table.
pub const RT_TABLE_MAIN: u32 = 254;
const RTNH_LEN: usize = 8;

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

/// The part every request about `r` starts with: the header, the rtmsg, table and destination.
fn head(kind: u16, flags: u16, seq: u32, r: &Route) -> Builder {
    // rtmsg: family, dst_len, src_len, tos, table (in RTA_TABLE), protocol, scope, type, flags
    let mut rtm = vec![
        family(r.dst.addr),
        r.dst.len,
        0,
        0,
        0,
        r.protocol,
        r.scope,
        r.kind,
    ];
    rtm.extend(0u32.to_ne_bytes());
    Builder::new(kind, flags, seq)
        .bytes(&rtm)
        .attr(RTA_TABLE, &r.table.to_ne_bytes())
        .attr(RTA_DST, &ip_bytes(r.dst.network().addr))
}

/// RTM_NEWROUTE (create or replace) of `r`: one next hop as RTA_OIF/RTA_GATEWAY, several as
/// RTA_MULTIPATH.
#[must_use]
pub fn route_request(seq: u32, r: &Route) -> Vec<u8> {
    let mut m = head(
        RTM_NEWROUTE,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        seq,
        r,
    );
    if let Some(src) = r.prefsrc {
        m = m.attr(RTA_PREFSRC, &ip_bytes(src));
    }
    if let Some(metric) = r.metric {
        m = m.attr(RTA_PRIORITY, &metric.to_ne_bytes());
    }
    if let [hop] = r.hops.as_slice() {
        m = m.attr(RTA_OIF, &hop.ifindex.to_ne_bytes());
        if let Some(g) = hop.gateway {
            m = m.attr(RTA_GATEWAY, &ip_bytes(g));
        }
        return m.finish();
    }
    let mut hops = Vec::new();
    for h in &r.hops {
        let mut gw = Vec::new();
        if let Some(g) = h.gateway {
            attr(&mut gw, RTA_GATEWAY, &ip_bytes(g));
        }
        // rtnexthop: length, flags, hops (weight - 1), ifindex, then its attributes
        hops.extend(((RTNH_LEN + gw.len()) as u16).to_ne_bytes());
        hops.extend([0u8, 0u8]);
        hops.extend(h.ifindex.to_ne_bytes());
        hops.extend(gw);
    }
    m.attr(RTA_MULTIPATH, &hops).finish()
}

/// RTM_DELROUTE of `r` (table, destination, protocol and metric identify it).
#[must_use]
pub fn route_delete_request(seq: u32, r: &Route) -> Vec<u8> {
    let m = head(RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, seq, r);
    match r.metric {
        Some(metric) => m.attr(RTA_PRIORITY, &metric.to_ne_bytes()).finish(),
        None => m.finish(),
    }
}

/// The RTM_GETROUTE dump request for `family` (AF_INET / AF_INET6): every table.
#[must_use]
pub fn dump_request(seq: u32, family: u8) -> Vec<u8> {
    let mut rtm = [0u8; RTMSG_LEN];
    rtm[0] = family;
    Builder::new(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq)
        .bytes(&rtm)
        .finish()
}

fn unspecified(family: u8) -> Option<IpAddr> {
    match i32::from(family) {
        libc::AF_INET => Some(IpAddr::from([0u8; 4])),
        libc::AF_INET6 => Some(IpAddr::from([0u8; 16])),
        _ => None,
    }
}

/// The next hops in an RTA_MULTIPATH payload; stops at a malformed one.
fn multipath(family: u8, mut p: &[u8]) -> Vec<NextHop> {
    let mut out = Vec::new();
    while p.len() >= RTNH_LEN {
        let (Some(len), Some(ifindex)) = (u16_at(p, 0), u32_at(p, 4)) else {
            break;
        };
        let len = usize::from(len);
        if len < RTNH_LEN || len > p.len() {
            break;
        }
        let gateway = attrs(&p[RTNH_LEN..len])
            .find(|(t, _)| *t == RTA_GATEWAY)
            .and_then(|(_, g)| ip_of(family, g));
        out.push(NextHop { ifindex, gateway });
        p = p.get((len + 3) & !3..).unwrap_or(&[]);
    }
    out
}

/// A route from one RTM_NEWROUTE / RTM_DELROUTE body (IPv4 and IPv6 only).
#[must_use]
pub fn parse_route(body: &[u8]) -> Option<Route> {
    let family = *body.first()?;
    let dst_len = *body.get(1)?;
    let mut table = u32::from(*body.get(4)?);
    let (protocol, scope, kind) = (*body.get(5)?, *body.get(6)?, *body.get(7)?);
    let mut dst = unspecified(family)?;
    let (mut prefsrc, mut metric, mut oif, mut gateway) = (None, None, None, None);
    let mut hops = Vec::new();
    for (t, p) in attrs(body.get(RTMSG_LEN..)?) {
        match t {
            RTA_DST => dst = ip_of(family, p)?,
            RTA_TABLE => table = u32_at(p, 0).unwrap_or(table),
            RTA_PREFSRC => prefsrc = ip_of(family, p),
            RTA_PRIORITY => metric = u32_at(p, 0),
            RTA_OIF => oif = u32_at(p, 0),
            RTA_GATEWAY => gateway = ip_of(family, p),
            RTA_MULTIPATH => hops = multipath(family, p),
            _ => {}
        }
    }
    if hops.is_empty()
        && let Some(ifindex) = oif
    {
        hops.push(NextHop { ifindex, gateway });
    } else if hops.is_empty() && gateway.is_some() {
        hops.push(NextHop {
            ifindex: 0,
            gateway,
        });
    }
    Some(Route {
        table,
        dst: Prefix {
            addr: dst,
            len: dst_len,
        },
        protocol,
        scope,
        kind,
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
