//! Which interfaces are tracked, under which index, probing from which test addresses towards
//! which router targets; in.mpathd's configuration complaints (no test address after the grace
//! period, members not plumbed alike) with their recoveries.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
};

use serde_json::json;

use super::{
    Action, Input, Plan, TESTADDR_CONF_TIME_NS,
    applied::{Complaint, Memory},
    index::Index,
    observed::Observed,
};
use crate::{
    config::group_file::InterfaceConfig,
    engine::{MemberSpec, constants::MAX_PROBE_TARGETS},
    ip::{host_len, is_link_local, same_subnet},
    netlink::route::RT_TABLE_MAIN,
};

/// The kernel's local table: its routes have no next hops to probe.
const RT_TABLE_LOCAL: u32 = 255;

/// A member being tracked after this pass.
struct Tracked<'a> {
    ic: &'a InterfaceConfig,
    ifindex: u32,
    usable: Vec<IpAddr>,
    /// Tracked anew by this pass (nothing applied yet).
    fresh: bool,
}

pub(super) fn reconcile(
    inp: &Input<'_>,
    index: &Index<'_>,
    mem: &mut Memory,
    now: u64,
    plan: &mut Plan,
) {
    let wanted = inp.desired.members(inp.observed);
    let wanted_names: HashSet<&str> = wanted.iter().map(|w| w.name.as_str()).collect();
    let out = &mut plan.actions;
    for (name, m) in &inp.applied.members {
        if !wanted_names.contains(name.as_str()) {
            out.push(Action::Untrack {
                ifname: name.clone(),
                ifindex: m.ifindex,
                datapath: m.datapath,
                reason: "the configuration no longer names it",
            });
        }
    }
    let mut tracked = Vec::new();
    for ic in &wanted {
        let ic: &InterfaceConfig = ic;
        let Some(link) = index.link(&ic.name) else {
            if let Some(m) = inp.applied.members.get(&ic.name) {
                out.push(Action::Untrack {
                    ifname: ic.name.clone(),
                    ifindex: m.ifindex,
                    datapath: m.datapath,
                    reason: "the interface is gone (deleted or renamed)",
                });
            }
            if mem.complaints.insert(Complaint::Waiting(ic.name.clone())) {
                out.push(Action::Report {
                    event: "ipmultipath.setup.waiting",
                    params: json!({ "ifname": ic.name, "group": ic.group }),
                });
            }
            continue;
        };
        if !mem.complaints.is_empty() {
            mem.complaints.remove(&Complaint::Waiting(ic.name.clone()));
        }
        let usable: Vec<IpAddr> = ic
            .test_addresses
            .iter()
            .copied()
            .filter(|&a| inp.observed.owns(link.ifindex, a))
            .collect();
        let datapath = !ic.test_addresses.is_empty();
        // Built only when pushed: most passes track nothing new.
        let track = || Action::Track {
            spec: MemberSpec {
                ifname: ic.name.clone(),
                group: ic.group.clone(),
                standby: ic.standby,
                test_addrs: usable.clone(),
                targets: ic.targets.clone(),
            },
            ifindex: link.ifindex,
            hwaddr: link.hwaddr,
            kind: link.kind.clone(),
            link_up: inp.observed.carrier(link.ifindex),
            datapath,
        };
        let fresh = match inp.applied.members.get(&ic.name) {
            Some(m)
                if m.ifindex == link.ifindex
                    && m.group == ic.group
                    && m.standby == ic.standby
                    && m.targets == ic.targets
                    && m.datapath == datapath =>
            {
                if m.hwaddr != link.hwaddr {
                    out.push(Action::SetHwaddr {
                        ifname: ic.name.clone(),
                        hwaddr: link.hwaddr,
                    });
                }
                if m.probes != usable {
                    out.push(Action::SetProbes {
                        ifname: ic.name.clone(),
                        ifindex: link.ifindex,
                        open: usable
                            .iter()
                            .copied()
                            .filter(|a| !m.probes.contains(a))
                            .collect(),
                        close: m
                            .probes
                            .iter()
                            .copied()
                            .filter(|a| !usable.contains(a))
                            .collect(),
                        test_addrs: usable.clone(),
                        targets: ic.targets.clone(),
                    });
                }
                false
            }
            Some(m) => {
                out.push(Action::Untrack {
                    ifname: ic.name.clone(),
                    ifindex: m.ifindex,
                    datapath: m.datapath,
                    reason: if m.ifindex == link.ifindex {
                        "its configuration changed"
                    } else {
                        "the interface was re-created with a new index"
                    },
                });
                out.push(track());
                true
            }
            None => {
                out.push(track());
                true
            }
        };
        test_address_grace(ic, &usable, mem, now, plan_due(&mut plan.due_ns), out);
        tracked.push(Tracked {
            ic,
            ifindex: link.ifindex,
            usable,
            fresh,
        });
    }
    router_targets(inp, &tracked, out);
    plumbing(inp.observed, &tracked, mem, out);
    let probing: HashSet<u32> = tracked
        .iter()
        .filter(|t| !t.ic.test_addresses.is_empty())
        .map(|t| t.ifindex)
        .collect();
    for &i in inp.stray_pins {
        if !probing.contains(&i) {
            out.push(Action::Detach { ifindex: i });
        }
    }
    // Complaints about members no longer tracked are moot.
    mem.complaints.retain(|c| match c {
        Complaint::NoTestAddress(n) | Complaint::NotPlumbed(n, _, _) | Complaint::Waiting(n) => {
            wanted_names.contains(n.as_str())
        }
    });
    let tracked_names: HashSet<&str> = tracked.iter().map(|t| t.ic.name.as_str()).collect();
    mem.missing_since
        .retain(|n, _| tracked_names.contains(n.as_str()));
}

