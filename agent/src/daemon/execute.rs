//! Carrying out the reconciler's actions: the datapath, the link watcher, the probe sockets, the
//! engine, and addresses, routes and rules through the failover seam. Each action that succeeds is
//! recorded (and its effect folded into the observed state at once, so the next pass does not
//! redo it before the kernel's notification arrives); one that fails is reported and retried.

use std::{collections::HashSet, net::IpAddr};

use serde_json::json;

use super::{Daemon, dispatch::Announcement, metrics};
use crate::{
    clock::monotonic_ns,
    failover::kernel::Kernel as _,
    netlink::{route::RT_TABLE_MAIN, update::Update},
    reconcile::{self, Action, Input},
};

/// Passes per call at most: membership changes need a second pass (the engine has them only
/// then), and the data plane a third.
const MAX_PASSES: usize = 4;
/// After a refusal, the next try.
const RETRY_NS: u64 = 1_000_000_000;

impl Daemon {
    /// Reconciles until nothing is left to do, a refusal stops it, or `MAX_PASSES`.
    pub(super) fn reconcile(&mut self, now: u64) {
        self.rec.busy = true;
        self.rec.due = None;
        for _ in 0..MAX_PASSES {
            let views = self.engine.interfaces();
            let stray = self.stray_pins();
            let plan = reconcile::reconcile(
                &Input {
                    desired: &self.rec.desired,
                    observed: &self.rec.host.observed,
                    applied: &self.rec.applied,
                    engine: &views,
                    stray_pins: &stray,
                },
                &mut self.rec.memory,
                now,
            );
            if let Some(d) = plan.due_ns {
                self.due_at(d);
            }
            let mut work = false;
            let mut refused = false;
            let _expedited = self.expedite_for(&plan.actions);
            for a in plan.actions {
                work |= !matches!(a, Action::Report { .. });
                if matches!(
                    a,
                    Action::Track { .. }
                        | Action::Untrack { .. }
                        | Action::Detach { .. }
                        | Action::SetProbes { .. }
                ) {
                    self.rec.pins = None;
                }
                match self.carry_out(a) {
                    Some(done) => self.rec.applied.record(&done),
                    None => refused = true,
                }
            }
            if refused {
                self.due_at(monotonic_ns() + RETRY_NS);
                break;
            }
            if !work {
                break;
            }
        }
        self.rec.busy = false;
    }

    /// Expedited RCU grace periods while a pass creates many TCX links (see
    /// `datapath::grace`), put back when the result is dropped.
    fn expedite_for(&self, actions: &[Action]) -> Option<crate::datapath::grace::Expedited> {
        let attachments = actions
            .iter()
            .filter(|a| matches!(a, Action::Track { datapath: true, .. }))
            .count();
        if attachments < crate::datapath::grace::MIN_BATCH || !self.io.datapath.uses_tcx() {
            return None;
        }
        let on = self.io.expedite.begin();
        if on.is_some() {
            tracing::info!(
                attachments,
                "RCU grace periods expedited while TCX links are created (each waits for one)"
            );
        }
        on
    }

    fn due_at(&mut self, t: u64) {
        self.rec.due = Some(self.rec.due.map_or(t, |d| d.min(t)));
    }

    /// Interfaces with pins of this instance that no member of this process uses.
    fn stray_pins(&mut self) -> Vec<u32> {
        let datapath = &self.io.datapath;
        let pins = self
            .rec
            .pins
            .get_or_insert_with(|| datapath.pinned_ifindexes());
        let used: HashSet<u32> = self
            .rec
            .applied
            .members
            .values()
            .filter(|m| m.datapath)
            .map(|m| m.ifindex)
            .collect();
        pins.iter().copied().filter(|i| !used.contains(i)).collect()
    }

