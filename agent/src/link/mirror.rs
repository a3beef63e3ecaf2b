//! The pure half of the link-state mirror: observations in (with `now`), transitions out.

use std::collections::{HashMap, VecDeque};

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

/// One device's carrier as its own observations say, with the kernel's count of its changes.
#[derive(Clone, Debug, Default)]
struct Carrier {
    carrier: bool,
    /// Carrier transitions the kernel had counted at the newest observation that carried counters.
    counted: Option<u64>,
    /// Transitions reported since then from observations without counters (the ethtool poll); the
    /// kernel's count that matches `carrier` is `counted + unconfirmed`.
    unconfirmed: u64,
    seen: bool,
}

/// What one observation did to a [`Carrier`].
enum Fold {
    /// The first observation: the carrier it found.
    First,
    /// Older than what is already known (a notification the poll overtook): ignored.
    Stale,
    /// `transitions` carrier changes since the last observation (0: no news).
    Changed { transitions: u64 },
}

impl Carrier {
    /// Folds in `carrier`, with the kernel's count of changes when the observation had one.
    ///
    /// The kernel's carrier counters only grow, so an observation that counted fewer changes than
    /// one already folded in is stale; one that counted more reveals every transition in between,
    /// even those no observation caught.
    fn fold(&mut self, carrier: bool, counted: Option<u64>) -> Fold {
        if !self.seen {
            *self = Self {
                carrier,
                counted,
                unconfirmed: 0,
                seen: true,
            };
            return Fold::First;
        }
        let changed = self.carrier != carrier;
        let counted_delta = match (self.counted, counted) {
            (Some(old), Some(new)) => {
                let known = old + self.unconfirmed;
                if new < known && changed {
                    return Fold::Stale;
                }
                self.counted = Some(new);
                self.unconfirmed = 0;
                new.saturating_sub(known)
            }
            (None, Some(new)) => {
                self.counted = Some(new);
                0
            }
            (_, None) => {
                self.unconfirmed += u64::from(changed);
                0
            }
        };
        self.carrier = carrier;
        Fold::Changed {
            transitions: counted_delta.max(u64::from(changed)),
        }
    }
}

#[derive(Debug, Default)]
struct Entry {
    state: LinkState,
    /// The interface's own carrier flag; `state.carrier` also needs its lower device's.
    own: Carrier,
    /// The device below (VLAN, macvlan, ipvlan), whose carrier the kernel copies to this one only
    /// once linkwatch handles the lower device: up to a second late on a NIC.
    lower: Option<u32>,
    /// The kernel notifies its carrier changes at once ([`LinkObservation::prompt`]).
    prompt: bool,
}

/// What the mirror asks of its owner, in the order it arose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update {
    /// A tracked interface changed: store its state and report the change.
    Event(LinkEvent),
    /// Store the state of this index again, with nothing to report: an administrative flag that
    /// changed without a carrier change, a device below members newly watched (the kernel hook
    /// mirrors only devices that have an entry), a member untracked that stays a device below.
    Store(u32),
    /// Forget the stored state of this index: no longer watched.
    Forget(u32),
}

/// A device below tracked interfaces.
#[derive(Debug, Default)]
struct Lower {
    link: Carrier,
    /// The kernel notifies its carrier changes at once ([`LinkObservation::prompt`]).
    prompt: bool,
    /// Tracked interfaces stacked on it.
    uppers: Vec<u32>,
}

/// Tracked interfaces and their link state.
#[derive(Debug, Default)]
pub struct LinkMirror {
    entries: HashMap<u32, Entry>,
    /// Devices below tracked interfaces, by index.
    lowers: HashMap<u32, Lower>,
    /// What the owner is yet to do, oldest first (see [`Self::pop_update`]).
    updates: VecDeque<Update>,
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

