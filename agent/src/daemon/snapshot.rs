//! Building the ipmpstat snapshot from the daemon's state.

use crate::{
    control::snapshot::{
        AddressRow, GroupRow, InterfaceRow, RejectRow, Snapshot, TargetRow, fdt, flags,
    },
    engine::{
        IfState,
        views::{if_state, probe_state},
    },
};

impl super::Daemon {
    /// One consistent snapshot (the daemon is single-threaded: nothing changes while it is built).
    pub(super) fn snapshot(&self) -> Snapshot {
        let views = self.engine.interfaces();
        let groups = self.engine.groups();
        let targets = self.engine.targets();
        // `ipmpd stat -r` lists what was refused; rows at zero would only hide it.
        let mut rejected = self.out.counts.rejected_rows();
        rejected.retain(|r| r.count > 0);
        rejected.extend(
            self.out
                .control
                .refusals()
                .by_reason()
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(reason, count)| RejectRow {
                    source: "control".into(),
                    interface: String::new(),
                    reason: reason.into(),
                    count,
                }),
        );
        let mut snap = Snapshot {
            datapath: Some(self.features.clone()),
            rejected,
            ..Snapshot::default()
        };
        for g in &groups {
            let members: Vec<_> = views.iter().filter(|v| v.group == g.name).collect();
            let mut list: Vec<String> = members
                .iter()
                .filter(|v| v.active)
                .map(|v| v.ifname.clone())
                .collect();
            list.extend(
                members
                    .iter()
                    .filter(|v| {
                        !v.active && matches!(v.state, IfState::Running | IfState::NoTargets)
                    })
                    .map(|v| format!("({})", v.ifname)),
            );
            list.extend(
                members
                    .iter()
                    .filter(|v| matches!(v.state, IfState::Failed | IfState::Offline))
                    .map(|v| format!("[{}]", v.ifname)),
            );
            snap.groups.push(GroupRow {
                group: g.name.clone(),
                groupname: g.name.clone(),
                state: format!("{:?}", g.state).to_lowercase(),
                fdt: if g.probing {
                    fdt(g.fdt_ns)
                } else {
                    String::new()
                },
                interfaces: list.join(" "),
            });
        }
        for v in &views {
            let probe_enabled = self.engine.probe_enabled(&v.ifname);
            snap.interfaces.push(InterfaceRow {
                interface: v.ifname.clone(),
                active: if v.active { "yes" } else { "no" }.into(),
                group: v.group.clone(),
                flags: flags(
                    v.inactive,
                    v.standby,
                    v.state == IfState::Offline,
                    v.hwaddr_dup,
                ),
                link: if v.link_up { "up" } else { "down" }.into(),
                probe: probe_state(v.state, probe_enabled, v.probing).into(),
                state: if_state(v.state).into(),
            });
            let rows: Vec<TargetRow> = targets
                .iter()
                .filter(|t| t.ifname == v.ifname)
                .map(|t| TargetRow {
                    interface: t.ifname.clone(),
                    mode: if t.targets.is_empty() && t.mode == "routes" {
                        "multicast".into()
                    } else {
                        t.mode.into()
                    },
                    testaddr: t.test_addr.to_string(),
                    targets: t
                        .targets
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" "),
                })
                .collect();
            if rows.is_empty() {
                snap.targets.push(TargetRow {
                    interface: v.ifname.clone(),
                    mode: "disabled".into(),
                    testaddr: String::new(),
                    targets: String::new(),
                });
            }
            snap.targets.extend(rows);
        }
        for g in &self.rec.desired.groups {
            // Outbound: the active members, in the group file's order.
            let outbound: Vec<&str> = self
                .rec
                .desired
                .interfaces
                .iter()
                .filter(|ic| ic.group == g.name)
                .filter(|ic| views.iter().any(|v| v.ifname == ic.name && v.active))
                .map(|ic| ic.name.as_str())
                .collect();
            for d in &g.data_addresses {
                // Inbound: the member that has it now.
                let inbound = self
                    .rec
                    .host
                    .observed
                    .holders(*d)
                    .find_map(|i| self.io.members.by_ifindex(i))
                    .map(|m| m.ifname.clone())
                    .unwrap_or_default();
                let up = !inbound.is_empty();
                snap.addresses.push(AddressRow {
                    address: d.addr.to_string(),
                    state: if up { "up" } else { "down" }.into(),
                    group: g.name.clone(),
                    inbound,
                    outbound: if up {
                        outbound.join(" ")
                    } else {
                        String::new()
                    },
                });
            }
        }
        snap
    }
}
