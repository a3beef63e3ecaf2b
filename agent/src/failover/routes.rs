//! Outbound traffic of a group leaves only through its active members.
//!
//! Each group has a routing table (`TABLE_BASE` + the group's position in the group file). A
//! policy rule sends everything sourced from a data address to that table, and the table routes
//! the data addresses' subnets over all active members at once (one multipath route, replaced in
//! one message whenever the active set changes). Replies from a data address therefore never
//! leave through a failed member, whatever the main table's connected routes say; test addresses
//! are not affected and stay on their own interface.

use std::net::IpAddr;

use crate::{
    config::group_file::{Prefix, RouteConfig},
    link::{
        netlink::{NetlinkError, RouteSocket},
        nlmsg::{
            Builder, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, attr,
            family, ip_bytes,
        },
    },
};

/// First routing table used for groups.
pub const TABLE_BASE: u32 = 1000;
/// Priority of the rules (before the main table's 32766).
pub const RULE_PRIORITY: u32 = 1000;
/// `rtm_protocol` of ipmpd's routes, so they can be told apart (`ip route show proto 187`).
pub const RTPROT_IPMPD: u8 = 187;

const RTM_NEWROUTE: u16 = 24;
const RTM_NEWRULE: u16 = 32;
const RTA_DST: u16 = 1;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
const RT_SCOPE_LINK: u8 = 253;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTA_GATEWAY: u16 = 5;
const RTA_OIF: u16 = 4;
/// The main routing table, where a group's configured routes go.
pub const RT_TABLE_MAIN: u32 = 254;
const RTN_UNICAST: u8 = 1;
const FRA_SRC: u16 = 2;
const FRA_PRIORITY: u16 = 6;
const FRA_TABLE: u16 = 15;
const FR_ACT_TO_TBL: u8 = 1;

/// What outbound failover needs from the kernel.
pub trait RouteOps {
    /// Makes `prefix` in `table` a multipath route over `ifindexes`, through `via` when given
    /// (on-link otherwise).
    ///
    /// # Errors
    /// The kernel's refusal.
    fn set_multipath(
        &mut self,
        table: u32,
        prefix: Prefix,
        via: Option<IpAddr>,
        ifindexes: &[u32],
    ) -> Result<(), NetlinkError>;
    /// Ensures the rule "from `src` lookup `table`"; an existing one is fine.
    ///
    /// # Errors
    /// The kernel's refusal.
    fn ensure_rule(&mut self, src: IpAddr, table: u32) -> Result<(), NetlinkError>;
}

/// The network of `p` (host bits cleared).
#[must_use]
pub fn network(p: Prefix) -> Prefix {
    let addr = match p.addr {
        IpAddr::V4(a) => {
            let mask = if p.len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(p.len.min(32)))
            };
            IpAddr::from((u32::from(a) & mask).to_be_bytes())
        }
        IpAddr::V6(a) => {
            let mask = if p.len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(p.len.min(128)))
            };
            IpAddr::from((u128::from(a) & mask).to_be_bytes())
        }
    };
    Prefix { addr, len: p.len }
}

/// RTM_NEWROUTE (create or replace) of a multipath route in `table`: one next hop per interface,
/// through `via` when given, on-link otherwise.
#[must_use]
pub fn multipath_request(
    seq: u32,
    table: u32,
    prefix: Prefix,
    via: Option<IpAddr>,
    ifindexes: &[u32],
) -> Vec<u8> {
    let scope = if via.is_some() {
        RT_SCOPE_UNIVERSE
    } else {
        RT_SCOPE_LINK
    };
    // rtmsg: family, dst_len, src_len, tos, table (in RTA_TABLE), protocol, scope, type, flags
    let mut rtm = vec![
        family(prefix.addr),
        prefix.len,
        0,
        0,
        0,
        RTPROT_IPMPD,
        scope,
        RTN_UNICAST,
    ];
    rtm.extend(0u32.to_ne_bytes());
    let m = Builder::new(
        RTM_NEWROUTE,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        seq,
    )
    .bytes(&rtm)
    .attr(RTA_TABLE, &table.to_ne_bytes())
    .attr(RTA_DST, &ip_bytes(network(prefix).addr));
    // IPv6 has no device-only multipath: an on-link IPv6 route goes through the first active
    // member alone (replaced like the others when the active set changes).
    if let (Some(&first), true) = (
        ifindexes.first(),
        ifindexes.len() == 1 || (prefix.addr.is_ipv6() && via.is_none()),
    ) {
        let m = m.attr(RTA_OIF, &first.to_ne_bytes());
        return match via {
            Some(v) => m.attr(RTA_GATEWAY, &ip_bytes(v)).finish(),
            None => m.finish(),
        };
    }
    let mut hops = Vec::new();
    for &ifindex in ifindexes {
        let mut gw = Vec::new();
        if let Some(v) = via {
            attr(&mut gw, RTA_GATEWAY, &ip_bytes(v));
        }
        // rtnexthop: length, flags, hops (weight - 1), ifindex, then its attributes
        hops.extend(((8 + gw.len()) as u16).to_ne_bytes());
        hops.extend([0u8, 0u8]);
        hops.extend(ifindex.to_ne_bytes());
        hops.extend(gw);
    }
    m.attr(RTA_MULTIPATH, &hops).finish()
}

