//! The pure half of the link-state mirror: observations in (with `now`), transitions out.

use std::collections::HashMap;

use agent_common::link::{LinkState, source};
use serde::Serialize;

use crate::netlink::link::{IFF_UP, LinkObservation};

/// What changed on one interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkChange {
    /// First observation after tracking started.
    Initial,
    /// Carrier lost.
    Down,
    /// Carrier regained.
    Up,
    /// Carrier went away and came back (or the reverse) between two observations; `transitions`
    /// is how many carrier changes the kernel counted meanwhile.
    Flapped { transitions: u64 },
    /// The interface was deleted.
    Removed,
}

/// One change with the state after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LinkEvent {
    pub ifindex: u32,
    pub change: LinkChange,
    pub carrier: bool,
    pub flaps: u32,
    pub at_ns: u64,
    /// When userspace learnt of it (the watcher sets it as it reports the event); `at_ns` for a
    /// poll or a notification, later than `at_ns` for the hook, which stamps the change itself.
    pub seen_ns: u64,
    /// One of [`agent_common::link::source`].
    pub source: u32,
}

#[derive(Debug, Default)]
struct Entry {
    state: LinkState,
    /// Carrier transitions the kernel had counted at the newest observation that carried counters.
    counted: Option<u64>,
    /// Transitions reported since then from observations without counters (the ethtool poll); the
    /// kernel's count that matches the mirror's state is `counted + unconfirmed`.
    unconfirmed: u64,
    seen: bool,
}

/// Tracked interfaces and their link state.
#[derive(Debug, Default)]
pub struct LinkMirror {
    entries: HashMap<u32, Entry>,
    /// Interfaces whose administrative flag changed without a carrier change: no event to
    /// report, but the stored state (what `bpftool` shows) must follow.
    restated: Vec<u32>,
}

/// Human name of a [`source`] value.
#[must_use]
pub fn source_name(s: u32) -> &'static str {
    match s {
        source::INITIAL => "initial dump",
        source::NOTIFICATION => "rtnetlink notification",
        source::POLL => "carrier poll",
        source::KERNEL_HOOK => "kernel hook",
        _ => "none",
    }
}

impl LinkMirror {
    /// Starts tracking `ifindex`; the first observation reports [`LinkChange::Initial`].
    pub fn track(&mut self, ifindex: u32) {
        self.entries.entry(ifindex).or_default();
    }

    /// Stops tracking `ifindex`.
    pub fn untrack(&mut self, ifindex: u32) {
        self.entries.remove(&ifindex);
        self.restated.retain(|&i| i != ifindex);
    }

    /// The next interface whose state changed without an event (its administrative flag), to be
    /// stored again; each is returned once.
    pub fn pop_restated(&mut self) -> Option<u32> {
        self.restated.pop()
    }

    /// Every tracked interface, in no order.
    pub fn tracked(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries.keys().copied()
    }

    /// How many interfaces are tracked.
    #[must_use]
    pub fn tracked_count(&self) -> usize {
        self.entries.len()
    }

    /// Whether `ifindex` is tracked.
    #[must_use]
    pub fn is_tracked(&self, ifindex: u32) -> bool {
        self.entries.contains_key(&ifindex)
    }

    /// Current state of `ifindex`.
    #[must_use]
    pub fn state(&self, ifindex: u32) -> Option<LinkState> {
        self.entries
            .get(&ifindex)
            .filter(|e| e.seen)
            .map(|e| e.state)
    }

    /// Folds in a carrier-only observation (the ethtool link state): no flags, no counters.
    pub fn observe_carrier(
        &mut self,
        ifindex: u32,
        carrier: bool,
        now_ns: u64,
        src: u32,
    ) -> Option<LinkEvent> {
        // ethtool says nothing of IFF_UP: keep what the last full observation said.
        let admin_up = self
            .entries
            .get(&ifindex)
            .is_none_or(|e| !e.seen || e.state.admin_up != 0);
        let flags = if admin_up { IFF_UP } else { 0 }
            | if carrier {
                crate::netlink::link::IFF_LOWER_UP
            } else {
                0
            };
        self.observe(
            &LinkObservation {
                ifindex,
                flags,
                carrier_changes: None,
                deleted: false,
            },
            now_ns,
            src,
        )
    }

