//! Membership that changes while the engine runs: members leave, groups go, FDTs and test
//! addresses change on reload or as the host changes, and what a member had learnt survives a
//! restart ([`Prior`]).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{
    Engine, IfState, MemberSpec, Output, constants::PROBES_PER_FDT, instance::ProbeInstance,
};

/// What of a member survives a restart or a reload of the daemon: a member that had failed is
/// still failed until in.mpathd's rules repair it, an offlined one is still offline, and one past
/// its start-up quiet period does not start another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prior {
    pub state: IfState,
    pub offline_hwdup: bool,
    pub failed_while_offline: bool,
    /// Every probe instance was past its quiet period.
    pub quiet_over: bool,
}

impl Engine {
    /// Stops tracking `ifname`. If it carried data, another member takes over.
    pub fn remove_member(&mut self, ifname: &str, _now_ns: u64) -> Vec<Output> {
        let Some(i) = self.lookup(ifname) else {
            return Vec::new();
        };
        let g = self.group_of(i);
        let was_active = self.is_active(i);
        self.groups[g].members.retain(|&j| j != i);
        self.interfaces.remove(i);
        self.if_by_name.remove(ifname);
        // Indexes above the removed one move down by one.
        for group in &mut self.groups {
            for j in &mut group.members {
                if *j > i {
                    *j -= 1;
                }
            }
        }
        for j in self.if_by_name.values_mut() {
            if *j > i {
                *j -= 1;
            }
        }
        self.due.removed(i);
        // Keys to the moved indexes are no longer good.
        self.layout = super::key::next_layout();
        if was_active && !self.groups[g].anonymous() {
            self.activate_another(g);
        }
        self.finish()
    }

    /// Forgets group `name` once it has no members left; `false` while it still has some.
    pub fn remove_group(&mut self, name: &str) -> bool {
        let Some(g) = self.group_index(name) else {
            return true;
        };
        if !self.groups[g].members.is_empty() {
            return false;
        }
        self.groups.remove(g);
        self.group_by_name.remove(name);
        for idx in self.group_by_name.values_mut() {
            if *idx > g {
                *idx -= 1;
            }
        }
        for x in &mut self.interfaces {
            if x.group_idx > g {
                x.group_idx -= 1;
            }
        }
        true
    }

    /// New FAILURE_DETECTION_TIME (ns) and FAILBACK (a reload); groups without their own FDT take
    /// the new one through [`Self::set_group_fdt`].
    pub fn set_defaults(&mut self, user_fdt_ns: u64, failback: bool) {
        self.config.user_fdt_ns = user_fdt_ns;
        self.config.failback = failback;
    }

    /// A new configured FDT for group `name` (`None`: FAILURE_DETECTION_TIME). A raised FDT stays
    /// raised while it is above the new one; otherwise the group runs at the new one at once.
    pub fn set_group_fdt(&mut self, name: &str, fdt_ns: Option<u64>) {
        let default = self.config.user_fdt_ns;
        let Some(g) = self.group_index(name) else {
            return;
        };
        let group = &mut self.groups[g];
        group.user_fdt_ns = fdt_ns.unwrap_or(default);
        if group.raised_at_ns.is_none() || group.fdt_ns < group.user_fdt_ns {
            group.fdt_ns = group.user_fdt_ns;
            group.raised_at_ns = None;
        }
        group.interval_ns = group.fdt_ns / PROBES_PER_FDT;
        self.touch(g);
        self.finish();
    }

    /// `ifname` now probes from `test_addrs` (its usable test addresses) towards `targets` (the
    /// configured ones; router targets follow through [`Engine::set_router_targets`]). Instances
    /// of unchanged addresses keep their history; new ones start probing with a quiet period.
    pub fn set_test_addrs(
        &mut self,
        ifname: &str,
        test_addrs: &[IpAddr],
        targets: &[IpAddr],
        now_ns: u64,
    ) -> Vec<Output> {
        let Some(i) = self.lookup(ifname) else {
            return Vec::new();
        };
        let interval = self.groups[self.group_of(i)].interval_ns;
        let mut old = std::mem::take(&mut self.interfaces[i].instances);
        let mut instances = Vec::new();
        for &addr in test_addrs {
            if instances
                .iter()
                .any(|p: &ProbeInstance| p.test_addr.is_ipv4() == addr.is_ipv4())
            {
                continue;
            }
            if let Some(k) = old.iter().position(|p| p.test_addr == addr) {
                instances.push(old.swap_remove(k));
                continue;
            }
            instances.push(self.new_instance(addr, targets, interval, now_ns));
        }
        let x = &mut self.interfaces[i];
        x.instances = instances;
        match x.state {
            IfState::Running if !x.instances.is_empty() && !x.probing() => {
                x.state = IfState::NoTargets;
            }
            IfState::NoTargets if x.instances.is_empty() || x.probing() => {
                x.state = IfState::Running;
            }
            _ => {}
        }
        self.finish()
    }

    /// What of `ifname` should survive a restart or reload.
    #[must_use]
    pub fn prior(&self, ifname: &str, now_ns: u64) -> Option<Prior> {
        let x = &self.interfaces[self.if_index(ifname)?];
        Some(Prior {
            state: x.state,
            offline_hwdup: x.offline_hwdup,
            failed_while_offline: x.failed_while_offline,
            quiet_over: x.instances.iter().all(|p| p.quiet_until_ns <= now_ns),
        })
    }

    /// Starts tracking a member as the daemon finds it: its link, its hardware address and what
    /// it had before (a restart, or its removal and return), all in one input. Its activation is
    /// decided on the whole, so nothing is announced for a moment in between (a standby retired
    /// for a newcomer that its prior then fails).
    pub fn track(
        &mut self,
        spec: &MemberSpec,
        link_up: bool,
        hwaddr: Option<[u8; 6]>,
        prior: Option<Prior>,
        now_ns: u64,
    ) -> Vec<Output> {
        let i = self.insert_member(spec, link_up, now_ns);
        self.interfaces[i].hwaddr = hwaddr;
        let g = self.group_of(i);
        self.refresh_hwaddr(g, now_ns);
        if let Some(prior) = prior {
            self.apply_prior(i, prior, now_ns);
        }
        self.join(i);
        self.finish()
    }

    fn apply_prior(&mut self, i: usize, prior: Prior, now_ns: u64) {
        if prior.quiet_over {
            for inst in &mut self.interfaces[i].instances {
                inst.quiet_until_ns = inst.quiet_until_ns.min(now_ns);
            }
        }
        match prior.state {
            IfState::Failed if self.interfaces[i].functioning() => {
                let g = self.group_of(i);
                let was_active = self.is_active(i);
                let x = &mut self.interfaces[i];
                x.state = IfState::Failed;
                x.inactive = false;
                if was_active && !self.groups[g].anonymous() {
                    self.activate_another(g);
                }
            }
            IfState::Offline if self.interfaces[i].state != IfState::Offline => {
                self.take_offline(i);
                let x = &mut self.interfaces[i];
                x.offline_hwdup = prior.offline_hwdup;
                x.failed_while_offline |= prior.failed_while_offline;
            }
            _ => {}
        }
        // A link-only member that failed with its link is repaired by the link alone.
        self.check_repair(i, now_ns);
    }
}
