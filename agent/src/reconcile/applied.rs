//! What the daemon has done (recorded as each action succeeds), and the reconciler's own memory of
//! timers and complaints.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use super::action::Action;
use crate::{ip::Prefix, netlink::rule::Rule};

/// A tracked member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub ifindex: u32,
    pub group: String,
    pub standby: bool,
    /// Programs attached (it has test addresses configured).
    pub datapath: bool,
    /// Test addresses with an open probe socket.
    pub probes: Vec<IpAddr>,
    /// Configured probe targets.
    pub targets: Vec<IpAddr>,
    /// Router targets given to the engine: IPv4, IPv6.
    pub router_targets: [Vec<IpAddr>; 2],
    /// Hardware address given to the engine.
    pub hwaddr: Option<[u8; 6]>,
}

/// The daemon's doings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub members: BTreeMap<String, Member>,
    /// Data addresses ipmpd placed, and on which member: kept across restarts so that one no
    /// configuration asks for any more is recognised and removed.
    pub placed: BTreeMap<Prefix, String>,
    /// Routes (table, destination) and rules ipmpd installed: one that disappears was removed by
    /// someone else, and its return is reported as such.
    pub routes: BTreeSet<(u32, Prefix)>,
    pub rules: BTreeSet<Rule>,
}

impl Applied {
    /// Records that `a` was carried out.
    pub fn record(&mut self, a: &Action) {
        match a {
            Action::Untrack { ifname, .. } => {
                self.members.remove(ifname);
            }
            Action::Track {
                spec,
                ifindex,
                datapath,
                hwaddr,
                ..
            } => {
                self.members.insert(
                    spec.ifname.clone(),
                    Member {
                        ifindex: *ifindex,
                        group: spec.group.clone(),
                        standby: spec.standby,
                        datapath: *datapath,
                        probes: spec.test_addrs.clone(),
                        targets: spec.targets.clone(),
                        router_targets: [Vec::new(), Vec::new()],
                        hwaddr: *hwaddr,
                    },
                );
            }
            Action::SetProbes {
                ifname, test_addrs, ..
            } => {
                if let Some(m) = self.members.get_mut(ifname) {
                    m.probes.clone_from(test_addrs);
                }
            }
            Action::SetHwaddr { ifname, hwaddr } => {
                if let Some(m) = self.members.get_mut(ifname) {
                    m.hwaddr = *hwaddr;
                }
            }
            Action::SetRouterTargets {
                ifname,
                v4,
                targets,
            } => {
                if let Some(m) = self.members.get_mut(ifname) {
                    m.router_targets[usize::from(!*v4)].clone_from(targets);
                }
            }
            Action::Place { addr, to, .. } => {
                self.placed.insert(*addr, to.0.clone());
            }
            Action::DelAddress { addr, stale, .. } => {
                if *stale {
                    self.placed.remove(addr);
                }
            }
            Action::Forget { addr } => {
                self.placed.remove(addr);
            }
            Action::SetRoute { route, .. } => {
                self.routes.insert((route.table, route.dst));
            }
            Action::DelRoute { route } => {
                self.routes.remove(&(route.table, route.dst));
            }
            Action::AddRule { rule, .. } => {
                self.rules.insert(*rule);
            }
            Action::DelRule { rule } => {
                self.rules.remove(rule);
            }
            Action::Detach { .. } | Action::Report { .. } => {}
        }
    }
}

/// A configuration complaint, logged once and answered by a recovery message when fixed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Complaint {
    /// No usable test address, past the grace period.
    NoTestAddress(String),
    /// A member lacking an address family the rest of its group has: (member, group, version).
    NotPlumbed(String, String, u8),
    /// A member the group file names that the host does not have.
    Waiting(String),
}

/// The reconciler's memory between passes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// Since when a member with configured test addresses has had none usable.
    pub missing_since: BTreeMap<String, u64>,
    pub complaints: BTreeSet<Complaint>,
}