    /// Stops tracking `ifindex`: its stored state is forgotten, or stored again when it stays
    /// watched as the device below another interface. So is a device below it that nothing else
    /// needs.
    pub fn untrack(&mut self, ifindex: u32) {
        let Some(entry) = self.entries.remove(&ifindex) else {
            return;
        };
        self.unwatch(ifindex);
        let Some(lower) = entry.lower else {
            return;
        };
        let Some(l) = self.lowers.get_mut(&lower) else {
            return;
        };
        l.uppers.retain(|&u| u != ifindex);
        if l.uppers.is_empty() {
            self.lowers.remove(&lower);
            self.unwatch(lower);
        }
    }

    /// `ifindex` lost one reason to be watched: what is queued for it is moot, and its stored
    /// state is forgotten unless another reason remains.
    fn unwatch(&mut self, ifindex: u32) {
        if self.entries.contains_key(&ifindex) {
            return;
        }
        self.updates.retain(|u| match *u {
            Update::Event(e) => e.ifindex != ifindex,
            Update::Store(i) | Update::Forget(i) => i != ifindex,
        });
        self.updates
            .push_back(if self.lowers.contains_key(&ifindex) {
                Update::Store(ifindex)
            } else {
                Update::Forget(ifindex)
            });
    }

    /// The oldest update the owner is yet to apply; each is returned once.
    pub fn pop_update(&mut self) -> Option<Update> {
        self.updates.pop_front()
    }

    /// Every tracked interface, in no order.
    pub fn tracked(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries.keys().copied()
    }

    /// Every device whose carrier the poll must read: the tracked interfaces and the devices
    /// below them, but for those whose changes the kernel notifies at once (a poll would find
    /// nothing sooner). A device not yet observed is polled.
    pub fn polled(&self) -> impl Iterator<Item = u32> + '_ {
        let tracked = self
            .entries
            .iter()
            .filter(|(_, e)| !e.prompt)
            .map(|(&i, _)| i);
        let below = self
            .lowers
            .iter()
            .filter(|(i, l)| !l.prompt && !self.entries.contains_key(i))
            .map(|(&i, _)| i);
        tracked.chain(below)
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

    /// Current state of `ifindex`: a tracked interface, or a device below one (its own carrier).
    #[must_use]
    pub fn state(&self, ifindex: u32) -> Option<LinkState> {
        if let Some(e) = self.entries.get(&ifindex) {
            return e.own.seen.then_some(e.state);
        }
        let l = self.lowers.get(&ifindex)?;
        Some(LinkState {
            carrier: u32::from(!l.link.seen || l.link.carrier),
            ..LinkState::default()
        })
    }

