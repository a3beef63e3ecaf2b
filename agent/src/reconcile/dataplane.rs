//! Data addresses on active members, and the routes and rules that keep outbound traffic on them:
//! what the engine's verdicts ask for against what the kernel holds. Restores what someone else
//! removed, removes what ipmpd made that nothing asks for any more.

use std::collections::HashSet;

use serde_json::json;

use super::{Action, Input, Plan, index::Index};
use crate::{
    config::group_file::GroupConfig,
    engine::IfState,
    failover::{
        outbound::outbound,
        plan::{Placement, plan},
    },
    ip::Prefix,
    netlink::{
        route::{RT_TABLE_MAIN, Route},
        rule::Rule,
    },
};

pub(super) fn reconcile(inp: &Input<'_>, index: &Index<'_>, plan_out: &mut Plan) {
    let out = &mut plan_out.actions;
    let mut routes: Vec<Route> = Vec::new();
    let mut rules: Vec<Rule> = Vec::new();
    // Groups without an active member: what they have stays (nothing is gained by removing it).
    let mut frozen: Vec<&GroupConfig> = Vec::new();
    for g in &inp.desired.groups {
        let active = active_members(inp, index, &g.name);
        place(inp, index, g, &active, out);
        let ifindexes: Vec<u32> = active.iter().map(|(_, i)| *i).collect();
        match outbound(g, &ifindexes) {
            Some(o) => {
                routes.extend(o.routes);
                rules.extend(o.rules);
            }
            None => frozen.push(g),
        }
    }
    stale_addresses(inp, out);
    let held_table = |table: u32| frozen.iter().any(|g| g.table == table);
    let held = |table: u32, dst: Prefix| {
        held_table(table)
            || (table == RT_TABLE_MAIN
                && frozen
                    .iter()
                    .any(|g| g.routes.iter().any(|r| r.dst.network() == dst)))
    };
    for want in &routes {
        let key = (want.table, want.dst);
        match index.own_route(want.table, want.dst) {
            None => out.push(Action::SetRoute {
                route: want.clone(),
                restored: inp.applied.routes.contains(&key),
            }),
            Some(have) if !same_route(have, want) => out.push(Action::SetRoute {
                route: want.clone(),
                restored: false,
            }),
            Some(_) => {}
        }
    }
    let wanted_routes: HashSet<(u32, Prefix)> = routes.iter().map(|r| (r.table, r.dst)).collect();
    for have in inp.observed.own_routes() {
        let wanted = wanted_routes.contains(&(have.table, have.dst));
        if !wanted && !held(have.table, have.dst) {
            out.push(Action::DelRoute {
                route: have.clone(),
            });
        }
    }
    for want in &rules {
        if !index.has_own_rule(want) {
            out.push(Action::AddRule {
                rule: *want,
                restored: inp.applied.rules.contains(want),
            });
        }
    }
    let wanted_rules: HashSet<&Rule> = rules.iter().collect();
    for have in inp.observed.own_rules() {
        if !wanted_rules.contains(have) && !held_table(have.table) {
            out.push(Action::DelRule { rule: *have });
        }
    }
}

/// A group's active members that this process tracks, in the group file's order, with their
/// interface indexes.
fn active_members(inp: &Input<'_>, index: &Index<'_>, group: &str) -> Vec<(String, u32)> {
    index
        .configured(group)
        .iter()
        .filter(|ic| {
            index
                .view(&ic.name)
                .is_some_and(|v| v.group == group && v.active)
        })
        .filter_map(|ic| {
            let m = inp.applied.members.get(&ic.name)?;
            Some((ic.name.clone(), m.ifindex))
        })
        .collect()
}

/// Routes are the same when they reach the same next hops with the same preferred source; the
/// order of next hops, metrics and flags the kernel adds do not matter.
fn same_route(have: &Route, want: &Route) -> bool {
    let mut a = have.hops.clone();
    let mut b = want.hops.clone();
    a.sort();
    b.sort();
    a == b && have.prefsrc == want.prefsrc
}