    /// Carries out `a`; what was done (to record), or `None` when it was refused.
    fn carry_out(&mut self, a: Action) -> Option<Action> {
        let now = monotonic_ns();
        match a {
            Action::Untrack {
                ref ifname,
                ifindex,
                datapath,
                reason,
            } => {
                if let Some(p) = self.engine.prior(ifname, now) {
                    self.rec.priors.insert(ifname.clone(), p);
                }
                let out = self.engine.remove_member(ifname, now);
                self.dispatch(out);
                self.io.members.remove(ifname);
                // Renamed, the device may already be tracked under its new name (the plan need
                // not untrack first): what is keyed by its index then belongs to that member.
                if self.io.members.by_ifindex(ifindex).is_none() {
                    self.io.watcher.untrack(ifindex);
                    if datapath {
                        self.io.datapath.untrack(ifindex);
                    }
                    self.io.datapath_counters.remove(&ifindex);
                }
                self.io.arp_flux.restore_one(ifname);
                self.out.rep.catalogue(
                    "ipmultipath.setup.untracked",
                    json!({ "ifname": ifname, "ifindex": ifindex, "reason": reason }),
                );
                self.rec.unsaved = true;
                Some(a)
            }
            Action::Detach { ifindex } => {
                self.io.datapath.untrack(ifindex);
                Some(a)
            }
            Action::Track {
                mut spec,
                ifindex,
                hwaddr,
                kind,
                link_up,
                datapath,
            } => {
                if datapath
                    && let Err(e) =
                        self.io
                            .datapath
                            .track_index(ifindex, &spec.ifname, kind.as_deref())
                {
                    self.out.rep.catalogue(
                        "ipmultipath.setup.connFailed",
                        json!({ "what": format!("the datapath on {}", spec.ifname), "reason": format!("{:#}", anyhow::Error::from(e)) }),
                    );
                    return None;
                }
                self.io.members.insert(&spec.ifname, ifindex, hwaddr);
                if datapath && let Some(m) = self.io.members.get_mut(&spec.ifname) {
                    // Woken for every reply until the engine says they can wait.
                    match self.io.datapath.set_probe_id(ifindex, m.id, true) {
                        Ok(()) => m.wake = Some(true),
                        Err(e) => {
                            tracing::warn!(ifname = spec.ifname, error = %e, "replies will not be recognised");
                        }
                    }
                }
                spec.test_addrs = self.open_probes(&spec.ifname, &spec.test_addrs);
                self.io.watcher.track(ifindex);
                let prior = self.rec.priors.remove(&spec.ifname);
                let out = self.engine.track(&spec, link_up, hwaddr, prior, now);
                self.dispatch(out);
                if !spec.group.is_empty() {
                    self.set_arp_flux(&spec.ifname, now);
                }
                self.out.rep.catalogue(
                    "ipmultipath.setup.tracked",
                    json!({ "ifname": spec.ifname, "ifindex": ifindex, "group": spec.group }),
                );
                Some(Action::Track {
                    spec,
                    ifindex,
                    hwaddr,
                    kind,
                    link_up,
                    datapath,
                })
            }
            Action::SetProbes {
                ifname,
                ifindex,
                open,
                close,
                test_addrs,
                targets,
            } => {
                if let Some(m) = self.io.members.get_mut(&ifname) {
                    for addr in &close {
                        m.close(*addr);
                    }
                }
                let opened = self.open_probes(&ifname, &open);
                let test_addrs: Vec<IpAddr> = test_addrs
                    .into_iter()
                    .filter(|a| !open.contains(a) || opened.contains(a))
                    .collect();
                let out = self
                    .engine
                    .set_test_addrs(&ifname, &test_addrs, &targets, now);
                self.dispatch(out);
                Some(Action::SetProbes {
                    ifname,
                    ifindex,
                    open: opened,
                    close,
                    test_addrs,
                    targets,
                })
            }
            Action::SetHwaddr { ref ifname, hwaddr } => {
                if let Some(m) = self.io.members.get_mut(ifname) {
                    m.hwaddr = hwaddr;
                }
                let out = self.engine.set_hwaddr(ifname, hwaddr, now);
                self.dispatch(out);
                Some(a)
            }
            Action::SetRouterTargets {
                ref ifname,
                v4,
                ref targets,
            } => {
                let out = self.engine.set_router_targets(ifname, v4, targets, now);
                self.dispatch(out);
                Some(a)
            }
            Action::Place { .. } => self.place(a),
            Action::DelAddress { addr, ifindex, .. } => {
                if let Err(e) = self.io.kernel.del_address(ifindex, addr) {
                    tracing::warn!(address = %addr, ifindex, error = %e, "cannot remove a data address");
                    return None;
                }
                self.observe(Update::Addr {
                    addr: crate::netlink::addr::Addr {
                        ifindex,
                        prefix: addr,
                        flags: 0,
                    },
                    deleted: true,
                });
                self.rec.unsaved = true;
                Some(a)
            }
            Action::Forget { .. } => {
                self.rec.unsaved = true;
                Some(a)
            }
            Action::SetRoute {
                ref route,
                restored,
            } => {
                let what = route_name(route);
                if let Err(e) = self.io.kernel.set_route(route) {
                    self.out.rep.catalogue(
                        "ipmultipath.route.failed",
                        json!({ "group": what, "reason": e.to_string() }),
                    );
                    return None;
                }
                self.observe(Update::Route {
                    route: route.clone(),
                    deleted: false,
                });
                if restored {
                    self.out
                        .rep
                        .catalogue("ipmultipath.host.restored", json!({ "what": what }));
                }
                Some(a)
            }
            Action::DelRoute { ref route } => {
                if let Err(e) = self.io.kernel.del_route(route) {
                    tracing::warn!(route = route_name(route), error = %e, "cannot remove a stale route");
                    return None;
                }
                self.observe(Update::Route {
                    route: route.clone(),
                    deleted: true,
                });
                self.out.rep.catalogue(
                    "ipmultipath.host.stale",
                    json!({ "what": route_name(route) }),
                );
                Some(a)
            }
            Action::AddRule { rule, restored } => {
                let what = rule_name(&rule);
                if let Err(e) = self.io.kernel.add_rule(&rule) {
                    self.out.rep.catalogue(
                        "ipmultipath.route.failed",
                        json!({ "group": what, "reason": e.to_string() }),
                    );
                    return None;
                }
                self.observe(Update::Rule {
                    rule,
                    deleted: false,
                });
                if restored {
                    self.out
                        .rep
                        .catalogue("ipmultipath.host.restored", json!({ "what": what }));
                }
                Some(a)
            }
            Action::DelRule { rule } => {
                if let Err(e) = self.io.kernel.del_rule(&rule) {
                    tracing::warn!(rule = rule_name(&rule), error = %e, "cannot remove a stale rule");
                    return None;
                }
                self.observe(Update::Rule {
                    rule,
                    deleted: true,
                });
                self.out.rep.catalogue(
                    "ipmultipath.host.stale",
                    json!({ "what": rule_name(&rule) }),
                );
                Some(a)
            }
            Action::Report { event, ref params } => {
                self.out.rep.catalogue(event, params.clone());
                Some(a)
            }
        }
    }