    /// Folds in a carrier-only observation (the ethtool link state): no flags, no counters.
    pub fn observe_carrier(&mut self, ifindex: u32, carrier: bool, now_ns: u64, src: u32) {
        // ethtool says nothing of IFF_UP: keep what the last full observation said.
        let admin_up = self
            .entries
            .get(&ifindex)
            .is_none_or(|e| !e.own.seen || e.state.admin_up != 0);
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
                lower: None,
                prompt: None,
            },
            now_ns,
            src,
        );
    }

    /// Folds in one observation made at `now_ns` from `src`, queueing what it changed (see
    /// [`Self::pop_update`]): the interface's own change if it is tracked, then those of the
    /// tracked interfaces stacked on it.
    pub fn observe(&mut self, obs: &LinkObservation, now_ns: u64, src: u32) {
        if let Some(ev) = self.observe_own(obs, now_ns, src) {
            self.updates.push_back(Update::Event(ev));
        }
        if self.lowers.contains_key(&obs.ifindex) {
            self.observe_lower(obs, now_ns, src);
        }
    }

    /// An observation of a tracked interface: its change, if any.
    fn observe_own(&mut self, obs: &LinkObservation, now_ns: u64, src: u32) -> Option<LinkEvent> {
        let entry = self.entries.get_mut(&obs.ifindex)?;
        let admin_up = u32::from(obs.flags & IFF_UP != 0);
        if obs.deleted {
            entry.own.carrier = false;
            entry.state.carrier = 0;
            entry.state.last_change_ns = now_ns;
            entry.state.source = src;
            return Some(event(obs.ifindex, LinkChange::Removed, &entry.state));
        }
        if let Some(prompt) = obs.prompt {
            entry.prompt = prompt;
        }
        if let (None, Some(lower)) = (entry.lower, obs.lower) {
            // A device's kind, and with it what it is stacked on, is fixed at its creation.
            entry.lower = Some(lower);
            // A tracked device below starts with what its own observations already say.
            let known = self.entries.get(&lower).map(|e| (e.own.clone(), e.prompt));
            let l = self.lowers.entry(lower).or_insert_with(|| {
                let (link, prompt) = known.clone().unwrap_or_default();
                Lower {
                    link,
                    prompt,
                    uppers: Vec::new(),
                }
            });
            l.uppers.push(obs.ifindex);
            if l.uppers.len() == 1 && known.is_none() {
                self.updates.push_back(Update::Store(lower));
            }
        }
        let entry = self.entries.get_mut(&obs.ifindex)?;
        let lower_carrier = lower_carrier(&self.lowers, entry.lower);
        let transitions = match entry.own.fold(obs.carrier(), obs.carrier_changes) {
            Fold::Stale => return None,
            Fold::First => {
                entry.state = LinkState {
                    carrier: u32::from(entry.own.carrier && lower_carrier),
                    flaps: 0,
                    last_change_ns: now_ns,
                    source: source::INITIAL,
                    admin_up,
                    ..LinkState::default()
                };
                return Some(event(obs.ifindex, LinkChange::Initial, &entry.state));
            }
            // Changes of its own flag are hidden while the device below has no carrier.
            Fold::Changed { transitions } if lower_carrier => transitions,
            Fold::Changed { .. } => 0,
        };
        if entry.state.admin_up != admin_up {
            entry.state.admin_up = admin_up;
            // Brought up while the far end is still down: no carrier change to report, but
            // the stored flag would otherwise keep saying "down" until the next one. (The flag
            // changes once per real change, so this is queued no more often than it changes.)
            if transitions == 0 {
                self.updates.push_back(Update::Store(obs.ifindex));
            }
        }
        let carrier = entry.own.carrier && lower_carrier;
        transition(
            obs.ifindex,
            &mut entry.state,
            carrier,
            transitions,
            now_ns,
            src,
        )
    }

    /// An observation of a device below tracked interfaces: their carrier is its carrier and
    /// their own, so a change of its own shows in each whose own flag is up.
    fn observe_lower(&mut self, obs: &LinkObservation, now_ns: u64, src: u32) {
        if obs.deleted {
            self.lower_gone(obs.ifindex, now_ns, src);
            return;
        }
        let Some(l) = self.lowers.get_mut(&obs.ifindex) else {
            return;
        };
        if let Some(prompt) = obs.prompt {
            l.prompt = prompt;
        }
        let was = !l.link.seen || l.link.carrier;
        let transitions = match l.link.fold(obs.carrier(), obs.carrier_changes) {
            Fold::Stale => return,
            Fold::First => u64::from(was != l.link.carrier),
            Fold::Changed { transitions } => transitions,
        };
        let carrier = l.link.carrier;
        for &upper in &l.uppers {
            let Some(e) = self.entries.get_mut(&upper) else {
                continue;
            };
            if !e.own.seen || !e.own.carrier {
                continue;
            }
            if let Some(ev) = transition(upper, &mut e.state, carrier, transitions, now_ns, src) {
                self.updates.push_back(Update::Event(ev));
            }
        }
    }

    /// A device below members left this namespace: deleted (the devices above go with it, and
    /// say so) or moved to another (they stay, with only their own carrier to go by).
    fn lower_gone(&mut self, ifindex: u32, now_ns: u64, src: u32) {
        let Some(l) = self.lowers.remove(&ifindex) else {
            return;
        };
        for upper in l.uppers {
            let Some(e) = self.entries.get_mut(&upper) else {
                continue;
            };
            e.lower = None;
            if e.own.seen {
                let own = e.own.carrier;
                if let Some(ev) = transition(upper, &mut e.state, own, 0, now_ns, src) {
                    self.updates.push_back(Update::Event(ev));
                }
            }
        }
        self.unwatch(ifindex);
    }
}

