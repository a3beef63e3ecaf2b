//! Read-only views of the engine's state for ipmpstat-style reports.

use std::net::IpAddr;

use serde::Serialize;

use super::{Engine, GroupState, IfState};

/// One group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupView {
    pub name: String,
    pub state: GroupState,
    /// Current failure detection time (raised when targets are slow).
    pub fdt_ns: u64,
    /// Whether any member probes (ipmpstat shows the FDT only then).
    pub probing: bool,
}

/// The probing of one interface in one family (ipmpstat -t).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TargetsView {
    pub ifname: String,
    pub test_addr: IpAddr,
    /// "routes" (configured or router targets) or "multicast" (found by all-hosts probing).
    pub mode: &'static str,
    /// Targets in firing order.
    pub targets: Vec<IpAddr>,
}

/// How ipmpstat names an interface's probe state.
#[must_use]
pub fn probe_state(state: IfState, probe_enabled: bool, has_targets: bool) -> &'static str {
    match (probe_enabled, state, has_targets) {
        (false, _, _) => "disabled",
        (true, IfState::Failed, _) => "failed",
        (true, _, false) => "unknown",
        _ => "ok",
    }
}

/// How ipmpstat names an interface's state.
#[must_use]
pub fn if_state(state: IfState) -> &'static str {
    match state {
        IfState::Running => "ok",
        IfState::Failed => "failed",
        IfState::Offline => "offline",
        IfState::NoTargets => "unknown",
    }
}

impl Engine {
    /// Every named group.
    #[must_use]
    pub fn groups(&self) -> Vec<GroupView> {
        self.groups
            .iter()
            .filter(|g| !g.anonymous())
            .map(|g| GroupView {
                name: g.name.clone(),
                state: g.state,
                fdt_ns: g.fdt_ns,
                probing: self
                    .interfaces
                    .iter()
                    .any(|x| x.group == g.name && !x.instances.is_empty()),
            })
            .collect()
    }

    /// Every probe instance: interface, family, test address, targets in firing order.
    #[must_use]
    pub fn targets(&self) -> Vec<TargetsView> {
        self.interfaces
            .iter()
            .flat_map(|x| {
                x.instances.iter().map(|inst| {
                    let n = inst.targets.len();
                    let targets = (0..n)
                        .map(|k| inst.targets[(inst.next_target + k) % n].addr)
                        .collect();
                    TargetsView {
                        ifname: x.name.to_string(),
                        test_addr: inst.test_addr,
                        mode: if inst.host_targets {
                            "multicast"
                        } else {
                            "routes"
                        },
                        targets,
                    }
                })
            })
            .collect()
    }

    /// Smoothed RTT and its mean deviation (ns) of `target` as seen from `ifname`.
    #[must_use]
    pub fn target_rtt(&self, ifname: &str, target: IpAddr) -> Option<(u64, u64)> {
        let x = &self.interfaces[self.if_index(ifname)?];
        x.instances
            .iter()
            .flat_map(|p| p.targets.iter())
            .find(|t| t.addr == target)
            .map(|t| (t.rtt.avg_ns(), t.rtt.dev_ns()))
    }

    /// Every named group's state and current FDT (ns), without the views' derived fields: what
    /// the metrics exposition copies on the probing loop (at 512 groups [`Self::groups`]'s
    /// `probing` alone compares every group with every interface).
    pub fn group_fdts(&self) -> impl Iterator<Item = (&str, GroupState, u64)> {
        self.groups
            .iter()
            .filter(|g| !g.anonymous())
            .map(|g| (g.name.as_str(), g.state, g.fdt_ns))
    }

    /// Every probe target's CRTT (ns; 0 before its first sample), by interface, in one pass.
    pub fn crtts(&self) -> impl Iterator<Item = (&str, IpAddr, u64)> {
        self.interfaces.iter().flat_map(|x| {
            x.instances
                .iter()
                .flat_map(|p| p.targets.iter())
                .map(|t| (&*x.name, t.addr, t.rtt.crtt_ns()))
        })
    }

    /// Whether `ifname` has a probing instance at all (a test address).
    #[must_use]
    pub fn probe_enabled(&self, ifname: &str) -> bool {
        self.if_index(ifname)
            .is_some_and(|i| !self.interfaces[i].instances.is_empty())
    }
}