    /// Folds the effect of a successful action into the observed state at once.
    fn observe(&mut self, u: Update) {
        self.rec.host.observed.apply(u);
    }

    /// arp_ignore/arp_announce on a new member: the values it has now are saved to the state file
    /// before they change, so that a crash right after cannot lose them.
    fn set_arp_flux(&mut self, ifname: &str, now: u64) {
        let result = self.io.arp_flux.remember(ifname).and_then(|new| {
            if new {
                self.rec.unsaved = true;
                self.save_state(now);
            }
            self.io.arp_flux.set(ifname)
        });
        if let Err(e) = result {
            tracing::warn!(ifname, error = %e, "cannot set arp_ignore/arp_announce");
        }
    }

    /// Opens probe sockets for `addrs` of `ifname`; the addresses that worked.
    fn open_probes(&mut self, ifname: &str, addrs: &[IpAddr]) -> Vec<IpAddr> {
        let mut opened = Vec::new();
        for &addr in addrs {
            let result = match self.io.members.get_mut(ifname) {
                Some(m) => m.open(addr),
                None => continue,
            };
            match result {
                Ok(()) => opened.push(addr),
                Err(e) => {
                    tracing::warn!(error = %e, "probe socket");
                    self.out.rep.catalogue(
                        "ipmultipath.setup.bindFailed",
                        json!({ "address": addr.to_string(), "ifname": ifname }),
                    );
                }
            }
        }
        opened
    }

