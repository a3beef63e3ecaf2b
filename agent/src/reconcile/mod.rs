//! The reconciler: the desired state (both configuration files) and the observed state (links,
//! addresses, routes and rules from rtnetlink; the engine's verdicts; the pins a previous process
//! left) in, the actions that bring the host to the desired state out. Pure and deterministic,
//! like the engine: no sockets, no clock (`now` is an argument), so every rule is a unit test.
//!
//! Start-up is the first pass from nothing; a reload is a pass with a new desired state; an
//! interface that appears, vanishes or comes back with a new index, an address that comes or goes,
//! a route another program removed: each is just a new observation, and the next pass answers it.

pub mod action;
pub mod applied;
mod dataplane;
pub mod desired;
mod index;
mod members;
pub mod observed;
#[cfg(test)]
mod tests;

pub use self::{
    action::Action,
    applied::{Applied, Member, Memory},
    desired::Desired,
    observed::Observed,
};
use crate::engine::InterfaceView;

/// in.mpathd's `TESTADDR_CONF_TIME`: how long a member may lack a test address before it is
/// reported.
pub const TESTADDR_CONF_TIME_NS: u64 = 20_000_000_000;
/// in.mpathd's `IF_SCAN_INTERVAL`: the host is rescanned (full dumps) and every check (plumbing
/// among them) repeated at least this often.
pub const IF_SCAN_INTERVAL_NS: u64 = 20_000_000_000;

/// What one pass looks at.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    pub desired: &'a Desired,
    pub observed: &'a Observed,
    pub applied: &'a Applied,
    /// The engine's view of every member it tracks.
    pub engine: &'a [InterfaceView],
    /// Interfaces that hold programs a previous process pinned and this one does not track.
    pub stray_pins: &'a [u32],
}

/// What one pass decided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// In the order to carry them out: leave, join, addresses, routes and rules, clean-up, reports.
    pub actions: Vec<Action>,
    /// When the next pass is due even if nothing is observed (a grace period ends).
    pub due_ns: Option<u64>,
}

/// One pass: compares and decides. `memory` holds the reconciler's timers and complaints between
/// passes.
#[must_use]
pub fn reconcile(input: &Input<'_>, memory: &mut Memory, now_ns: u64) -> Plan {
    let mut plan = Plan::default();
    let index = index::Index::new(input);
    members::reconcile(input, &index, memory, now_ns, &mut plan);
    dataplane::reconcile(input, &index, &mut plan);
    // Reports last: they describe what the rest did.
    plan.actions
        .sort_by_key(|a| matches!(a, Action::Report { .. }));
    plan
}