/// RTM_NEWRULE "from `src` lookup `table`" at [`RULE_PRIORITY`] (fails with EEXIST when present).
#[must_use]
pub fn rule_request(seq: u32, src: IpAddr, table: u32) -> Vec<u8> {
    let host = if src.is_ipv4() { 32 } else { 128 };
    // fib_rule_hdr: family, dst_len, src_len, tos, table, res1, res2, action, flags
    let mut hdr = vec![family(src), 0, host, 0, 0, 0, 0, FR_ACT_TO_TBL];
    hdr.extend(0u32.to_ne_bytes());
    Builder::new(
        RTM_NEWRULE,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        seq,
    )
    .bytes(&hdr)
    .attr(FRA_TABLE, &table.to_ne_bytes())
    .attr(FRA_PRIORITY, &RULE_PRIORITY.to_ne_bytes())
    .attr(FRA_SRC, &ip_bytes(src))
    .finish()
}

impl RouteOps for RouteSocket {
    fn set_multipath(
        &mut self,
        table: u32,
        prefix: Prefix,
        via: Option<IpAddr>,
        ifindexes: &[u32],
    ) -> Result<(), NetlinkError> {
        let seq = self.next_seq();
        self.request(
            &multipath_request(seq, table, prefix, via, ifindexes),
            |_, _| {},
        )
    }

    fn ensure_rule(&mut self, src: IpAddr, table: u32) -> Result<(), NetlinkError> {
        let seq = self.next_seq();
        match self.request(&rule_request(seq, src, table), |_, _| {}) {
            Err(NetlinkError::Refused(libc::EEXIST)) => Ok(()),
            other => other,
        }
    }
}

