//! The host as rtnetlink shows it: links, addresses, routes and rules, kept current from
//! notifications and replaced wholesale by a resync (dumps) after an overrun or on the periodic
//! rescan. Pure: updates in, state out.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr},
};

use crate::{
    ip::Prefix,
    netlink::{
        addr::Addr,
        link::{IFF_LOOPBACK, IFF_LOWER_UP, IFF_MULTICAST, IFF_POINTOPOINT, IFF_UP, LinkInfo},
        route::{RTPROT_IPMPD, Route},
        rule::Rule,
        update::Update,
    },
};

/// Everything the reconciler looks at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// By interface index.
    pub links: BTreeMap<u32, LinkInfo>,
    /// By (interface index, address): flags.
    pub addrs: BTreeMap<(u32, Prefix), u32>,
    /// By [`route_key`]: the kernel's identity of a route.
    pub routes: BTreeMap<(u32, Prefix, u32), Route>,
    pub rules: BTreeSet<Rule>,
}

impl Observed {
    /// A full picture from dumps.
    #[must_use]
    pub fn from_dumps(
        links: Vec<LinkInfo>,
        addrs: Vec<Addr>,
        routes: Vec<Route>,
        rules: Vec<Rule>,
    ) -> Self {
        let mut o = Self::default();
        for l in links {
            o.links.insert(l.ifindex, l);
        }
        for a in addrs {
            o.addrs.insert((a.ifindex, a.prefix), a.flags);
        }
        for r in routes {
            o.routes.insert(route_key(&r), r);
        }
        o.rules.extend(rules);
        o
    }

    /// Folds in one notification; whether anything changed.
    pub fn apply(&mut self, u: Update) -> bool {
        match u {
            Update::Link {
                link,
                deleted: false,
            } => self.links.insert(link.ifindex, link.clone()) != Some(link),
            Update::Link {
                link,
                deleted: true,
            } => {
                let i = link.ifindex;
                // The kernel flushes IPv4 routes through a vanished device without a notification.
                self.addrs.retain(|(j, _), _| *j != i);
                self.routes
                    .retain(|_, r| !r.hops.iter().any(|h| h.ifindex == i));
                self.links.remove(&i).is_some()
            }
            Update::Addr {
                addr,
                deleted: false,
            } => self.addrs.insert((addr.ifindex, addr.prefix), addr.flags) != Some(addr.flags),
            Update::Addr {
                addr,
                deleted: true,
            } => self.addrs.remove(&(addr.ifindex, addr.prefix)).is_some(),
            Update::Route {
                route,
                deleted: false,
            } => self.routes.insert(route_key(&route), route.clone()) != Some(route),
            Update::Route {
                route,
                deleted: true,
            } => self.routes.remove(&route_key(&route)).is_some(),
            Update::Rule {
                rule,
                deleted: false,
            } => self.rules.insert(rule),
            Update::Rule {
                rule,
                deleted: true,
            } => self.rules.remove(&rule),
        }
    }

    /// The link named `name`.
    #[must_use]
    pub fn link_by_name(&self, name: &str) -> Option<&LinkInfo> {
        self.links.values().find(|l| l.name == name)
    }

    /// The addresses on `ifindex` with their flags: a range of the map, so a lookup costs the
    /// interface's own addresses, not every address of the host.
    fn addrs_of(&self, ifindex: u32) -> impl Iterator<Item = (Prefix, u32)> + '_ {
        let lowest = Prefix {
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            len: 0,
        };
        self.addrs
            .range((ifindex, lowest)..)
            .take_while(move |((i, _), _)| *i == ifindex)
            .map(|((_, p), flags)| (*p, *flags))
    }

    /// The usable addresses on `ifindex` (not tentative, no DAD failure).
    fn usable_addrs_of(&self, ifindex: u32) -> impl Iterator<Item = Prefix> + '_ {
        self.addrs_of(ifindex)
            .filter(move |&(prefix, flags)| {
                Addr {
                    ifindex,
                    prefix,
                    flags,
                }
                .usable()
            })
            .map(|(p, _)| p)
    }

    /// Whether `addr` is configured on `ifindex` and usable (not tentative, no DAD failure).
    #[must_use]
    pub fn owns(&self, ifindex: u32, addr: IpAddr) -> bool {
        self.usable_addrs_of(ifindex).any(|p| p.addr == addr)
    }

    /// The prefix `addr` is configured with on `ifindex`.
    #[must_use]
    pub fn prefix_of(&self, ifindex: u32, addr: IpAddr) -> Option<Prefix> {
        self.addrs_of(ifindex)
            .map(|(p, _)| p)
            .find(|p| p.addr == addr)
    }

    /// The interfaces `prefix` (address and length) is configured on.
    pub fn holders(&self, prefix: Prefix) -> impl Iterator<Item = u32> + '_ {
        self.addrs
            .keys()
            .filter(move |(_, p)| *p == prefix)
            .map(|(i, _)| *i)
    }

    /// Whether `ifindex` has a usable address of `v4`'s family (IPv6: any, link-local included).
    #[must_use]
    pub fn has_family(&self, ifindex: u32, v4: bool) -> bool {
        self.usable_addrs_of(ifindex)
            .any(|p| p.addr.is_ipv4() == v4)
    }

    /// Routes ipmpd made (its protocol number).
    pub fn own_routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.values().filter(|r| r.protocol == RTPROT_IPMPD)
    }

    /// Rules ipmpd made.
    pub fn own_rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(|r| r.protocol == RTPROT_IPMPD)
    }

    /// Whether the link has carrier as rtnetlink last said (the link watcher knows better and
    /// sooner; this is for a member's first moment).
    #[must_use]
    pub fn carrier(&self, ifindex: u32) -> bool {
        self.links
            .get(&ifindex)
            .is_some_and(|l| l.flags & IFF_UP != 0 && l.flags & IFF_LOWER_UP != 0)
    }
}