    /// Folds in one observation made at `now_ns` from `src`; returns the change, if any.
    ///
    /// The kernel's carrier counters only grow, so an observation that counted fewer changes than
    /// one already folded in is stale (a notification the poll overtook) and is ignored; one that
    /// counted more reveals every transition in between, even those no observation caught.
    pub fn observe(&mut self, obs: &LinkObservation, now_ns: u64, src: u32) -> Option<LinkEvent> {
        let entry = self.entries.get_mut(&obs.ifindex)?;
        let carrier = obs.carrier();
        let admin_up = u32::from(obs.flags & IFF_UP != 0);
        if obs.deleted {
            entry.state.carrier = 0;
            entry.state.last_change_ns = now_ns;
            entry.state.source = src;
            return Some(event(obs.ifindex, LinkChange::Removed, &entry.state));
        }
        if !entry.seen {
            entry.seen = true;
            entry.counted = obs.carrier_changes;
            entry.state = LinkState {
                carrier: u32::from(carrier),
                flaps: 0,
                last_change_ns: now_ns,
                source: source::INITIAL,
                admin_up,
                ..LinkState::default()
            };
            return Some(event(obs.ifindex, LinkChange::Initial, &entry.state));
        }
        let changed = (entry.state.carrier != 0) != carrier;
        let counted_delta = match (entry.counted, obs.carrier_changes) {
            (Some(old), Some(new)) => {
                let known = old + entry.unconfirmed;
                if new < known && changed {
                    // Older than what the mirror already knows: a notification the poll overtook.
                    return None;
                }
                entry.counted = Some(new);
                entry.unconfirmed = 0;
                new.saturating_sub(known)
            }
            (None, Some(new)) => {
                entry.counted = Some(new);
                0
            }
            (_, None) => {
                entry.unconfirmed += u64::from(changed);
                0
            }
        };
        let transitions = counted_delta.max(u64::from(changed));
        if entry.state.admin_up != admin_up {
            entry.state.admin_up = admin_up;
            // Brought up while the far end is still down: no carrier change to report, but
            // the stored flag would otherwise keep saying "down" until the next one.
            if transitions == 0 && !self.restated.contains(&obs.ifindex) {
                self.restated.push(obs.ifindex);
            }
        }
        if transitions == 0 {
            return None;
        }
        entry.state.carrier = u32::from(carrier);
        entry.state.flaps = entry
            .state
            .flaps
            .saturating_add(u32::try_from(transitions).unwrap_or(u32::MAX));
        entry.state.last_change_ns = now_ns;
        entry.state.source = src;
        let change = match (changed, carrier) {
            (true, true) => LinkChange::Up,
            (true, false) => LinkChange::Down,
            (false, _) => LinkChange::Flapped { transitions },
        };
        Some(event(obs.ifindex, change, &entry.state))
    }
}