/// A setter for the plan's next due time that keeps the earliest.
fn plan_due(due: &mut Option<u64>) -> impl FnMut(u64) + '_ {
    move |t| *due = Some(due.map_or(t, |d| d.min(t)))
}

/// in.mpathd waits `TESTADDR_CONF_TIME` for a test address before it complains, once; and says
/// so when one arrives.
fn test_address_grace(
    ic: &InterfaceConfig,
    usable: &[IpAddr],
    mem: &mut Memory,
    now: u64,
    mut due: impl FnMut(u64),
    out: &mut Vec<Action>,
) {
    let complaint = Complaint::NoTestAddress(ic.name.clone());
    if ic.test_addresses.is_empty() || !usable.is_empty() {
        mem.missing_since.remove(&ic.name);
        if mem.complaints.remove(&complaint) {
            out.push(Action::Report {
                event: "ipmultipath.testaddr.recovered",
                params: json!({ "ifname": ic.name }),
            });
        }
        return;
    }
    let since = *mem.missing_since.entry(ic.name.clone()).or_insert(now);
    let end = since.saturating_add(TESTADDR_CONF_TIME_NS);
    if now < end {
        due(end);
    } else if mem.complaints.insert(complaint) {
        out.push(Action::Report {
            event: "ipmultipath.testaddr.missing",
            params: json!({ "ifname": ic.name }),
        });
    }
}

/// Router targets of test address `ta` (prefix `len`): next hops of routes that lie on its
/// subnet (IPv6: link-local next hops), multipath routes included, most specific routes first, at
/// most [`MAX_PROBE_TARGETS`].
#[must_use]
pub fn router_targets_of(observed: &Observed, ta: IpAddr, len: u8) -> Vec<IpAddr> {
    let mut routes: Vec<_> = observed
        .routes
        .values()
        .filter(|r| r.dst.addr.is_ipv4() == ta.is_ipv4() && r.table != RT_TABLE_LOCAL)
        .collect();
    // Most specific first; the main table before others at equal length.
    routes.sort_by_key(|r| (std::cmp::Reverse(r.dst.len), r.table != RT_TABLE_MAIN));
    let mut out = Vec::new();
    for gw in routes.iter().flat_map(|r| r.gateways()) {
        let on_link = if ta.is_ipv4() {
            same_subnet(gw, ta, len)
        } else {
            is_link_local(gw)
        };
        if on_link && !out.contains(&gw) && out.len() < MAX_PROBE_TARGETS {
            out.push(gw);
        }
    }
    out
}

fn router_targets(inp: &Input<'_>, tracked: &[Tracked<'_>], out: &mut Vec<Action>) {
    for t in tracked.iter().filter(|t| t.ic.targets.is_empty()) {
        for v4 in [true, false] {
            let Some(&ta) = t.usable.iter().find(|a| a.is_ipv4() == v4) else {
                continue;
            };
            let len = inp
                .observed
                .prefix_of(t.ifindex, ta)
                .map_or(host_len(ta), |p| p.len);
            let targets = router_targets_of(inp.observed, ta, len);
            let have = if t.fresh {
                None
            } else {
                inp.applied
                    .members
                    .get(&t.ic.name)
                    .map(|m| &m.router_targets[usize::from(!v4)])
            };
            let changed = match have {
                None => !targets.is_empty(),
                Some(h) => *h != targets,
            };
            if changed {
                out.push(Action::SetRouterTargets {
                    ifname: t.ic.name.clone(),
                    v4,
                    targets,
                });
            }
        }
    }
}

/// in.mpathd's check that a group's members are plumbed alike, with a recovery message.
fn plumbing(observed: &Observed, tracked: &[Tracked<'_>], mem: &mut Memory, out: &mut Vec<Action>) {
    // How many members of each group have each family: a member lacks a family the others have
    // when the count without it is above zero.
    let mut having: HashMap<(&str, bool), usize> = HashMap::new();
    let mut has = Vec::with_capacity(tracked.len());
    for t in tracked {
        let fam = [true, false].map(|v4| observed.has_family(t.ifindex, v4));
        for (v4, yes) in [(true, fam[0]), (false, fam[1])] {
            if yes {
                *having.entry((t.ic.group.as_str(), v4)).or_default() += 1;
            }
        }
        has.push(fam);
    }
    for (t, fam) in tracked.iter().zip(has) {
        if t.ic.group.is_empty() {
            continue;
        }
        for (v4, version, own) in [(true, 4u8, fam[0]), (false, 6u8, fam[1])] {
            // Lacking a family is news only when another member of the group has it.
            let lacks = !own && having.contains_key(&(t.ic.group.as_str(), v4));
            let c = Complaint::NotPlumbed(t.ic.name.clone(), t.ic.group.clone(), version);
            let event = if lacks && !mem.complaints.contains(&c) {
                "ipmultipath.group.notPlumbed"
            } else if !lacks && mem.complaints.contains(&c) {
                "ipmultipath.group.plumbed"
            } else {
                continue;
            };
            let params = json!({ "ifname": t.ic.name, "group": t.ic.group, "version": version });
            if lacks {
                mem.complaints.insert(c);
            } else {
                mem.complaints.remove(&c);
            }
            out.push(Action::Report { event, params });
        }
    }
}
