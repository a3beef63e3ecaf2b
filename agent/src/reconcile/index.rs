//! Lookups a pass makes once per member, group, route or rule, built once at the start of the
//! pass. Without them a pass compared every member with every other (by name, string by string):
//! at 1,024 members a failure storm spent most of a core in `memcmp` inside the reconciler, and
//! probes went out late. With them a pass costs O(n log n) in members, routes and rules.

use std::collections::{HashMap, HashSet};

use super::Input;
use crate::{
    config::group_file::InterfaceConfig,
    engine::InterfaceView,
    ip::Prefix,
    netlink::{link::LinkInfo, route::Route, rule::Rule},
};

/// One pass's lookups over its [`Input`].
pub(super) struct Index<'a> {
    links_by_name: HashMap<&'a str, &'a LinkInfo>,
    views: HashMap<&'a str, &'a InterfaceView>,
    /// The configured interfaces of each group, in the file's order.
    configured: HashMap<&'a str, Vec<&'a InterfaceConfig>>,
    /// The applied members of each group with their index, by name.
    applied: HashMap<&'a str, Vec<(&'a String, u32)>>,
    /// ipmpd's routes by (table, destination); the lowest metric where several share one.
    own_routes: HashMap<(u32, Prefix), &'a Route>,
    own_rules: HashSet<&'a Rule>,
}

impl<'a> Index<'a> {
    pub(super) fn new(inp: &Input<'a>) -> Self {
        let mut configured: HashMap<&str, Vec<&InterfaceConfig>> = HashMap::new();
        for ic in &inp.desired.interfaces {
            configured.entry(ic.group.as_str()).or_default().push(ic);
        }
        let mut applied: HashMap<&str, Vec<(&String, u32)>> = HashMap::new();
        for (name, m) in &inp.applied.members {
            applied
                .entry(m.group.as_str())
                .or_default()
                .push((name, m.ifindex));
        }
        let mut own_routes = HashMap::new();
        for r in inp.observed.own_routes() {
            own_routes.entry((r.table, r.dst)).or_insert(r);
        }
        // Two links can share a name for a moment (a rename racing another): the lowest index
        // wins, as a search in index order found it.
        let mut links_by_name = HashMap::new();
        for l in inp.observed.links.values() {
            links_by_name.entry(l.name.as_str()).or_insert(l);
        }
        Self {
            links_by_name,
            views: inp.engine.iter().map(|v| (v.ifname.as_str(), v)).collect(),
            configured,
            applied,
            own_routes,
            own_rules: inp.observed.own_rules().collect(),
        }
    }

    /// The link named `name`.
    pub(super) fn link(&self, name: &str) -> Option<&'a LinkInfo> {
        self.links_by_name.get(name).copied()
    }

    /// The engine's view of the member named `name`.
    pub(super) fn view(&self, name: &str) -> Option<&'a InterfaceView> {
        self.views.get(name).copied()
    }

    /// The configured interfaces of `group`, in the file's order.
    pub(super) fn configured(&self, group: &str) -> &[&'a InterfaceConfig] {
        self.configured.get(group).map_or(&[], Vec::as_slice)
    }

    /// The applied members of `group` with their index, by name.
    pub(super) fn applied(&self, group: &str) -> &[(&'a String, u32)] {
        self.applied.get(group).map_or(&[], Vec::as_slice)
    }

    /// ipmpd's route for (table, destination).
    pub(super) fn own_route(&self, table: u32, dst: Prefix) -> Option<&'a Route> {
        self.own_routes.get(&(table, dst)).copied()
    }

    /// Whether ipmpd's rules include `rule`.
    pub(super) fn has_own_rule(&self, rule: &Rule) -> bool {
        self.own_rules.contains(rule)
    }
}
