//! The reconciler against a simulated host: a real engine, an observed state the actions change as
//! the kernel would, and the host changing underneath (interfaces appearing late, re-created,
//! renamed; addresses coming and going; other programs removing routes).

use std::net::IpAddr;

use super::*;
use crate::{
    config::{Config, group_file, mpathd_defaults::MpathdDefaults},
    engine::{Engine, EngineConfig, Output},
    ip::Prefix,
    netlink::{
        addr::Addr,
        link::{IFF_LOWER_UP, IFF_MULTICAST, IFF_UP, LinkInfo},
        route::{NextHop, RT_SCOPE_UNIVERSE, RTN_UNICAST, RTPROT_IPMPD, Route},
        update::Update,
    },
};

const S: u64 = 1_000_000_000;

const GROUP: &str = r#"
[group.g]
fdt_ms = 1000
data_addresses = ["192.0.2.100/24"]
routes = ["198.51.100.0/24 via 192.0.2.1"]
table = 1000

[interface.h0]
group = "g"
test_addresses = ["192.0.2.10"]

[interface.h1]
group = "g"
test_addresses = ["192.0.2.11"]
"#;

fn config(text: &str, track_all: bool) -> Desired {
    let (groups, problems) = group_file::parse(text);
    assert!(problems.iter().all(|p| p.warning), "{problems:?}");
    let cfg = Config {
        defaults: MpathdDefaults {
            track_interfaces_only_with_groups: !track_all,
            ..MpathdDefaults::default()
        },
        groups,
        problems: vec![],
    };
    Desired::from_config(&cfg).0
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn p(s: &str, len: u8) -> Prefix {
    Prefix { addr: ip(s), len }
}

/// A host, an engine, and the daemon's records, changed only by actions and by the test.
struct World {
    desired: Desired,
    observed: Observed,
    applied: Applied,
    mem: Memory,
    engine: Engine,
    now: u64,
    pins: Vec<u32>,
    reports: Vec<(String, serde_json::Value)>,
    log: Vec<String>,
}

impl World {
    fn new(desired: Desired) -> Self {
        Self {
            engine: Engine::new(EngineConfig {
                user_fdt_ns: desired.fdt_ms * 1_000_000,
                failback: true,
                seed: 1,
            }),
            desired,
            observed: Observed::default(),
            applied: Applied::default(),
            mem: Memory::default(),
            now: 1_000 * S,
            pins: vec![],
            reports: vec![],
            log: vec![],
        }
    }

    fn link(&mut self, ifindex: u32, name: &str) {
        self.observed.apply(Update::Link {
            link: LinkInfo {
                ifindex,
                name: name.into(),
                flags: IFF_UP | IFF_LOWER_UP | IFF_MULTICAST,
                hwaddr: Some([2, 0, 0, 0, 0, ifindex as u8]),
                xdp: None,
                kind: Some("veth".into()),
            },
            deleted: false,
        });
    }

    fn unlink(&mut self, ifindex: u32) {
        let link = self.observed.links[&ifindex].clone();
        self.observed.apply(Update::Link {
            link,
            deleted: true,
        });
    }

    fn addr(&mut self, ifindex: u32, a: &str, len: u8, add: bool) {
        self.observed.apply(Update::Addr {
            addr: Addr {
                ifindex,
                prefix: p(a, len),
                flags: 0,
            },
            deleted: !add,
        });
    }

    /// The standard host: h0 (3) and h1 (4) with their test addresses, a default route.
    fn standard(&mut self) {
        self.link(3, "h0");
        self.link(4, "h1");
        self.addr(3, "192.0.2.10", 24, true);
        self.addr(4, "192.0.2.11", 24, true);
        self.observed.apply(Update::Route {
            route: Route {
                table: 254,
                dst: p("0.0.0.0", 0),
                protocol: 3,
                scope: RT_SCOPE_UNIVERSE,
                kind: RTN_UNICAST,
                prefsrc: None,
                metric: None,
                hops: vec![NextHop {
                    ifindex: 3,
                    gateway: Some(ip("192.0.2.1")),
                }],
            },
            deleted: false,
        });
    }

    fn absorb(&mut self, out: Vec<Output>) {
        for o in out {
            if let Output::SetActive { ifname, active } = o {
                self.log.push(format!("{ifname} active={active}"));
            }
        }
    }

    /// One pass, carried out the way the kernel and the daemon would; the actions it took.
    fn pass(&mut self) -> Vec<Action> {
        let views = self.engine.interfaces();
        let plan = reconcile(
            &Input {
                desired: &self.desired,
                observed: &self.observed,
                applied: &self.applied,
                engine: &views,
                stray_pins: &self.pins,
            },
            &mut self.mem,
            self.now,
        );
        for a in &plan.actions {
            self.carry_out(a);
            self.applied.record(a);
        }
        plan.actions
    }

    /// Passes until nothing is left to do (at most 5); every action taken.
    fn settle(&mut self) -> Vec<Action> {
        let mut all = Vec::new();
        for _ in 0..5 {
            let done = self.pass();
            if done.iter().all(|a| matches!(a, Action::Report { .. })) {
                all.extend(done);
                return all;
            }
            all.extend(done);
        }
        panic!("no convergence: {all:#?}");
    }

    fn carry_out(&mut self, a: &Action) {
        let now = self.now;
        match a {
            Action::Track {
                spec,
                link_up,
                hwaddr,
                ..
            } => {
                let out = self.engine.add_member(spec, *link_up, now);
                self.absorb(out);
                let out = self.engine.set_hwaddr(&spec.ifname, *hwaddr, now);
                self.absorb(out);
            }
            Action::Untrack { ifname, .. } => {
                let out = self.engine.remove_member(ifname, now);
                self.absorb(out);
            }
            Action::SetProbes {
                ifname,
                test_addrs,
                targets,
                ..
            } => {
                let out = self.engine.set_test_addrs(ifname, test_addrs, targets, now);
                self.absorb(out);
            }
            Action::SetRouterTargets {
                ifname,
                v4,
                targets,
            } => {
                let out = self.engine.set_router_targets(ifname, *v4, targets, now);
                self.absorb(out);
            }
            Action::SetHwaddr { ifname, hwaddr } => {
                let out = self.engine.set_hwaddr(ifname, *hwaddr, now);
                self.absorb(out);
            }
            Action::Detach { ifindex } => self.pins.retain(|i| i != ifindex),
            Action::Place { addr, from, to, .. } => {
                self.observed.addrs.insert((to.1, *addr), 0);
                if let Some((_, f)) = from {
                    self.observed.addrs.remove(&(*f, *addr));
                }
            }
            Action::DelAddress { addr, ifindex, .. } => {
                self.observed.addrs.remove(&(*ifindex, *addr));
            }
            Action::Forget { .. } => {}
            Action::SetRoute { route, .. } => {
                self.observed.apply(Update::Route {
                    route: route.clone(),
                    deleted: false,
                });
            }
            Action::DelRoute { route } => {
                self.observed.apply(Update::Route {
                    route: route.clone(),
                    deleted: true,
                });
            }
            Action::AddRule { rule, .. } => {
                self.observed.rules.insert(*rule);
            }
            Action::DelRule { rule } => {
                self.observed.rules.remove(rule);
            }
            Action::Report { event, params } => {
                self.reports.push(((*event).to_owned(), params.clone()));
            }
        }
    }

    fn holder(&self, a: Prefix) -> Vec<u32> {
        self.observed.holders(a).collect()
    }

    fn reported(&self, event: &str) -> usize {
        self.reports.iter().filter(|(e, _)| e == event).count()
    }
}

fn tracks(actions: &[Action]) -> Vec<(String, u32)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Track { spec, ifindex, .. } => Some((spec.ifname.clone(), *ifindex)),
            _ => None,
        })
        .collect()
}