fn event(ifindex: u32, change: LinkChange, s: &LinkState) -> LinkEvent {
    LinkEvent {
        ifindex,
        change,
        carrier: s.carrier != 0,
        flaps: s.flaps,
        at_ns: s.last_change_ns,
        seen_ns: s.last_change_ns,
        source: s.source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::link::IFF_LOWER_UP;

    fn obs(carrier: bool, changes: u64) -> LinkObservation {
        LinkObservation {
            ifindex: 5,
            flags: IFF_UP | if carrier { IFF_LOWER_UP } else { 0 },
            carrier_changes: Some(changes),
            deleted: false,
        }
    }

    fn mirror() -> LinkMirror {
        let mut m = LinkMirror::default();
        m.track(5);
        assert_eq!(
            m.observe(&obs(true, 1), 0, source::INITIAL).unwrap().change,
            LinkChange::Initial
        );
        m
    }

    #[test]
    fn untracked_interfaces_are_ignored() {
        let mut m = LinkMirror::default();
        assert_eq!(m.observe(&obs(true, 1), 0, source::POLL), None);
    }

    #[test]
    fn down_then_up() {
        let mut m = mirror();
        let e = m.observe(&obs(false, 2), 10, source::POLL).unwrap();
        assert_eq!(
            (e.change, e.carrier, e.flaps, e.at_ns, e.source),
            (LinkChange::Down, false, 1, 10, source::POLL)
        );
        assert_eq!(m.observe(&obs(false, 2), 11, source::POLL), None, "no news");
        let e = m.observe(&obs(true, 3), 20, source::NOTIFICATION).unwrap();
        assert_eq!((e.change, e.flaps), (LinkChange::Up, 2));
        assert_eq!(m.state(5).unwrap().carrier, 1);
    }

    #[test]
    fn a_flap_between_two_polls_is_counted() {
        let mut m = mirror();
        let e = m.observe(&obs(true, 3), 10, source::POLL).unwrap();
        assert_eq!(e.change, LinkChange::Flapped { transitions: 2 });
        assert_eq!(e.flaps, 2);
    }

    #[test]
    fn a_stale_notification_is_ignored() {
        let mut m = mirror();
        m.observe(&obs(false, 2), 10, source::POLL).unwrap();
        m.observe(&obs(true, 3), 20, source::POLL).unwrap();
        // The notification for the first transition arrives late, saying "down".
        assert_eq!(m.observe(&obs(false, 2), 30, source::NOTIFICATION), None);
        assert_eq!(m.state(5).unwrap().carrier, 1);
    }

    #[test]
    fn carrier_only_observations_and_counters_agree() {
        let mut m = mirror();
        // The fast ethtool poll sees down and up...
        assert_eq!(
            m.observe_carrier(5, false, 10, source::POLL)
                .unwrap()
                .change,
            LinkChange::Down
        );
        assert_eq!(
            m.observe_carrier(5, true, 20, source::POLL).unwrap().change,
            LinkChange::Up
        );
        // ...and the counter dump confirms those two transitions: nothing new.
        assert_eq!(m.observe(&obs(true, 3), 30, source::POLL), None);
        assert_eq!(m.state(5).unwrap().flaps, 2);
        // A stale notification from before the flap is ignored.
        m.observe_carrier(5, false, 40, source::POLL).unwrap();
        assert_eq!(
            m.observe(&obs(true, 3), 41, source::NOTIFICATION),
            None,
            "count 3 predates the new loss"
        );
        // A flap the fast poll missed shows in the counters.
        m.observe_carrier(5, true, 50, source::POLL).unwrap();
        let e = m.observe(&obs(true, 7), 60, source::POLL).unwrap();
        assert_eq!(e.change, LinkChange::Flapped { transitions: 2 });
        assert_eq!(e.flaps, 6);
    }

    #[test]
    fn the_hooks_record_comes_first_and_the_late_notification_is_no_news() {
        let mut m = mirror();
        // The hook stamps the change at 100; the watcher folds it in at 130.
        let e = m
            .observe_carrier(5, false, 100, source::KERNEL_HOOK)
            .unwrap();
        assert_eq!(
            (e.change, e.at_ns, e.source),
            (LinkChange::Down, 100, source::KERNEL_HOOK)
        );
        // linkwatch's notification of the same change, 400 ms later: already known.
        assert_eq!(
            m.observe(&obs(false, 2), 400_000_130, source::NOTIFICATION),
            None
        );
        // The hook sees it come back; a notification still saying "down" (count 2) is stale.
        m.observe_carrier(5, true, 500, source::KERNEL_HOOK)
            .unwrap();
        assert_eq!(m.observe(&obs(false, 2), 600, source::NOTIFICATION), None);
        let st = m.state(5).unwrap();
        assert_eq!(
            (st.carrier, st.flaps, st.source),
            (1, 2, source::KERNEL_HOOK)
        );
    }

    #[test]
    fn kernels_without_counters_fall_back_to_the_flag() {
        let mut m = LinkMirror::default();
        m.track(5);
        let no = |c: bool| LinkObservation {
            carrier_changes: None,
            ..obs(c, 0)
        };
        m.observe(&no(true), 0, source::INITIAL);
        assert_eq!(
            m.observe(&no(false), 5, source::POLL).unwrap().change,
            LinkChange::Down
        );
        assert_eq!(m.observe(&no(false), 6, source::POLL), None);
    }

    #[test]
    fn an_interface_brought_up_without_carrier_is_restated_without_an_event() {
        let mut m = LinkMirror::default();
        m.track(5);
        let admin_down = LinkObservation {
            flags: 0,
            ..obs(false, 0)
        };
        m.observe(&admin_down, 0, source::INITIAL).unwrap();
        assert_eq!(m.state(5).unwrap().admin_up, 0);
        let up_no_carrier = LinkObservation {
            flags: IFF_UP,
            ..obs(false, 0)
        };
        assert_eq!(m.observe(&up_no_carrier, 5, source::NOTIFICATION), None);
        assert_eq!(m.state(5).unwrap().admin_up, 1);
        assert_eq!(m.observe(&up_no_carrier, 6, source::POLL), None);
        assert_eq!(m.pop_restated(), Some(5), "restated once");
        assert_eq!(m.pop_restated(), None);
        // A change with an event carries the new flag itself: nothing to restate.
        m.observe(&admin_down, 7, source::NOTIFICATION);
        m.untrack(5);
        assert_eq!(m.pop_restated(), None, "untracked: nothing to store");
        m.track(5);
        m.observe(&obs(true, 1), 8, source::INITIAL).unwrap();
        let downed = LinkObservation {
            flags: 0,
            ..obs(false, 2)
        };
        assert_eq!(
            m.observe(&downed, 9, source::NOTIFICATION).unwrap().change,
            LinkChange::Down
        );
        assert_eq!(m.state(5).unwrap().admin_up, 0);
        assert_eq!(m.pop_restated(), None);
    }

    #[test]
    fn admin_down_means_no_carrier_and_deletion_is_reported() {
        let mut m = mirror();
        let admin_down = LinkObservation {
            flags: 0,
            ..obs(true, 1)
        };
        assert_eq!(
            m.observe(&admin_down, 3, source::POLL).unwrap().change,
            LinkChange::Down
        );
        let gone = LinkObservation {
            deleted: true,
            ..obs(false, 1)
        };
        assert_eq!(
            m.observe(&gone, 4, source::NOTIFICATION).unwrap().change,
            LinkChange::Removed
        );
    }
}