/// A route's identity in the kernel: table, destination and metric, with the metric the kernel
/// gives a route that names none (0 for IPv4, which then reports none; 1024 for IPv6).
#[must_use]
pub fn route_key(r: &Route) -> (u32, Prefix, u32) {
    let default = if r.dst.addr.is_ipv4() { 0 } else { 1024 };
    (r.table, r.dst, r.metric.unwrap_or(default))
}

/// Whether `l` may join the anonymous group (`TRACK_INTERFACES_ONLY_WITH_GROUPS=no`): a
/// multicast-capable link that is neither loopback nor point-to-point, as in.mpathd requires.
#[must_use]
pub fn anonymous_eligible(l: &LinkInfo) -> bool {
    l.flags & IFF_MULTICAST != 0 && l.flags & (IFF_LOOPBACK | IFF_POINTOPOINT) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::route::{NextHop, RT_SCOPE_LINK, RTN_UNICAST};

    fn link(ifindex: u32, name: &str) -> LinkInfo {
        LinkInfo {
            ifindex,
            name: name.into(),
            flags: IFF_UP | IFF_LOWER_UP | IFF_MULTICAST,
            hwaddr: None,
            xdp: None,
            kind: None,
        }
    }

    fn addr(ifindex: u32, a: &str, len: u8) -> Addr {
        Addr {
            ifindex,
            prefix: Prefix {
                addr: a.parse().unwrap(),
                len,
            },
            flags: 0,
        }
    }

    #[test]
    fn notifications_keep_it_current_and_a_deleted_link_takes_its_addresses_and_routes() {
        let mut o = Observed::default();
        assert!(o.apply(Update::Link {
            link: link(3, "h0"),
            deleted: false
        }));
        assert!(
            !o.apply(Update::Link {
                link: link(3, "h0"),
                deleted: false
            }),
            "no news"
        );
        assert!(o.apply(Update::Addr {
            addr: addr(3, "192.0.2.10", 24),
            deleted: false
        }));
        assert!(o.owns(3, "192.0.2.10".parse().unwrap()));
        assert!(
            !o.owns(4, "192.0.2.10".parse().unwrap()),
            "on that interface only"
        );
        let r = Route {
            table: 254,
            dst: Prefix {
                addr: "198.51.100.0".parse().unwrap(),
                len: 24,
            },
            protocol: RTPROT_IPMPD,
            scope: RT_SCOPE_LINK,
            kind: RTN_UNICAST,
            prefsrc: None,
            metric: None,
            hops: vec![NextHop {
                ifindex: 3,
                gateway: None,
            }],
        };
        o.apply(Update::Route {
            route: r.clone(),
            deleted: false,
        });
        assert_eq!(o.own_routes().count(), 1);
        // Renamed in place: same index, new name.
        o.apply(Update::Link {
            link: link(3, "uplink0"),
            deleted: false,
        });
        assert!(o.link_by_name("h0").is_none());
        assert_eq!(o.link_by_name("uplink0").unwrap().ifindex, 3);
        o.apply(Update::Link {
            link: link(3, "uplink0"),
            deleted: true,
        });
        assert!(o.links.is_empty() && o.addrs.is_empty() && o.routes.is_empty());
    }

    #[test]
    fn a_tentative_address_is_not_owned_yet() {
        let mut o = Observed::default();
        let mut a = addr(3, "fe80::10", 64);
        a.flags = crate::netlink::addr::IFA_F_TENTATIVE;
        o.apply(Update::Addr {
            addr: a,
            deleted: false,
        });
        assert!(!o.owns(3, "fe80::10".parse().unwrap()));
        a.flags = 0;
        assert!(
            o.apply(Update::Addr {
                addr: a,
                deleted: false
            }),
            "DAD finished"
        );
        assert!(o.owns(3, "fe80::10".parse().unwrap()));
    }
}
