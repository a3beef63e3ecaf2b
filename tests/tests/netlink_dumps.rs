//! Everything the kernel dumps parses: the rtnetlink parsers (netlink-packet-route's types behind
//! them) read every link, address, route and rule of a namespace holding the kinds of objects
//! hosts have (IPv4 and IPv6 addresses, link-local ones, multipath routes of both families,
//! routes with metrics and an expiry, blackhole and local routes, policy rules of both families,
//! veths and a bridge). An object the parser refused would be invisible to the reconciler: a route
//! it must restore, an address it must move.

use std::thread;

use ipmpd::netlink::{RouteSocket, addr, link, route, rule};
use tests::topology::{Netns, enter_netns};

/// (messages of the wanted kind, those that parsed, the first that did not, in hex).
type Tally = (usize, usize, Option<String>);

fn tally(
    socket: &mut RouteSocket,
    request: &[u8],
    wanted: u16,
    parses: impl Fn(&[u8]) -> bool,
) -> Tally {
    let mut t: Tally = (0, 0, None);
    socket
        .request(request, |kind, body| {
            if kind != wanted {
                return;
            }
            t.0 += 1;
            if parses(body) {
                t.1 += 1;
            } else if t.2.is_none() {
                t.2 = Some(body.iter().map(|b| format!("{b:02x}")).collect());
            }
        })
        .expect("dump");
    t
}

#[test]
fn every_link_address_route_and_rule_a_namespace_holds_parses() {
    if !tests::privileged() {
        return;
    }
    let ns = Netns::new("nldump");
    ns.sh(
        "ip link set lo up && \
         ip link add a0 type veth peer name a1 && ip link set a0 up && ip link set a1 up && \
         ip link add br0 type bridge && ip link set br0 up && \
         ip addr add 192.0.2.10/24 dev a0 && ip addr add 198.51.100.10/24 dev a1 && \
         ip addr add 203.0.113.10/24 dev br0 && \
         ip -6 addr add 2001:db8::10/64 dev a0 nodad && ip -6 addr add 2001:db8:1::10/64 dev a1 nodad && \
         ip route add 203.0.113.128/25 nexthop via 192.0.2.1 dev a0 nexthop via 198.51.100.1 dev a1 && \
         ip route add 192.0.2.128/25 via 192.0.2.1 mtu 1400 metric 7 proto 233 table 1000 && \
         ip route add blackhole 198.51.100.128/25 && \
         ip -6 route add 2001:db8:2::/64 nexthop via 2001:db8::1 dev a0 nexthop via 2001:db8:1::1 dev a1 && \
         ip -6 route add 2001:db8:3::/64 via 2001:db8::1 expires 600 && \
         ip -6 route add 2001:db8:4::/64 via 2001:db8::1 mtu 1280 pref high && \
         ip rule add from 192.0.2.10 table 1000 priority 1000 protocol 233 && \
         ip rule add fwmark 7 table 1001 priority 1001 && \
         ip -6 rule add from 2001:db8::10 table 1000 priority 1000 protocol 233",
    );
    let path = ns.path();
    let tallies = thread::spawn(move || {
        // setns moves only this thread; a socket belongs to the namespace it was made in.
        enter_netns(&path);
        let mut s = RouteSocket::for_dumps().expect("socket");
        let (inet, inet6) = (libc::AF_INET as u8, libc::AF_INET6 as u8);
        vec![
            (
                "links (poll)",
                tally(&mut s, &link::dump_request(1), link::RTM_NEWLINK, |b| {
                    link::parse_link(b, false).is_some()
                }),
            ),
            (
                "links",
                tally(&mut s, &link::dump_request(2), link::RTM_NEWLINK, |b| {
                    link::parse_link_info(b).is_some()
                }),
            ),
            (
                "addresses",
                tally(&mut s, &addr::dump_request(3), addr::RTM_NEWADDR, |b| {
                    addr::parse_addr(b).is_some()
                }),
            ),
            (
                "IPv4 routes",
                tally(
                    &mut s,
                    &route::dump_request(4, inet),
                    route::RTM_NEWROUTE,
                    |b| route::parse_route(b).is_some(),
                ),
            ),
            (
                "IPv6 routes",
                tally(
                    &mut s,
                    &route::dump_request(5, inet6),
                    route::RTM_NEWROUTE,
                    |b| route::parse_route(b).is_some(),
                ),
            ),
            (
                "IPv4 rules",
                tally(
                    &mut s,
                    &rule::dump_request(6, inet),
                    rule::RTM_NEWRULE,
                    |b| rule::parse_rule(b).is_some(),
                ),
            ),
            (
                "IPv6 rules",
                tally(
                    &mut s,
                    &rule::dump_request(7, inet6),
                    rule::RTM_NEWRULE,
                    |b| rule::parse_rule(b).is_some(),
                ),
            ),
        ]
    })
    .join()
    .expect("the dumping thread");
    for (what, (seen, parsed, first_refused)) in &tallies {
        println!("{what}: {parsed} of {seen} parsed");
        assert!(*seen > 0, "the namespace has {what}");
        assert_eq!(
            parsed,
            seen,
            "{what}: {} not parsed; the first: {}",
            seen - parsed,
            first_refused.as_deref().unwrap_or("")
        );
    }
}

/// One interface asked for alone (the link watcher's way for a newly tracked member) says what
/// the dump says of it, carrier counters included; an index that is gone is said to be gone.
#[test]
fn one_link_asked_for_alone_matches_the_dump_and_a_gone_one_is_named_gone() {
    if !tests::privileged() {
        return;
    }
    let ns = Netns::new("nlget");
    // a0 is up, its peer down: up without carrier.
    ns.sh("ip link add a0 type veth peer name a1 && ip link set a0 up");
    let ifindex = ns.ifindex("a0");
    let path = ns.path();
    let (alone, dumped, gone) = thread::spawn(move || {
        enter_netns(&path);
        let mut s = RouteSocket::for_dumps().expect("socket");
        let mut alone = Vec::new();
        s.get_link(ifindex, |obs| alone.push(obs))
            .expect("a0 asked for");
        let mut dumped = None;
        s.dump_links(|obs| {
            if obs.ifindex == ifindex {
                dumped = Some(obs);
            }
        })
        .expect("dump");
        let gone = s.get_link(ifindex + 1000, |_| {});
        (alone, dumped, gone)
    })
    .join()
    .expect("the asking thread");
    assert_eq!(alone.len(), 1, "one answer: {alone:?}");
    let a0 = alone[0];
    assert_eq!(Some(a0), dumped, "the same as the dump says");
    assert_eq!(a0.ifindex, ifindex);
    assert!(a0.flags & link::IFF_UP != 0 && !a0.carrier(), "{a0:?}");
    assert!(a0.carrier_changes.is_some(), "carrier counters: {a0:?}");
    let err = gone.expect_err("no interface has that index");
    assert!(err.device_gone(), "{err}");
}