/// The moves that put `g`'s data addresses on its active members, and the removal of copies
/// beside each address's home.
fn place(
    inp: &Input<'_>,
    index: &Index<'_>,
    g: &GroupConfig,
    active: &[(String, u32)],
    out: &mut Vec<Action>,
) {
    if g.data_addresses.is_empty() {
        return;
    }
    let members = index.applied(&g.name);
    let mut current = Placement::default();
    let mut holders_of: Vec<Vec<(String, u32)>> = Vec::new();
    for (i, d) in g.data_addresses.iter().enumerate() {
        // Every interface that has it: a member, or one that stopped being one (renamed, dropped
        // from the configuration), whose copy must go once the address has a home.
        let holders: Vec<(String, u32)> = inp
            .observed
            .holders(*d)
            .map(|idx| match members.iter().find(|(_, j)| *j == idx) {
                Some((n, j)) => ((*n).clone(), *j),
                None => (
                    inp.observed
                        .links
                        .get(&idx)
                        .map_or_else(|| idx.to_string(), |l| l.name.clone()),
                    idx,
                ),
            })
            .collect();
        let is_member = |n: &String| members.iter().any(|(m, _)| *m == n);
        let home = holders
            .iter()
            .find(|(n, _)| active.iter().any(|(a, _)| a == n))
            .or_else(|| holders.iter().find(|(n, _)| is_member(n)));
        if let Some((n, _)) = home {
            current.at.insert(i, n.clone());
        }
        holders_of.push(holders);
    }
    let names: Vec<String> = active.iter().map(|(n, _)| n.clone()).collect();
    let moves = plan(&g.data_addresses, &names, &current);
    for mv in &moves {
        let Some(&(_, to)) = active.iter().find(|(n, _)| *n == mv.to) else {
            continue;
        };
        let from = mv
            .from
            .as_ref()
            .and_then(|f| members.iter().find(|(n, _)| *n == f))
            .map(|(n, i)| ((*n).clone(), *i));
        let stray = holders_of
            .get(
                g.data_addresses
                    .iter()
                    .position(|d| *d == mv.addr)
                    .unwrap_or(usize::MAX),
            )
            .is_some_and(|h| !h.is_empty());
        let cause = match from.as_ref() {
            // On an interface that is no member any more: it moves to one.
            None if stray => "rebalance",
            None if inp.applied.placed.contains_key(&mv.addr) => "restored",
            None => "placement",
            Some((f, _)) => match index.view(f).map(|v| v.state) {
                Some(IfState::Failed) => "failure",
                Some(IfState::Offline) => "offline",
                _ => "rebalance",
            },
        };
        out.push(Action::Place {
            group: g.name.clone(),
            addr: mv.addr,
            from,
            to: (mv.to.clone(), to),
            cause,
        });
    }
    // A data address lives on one member: copies elsewhere in the group go (after the moves).
    for (i, d) in g.data_addresses.iter().enumerate() {
        let home = moves
            .iter()
            .find(|m| m.addr == *d)
            .map(|m| m.to.clone())
            .or_else(|| current.at.get(&i).cloned());
        if home.is_none() {
            // No home (no active member): every copy stays, nothing is gained by removing it.
            continue;
        }
        for (n, idx) in &holders_of[i] {
            let moving_away = moves
                .iter()
                .any(|m| m.addr == *d && m.from.as_ref() == Some(n));
            if home.as_ref() != Some(n) && !moving_away {
                out.push(Action::DelAddress {
                    addr: *d,
                    ifindex: *idx,
                    ifname: n.clone(),
                    stale: false,
                });
            }
        }
    }
}

/// Data addresses ipmpd placed under an earlier configuration that none asks for now.
fn stale_addresses(inp: &Input<'_>, out: &mut Vec<Action>) {
    for (addr, member) in &inp.applied.placed {
        let wanted = inp
            .desired
            .groups
            .iter()
            .any(|g| g.data_addresses.contains(addr));
        if wanted {
            continue;
        }
        let holders: Vec<u32> = inp.observed.holders(*addr).collect();
        for idx in &holders {
            let ifname = inp
                .observed
                .links
                .get(idx)
                .map_or_else(|| member.clone(), |l| l.name.clone());
            out.push(Action::DelAddress {
                addr: *addr,
                ifindex: *idx,
                ifname,
                stale: true,
            });
        }
        if holders.is_empty() {
            out.push(Action::Forget { addr: *addr });
        }
        out.push(Action::Report {
            event: "ipmultipath.host.stale",
            params: json!({ "what": format!("data address {addr}") }),
        });
    }
}
