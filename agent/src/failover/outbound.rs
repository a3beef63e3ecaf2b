//! Outbound traffic of a group leaves only through its active members: what the routing tables
//! must hold for that. Pure: the group and its active members in, routes and rules out.
//!
//! Each group has a routing table of its own. A policy rule sends everything sourced from a data
//! address to that table, and the table routes the data addresses' subnets over all active members
//! at once (one multipath route). Replies from a data address therefore never leave through a
//! failed member, whatever the main table's connected routes say; test addresses are not affected
//! and stay on their own interface. The group's configured routes go into the main table over the
//! active members. IPv4 routes carry a data address as their preferred source, so connections the
//! host opens without binding use an address that moves with failover (a test address, which
//! stays on its member, would die with it); IPv6 test addresses are link-local, which the kernel
//! never prefers for other destinations, and IPv6 checks a preferred source against the route's
//! own device, so IPv6 routes carry none.

use std::net::IpAddr;

use crate::{
    config::group_file::GroupConfig,
    ip::Prefix,
    netlink::{
        route::{
            NextHop, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN, RTN_UNICAST, RTPROT_IPMPD,
            Route,
        },
        rule::Rule,
    },
};

/// Priority of the rules (before the main table's 32766).
pub const RULE_PRIORITY: u32 = 1000;

/// The routes and rules a group needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outbound {
    pub routes: Vec<Route>,
    pub rules: Vec<Rule>,
}

/// The next hops of a route over `active` (interface indexes, in the group file's order). IPv6
/// has no device-only multipath: an on-link IPv6 route goes through the first active member alone.
fn hops(active: &[u32], dst: IpAddr, via: Option<IpAddr>) -> Vec<NextHop> {
    let take = if dst.is_ipv6() && via.is_none() {
        1
    } else {
        active.len()
    };
    active
        .iter()
        .take(take)
        .map(|&ifindex| NextHop {
            ifindex,
            gateway: via,
        })
        .collect()
}

/// The preferred source for routes of `family_of`'s family: the group's first IPv4 data address
/// (in `within` when given); none for IPv6.
fn prefsrc(data: &[Prefix], family_of: IpAddr, within: Option<Prefix>) -> Option<IpAddr> {
    if family_of.is_ipv6() {
        return None;
    }
    data.iter()
        .map(|d| d.addr)
        .find(|a| a.is_ipv4() && within.is_none_or(|n| n.contains(*a)))
}

/// What `group` needs with `active` members; `None` with no active member (nothing changes then:
/// nothing is gained by taking routes away).
#[must_use]
pub fn outbound(group: &GroupConfig, active: &[u32]) -> Option<Outbound> {
    if active.is_empty() {
        return None;
    }
    let mut out = Outbound::default();
    let data = &group.data_addresses;
    for d in data {
        out.rules.push(Rule::from_source(
            d.addr,
            group.table,
            RULE_PRIORITY,
            RTPROT_IPMPD,
        ));
        let net = d.network();
        if out.routes.iter().any(|r| r.dst == net) {
            continue;
        }
        out.routes.push(Route {
            table: group.table,
            dst: net,
            protocol: RTPROT_IPMPD,
            scope: RT_SCOPE_LINK,
            kind: RTN_UNICAST,
            prefsrc: prefsrc(data, net.addr, Some(net)),
            metric: None,
            hops: hops(active, net.addr, None),
        });
    }
    for r in &group.routes {
        let dst = r.dst.network();
        out.routes.push(Route {
            table: RT_TABLE_MAIN,
            dst,
            protocol: RTPROT_IPMPD,
            scope: if r.via.is_some() {
                RT_SCOPE_UNIVERSE
            } else {
                RT_SCOPE_LINK
            },
            kind: RTN_UNICAST,
            prefsrc: prefsrc(data, dst.addr, None),
            metric: None,
            hops: hops(active, dst.addr, r.via),
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::group_file::RouteConfig;

    fn p(a: &str, len: u8) -> Prefix {
        Prefix {
            addr: a.parse().unwrap(),
            len,
        }
    }

    fn group(data: &[Prefix], routes: &[RouteConfig]) -> GroupConfig {
        GroupConfig {
            name: "g".into(),
            fdt_ms: None,
            data_addresses: data.to_vec(),
            routes: routes.to_vec(),
            announcements: 3,
            announce_interval_ms: 100,
            table: 1000,
        }
    }

    #[test]
    fn one_rule_per_address_one_route_per_subnet_and_the_groups_routes_with_a_data_source() {
        let route = RouteConfig {
            dst: p("198.51.100.0", 24),
            via: Some("192.0.2.1".parse().unwrap()),
        };
        let g = group(&[p("192.0.2.100", 24), p("192.0.2.101", 24)], &[route]);
        let o = outbound(&g, &[3, 4]).unwrap();
        assert_eq!(o.rules.len(), 2);
        assert!(
            o.rules.iter().all(|r| r.table == 1000
                && r.priority == RULE_PRIORITY
                && r.protocol == RTPROT_IPMPD)
        );
        assert_eq!(o.routes.len(), 2, "{o:?}");
        let subnet = &o.routes[0];
        assert_eq!((subnet.table, subnet.dst), (1000, p("192.0.2.0", 24)));
        assert_eq!(subnet.hops.len(), 2);
        assert_eq!(subnet.prefsrc, Some("192.0.2.100".parse().unwrap()));
        let main = &o.routes[1];
        assert_eq!(
            (main.table, main.dst, main.scope),
            (RT_TABLE_MAIN, p("198.51.100.0", 24), RT_SCOPE_UNIVERSE)
        );
        assert_eq!(
            main.prefsrc,
            Some("192.0.2.100".parse().unwrap()),
            "connections follow the data address"
        );
        assert!(
            main.gateways()
                .all(|g| g == "192.0.2.1".parse::<IpAddr>().unwrap())
        );
        assert_eq!(
            outbound(&g, &[]),
            None,
            "no active member: leave things as they are"
        );
    }

    #[test]
    fn ipv6_on_link_routes_use_the_first_member_and_carry_no_source() {
        let g = group(&[p("2001:db8::100", 64)], &[]);
        let o = outbound(&g, &[7, 8]).unwrap();
        assert_eq!(
            o.routes[0].hops,
            vec![NextHop {
                ifindex: 7,
                gateway: None
            }]
        );
        assert_eq!(o.routes[0].prefsrc, None);
    }
}
