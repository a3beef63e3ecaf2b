//! What the reconciler asks the daemon to do, in the order it must be done.

use std::net::IpAddr;

use serde_json::Value;

use crate::{
    engine::MemberSpec,
    ip::Prefix,
    netlink::{route::Route, rule::Rule},
};

/// One step towards the desired state.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Stop tracking a member: close its probe sockets, take it out of the engine (keeping its
    /// prior state by name), stop watching its link and, when `datapath`, detach its programs.
    Untrack {
        ifname: String,
        ifindex: u32,
        datapath: bool,
        reason: &'static str,
    },
    /// Detach programs a previous process left on an interface nobody tracks.
    Detach { ifindex: u32 },
    /// Start tracking a member: attach the datapath (`datapath`), watch its link, open sockets for
    /// `spec.test_addrs`, add it to the engine (restoring a prior state it had) with carrier
    /// `link_up`. `kind` is the device's kind ("veth", ...; `None` for a NIC), which chooses
    /// where probe replies are taken.
    Track {
        spec: MemberSpec,
        ifindex: u32,
        hwaddr: Option<[u8; 6]>,
        kind: Option<String>,
        link_up: bool,
        datapath: bool,
    },
    /// The member's usable test addresses changed: open sockets for `open`, close those of
    /// `close`, and probe from `test_addrs` (towards the configured `targets`).
    SetProbes {
        ifname: String,
        ifindex: u32,
        open: Vec<IpAddr>,
        close: Vec<IpAddr>,
        test_addrs: Vec<IpAddr>,
        targets: Vec<IpAddr>,
    },
    /// The member's hardware address changed (a duplicate in its group may appear or clear).
    SetHwaddr {
        ifname: String,
        hwaddr: Option<[u8; 6]>,
    },
    /// The routing table gives the member these router targets in one family.
    SetRouterTargets {
        ifname: String,
        v4: bool,
        targets: Vec<IpAddr>,
    },
    /// Put data address `addr` on `to` (and take it off `from` afterwards), then announce it.
    Place {
        group: String,
        addr: Prefix,
        from: Option<(String, u32)>,
        to: (String, u32),
        /// failure, offline, rebalance, placement, or restored.
        cause: &'static str,
    },
    /// Remove `addr` from `ifindex`: a copy beside its home, or a data address no configuration
    /// asks for any more.
    DelAddress {
        addr: Prefix,
        ifindex: u32,
        ifname: String,
        stale: bool,
    },
    /// Forget a data address ipmpd placed that no configuration asks for and no interface has.
    Forget { addr: Prefix },
    /// Create or replace a route; `restored` when someone else had removed it.
    SetRoute { route: Route, restored: bool },
    /// Remove a route ipmpd made that nothing asks for now.
    DelRoute { route: Route },
    /// Add a rule; `restored` when someone else had removed it.
    AddRule { rule: Rule, restored: bool },
    /// Remove a rule ipmpd made that nothing asks for now.
    DelRule { rule: Rule },
    /// Log a catalogue event.
    Report { event: &'static str, params: Value },
}