/// Points a group's outbound traffic at its active members: a rule per data address and one
/// multipath route per data-address subnet in the group's table, and the group's configured
/// routes in the main table over the active members. Each route is replaced in one message. With
/// no active member nothing changes.
///
/// # Errors
/// The first refusal of the kernel.
pub fn steer(
    ops: &mut dyn RouteOps,
    table: u32,
    data_addresses: &[Prefix],
    routes: &[RouteConfig],
    active: &[u32],
) -> Result<(), NetlinkError> {
    if active.is_empty() {
        return Ok(());
    }
    let mut nets: Vec<Prefix> = Vec::new();
    for d in data_addresses {
        ops.ensure_rule(d.addr, table)?;
        let n = network(*d);
        if !nets.contains(&n) {
            nets.push(n);
        }
    }
    for n in nets {
        ops.set_multipath(table, n, None, active)?;
    }
    for r in routes {
        ops.set_multipath(RT_TABLE_MAIN, network(r.dst), r.via, active)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Fake(Vec<String>);

    impl RouteOps for Fake {
        fn set_multipath(
            &mut self,
            table: u32,
            prefix: Prefix,
            via: Option<IpAddr>,
            ifindexes: &[u32],
        ) -> Result<(), NetlinkError> {
            let gw = via.map_or_else(String::new, |v| format!(" gw {v}"));
            self.0.push(format!(
                "route {}/{} table {table}{gw} via {ifindexes:?}",
                prefix.addr, prefix.len
            ));
            Ok(())
        }
        fn ensure_rule(&mut self, src: IpAddr, table: u32) -> Result<(), NetlinkError> {
            self.0.push(format!("rule from {src} table {table}"));
            Ok(())
        }
    }

    fn p(a: [u8; 4], len: u8) -> Prefix {
        Prefix {
            addr: a.into(),
            len,
        }
    }

    #[test]
    fn one_rule_per_address_one_route_per_subnet_and_the_groups_routes() {
        let mut f = Fake::default();
        let route = RouteConfig {
            dst: p([198, 51, 100, 0], 24),
            via: Some([192, 0, 2, 1].into()),
        };
        steer(
            &mut f,
            1000,
            &[p([192, 0, 2, 100], 24), p([192, 0, 2, 101], 24)],
            &[route],
            &[3, 4],
        )
        .unwrap();
        assert_eq!(
            f.0,
            [
                "rule from 192.0.2.100 table 1000",
                "rule from 192.0.2.101 table 1000",
                "route 192.0.2.0/24 table 1000 via [3, 4]",
                "route 198.51.100.0/24 table 254 gw 192.0.2.1 via [3, 4]",
            ]
        );
        let mut f = Fake::default();
        steer(&mut f, 1000, &[p([192, 0, 2, 100], 24)], &[route], &[]).unwrap();
        assert!(f.0.is_empty(), "no active member: leave things as they are");
    }

    #[test]
    fn single_next_hops_and_ipv6_on_link_routes_use_the_first_member() {
        let m = multipath_request(1, 1000, p([192, 0, 2, 0], 24), None, &[7]);
        assert_eq!(&m[m.len() - 8..], &[8, 0, 4, 0, 7, 0, 0, 0], "RTA_OIF 7");
        let v6 = Prefix {
            addr: "2001:db8::".parse().unwrap(),
            len: 64,
        };
        let m = multipath_request(1, 1000, v6, None, &[7, 8]);
        assert_eq!(
            &m[m.len() - 8..],
            &[8, 0, 4, 0, 7, 0, 0, 0],
            "no device-only multipath in IPv6"
        );
    }

    #[test]
    fn networks() {
        assert_eq!(network(p([192, 0, 2, 100], 24)), p([192, 0, 2, 0], 24));
        assert_eq!(network(p([192, 0, 2, 100], 0)), p([0, 0, 0, 0], 0));
        let v6 = Prefix {
            addr: "2001:db8::1:5".parse().unwrap(),
            len: 64,
        };
        assert_eq!(network(v6).addr, "2001:db8::".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn messages_golden() {
        #[rustfmt::skip]
        assert_eq!(multipath_request(5, 1000, p([192, 0, 2, 100], 24), None, &[3, 4]), [
            64, 0, 0, 0,  24, 0,  0x05, 0x05,  5, 0, 0, 0,  0, 0, 0, 0, // RTM_NEWROUTE, REQ|ACK|REPLACE|CREATE
            2, 24, 0, 0, 0, 187, 253, 1,  0, 0, 0, 0,   // AF_INET /24, proto 187, scope link, unicast
            8, 0, 15, 0,  0xe8, 0x03, 0, 0,             // RTA_TABLE 1000
            8, 0, 1, 0,  192, 0, 2, 0,                  // RTA_DST 192.0.2.0
            20, 0, 9, 0,                                // RTA_MULTIPATH
              8, 0, 0, 0,  3, 0, 0, 0,                  //   dev 3
              8, 0, 0, 0,  4, 0, 0, 0,                  //   dev 4
        ]);
        #[rustfmt::skip]
        assert_eq!(rule_request(6, [192, 0, 2, 100].into(), 1000), [
            52, 0, 0, 0,  32, 0,  0x05, 0x06,  6, 0, 0, 0,  0, 0, 0, 0, // RTM_NEWRULE, REQ|ACK|EXCL|CREATE
            2, 0, 32, 0, 0, 0, 0, 1,  0, 0, 0, 0,       // AF_INET, src /32, action to table
            8, 0, 15, 0,  0xe8, 0x03, 0, 0,             // FRA_TABLE 1000
            8, 0, 6, 0,  0xe8, 0x03, 0, 0,              // FRA_PRIORITY 1000
            8, 0, 2, 0,  192, 0, 2, 100,                // FRA_SRC
        ]);
    }

    #[test]
    fn next_hops_with_a_gateway() {
        let m = multipath_request(
            1,
            254,
            p([198, 51, 100, 0], 24),
            Some([192, 0, 2, 1].into()),
            &[3, 4],
        );
        #[rustfmt::skip]
        assert_eq!(&m[m.len() - 36..], &[
            36, 0, 9, 0,                       // RTA_MULTIPATH
            16, 0, 0, 0, 3, 0, 0, 0,           //   rtnexthop dev 3, 16 bytes with its attribute
            8, 0, 5, 0, 192, 0, 2, 1,          //   RTA_GATEWAY 192.0.2.1
            16, 0, 0, 0, 4, 0, 0, 0,           //   rtnexthop dev 4
            8, 0, 5, 0, 192, 0, 2, 1,          //   RTA_GATEWAY 192.0.2.1
        ]);
        assert_eq!(m[16 + 6], 0, "scope universe for a route through a gateway");
    }
}