#[test]
fn start_up_tracks_probes_places_and_routes_then_converges() {
    let mut w = World::new(config(GROUP, false));
    w.standard();
    let done = w.settle();
    assert_eq!(tracks(&done), [("h0".into(), 3), ("h1".into(), 4)]);
    let kinds: Vec<_> = done
        .iter()
        .filter_map(|a| match a {
            Action::Track { kind, .. } => Some(kind.as_deref()),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [Some("veth"), Some("veth")],
        "the kind the link dump gave, which chooses the reply hook"
    );
    assert!(done.contains(&Action::SetRouterTargets {
        ifname: "h0".into(),
        v4: true,
        targets: vec![ip("192.0.2.1")]
    }));
    assert_eq!(
        w.holder(p("192.0.2.100", 24)),
        [3],
        "on the first active member"
    );
    let main = w
        .observed
        .own_routes()
        .find(|r| r.table == 254)
        .expect("the group's route");
    assert_eq!(main.hops.len(), 2, "over both members");
    assert_eq!(
        main.prefsrc,
        Some(ip("192.0.2.100")),
        "from the data address"
    );
    assert_eq!(w.observed.own_rules().count(), 1);
    assert!(w.pass().is_empty(), "nothing left to do");
}

#[test]
fn an_interface_that_appears_late_is_tracked_and_reported_once_while_waited_for() {
    let mut w = World::new(config(GROUP, false));
    w.link(3, "h0");
    w.addr(3, "192.0.2.10", 24, true);
    let done = w.settle();
    assert_eq!(tracks(&done), [("h0".into(), 3)]);
    assert_eq!(w.reported("ipmultipath.setup.waiting"), 1);
    w.now += S;
    assert!(w.pass().is_empty(), "waiting is said once");
    w.link(4, "h1");
    w.addr(4, "192.0.2.11", 24, true);
    let done = w.settle();
    assert_eq!(tracks(&done), [("h1".into(), 4)]);
    let main = w.observed.own_routes().find(|r| r.table == 254).unwrap();
    assert_eq!(main.hops.len(), 2, "the route grew to the new member");
}

#[test]
fn a_recreated_interface_is_tracked_again_under_its_new_index_and_a_renamed_one_is_let_go() {
    let mut w = World::new(config(GROUP, false));
    w.standard();
    w.settle();
    // h1 deleted: its programs come off, the engine forgets it, h0 keeps the data.
    w.unlink(4);
    let done = w.settle();
    assert!(done.iter().any(|a| matches!(a, Action::Untrack { ifname, ifindex: 4, datapath: true, .. } if ifname == "h1")));
    assert!(w.engine.interface("h1").is_none());
    // Created again with a new index.
    w.link(9, "h1");
    w.addr(9, "192.0.2.11", 24, true);
    let done = w.settle();
    assert_eq!(tracks(&done), [("h1".into(), 9)]);
    // h0 renamed: the name is gone, so is the member; the data address moves to h1.
    let mut l = w.observed.links[&3].clone();
    l.name = "uplink0".into();
    w.observed.apply(Update::Link {
        link: l,
        deleted: false,
    });
    let done = w.settle();
    assert!(
        done.iter()
            .any(|a| matches!(a, Action::Untrack { ifindex: 3, .. }))
    );
    assert_eq!(w.holder(p("192.0.2.100", 24)), [9]);
}

#[test]
fn test_addresses_are_followed_with_in_mpathds_grace_period_and_never_borrowed() {
    let mut w = World::new(config(GROUP, false));
    w.link(3, "h0");
    w.link(4, "h1");
    w.addr(4, "192.0.2.11", 24, true);
    // h0's test address is not on the host (yet): never used, not even half a probe.
    let done = w.settle();
    let h0 = done.iter().find_map(|a| match a {
        Action::Track { spec, .. } if spec.ifname == "h0" => Some(spec.test_addrs.clone()),
        _ => None,
    });
    assert_eq!(
        h0,
        Some(vec![]),
        "a test address the host does not own is never used"
    );
    assert_eq!(
        w.reported("ipmultipath.testaddr.missing"),
        0,
        "within the grace period"
    );
    w.now += 19 * S;
    w.pass();
    assert_eq!(w.reported("ipmultipath.testaddr.missing"), 0);
    w.now += 2 * S;
    w.pass();
    assert_eq!(w.reported("ipmultipath.testaddr.missing"), 1, "after 20 s");
    w.now += 20 * S;
    w.pass();
    assert_eq!(w.reported("ipmultipath.testaddr.missing"), 1, "once");
    // On the wrong interface it does not count either.
    w.addr(4, "192.0.2.10", 24, true);
    assert!(
        w.pass()
            .iter()
            .all(|a| !matches!(a, Action::SetProbes { .. }))
    );
    w.addr(4, "192.0.2.10", 24, false);
    // DHCP (or an administrator) adds it: probing starts, the recovery is said.
    w.addr(3, "192.0.2.10", 24, true);
    let done = w.settle();
    assert!(done.iter().any(|a| matches!(a, Action::SetProbes { ifname, open, .. } if ifname == "h0" && open == &vec![ip("192.0.2.10")])));
    assert_eq!(w.reported("ipmultipath.testaddr.recovered"), 1);
    assert!(w.engine.probe_enabled("h0"));
    // And removed again: probing stops.
    w.addr(3, "192.0.2.10", 24, false);
    let done = w.settle();
    assert!(done.iter().any(|a| matches!(a, Action::SetProbes { ifname, close, .. } if ifname == "h0" && close == &vec![ip("192.0.2.10")])));
    assert!(!w.engine.probe_enabled("h0"));
}

#[test]
fn without_a_group_file_the_anonymous_group_takes_every_eligible_link() {
    let mut w = World::new(config("", true));
    w.link(3, "eth0");
    w.link(4, "eth1");
    let done = w.settle();
    assert_eq!(tracks(&done), [("eth0".into(), 3), ("eth1".into(), 4)]);
    assert!(w.engine.interface("eth0").unwrap().active);
    w.link(5, "eth2");
    assert_eq!(
        tracks(&w.settle()),
        [("eth2".into(), 5)],
        "and links that come later"
    );
}

#[test]
fn what_another_program_removes_is_restored_and_said() {
    let mut w = World::new(config(GROUP, false));
    w.standard();
    w.settle();
    let route = w
        .observed
        .own_routes()
        .find(|r| r.table == 254)
        .unwrap()
        .clone();
    let rule = *w.observed.own_rules().next().unwrap();
    w.observed.apply(Update::Route {
        route: route.clone(),
        deleted: true,
    });
    w.observed.rules.remove(&rule);
    w.addr(3, "192.0.2.100", 24, false);
    let done = w.settle();
    assert!(done.contains(&Action::SetRoute {
        route,
        restored: true
    }));
    assert!(done.contains(&Action::AddRule {
        rule,
        restored: true
    }));
    assert!(done.iter().any(|a| matches!(
        a,
        Action::Place {
            cause: "restored",
            ..
        }
    )));
    assert_eq!(w.holder(p("192.0.2.100", 24)).len(), 1);
    assert!(w.pass().is_empty());
}

#[test]
fn leftovers_of_an_earlier_configuration_are_removed_and_foreign_routes_left_alone() {
    let mut w = World::new(config(GROUP, false));
    w.standard();
    w.settle();
    // The new configuration drops the group's route and data address.
    w.desired = config(
        "[group.g]\nfdt_ms = 1000\ntable = 1000\n[interface.h0]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.10\"]\n[interface.h1]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.11\"]\n",
        false,
    );
    let mut foreign = w.observed.own_routes().next().unwrap().clone();
    foreign.protocol = 4;
    foreign.dst = p("203.0.113.0", 24);
    w.observed.apply(Update::Route {
        route: foreign.clone(),
        deleted: false,
    });
    let done = w.settle();
    assert_eq!(w.observed.own_routes().count(), 0, "{done:#?}");
    assert_eq!(w.observed.own_rules().count(), 0);
    assert!(w.holder(p("192.0.2.100", 24)).is_empty());
    assert!(w.applied.placed.is_empty());
    assert!(w.reported("ipmultipath.host.stale") >= 1);
    assert!(
        w.observed.routes.values().any(|r| *r == foreign),
        "not ipmpd's: left alone"
    );
}

#[test]
fn multipath_routes_yield_router_targets() {
    let mut w = World::new(config(
        "[group.g]\n[interface.h0]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.10\"]\n",
        false,
    ));
    w.link(3, "h0");
    w.addr(3, "192.0.2.10", 24, true);
    w.observed.apply(Update::Route {
        route: Route {
            table: 254,
            dst: p("0.0.0.0", 0),
            protocol: 4,
            scope: RT_SCOPE_UNIVERSE,
            kind: RTN_UNICAST,
            prefsrc: None,
            metric: None,
            hops: vec![
                NextHop {
                    ifindex: 3,
                    gateway: Some(ip("192.0.2.1")),
                },
                NextHop {
                    ifindex: 3,
                    gateway: Some(ip("192.0.2.2")),
                },
            ],
        },
        deleted: false,
    });
    let done = w.settle();
    assert!(done.contains(&Action::SetRouterTargets {
        ifname: "h0".into(),
        v4: true,
        targets: vec![ip("192.0.2.1"), ip("192.0.2.2")]
    }));
}

#[test]
fn members_not_plumbed_alike_are_reported_once_and_the_fix_is_said() {
    let mut w = World::new(config(GROUP, false));
    w.standard();
    w.addr(3, "fe80::10", 64, true);
    w.settle();
    assert_eq!(
        w.reported("ipmultipath.group.notPlumbed"),
        1,
        "h1 lacks IPv6"
    );
    w.now += IF_SCAN_INTERVAL_NS;
    w.pass();
    assert_eq!(w.reported("ipmultipath.group.notPlumbed"), 1, "once");
    w.addr(4, "fe80::11", 64, true);
    w.pass();
    assert_eq!(w.reported("ipmultipath.group.plumbed"), 1);
}

#[test]
fn a_reload_that_drops_a_member_untracks_it_and_stray_pins_are_detached() {
    let mut w = World::new(config(GROUP, false));
    w.standard();
    w.pins = vec![3, 7];
    w.settle();
    assert_eq!(
        w.pins,
        [3],
        "a previous process's pins on a non-member go; h0's are adopted"
    );
    w.desired = config(
        "[group.g]\ntable = 1000\ndata_addresses = [\"192.0.2.100/24\"]\n[interface.h1]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.11\"]\n",
        false,
    );
    let done = w.settle();
    assert!(done.iter().any(|a| matches!(a, Action::Untrack { ifname, reason: "the configuration no longer names it", .. } if ifname == "h0")));
    assert_eq!(
        w.holder(p("192.0.2.100", 24)),
        [4],
        "the data address follows"
    );
}

#[test]
fn a_failed_member_gets_no_data_and_its_addresses_move() {
    let mut w = World::new(config(GROUP, false));
    w.standard();
    w.settle();
    assert_eq!(w.holder(p("192.0.2.100", 24)), [3]);
    let out = w.engine.link_changed("h0", false, w.now);
    w.absorb(out);
    let done = w.settle();
    assert!(
        done.iter()
            .any(|a| matches!(a, Action::Place { cause: "failure", to, .. } if to.1 == 4))
    );
    assert_eq!(w.holder(p("192.0.2.100", 24)), [4]);
    let main = w.observed.own_routes().find(|r| r.table == 254).unwrap();
    assert_eq!(main.hops.len(), 1, "outbound over h1 only");
    assert_eq!(main.hops[0].ifindex, 4);
    assert_eq!(main.protocol, RTPROT_IPMPD);
}