    /// A data address on its new home (add before delete), then announced from there.
    fn place(&mut self, a: Action) -> Option<Action> {
        let Action::Place {
            ref group,
            addr,
            ref from,
            ref to,
            cause,
        } = a
        else {
            return None;
        };
        let address = addr.to_string();
        if let Err(e) = self.io.kernel.add_address(to.1, addr) {
            if e.device_gone() {
                // Removed under us: once rtnetlink says so, the next pass chooses another home.
                tracing::info!(%address, to = to.0, "the new home vanished before the move");
                self.rec.due = Some(0);
                return None;
            }
            self.out.rep.catalogue(
                "ipmultipath.address.moveFailed",
                json!({ "address": address, "group": group, "to": to.0, "reason": e.to_string() }),
            );
            return None;
        }
        self.observe(Update::Addr {
            addr: crate::netlink::addr::Addr {
                ifindex: to.1,
                prefix: addr,
                flags: 0,
            },
            deleted: false,
        });
        if let Some((_, f)) = from
            && *f != to.1
        {
            if let Err(e) = self.io.kernel.del_address(*f, addr) {
                tracing::warn!(%address, error = %e, "cannot remove the address from its old home");
            }
            self.observe(Update::Addr {
                addr: crate::netlink::addr::Addr {
                    ifindex: *f,
                    prefix: addr,
                    flags: 0,
                },
                deleted: true,
            });
        }
        metrics::bump(
            &mut self.out.counts.failovers,
            (group.clone(), cause.to_owned()),
        );
        self.out.rep.catalogue(
            "ipmultipath.address.moved",
            json!({ "address": address, "group": group, "from": from.as_ref().map_or("-", |f| f.0.as_str()), "to": to.0 }),
        );
        if cause == "restored" {
            self.out.rep.catalogue(
                "ipmultipath.host.restored",
                json!({ "what": format!("data address {address} on {}", to.0) }),
            );
        }
        self.announce(group, to, addr.addr);
        self.rec.unsaved = true;
        Some(a)
    }

    /// Schedules the group's announcements of `addr` from `to`.
    fn announce(&mut self, group: &str, to: &(String, u32), addr: IpAddr) {
        let Some(g) = self.rec.desired.group(group) else {
            return;
        };
        let (count, spacing) = (g.announcements, g.announce_interval_ms * 1_000_000);
        let Some(mac) = self.io.members.get(&to.0).and_then(|m| m.hwaddr) else {
            return;
        };
        let now = monotonic_ns();
        for k in 0..count {
            self.io.announcements.push(Announcement {
                due_ns: now + u64::from(k) * spacing,
                ifindex: to.1,
                ifname: to.0.clone(),
                mac,
                addr,
            });
        }
    }
}

fn route_name(r: &crate::netlink::route::Route) -> String {
    let table = if r.table == RT_TABLE_MAIN {
        "main".to_owned()
    } else {
        r.table.to_string()
    };
    format!("route {} table {table}", r.dst)
}

fn rule_name(r: &crate::netlink::rule::Rule) -> String {
    let from = r
        .src
        .map_or_else(|| "all".to_owned(), |s| s.addr.to_string());
    format!("rule from {from} lookup {}", r.table)
}