/// The carrier of the device below (`None`: not stacked), up until observed.
fn lower_carrier(lowers: &HashMap<u32, Lower>, lower: Option<u32>) -> bool {
    lower
        .and_then(|l| lowers.get(&l))
        .is_none_or(|l| !l.link.seen || l.link.carrier)
}

/// Moves `state` to `carrier` after `transitions` changes (at least one if the carrier differs);
/// the event, if anything changed.
fn transition(
    ifindex: u32,
    state: &mut LinkState,
    carrier: bool,
    transitions: u64,
    now_ns: u64,
    src: u32,
) -> Option<LinkEvent> {
    let changed = (state.carrier != 0) != carrier;
    let transitions = transitions.max(u64::from(changed));
    if transitions == 0 {
        return None;
    }
    state.carrier = u32::from(carrier);
    state.flaps = state
        .flaps
        .saturating_add(u32::try_from(transitions).unwrap_or(u32::MAX));
    state.last_change_ns = now_ns;
    state.source = src;
    let change = match (changed, carrier) {
        (true, true) => LinkChange::Up,
        (true, false) => LinkChange::Down,
        (false, _) => LinkChange::Flapped { transitions },
    };
    Some(event(ifindex, change, state))
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

    impl LinkMirror {
        /// Observes, then takes the interface's own change from the queue.
        fn see(&mut self, obs: &LinkObservation, now_ns: u64, src: u32) -> Option<LinkEvent> {
            self.observe(obs, now_ns, src);
            self.take_event(|e| e.ifindex == obs.ifindex)
        }

        fn see_carrier(
            &mut self,
            ifindex: u32,
            carrier: bool,
            now_ns: u64,
            src: u32,
        ) -> Option<LinkEvent> {
            self.observe_carrier(ifindex, carrier, now_ns, src);
            self.take_event(|e| e.ifindex == ifindex)
        }

        /// Takes the oldest queued change (one an observation of a device below caused, once
        /// [`Self::see`] has taken the observed interface's own).
        fn next_event(&mut self) -> Option<LinkEvent> {
            self.take_event(|_| true)
        }

        fn take_event(&mut self, wanted: impl Fn(&LinkEvent) -> bool) -> Option<LinkEvent> {
            let at = self
                .updates
                .iter()
                .position(|u| matches!(u, Update::Event(e) if wanted(e)))?;
            match self.updates.remove(at) {
                Some(Update::Event(e)) => Some(e),
                _ => None,
            }
        }

        /// Takes what is left in the queue.
        fn rest(&mut self) -> Vec<Update> {
            self.updates.drain(..).collect()
        }
    }

    fn obs(carrier: bool, changes: u64) -> LinkObservation {
        LinkObservation {
            ifindex: 5,
            flags: IFF_UP | if carrier { IFF_LOWER_UP } else { 0 },
            carrier_changes: Some(changes),
            deleted: false,
            lower: None,
            prompt: None,
        }
    }

    fn mirror() -> LinkMirror {
        let mut m = LinkMirror::default();
        m.track(5);
        assert_eq!(
            m.see(&obs(true, 1), 0, source::INITIAL).unwrap().change,
            LinkChange::Initial
        );
        m
    }

    #[test]
    fn untracked_interfaces_are_ignored() {
        let mut m = LinkMirror::default();
        assert_eq!(m.see(&obs(true, 1), 0, source::POLL), None);
    }

    #[test]
    fn down_then_up() {
        let mut m = mirror();
        let e = m.see(&obs(false, 2), 10, source::POLL).unwrap();
        assert_eq!(
            (e.change, e.carrier, e.flaps, e.at_ns, e.source),
            (LinkChange::Down, false, 1, 10, source::POLL)
        );
        assert_eq!(m.see(&obs(false, 2), 11, source::POLL), None, "no news");
        let e = m.see(&obs(true, 3), 20, source::NOTIFICATION).unwrap();
        assert_eq!((e.change, e.flaps), (LinkChange::Up, 2));
        assert_eq!(m.state(5).unwrap().carrier, 1);
    }

    #[test]
    fn a_flap_between_two_polls_is_counted() {
        let mut m = mirror();
        let e = m.see(&obs(true, 3), 10, source::POLL).unwrap();
        assert_eq!(e.change, LinkChange::Flapped { transitions: 2 });
        assert_eq!(e.flaps, 2);
    }

    #[test]
    fn a_stale_notification_is_ignored() {
        let mut m = mirror();
        m.see(&obs(false, 2), 10, source::POLL).unwrap();
        m.see(&obs(true, 3), 20, source::POLL).unwrap();
        // The notification for the first transition arrives late, saying "down".
        assert_eq!(m.see(&obs(false, 2), 30, source::NOTIFICATION), None);
        assert_eq!(m.state(5).unwrap().carrier, 1);
    }

    #[test]
    fn carrier_only_observations_and_counters_agree() {
        let mut m = mirror();
        // The fast ethtool poll sees down and up...
        assert_eq!(
            m.see_carrier(5, false, 10, source::POLL).unwrap().change,
            LinkChange::Down
        );
        assert_eq!(
            m.see_carrier(5, true, 20, source::POLL).unwrap().change,
            LinkChange::Up
        );
        // ...and the counter dump confirms those two transitions: nothing new.
        assert_eq!(m.see(&obs(true, 3), 30, source::POLL), None);
        assert_eq!(m.state(5).unwrap().flaps, 2);
        // A stale notification from before the flap is ignored.
        m.see_carrier(5, false, 40, source::POLL).unwrap();
        assert_eq!(
            m.see(&obs(true, 3), 41, source::NOTIFICATION),
            None,
            "count 3 predates the new loss"
        );
        // A flap the fast poll missed shows in the counters.
        m.see_carrier(5, true, 50, source::POLL).unwrap();
        let e = m.see(&obs(true, 7), 60, source::POLL).unwrap();
        assert_eq!(e.change, LinkChange::Flapped { transitions: 2 });
        assert_eq!(e.flaps, 6);
    }

    #[test]
    fn the_hooks_record_comes_first_and_the_late_notification_is_no_news() {
        let mut m = mirror();
        // The hook stamps the change at 100; the watcher folds it in at 130.
        let e = m.see_carrier(5, false, 100, source::KERNEL_HOOK).unwrap();
        assert_eq!(
            (e.change, e.at_ns, e.source),
            (LinkChange::Down, 100, source::KERNEL_HOOK)
        );
        // linkwatch's notification of the same change, 400 ms later: already known.
        assert_eq!(
            m.see(&obs(false, 2), 400_000_130, source::NOTIFICATION),
            None
        );
        // The hook sees it come back; a notification still saying "down" (count 2) is stale.
        m.see_carrier(5, true, 500, source::KERNEL_HOOK).unwrap();
        assert_eq!(m.see(&obs(false, 2), 600, source::NOTIFICATION), None);
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
        m.see(&no(true), 0, source::INITIAL);
        assert_eq!(
            m.see(&no(false), 5, source::POLL).unwrap().change,
            LinkChange::Down
        );
        assert_eq!(m.see(&no(false), 6, source::POLL), None);
    }

    /// Interface 5, a VLAN or macvlan on device 2 (so notified at once: its iflink is 2).
    fn stacked(carrier: bool, changes: u64) -> LinkObservation {
        LinkObservation {
            lower: Some(2),
            prompt: Some(true),
            ..obs(carrier, changes)
        }
    }

    /// Device 2, below interface 5: a NIC.
    fn below(carrier: bool, changes: u64) -> LinkObservation {
        LinkObservation {
            ifindex: 2,
            prompt: Some(false),
            ..obs(carrier, changes)
        }
    }

    fn polled(m: &LinkMirror) -> Vec<u32> {
        let mut p: Vec<u32> = m.polled().collect();
        p.sort_unstable();
        p
    }

    #[test]
    fn the_poll_skips_devices_the_kernel_notifies_at_once() {
        let mut m = LinkMirror::default();
        m.track(5);
        m.track(6);
        assert_eq!(polled(&m), [5, 6], "not yet observed: polled");
        let veth = |ifindex, prompt| LinkObservation {
            ifindex,
            prompt: Some(prompt),
            ..obs(true, 1)
        };
        m.see(&veth(5, true), 0, source::INITIAL);
        m.see(&veth(6, false), 0, source::INITIAL);
        assert_eq!(polled(&m), [6], "5 is a veth whose peer has another index");
        // The poll's own observations say nothing of it: 5 stays skipped, 6 polled.
        m.observe_carrier(5, false, 1, source::POLL);
        m.observe_carrier(6, false, 1, source::POLL);
        assert_eq!(polled(&m), [6]);
        // The index taken by a device of another kind (deleted, then re-created): as it says.
        m.see(&veth(5, false), 2, source::NOTIFICATION);
        m.see(&veth(6, true), 2, source::NOTIFICATION);
        assert_eq!(polled(&m), [5]);
    }

    #[test]
    fn a_macvlan_on_a_nic_polls_the_nic_and_on_a_veth_nothing() {
        let mut m = LinkMirror::default();
        m.track(5);
        m.see(&stacked(true, 1), 0, source::INITIAL);
        assert_eq!(polled(&m), [2], "the NIC below, not yet observed");
        m.see(&below(true, 1), 1, source::POLL);
        assert_eq!(polled(&m), [2], "the NIC below, observed");
        let veth_below = LinkObservation {
            prompt: Some(true),
            ..below(true, 1)
        };
        m.see(&veth_below, 2, source::NOTIFICATION);
        assert!(
            polled(&m).is_empty(),
            "a veth below: its loss reaches the macvlan at once"
        );
        // A tracked device below is polled (or not) as itself, once.
        m.track(2);
        m.see(&below(true, 1), 3, source::NOTIFICATION);
        assert_eq!(polled(&m), [2]);
    }

    #[test]
    fn a_stacked_interface_goes_down_with_the_device_below_before_its_own_flag_follows() {
        let mut m = LinkMirror::default();
        m.track(5);
        let e = m.see(&stacked(true, 1), 0, source::INITIAL).unwrap();
        assert_eq!(e.change, LinkChange::Initial);
        assert_eq!(m.entries[&5].lower, Some(2));
        assert_eq!(
            m.rest(),
            [Update::Store(2)],
            "the device below gets an entry (the hook's)"
        );
        assert_eq!(
            polled(&m),
            [2],
            "the device below; not the macvlan, whose own carrier follows it at once"
        );
        assert_eq!(m.see(&below(true, 1), 1, source::POLL), None);
        assert_eq!(
            m.next_event(),
            None,
            "first look at the device below: up, no news"
        );
        // The NIC loses carrier: the poll reads it at once on the device below...
        assert_eq!(m.see(&below(false, 2), 10, source::POLL), None);
        let e = m.next_event().unwrap();
        assert_eq!(
            (e.ifindex, e.change, e.carrier, e.flaps, e.at_ns, e.source),
            (5, LinkChange::Down, false, 1, 10, source::POLL)
        );
        assert_eq!(m.state(5).unwrap().carrier, 0);
        // ...and linkwatch copies it to the interface later: no news.
        assert_eq!(m.see(&stacked(false, 2), 400, source::NOTIFICATION), None);
        // Back: the device below first, the interface's own flag still down: still down.
        assert_eq!(m.see_carrier(2, true, 500, source::POLL), None);
        assert_eq!(m.next_event(), None);
        let e = m.see(&stacked(true, 3), 900, source::NOTIFICATION).unwrap();
        assert_eq!((e.change, e.flaps), (LinkChange::Up, 2));
        // A flap of the device below that no observation caught shows in its counters.
        assert_eq!(m.see(&below(true, 5), 1000, source::POLL), None);
        let e = m.next_event().unwrap();
        assert_eq!(
            (e.change, e.flaps),
            (LinkChange::Flapped { transitions: 2 }, 4)
        );
        // Untracked: the device below is forgotten with it.
        m.untrack(5);
        assert_eq!(m.rest(), [Update::Forget(5), Update::Forget(2)]);
        assert_eq!(m.polled().count(), 0);
        assert_eq!(m.state(2), None);
        m.see(&below(false, 6), 1100, source::POLL);
        assert_eq!(m.next_event(), None);
    }

    /// Interface 5, up, on device 2, which has just lost carrier.
    fn stacked_on_a_device_gone_down() -> LinkMirror {
        let mut m = LinkMirror::default();
        m.track(5);
        m.see(&stacked(true, 1), 0, source::INITIAL).unwrap();
        m.see(&below(false, 2), 10, source::POLL);
        assert_eq!(m.next_event().unwrap().change, LinkChange::Down);
        m
    }

    #[test]
    fn a_device_below_that_leaves_the_namespace_leaves_its_interfaces_their_own_carrier() {
        let mut m = stacked_on_a_device_gone_down();
        // Moved to another namespace: RTM_DELLINK here; the macvlan stays, its own flag up.
        let gone = LinkObservation {
            deleted: true,
            ..below(false, 2)
        };
        m.see(&gone, 20, source::NOTIFICATION);
        let e = m.next_event().unwrap();
        assert_eq!((e.ifindex, e.change), (5, LinkChange::Up));
        assert_eq!(m.entries[&5].lower, None);
        assert_eq!(
            m.rest(),
            [Update::Forget(2)],
            "the entry queued for the hook is moot"
        );
        assert!(
            polled(&m).is_empty(),
            "nothing below to poll; the macvlan's own changes are notified at once"
        );
        // An interface deleted before the device below (as the kernel deletes them) is not
        // brought back up by it.
        let mut m = stacked_on_a_device_gone_down();
        let removed = LinkObservation {
            deleted: true,
            ..stacked(true, 1)
        };
        assert_eq!(
            m.see(&removed, 11, source::NOTIFICATION).unwrap().change,
            LinkChange::Removed
        );
        m.see(&gone, 12, source::NOTIFICATION);
        assert_eq!(m.next_event(), None);
    }

    #[test]
    fn a_device_below_first_seen_down_takes_its_interfaces_down() {
        let mut m = LinkMirror::default();
        m.track(5);
        m.see(&stacked(true, 1), 0, source::INITIAL).unwrap();
        m.see_carrier(2, false, 7, source::KERNEL_HOOK);
        let e = m.next_event().unwrap();
        assert_eq!(
            (e.change, e.source),
            (LinkChange::Down, source::KERNEL_HOOK)
        );
    }

    #[test]
    fn a_device_below_two_members_and_tracked_itself_stays_until_the_last_goes() {
        let mut m = LinkMirror::default();
        for i in [2, 5, 6] {
            m.track(i);
        }
        m.see(&stacked(true, 1), 0, source::INITIAL).unwrap();
        let six = LinkObservation {
            ifindex: 6,
            ..stacked(true, 1)
        };
        m.see(&six, 0, source::INITIAL).unwrap();
        m.see(&below(true, 1), 0, source::INITIAL).unwrap();
        assert_eq!(m.rest(), [], "tracked itself: it has its entry");
        assert_eq!(polled(&m), [2], "the NIC, not the macvlans on it");
        // Device 2 goes down: its own event, and one for each interface on it.
        let own = m.see(&below(false, 2), 10, source::POLL).unwrap();
        assert_eq!((own.ifindex, own.change), (2, LinkChange::Down));
        let mut derived = vec![];
        while let Some(e) = m.next_event() {
            derived.push((e.ifindex, e.change));
        }
        derived.sort_unstable_by_key(|d| d.0);
        assert_eq!(derived, [(5, LinkChange::Down), (6, LinkChange::Down)]);
        m.untrack(5);
        assert_eq!(m.rest(), [Update::Forget(5)], "6 is still on 2");
        m.untrack(6);
        assert_eq!(
            m.rest(),
            [Update::Forget(6)],
            "2 is tracked itself: its entry stays"
        );
        assert_eq!(m.polled().collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn a_member_below_another_counts_for_it_and_keeps_its_entry_when_untracked() {
        let mut m = LinkMirror::default();
        m.track(2);
        m.track(5);
        m.see(&below(false, 2), 0, source::INITIAL).unwrap();
        // The dump lists the device below first: what it said counts for the one above.
        let e = m.see(&stacked(true, 1), 0, source::INITIAL).unwrap();
        assert_eq!((e.change, e.carrier), (LinkChange::Initial, false));
        m.untrack(2);
        assert_eq!(m.rest(), [Update::Store(2)]);
        assert_eq!(m.state(2).unwrap().carrier, 0);
        assert_eq!(polled(&m), [2], "still read for 5's sake");
    }

    #[test]
    fn an_interface_brought_up_without_carrier_is_restated_without_an_event() {
        let mut m = LinkMirror::default();
        m.track(5);
        let admin_down = LinkObservation {
            flags: 0,
            ..obs(false, 0)
        };
        m.see(&admin_down, 0, source::INITIAL).unwrap();
        assert_eq!(m.state(5).unwrap().admin_up, 0);
        let up_no_carrier = LinkObservation {
            flags: IFF_UP,
            ..obs(false, 0)
        };
        assert_eq!(m.see(&up_no_carrier, 5, source::NOTIFICATION), None);
        assert_eq!(m.state(5).unwrap().admin_up, 1);
        assert_eq!(m.see(&up_no_carrier, 6, source::POLL), None);
        assert_eq!(m.rest(), [Update::Store(5)], "restated once");
        // Taken down again (restated), then untracked before the owner got to it.
        m.see(&admin_down, 7, source::NOTIFICATION);
        m.untrack(5);
        assert_eq!(
            m.rest(),
            [Update::Forget(5)],
            "untracked: the restatement is moot"
        );
        m.track(5);
        m.see(&obs(true, 1), 8, source::INITIAL).unwrap();
        let downed = LinkObservation {
            flags: 0,
            ..obs(false, 2)
        };
        assert_eq!(
            m.see(&downed, 9, source::NOTIFICATION).unwrap().change,
            LinkChange::Down
        );
        assert_eq!(m.state(5).unwrap().admin_up, 0);
        assert_eq!(m.rest(), [], "the event carries the new flag");
    }

    #[test]
    fn admin_down_means_no_carrier_and_deletion_is_reported() {
        let mut m = mirror();
        let admin_down = LinkObservation {
            flags: 0,
            ..obs(true, 1)
        };
        assert_eq!(
            m.see(&admin_down, 3, source::POLL).unwrap().change,
            LinkChange::Down
        );
        let gone = LinkObservation {
            deleted: true,
            ..obs(false, 1)
        };
        assert_eq!(
            m.see(&gone, 4, source::NOTIFICATION).unwrap().change,
            LinkChange::Removed
        );
    }
}
