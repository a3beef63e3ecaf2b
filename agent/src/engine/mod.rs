//! The detection engine: in.mpathd's failure and repair logic as a sans-IO state machine.
//!
//! Inputs (link changes, probe replies with kernel-stamped RTTs, timer ticks, offline/online
//! requests) arrive with the current time; [`Output`]s come back: probes to send, interfaces to
//! (de)activate, events to report. No sockets, no clock, no tokio: every rule runs in a plain unit
//! test with a simulated clock. Times are CLOCK_MONOTONIC nanoseconds, so nothing assumes an FDT of
//! 100 ms or more; a group may run at 10 ms.

pub mod constants;
mod due;
pub mod instance;
mod key;
mod membership;
pub mod rng;
pub mod rtt;
#[cfg(test)]
mod tests;
pub mod views;

use std::{collections::HashMap, net::IpAddr, sync::Arc};

use serde::{Deserialize, Serialize};

use self::{
    constants::{
        EXCEPTION_FACTOR, LINK_FLAP_WINDOW_NS, LINK_UP_PERMIN, LOWER_FDT_TRIGGER,
        MIN_PROBE_TARGETS, MIN_SETTLING_TIME_NS, MIN_SUSPECT_SPAN_NS, NEXT_FDT_MULTIPLE,
        NUM_PROBE_REPAIRS, PROBES_PER_FDT, SEND_SLACK_DIVISOR,
    },
    due::DueIndex,
    instance::{Deferred, ProbeInstance, ReplyMismatch, Target, TargetState, Tick, next_base},
    rng::Jitter,
};
pub use self::{
    key::{IfKey, Iface},
    membership::Prior,
};

/// Engine-wide settings (from `/etc/default/mpathd`).
#[derive(Clone, Copy, Debug)]
pub struct EngineConfig {
    /// FAILURE_DETECTION_TIME in ns; groups without their own FDT use it.
    pub user_fdt_ns: u64,
    /// FAILBACK.
    pub failback: bool,
    /// Seed of the probe jitter.
    pub seed: u64,
}

/// One interface as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSpec {
    pub ifname: String,
    /// Group name; empty for the anonymous group.
    pub group: String,
    pub standby: bool,
    /// Test addresses (at most one per family; IPv6 ones must be link-local).
    pub test_addrs: Vec<IpAddr>,
    /// Probe targets in firing order (router targets from routes, or configured ones).
    pub targets: Vec<IpAddr>,
}

/// Interface states as ipmpstat reports them (`PI_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IfState {
    /// Has a test address but no targets: assumed working.
    NoTargets,
    Running,
    Failed,
    Offline,
}

/// Group states (`PG_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupState {
    Ok,
    Degraded,
    Failed,
}

/// What the engine reports; each maps to an entry of the event catalogue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    LinkDown {
        ifname: String,
    },
    LinkUp {
        ifname: String,
    },
    LinkFlapping {
        ifname: String,
    },
    InterfaceFailed {
        ifname: String,
        group: String,
    },
    InterfaceRepaired {
        ifname: String,
        group: String,
    },
    GroupFailed {
        group: String,
    },
    GroupUsable {
        group: String,
        ifname: String,
    },
    FdtRaised {
        user_fdt_ms: u64,
        family: &'static str,
        ifname: String,
        group: String,
        fdt_ms: u64,
    },
    FdtImproved {
        fdt_ms: u64,
        family: &'static str,
        ifname: String,
        group: String,
    },
    HwAddrDuplicate {
        ifname: String,
        group: String,
    },
    ProbesMissed {
        ifname: Arc<str>,
        count: u64,
    },
    HwAddrUnique {
        ifname: String,
        group: String,
    },
    /// This and `ProbeAcked`, one per probe, share the interface's name as the probe outputs do
    /// (a refcount, not a copy).
    ProbeLost {
        ifname: Arc<str>,
        seq: u16,
        target: IpAddr,
    },
    ProbeAcked {
        ifname: Arc<str>,
        seq: u16,
        target: IpAddr,
        rtt_ns: u64,
        late: bool,
    },
}

/// What one interface's tick needs to know of its group and state.
#[derive(Clone, Copy, Debug)]
struct Schedule {
    /// The probe interval (ns), raised with the FDT.
    interval: u64,
    /// The interval the configured FDT asks for, for RTT-only probes.
    user_interval: u64,
    /// See [`Output::SendProbe`]'s field.
    prompt_reply: bool,
}

/// The interface a tick sends from: its name and the engine's key to it.
#[derive(Debug)]
struct Sender {
    name: Arc<str>,
    key: IfKey,
}

/// A decision for the outside world.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "output", rename_all = "snake_case")]
pub enum Output {
    /// Send failure-detection probe `seq` from `test_addr` on `ifname` to `target`, carrying
    /// `sent_ns` as its (tagged) send time: a reply counts only if it carries the same.
    SendProbe {
        ifname: Arc<str>,
        /// The engine's key to `ifname` when it decided: the caller finds its own record of the
        /// interface by it (no hash of the name per probe).
        #[serde(skip)]
        key: IfKey,
        test_addr: IpAddr,
        target: IpAddr,
        seq: u16,
        sent_ns: u64,
        /// The reply may change a verdict before the next deadline (the interface is failed or
        /// not yet running, so each answer counts toward its repair): it should wake the reader.
        /// Any other reply is read at the next turn, which always comes before a probe is
        /// declared lost.
        prompt_reply: bool,
    },
    /// An RTT-only probe (`PROBE_RTT`): no sequence number, no history slot.
    SendRttProbe {
        ifname: Arc<str>,
        #[serde(skip)]
        key: IfKey,
        test_addr: IpAddr,
        target: IpAddr,
        sent_ns: u64,
    },
    /// No targets yet: ask all-hosts (224.0.0.1 / ff02::1) from `test_addr` on `ifname`; the
    /// responders come back through [`Engine::discovered`].
    SendDiscovery {
        ifname: Arc<str>,
        #[serde(skip)]
        key: IfKey,
        test_addr: IpAddr,
        sent_ns: u64,
    },
    /// Make `ifname` carry data traffic, or stop it.
    SetActive {
        ifname: String,
        active: bool,
    },
    Event(Event),
}

/// Refusals of offline/online requests (if_mpadm's errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminError {
    #[error("not a physical interface or not in an IPMP group")]
    UnknownInterface,
    #[error("no other functioning interfaces are in its IPMP group")]
    MinRedundancy,
    #[error("interface is already offline")]
    AlreadyOffline,
    #[error("interface is not offline")]
    NotOffline,
    #[error("its hardware address is still not unique in its IPMP group")]
    HwAddrDup,
}

#[derive(Clone, Debug)]
struct Interface {
    /// Shared with the probe outputs: a refcount per probe, not a copy of the name.
    name: Arc<str>,
    group: String,
    /// Index of `group` in the engine's groups.
    group_idx: usize,
    /// Whether it carried data at the end of the last input (to report changes only).
    was_active: Option<bool>,
    /// When [`Engine::tick`] next has something to do for it (`u64::MAX`: nothing).
    due_ns: u64,
    standby: bool,
    state: IfState,
    link_up: bool,
    inactive: bool,
    /// Failed while offline: online returns to Failed.
    failed_while_offline: bool,
    instances: Vec<ProbeInstance>,
    /// Times of the most recent link-ups, newest last.
    link_ups: Vec<u64>,
    flap_reported: bool,
    /// Not yet running since tracking started: FAILBACK=no does not hold it back.
    first_appearance: bool,
    /// Hardware (MAC) address, when known.
    hwaddr: Option<[u8; 6]>,
    /// Offline because another member has the same hardware address (not by the operator).
    offline_hwdup: bool,
}

impl Interface {
    fn functioning(&self) -> bool {
        matches!(self.state, IfState::Running | IfState::NoTargets)
    }
    fn probing(&self) -> bool {
        self.instances.iter().any(|i| !i.targets.is_empty())
    }
    fn flapping(&self, now_ns: u64) -> bool {
        self.link_ups.len() > LINK_UP_PERMIN
            && now_ns.saturating_sub(self.link_ups[self.link_ups.len() - 1 - LINK_UP_PERMIN])
                < LINK_FLAP_WINDOW_NS
    }
}

#[derive(Clone, Debug)]
struct Group {
    name: String,
    user_fdt_ns: u64,
    fdt_ns: u64,
    interval_ns: u64,
    raised_at_ns: Option<u64>,
    state: GroupState,
    /// The first state was computed (no "now usable" message at start-up).
    settled: bool,
    /// Indexes of its member interfaces, in the order they were added.
    members: Vec<usize>,
    /// Touched by the current input: state, activation and deadlines to be re-derived.
    dirty: bool,
}

impl Group {
    fn new(name: &str, user_fdt_ns: u64) -> Self {
        Self {
            name: name.into(),
            user_fdt_ns,
            fdt_ns: user_fdt_ns,
            interval_ns: user_fdt_ns / PROBES_PER_FDT,
            raised_at_ns: None,
            // A new named group starts failed until a member is usable.
            state: if name.is_empty() {
                GroupState::Ok
            } else {
                GroupState::Failed
            },
            settled: false,
            members: Vec::new(),
            dirty: false,
        }
    }
    fn anonymous(&self) -> bool {
        self.name.is_empty()
    }
}

fn family_name(a: IpAddr) -> &'static str {
    if a.is_ipv4() { "inet" } else { "inet6" }
}

/// A member's state and standby, and its group's interval, FDT and state (see
/// [`Engine::footprint`]).
type Footprint = (IfState, bool, u64, u64, GroupState);

/// in.mpathd's decisions for a set of groups and interfaces.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    groups: Vec<Group>,
    interfaces: Vec<Interface>,
    /// Name → index, so that per-interface inputs cost the same with 2 or 2,000 members.
    if_by_name: HashMap<String, usize>,
    group_by_name: HashMap<String, usize>,
    /// Groups touched by the current input, re-derived by [`Self::finish`].
    dirty: Vec<usize>,
    /// Every interface's `due_ns` in a dense array (kept by [`Self::finish`]).
    due: DueIndex,
    /// The interfaces a tick serves, kept for its allocation.
    serving: Vec<usize>,
    jitter: Jitter,
    out: Vec<Output>,
    /// Which [`IfKey`]s are good: a new layout when an interface is removed (see `key`).
    layout: u64,
}

/// A read-only view of one interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InterfaceView {
    pub ifname: String,
    pub group: String,
    pub state: IfState,
    pub active: bool,
    pub inactive: bool,
    pub standby: bool,
    pub link_up: bool,
    pub probing: bool,
    /// Offline because its hardware address is not unique in the group (ipmpstat flag `h`).
    pub hwaddr_dup: bool,
}

impl Engine {
    /// An engine with no groups.
    #[must_use]
    pub fn new(config: EngineConfig) -> Self {
        Self {
            jitter: Jitter::new(config.seed),
            config,
            groups: Vec::new(),
            interfaces: Vec::new(),
            if_by_name: HashMap::new(),
            group_by_name: HashMap::new(),
            layout: key::next_layout(),
            dirty: Vec::new(),
            due: DueIndex::default(),
            serving: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Adds a named group with its own FDT (or the default). The group file may go down to 10 ms.
    pub fn add_group(&mut self, name: &str, fdt_ns: Option<u64>) {
        if self.group_index(name).is_none() {
            self.groups
                .push(Group::new(name, fdt_ns.unwrap_or(self.config.user_fdt_ns)));
            self.group_by_name
                .insert(name.to_owned(), self.groups.len() - 1);
        }
    }

    fn group_index(&self, name: &str) -> Option<usize> {
        self.group_by_name.get(name).copied()
    }

    pub(crate) fn if_index(&self, name: &str) -> Option<usize> {
        self.if_by_name.get(name).copied()
    }

    /// A key to `name` that later inputs can pass instead of the name, until an interface is
    /// removed.
    #[must_use]
    pub fn key(&self, name: &str) -> Option<IfKey> {
        self.if_index(name).map(|index| IfKey {
            index,
            layout: self.layout,
        })
    }

    /// `kept` while the engine still holds it, else a new key to `name` (`None`: not tracked):
    /// how a caller that keeps one key per interface refreshes it before each use.
    #[must_use]
    pub fn key_again(&self, kept: Option<IfKey>, name: &str) -> Option<IfKey> {
        match kept {
            Some(k) if self.holds(k) => Some(k),
            _ => self.key(name),
        }
    }

    /// Gives back an output list the caller has emptied, so that the next input's outputs reuse
    /// its allocation (every accepted reply has one, its acknowledgement).
    pub fn recycle(&mut self, mut spent: Vec<Output>) {
        spent.clear();
        if self.out.is_empty() && self.out.capacity() < spent.capacity() {
            self.out = spent;
        }
    }

    /// Whether `key` still names the interface it was given for: the one tracked under that
    /// name then, or what replaced it under the same name (as a reply by name would reach).
    #[must_use]
    pub fn holds(&self, key: IfKey) -> bool {
        self.index_of(Iface::Key(key)).is_some()
    }

    /// The index of `who` (`None`: not tracked, or a key from another layout).
    fn index_of(&self, who: Iface<'_>) -> Option<usize> {
        match who {
            Iface::Name(name) => self.if_index(name),
            // Within its layout a key's index stays below the length (only a removal shrinks
            // the list, and it renews the layout); checked anyway, as a bug here would panic.
            Iface::Key(k) => {
                (k.layout == self.layout && k.index < self.interfaces.len()).then_some(k.index)
            }
        }
    }

    /// The index of `who`, whose group the current input may change (see [`Self::finish`]).
    fn lookup<'a>(&mut self, who: impl Into<Iface<'a>>) -> Option<usize> {
        let i = self.index_of(who.into())?;
        self.touch(self.interfaces[i].group_idx);
        Some(i)
    }

    fn touch(&mut self, g: usize) {
        if !std::mem::replace(&mut self.groups[g].dirty, true) {
            self.dirty.push(g);
        }
    }

    /// Starts tracking an interface whose link is `link_up` at `now_ns`.
    pub fn add_member(&mut self, spec: &MemberSpec, link_up: bool, now_ns: u64) -> Vec<Output> {
        let i = self.insert_member(spec, link_up, now_ns);
        self.join(i);
        self.finish()
    }

    /// Puts `spec` in its group (in place of a member of the same name) and returns its index;
    /// the caller ends the input.
    fn insert_member(&mut self, spec: &MemberSpec, link_up: bool, now_ns: u64) -> usize {
        if self.group_index(&spec.group).is_none() {
            self.add_group(&spec.group, None);
        }
        let g = self.group_index(&spec.group).unwrap_or(0);
        let interval = self.groups[g].interval_ns;
        let mut instances = Vec::new();
        for addr in &spec.test_addrs {
            if instances
                .iter()
                .any(|i: &ProbeInstance| i.test_addr.is_ipv4() == addr.is_ipv4())
            {
                continue;
            }
            instances.push(self.new_instance(*addr, &spec.targets, interval, now_ns));
        }
        let mut iface = Interface {
            name: spec.ifname.as_str().into(),
            group: spec.group.clone(),
            group_idx: g,
            was_active: None,
            due_ns: u64::MAX,
            standby: spec.standby,
            state: IfState::Failed,
            link_up,
            inactive: false,
            failed_while_offline: false,
            instances,
            link_ups: Vec::new(),
            flap_reported: false,
            first_appearance: true,
            hwaddr: None,
            offline_hwdup: false,
        };
        if link_up {
            iface.state = if !iface.instances.is_empty() && !iface.probing() {
                IfState::NoTargets
            } else {
                IfState::Running
            };
            iface.first_appearance = false;
        }
        if let Some(&old) = self.if_by_name.get(&spec.ifname) {
            // Tracked already: the new spec replaces it in place.
            let from = self.interfaces[old].group_idx;
            self.groups[from].members.retain(|&j| j != old);
            self.touch(from);
            self.due.set(old, u64::MAX, 0);
            self.interfaces[old] = iface;
        } else {
            self.interfaces.push(iface);
            self.if_by_name
                .insert(spec.ifname.clone(), self.interfaces.len() - 1);
        }
        let i = self.if_by_name[&spec.ifname];
        self.groups[g].members.push(i);
        self.touch(g);
        if self.interfaces[i].functioning() && !self.groups[g].anonymous() {
            self.interfaces[i].inactive = self.interfaces[i].standby
                && self.active_count(g, Some(i)) >= self.nonstandby_count(g);
        }
        i
    }

    /// Member `i` has joined, as it will stay for now: if it carries data and is no standby, it
    /// takes over from a standby that stood in for the capacity it brings (no FAILBACK hold-back
    /// for a newcomer, as for one that comes back after its removal).
    fn join(&mut self, i: usize) {
        let g = self.group_of(i);
        let x = &self.interfaces[i];
        if x.functioning() && !x.standby && !x.inactive && !self.groups[g].anonymous() {
            self.retire_surplus_standby(g, i);
        }
    }

    /// A probe instance sending from `addr` to the `targets` of its family, first probe scheduled.
    fn new_instance(
        &mut self,
        addr: IpAddr,
        targets: &[IpAddr],
        interval: u64,
        now_ns: u64,
    ) -> ProbeInstance {
        let mut inst = ProbeInstance::new(addr, now_ns);
        inst.targets = targets
            .iter()
            .filter(|t| t.is_ipv4() == addr.is_ipv4())
            .map(|t| Target::new(*t))
            .collect();
        self.schedule_first(&mut inst, interval, now_ns);
        inst
    }

    fn schedule_first(&mut self, inst: &mut ProbeInstance, interval: u64, now_ns: u64) {
        let base_ns = now_ns + self.jitter.between(0, interval.max(1));
        inst.send = self.tick_from(base_ns, interval);
    }

    /// The tick of a schedule whose base is `base_ns`: due with in.mpathd's jitter, [0.5, 1] ×
    /// interval on.
    fn tick_from(&mut self, base_ns: u64, interval: u64) -> Tick {
        let due_ns = base_ns + self.jitter.between(interval / 2, interval.max(1));
        Tick { base_ns, due_ns }
    }

    /// The tick after `tick` of a schedule of period `interval`, and how many whole intervals were
    /// skipped to reach it (see [`next_base`]).
    fn next_tick(&mut self, tick: Tick, interval: u64, now_ns: u64) -> (Tick, u64) {
        let (base_ns, skipped) = next_base(tick.base_ns, interval, now_ns);
        (self.tick_from(base_ns, interval), skipped)
    }

    fn members(&self, g: usize) -> impl Iterator<Item = (usize, &Interface)> {
        self.groups[g]
            .members
            .iter()
            .map(|&j| (j, &self.interfaces[j]))
    }

    fn is_active(&self, i: usize) -> bool {
        let x = &self.interfaces[i];
        x.functioning() && !x.inactive
    }

    fn active_count(&self, g: usize, except: Option<usize>) -> usize {
        self.members(g)
            .filter(|(j, _)| Some(*j) != except && self.is_active(*j))
            .count()
    }

    /// The configured capacity: non-standby members, offline ones included (a standby stands in
    /// for an offlined member).
    fn nonstandby_count(&self, g: usize) -> usize {
        self.members(g).filter(|(_, i)| !i.standby).count()
    }

    fn group_of(&self, i: usize) -> usize {
        self.interfaces[i].group_idx
    }

    fn emit(&mut self, e: Event) {
        self.out.push(Output::Event(e));
    }

    /// A link change on `ifname` at `now_ns`.
    pub fn link_changed(&mut self, ifname: &str, up: bool, now_ns: u64) -> Vec<Output> {
        let Some(i) = self.lookup(ifname) else {
            return Vec::new();
        };
        if self.interfaces[i].link_up == up {
            return Vec::new();
        }
        self.interfaces[i].link_up = up;
        let g = self.group_of(i);
        let interval = self.groups[g].interval_ns;
        if up {
            self.emit(Event::LinkUp {
                ifname: ifname.into(),
            });
            let x = &mut self.interfaces[i];
            x.link_ups.push(now_ns);
            if x.link_ups.len() > LINK_UP_PERMIN + 1 {
                x.link_ups.remove(0);
            }
            let mut instances = std::mem::take(&mut self.interfaces[i].instances);
            for inst in &mut instances {
                self.schedule_first(inst, interval, now_ns);
            }
            self.interfaces[i].instances = instances;
            self.check_repair(i, now_ns);
        } else {
            self.emit(Event::LinkDown {
                ifname: ifname.into(),
            });
            for inst in &mut self.interfaces[i].instances {
                inst.clear_history();
            }
            if self.interfaces[i].functioning() {
                self.fail(i, now_ns, None);
            }
        }
        self.finish()
    }

    /// A reply to probe `seq` from `from`, received on `ifname`, with round trip `rtt_ns`
    /// (kernel-stamped where the datapath provides it), processed at `now_ns`.
    ///
    /// # Errors
    /// When the reply matches no probe (counted by the caller as "unknown").
    pub fn probe_reply<'a>(
        &mut self,
        ifname: impl Into<Iface<'a>>,
        seq: u16,
        from: IpAddr,
        sent_ns: u64,
        rtt_ns: u64,
        now_ns: u64,
    ) -> Result<Vec<Output>, ReplyMismatch> {
        // Not `lookup`: most answers change only this member's own deadline (see below).
        let i = self
            .index_of(ifname.into())
            .ok_or(ReplyMismatch::UnknownProbe)?;
        if !self.interfaces[i].link_up {
            // in.mpathd ignores every reply while the link is down.
            return Err(ReplyMismatch::LinkDown);
        }
        let before = self.footprint(i);
        let k = self.interfaces[i]
            .instances
            .iter()
            .position(|p| p.test_addr.is_ipv4() == from.is_ipv4())
            .ok_or(ReplyMismatch::UnknownProbe)?;
        let acked = self.interfaces[i].instances[k].ack(seq, from, sent_ns, now_ns)?;
        self.emit(Event::ProbeAcked {
            ifname: Arc::clone(&self.interfaces[i].name),
            seq,
            target: from,
            rtt_ns,
            late: acked.was_lost,
        });
        let g = self.group_of(i);
        // RTTs are only learnt on a running interface of a working group (just after a repair,
        // ARP/ND queueing inflates them).
        if self.interfaces[i].state == IfState::Running
            && self.groups[g].state != GroupState::Failed
            && rtt_ns <= self.groups[g].interval_ns.saturating_mul(52)
        {
            self.learn_rtt(i, k, from, rtt_ns, now_ns);
        }
        self.check_repair(i, now_ns);
        self.settle(i, before);
        Ok(self.finish())
    }

    /// What the rest of member `i`'s group reads of it and of the group: its state, whether it
    /// stands by, and the group's FDT and state. An input that leaves these alone changed only
    /// `i`'s own probing, so only `i`'s deadline is re-derived, not its whole group's (at 1,024
    /// members, `next_expiry` and `finish` re-deriving both members after every reply and tick
    /// were 8 % of the agent's perf samples). Every change to another member goes with a change
    /// here: a failure or a repair changes `i`'s state, an FDT change the group's.
    fn footprint(&self, i: usize) -> Footprint {
        let x = &self.interfaces[i];
        let g = &self.groups[x.group_idx];
        (x.state, x.inactive, g.interval_ns, g.fdt_ns, g.state)
    }

    /// After an input that served member `i` alone: its group is re-derived when `i`'s
    /// [`Self::footprint`] moved from `before`, else only `i`'s deadline.
    fn settle(&mut self, i: usize, before: Footprint) {
        if self.footprint(i) == before {
            self.refresh_deadline(i);
        } else {
            self.touch(self.group_of(i));
        }
    }

    /// Re-derives when [`Self::tick`] next has something to do for member `i`.
    fn refresh_deadline(&mut self, i: usize) {
        let slack = self.groups[self.group_of(i)].interval_ns / SEND_SLACK_DIVISOR;
        let due = self.interface_deadline(i);
        self.interfaces[i].due_ns = due;
        self.due.set(i, due, slack);
    }

    fn learn_rtt(&mut self, i: usize, k: usize, target: IpAddr, m: u64, now_ns: u64) {
        let g = self.group_of(i);
        let interval = self.groups[g].interval_ns;
        let inst = &mut self.interfaces[i].instances[k];
        let Some(t) = inst.targets.iter_mut().find(|t| t.addr == target) else {
            return;
        };
        if t.rtt.crtt_with(m) > interval {
            // A suspect sample: hold one back; two in a row are folded in together, below
            // in.mpathd's lowest interval only once the suspects have lasted its span.
            match t.deferred {
                None => {
                    t.deferred = Some(Deferred {
                        rtt_ns: m,
                        at_ns: now_ns,
                    });
                    return;
                }
                Some(d)
                    if interval < MIN_SUSPECT_SPAN_NS
                        && now_ns.saturating_sub(d.at_ns) < MIN_SUSPECT_SPAN_NS =>
                {
                    return;
                }
                Some(d) => {
                    t.deferred = None;
                    t.rtt.sample(d.rtt_ns);
                    t.rtt.sample(m);
                }
            }
        } else {
            t.deferred = None;
            t.rtt.sample(m);
        }
        let crtt = t.rtt.crtt_ns();
        if crtt > interval {
            self.raise_fdt(i, k, target, crtt, now_ns);
        } else if crtt < interval / LOWER_FDT_TRIGGER {
            self.maybe_lower_fdt(i, k, now_ns);
        }
    }

    fn raise_fdt(&mut self, i: usize, k: usize, target: IpAddr, crtt: u64, now_ns: u64) {
        let g = self.group_of(i);
        let interval = self.groups[g].interval_ns;
        let inst = &mut self.interfaces[i].instances[k];
        let others_fast = inst
            .targets
            .iter()
            .filter(|t| t.addr != target)
            .all(|t| t.rtt.crtt_ns() <= interval / EXCEPTION_FACTOR);
        if inst.targets.len() > MIN_PROBE_TARGETS && others_fast {
            // An outlier: rest the slow target rather than slowing the whole group.
            inst.retire_target(target, TargetState::Slow, now_ns);
            return;
        }
        let new_interval = NEXT_FDT_MULTIPLE
            .saturating_mul(crtt)
            .min(constants::MAX_FDT_NS / PROBES_PER_FDT);
        let group = &mut self.groups[g];
        if new_interval <= group.interval_ns {
            // At the ceiling already: nothing to raise, nothing to say.
            return;
        }
        group.interval_ns = new_interval;
        group.fdt_ns = PROBES_PER_FDT * new_interval;
        group.raised_at_ns = Some(now_ns);
        if !group.anonymous() {
            let e = Event::FdtRaised {
                user_fdt_ms: group.user_fdt_ns / 1_000_000,
                family: family_name(target),
                ifname: self.interfaces[i].name.to_string(),
                group: group.name.clone(),
                fdt_ms: group.fdt_ns / 1_000_000,
            };
            self.emit(e);
        }
    }

    fn maybe_lower_fdt(&mut self, i: usize, k: usize, now_ns: u64) {
        let g = self.group_of(i);
        let group = &self.groups[g];
        if group.user_fdt_ns >= group.fdt_ns
            || group
                .raised_at_ns
                .is_some_and(|t| now_ns.saturating_sub(t) <= MIN_SETTLING_TIME_NS)
        {
            return;
        }
        let limit = group.interval_ns / LOWER_FDT_TRIGGER;
        let all_fast = self
            .members(g)
            .filter(|(_, x)| x.state != IfState::Failed)
            .flat_map(|(_, x)| x.instances.iter())
            .flat_map(|inst| inst.targets.iter())
            .all(|t| t.rtt.crtt_ns() <= limit);
        if !all_fast {
            return;
        }
        let group = &mut self.groups[g];
        group.fdt_ns = (group.fdt_ns / NEXT_FDT_MULTIPLE).max(group.user_fdt_ns);
        group.interval_ns = group.fdt_ns / PROBES_PER_FDT;
        let family = family_name(self.interfaces[i].instances[k].test_addr);
        let e = Event::FdtImproved {
            fdt_ms: group.fdt_ns / 1_000_000,
            family,
            ifname: self.interfaces[i].name.to_string(),
            group: group.name.clone(),
        };
        if !group.anonymous() {
            self.emit(e);
        }
    }

    /// The routing table changed: `targets` are now the router targets of `ifname` in the family
    /// of `v4`. Routers always win over discovered hosts; a router that left the table is dropped
    /// unless the group has failed (it is kept so that repair can still be seen).
    pub fn set_router_targets(
        &mut self,
        ifname: &str,
        v4: bool,
        targets: &[IpAddr],
        now_ns: u64,
    ) -> Vec<Output> {
        let Some(i) = self.lookup(ifname) else {
            return Vec::new();
        };
        let group_failed = self.groups[self.group_of(i)].state == GroupState::Failed;
        let x = &mut self.interfaces[i];
        for inst in x
            .instances
            .iter_mut()
            .filter(|p| p.test_addr.is_ipv4() == v4)
        {
            if targets.is_empty() && (inst.host_targets || group_failed) {
                continue;
            }
            if inst.host_targets && !targets.is_empty() {
                inst.targets.clear();
                inst.host_targets = false;
            }
            if !group_failed {
                inst.targets.retain(|t| targets.contains(&t.addr));
                inst.resting.retain(|(a, _, _)| targets.contains(a));
            }
            for &t in targets {
                let known = inst.targets.iter().any(|x| x.addr == t)
                    || inst.resting.iter().any(|(a, _, _)| *a == t);
                if !known && inst.targets.len() < constants::MAX_PROBE_TARGETS {
                    inst.targets.push(Target::new(t));
                }
            }
            if !inst.targets.is_empty() {
                inst.next_target %= inst.targets.len();
            }
        }
        if x.state == IfState::NoTargets && x.probing() {
            x.state = IfState::Running;
            for inst in &mut x.instances {
                inst.quiet_until_ns = inst.quiet_until_ns.max(now_ns);
            }
        }
        self.finish()
    }

    /// A host answered an all-hosts probe sent from `ifname`. It becomes a target (in a named
    /// group, of every member probing in that family), up to five; replies from this host's own
    /// addresses, from the unspecified address or from another subnet are the caller's to drop.
    ///
    /// # Errors
    /// When no all-hosts probe sent at `sent_ns` (the reply's tagged send time) is in flight: a
    /// discovery reply is accepted only for a discovery of this instance, within twice the probe
    /// interval, so a captured one replayed later injects nothing.
    pub fn discovered<'a>(
        &mut self,
        ifname: impl Into<Iface<'a>>,
        from: IpAddr,
        sent_ns: u64,
        now_ns: u64,
    ) -> Result<Vec<Output>, ReplyMismatch> {
        let i = self.lookup(ifname).ok_or(ReplyMismatch::UnknownProbe)?;
        let g = self.group_of(i);
        let window = self.groups[g].interval_ns.saturating_mul(2);
        let asked = self.interfaces[i].instances.iter().any(|p| {
            p.test_addr.is_ipv4() == from.is_ipv4() && p.discoveries.recent(sent_ns, now_ns, window)
        });
        if !asked {
            self.finish();
            return Err(ReplyMismatch::Stale);
        }
        let receivers: Vec<usize> = if self.groups[g].anonymous() {
            vec![i]
        } else {
            self.groups[g].members.clone()
        };
        for j in receivers {
            let x = &mut self.interfaces[j];
            for inst in x
                .instances
                .iter_mut()
                .filter(|p| p.test_addr.is_ipv4() == from.is_ipv4())
            {
                if inst.targets.len() < constants::MAX_PROBE_TARGETS
                    && !inst.targets.iter().any(|t| t.addr == from)
                {
                    inst.targets.push(Target::new(from));
                    inst.host_targets = true;
                }
            }
            if x.state == IfState::NoTargets && x.probing() {
                x.state = IfState::Running;
                for inst in &mut x.instances {
                    // Probing starts now: a fresh quiet period for the new targets.
                    inst.quiet_until_ns = inst.quiet_until_ns.max(now_ns);
                }
            }
        }
        Ok(self.finish())
    }

    /// The timer: sends due probes, declares lost ones, checks failure and repair.
    pub fn tick(&mut self, now_ns: u64) -> Vec<Output> {
        // Only interfaces with something due (a probe within the send slack), found in the
        // due index: a tick reads 8 bytes of each other member, not its state.
        let mut serving = std::mem::take(&mut self.serving);
        self.due.candidates(now_ns, &mut serving);
        for &i in &serving {
            let slack = self.groups[self.interfaces[i].group_idx].interval_ns / SEND_SLACK_DIVISOR;
            if self.interfaces[i].due_ns > now_ns.saturating_add(slack) {
                continue;
            }
            if !self.interfaces[i].link_up || self.interfaces[i].state == IfState::Offline {
                self.refresh_deadline(i);
                continue;
            }
            let before = self.footprint(i);
            let g = self.group_of(i);
            let interval = self.groups[g].interval_ns.max(1);
            let user_interval = (self.groups[g].user_fdt_ns / PROBES_PER_FDT).max(1);
            let sender = Sender {
                name: Arc::clone(&self.interfaces[i].name),
                key: IfKey {
                    index: i,
                    layout: self.layout,
                },
            };
            let prompt_reply = self.interfaces[i].state != IfState::Running;
            let mut instances = std::mem::take(&mut self.interfaces[i].instances);
            for inst in &mut instances {
                let schedule = Schedule {
                    interval,
                    user_interval,
                    prompt_reply,
                };
                self.tick_instance(inst, &sender, schedule, now_ns);
            }
            self.interfaces[i].instances = instances;
            self.check_failure(i, now_ns);
            self.check_repair(i, now_ns);
            self.settle(i, before);
        }
        self.serving = serving;
        self.finish()
    }

    /// One instance's share of a tick: expire, send the due probe, keep the RTT cadence.
    fn tick_instance(
        &mut self,
        inst: &mut ProbeInstance,
        sender: &Sender,
        schedule: Schedule,
        now_ns: u64,
    ) {
        let Schedule {
            interval,
            user_interval,
            prompt_reply,
        } = schedule;
        // An instance first served a whole interval after its first probe was due was not
        // descheduled: the daemon was still setting up (attaching a thousand members takes a
        // second or two before the loop turns). Its schedule starts now, spread over an interval
        // as at creation; counting those probes missed reported a NOTICE per member at every
        // large start, and sending them at the first turn made one burst of every member's probe
        // whose queued replies raised the FDT of half the groups (257 of 512) at once.
        if !std::mem::replace(&mut inst.served, true) && now_ns >= inst.send.due_ns + interval {
            self.schedule_first(inst, interval, now_ns);
        }
        // A probe leaves when its turn in the wake-up's batch comes, after the tagged `now`, and its
        // reply may queue behind the batch's others at the target: it has the send slack on top of
        // CRTT. Without it, at 1,024 members about one probe in seven was counted lost and then
        // acknowledged late (the network's round trip alone, learnt from kernel stamps, leaves
        // that wait out on purpose: CPU load must not raise the FDT).
        for (seq, target) in inst.expire(now_ns, interval, interval / SEND_SLACK_DIVISOR) {
            self.out.push(Output::Event(Event::ProbeLost {
                ifname: Arc::clone(&sender.name),
                seq,
                target,
            }));
        }
        // A target whose own last five probes were lost while the others answer is dead: out of
        // rotation (a host target is dropped and discovery looks for another). The last target
        // always stays, so with one there is nothing to look for.
        if inst.targets.len() > 1 && inst.consecutive_lost() < constants::NUM_PROBE_FAILS {
            let dead: Vec<IpAddr> = inst
                .targets
                .iter()
                .map(|t| t.addr)
                .filter(|&a| inst.target_consecutive_lost(a) >= constants::NUM_PROBE_FAILS)
                .collect();
            for addr in dead {
                inst.retire_target(addr, TargetState::Dead, now_ns);
            }
        }
        inst.recover_targets(
            now_ns,
            constants::MIN_RECOVERY_TIME_NS,
            constants::MAX_PROBE_TARGETS,
        );
        // A probe due within the slack goes now, with the others due: many members then share a
        // wake-up and their replies arrive together. The schedule (its base) does not move.
        let mut fd_sent = false;
        if now_ns + interval / SEND_SLACK_DIVISOR >= inst.send.due_ns {
            if let Some(target) = inst.take_next_target() {
                fd_sent = true;
                let seq = inst.record_sent(target, now_ns);
                self.out.push(Output::SendProbe {
                    ifname: Arc::clone(&sender.name),
                    key: sender.key,
                    test_addr: inst.test_addr,
                    target,
                    seq,
                    sent_ns: now_ns,
                    prompt_reply,
                });
                // The RTT pointer follows the failure-detection pointer so the two never drift.
                inst.rtt_target = inst.next_target;
            }
            // No targets, or a single discovered host: keep asking all-hosts for more.
            if inst.targets.is_empty() || (inst.host_targets && inst.targets.len() < 2) {
                inst.discoveries.record(now_ns);
                self.out.push(Output::SendDiscovery {
                    ifname: Arc::clone(&sender.name),
                    key: sender.key,
                    test_addr: inst.test_addr,
                    sent_ns: now_ns,
                });
            }
            let (next, skipped) = self.next_tick(inst.send, interval, now_ns);
            inst.send = next;
            if skipped > 0 {
                inst.missed += skipped;
                self.out.push(Output::Event(Event::ProbesMissed {
                    ifname: Arc::clone(&sender.name),
                    count: skipped,
                }));
            }
        }
        // While the group's interval is raised, the configured interval's ticks go on, and each one
        // a failure-detection probe did not take sends an RTT-only probe, which pulls the FDT back
        // down as soon as the congestion ends. As in in.mpathd, the RTT-only probes stand in for
        // the failure-detection probes the raise removed: together they keep the configured rate.
        // Sent on top of it, they made a raise under CPU load add load (1,024 members at FDT
        // 100 ms sent 80,000 RTT-only probes a second beside 21,000 failure-detection ones).
        if interval > user_interval && !inst.targets.is_empty() {
            let tick = match inst.rtt_tick {
                Some(tick) => tick,
                None => self.tick_from(now_ns, user_interval),
            };
            inst.rtt_tick = Some(tick);
            // With the failure-detection probes' send slack: due at its own jittered time and
            // phase, each RTT-only probe otherwise took a wake-up of its own (1,024 members at FDT
            // 100 ms woke 8 times as often once 234 groups were raised). An RTT-only probe is
            // never counted lost, so leaving a little early changes no verdict.
            if fd_sent || now_ns + interval / SEND_SLACK_DIVISOR >= tick.due_ns {
                if !fd_sent {
                    let target = inst.targets[inst.rtt_target % inst.targets.len()].addr;
                    inst.rtt_target = (inst.rtt_target + 1) % inst.targets.len();
                    inst.rtt_probes.record(now_ns);
                    self.out.push(Output::SendRttProbe {
                        ifname: Arc::clone(&sender.name),
                        key: sender.key,
                        test_addr: inst.test_addr,
                        target,
                        sent_ns: now_ns,
                    });
                }
                // The next tick, one configured interval on (RTT-only ticks skipped while
                // descheduled are not failure-detection probes: nothing to report).
                inst.rtt_tick = Some(self.next_tick(tick, user_interval, now_ns).0);
            }
        } else {
            inst.rtt_tick = None;
        }
    }

    /// A reply to an RTT-only probe: it may only lower the target's CRTT.
    ///
    /// # Errors
    /// When no RTT-only probe sent at `sent_ns` (the reply's tagged send time) is in flight.
    pub fn rtt_reply<'a>(
        &mut self,
        ifname: impl Into<Iface<'a>>,
        from: IpAddr,
        sent_ns: u64,
        rtt_ns: u64,
        now_ns: u64,
    ) -> Result<Vec<Output>, ReplyMismatch> {
        let i = self.lookup(ifname).ok_or(ReplyMismatch::UnknownProbe)?;
        let window = self.groups[self.group_of(i)].user_fdt_ns;
        if !self.interfaces[i].instances.iter().any(|p| {
            p.test_addr.is_ipv4() == from.is_ipv4() && p.rtt_probes.recent(sent_ns, now_ns, window)
        }) {
            self.finish();
            return Err(ReplyMismatch::Stale);
        }
        let g = self.group_of(i);
        if self.interfaces[i].state != IfState::Running
            || self.groups[g].state == GroupState::Failed
        {
            return Ok(self.finish());
        }
        let Some(k) = self.interfaces[i]
            .instances
            .iter()
            .position(|p| p.test_addr.is_ipv4() == from.is_ipv4())
        else {
            return Ok(self.finish());
        };
        let interval = self.groups[g].interval_ns;
        if let Some(t) = self.interfaces[i].instances[k]
            .targets
            .iter_mut()
            .find(|t| t.addr == from)
        {
            if t.rtt.crtt_with(rtt_ns) < t.rtt.crtt_ns() {
                t.rtt.sample(rtt_ns);
            }
            if t.rtt.crtt_ns() < interval / LOWER_FDT_TRIGGER {
                self.maybe_lower_fdt(i, k, now_ns);
            }
        }
        Ok(self.finish())
    }

    /// When [`Self::tick`] next has something to do.
    #[must_use]
    pub fn next_deadline(&self) -> Option<u64> {
        self.due.first()
    }

    /// Whether the due index holds exactly every interface's due time (for the invariant
    /// tests).
    #[cfg(test)]
    pub(crate) fn due_index_consistent(&self) -> bool {
        (0..self.interfaces.len() + 2)
            .all(|i| self.due.due_of(i) == self.interfaces.get(i).map_or(u64::MAX, |x| x.due_ns))
    }

    /// When interface `i` next has something to do (`u64::MAX`: nothing): a probe to send, an
    /// unanswered probe to give up on, an RTT probe.
    fn interface_deadline(&self, i: usize) -> u64 {
        let x = &self.interfaces[i];
        if !x.link_up || x.state == IfState::Offline {
            return u64::MAX;
        }
        let interval = self.groups[x.group_idx].interval_ns;
        // A failed link without probes that flapped is repaired when the flapping window has
        // passed (with probes, their acknowledgements decide).
        let flap_end = (x.state == IfState::Failed
            && x.instances.is_empty()
            && x.link_ups.len() > LINK_UP_PERMIN)
            .then(|| x.link_ups[x.link_ups.len() - 1 - LINK_UP_PERMIN] + LINK_FLAP_WINDOW_NS);
        x.instances
            .iter()
            .flat_map(|inst| {
                let expiry = inst.next_expiry(interval, interval / SEND_SLACK_DIVISOR);
                std::iter::once(inst.send.due_ns)
                    .chain(expiry)
                    .chain(inst.rtt_tick.map(|t| t.due_ns))
            })
            .chain(flap_end)
            .min()
            .unwrap_or(u64::MAX)
    }

    fn check_failure(&mut self, i: usize, now_ns: u64) {
        let x = &self.interfaces[i];
        if x.state != IfState::Running || !x.link_up || !x.probing() {
            return;
        }
        // With both families probed, both must have failed (walked twice rather than collected:
        // this runs for every interface a tick serves).
        let capable = || x.instances.iter().filter(|p| !p.targets.is_empty());
        if capable().all(|p| p.probe_failed(now_ns)) {
            let tff = capable()
                .filter_map(ProbeInstance::first_failure_ns)
                .min()
                .unwrap_or(now_ns);
            self.fail(i, now_ns, Some(tff));
        }
    }

    fn check_repair(&mut self, i: usize, now_ns: u64) {
        let x = &self.interfaces[i];
        if x.state != IfState::Failed || !x.link_up {
            return;
        }
        let repaired = if x.instances.is_empty() {
            if x.flapping(now_ns) {
                if !x.flap_reported {
                    let ifname = x.name.to_string();
                    self.interfaces[i].flap_reported = true;
                    self.emit(Event::LinkFlapping { ifname });
                }
                false
            } else {
                true
            }
        } else if !x.probing() {
            // Test addresses but no targets: the link is all there is to go by.
            true
        } else {
            x.instances
                .iter()
                .any(|p| p.repair_acks() >= NUM_PROBE_REPAIRS)
        };
        if repaired {
            self.repair(i, now_ns);
        }
    }

    /// Failure of interface `i`: an interface failure, or a group failure when no other member
    /// shows that the network still works. `probe_tff` is the time of first failure when probes
    /// (not the link) decided.
    fn fail(&mut self, i: usize, _now_ns: u64, probe_tff: Option<u64>) {
        let g = self.group_of(i);
        let group_failed = self.groups[g].state == GroupState::Failed;
        let network_fine = self.groups[g].anonymous()
            || self.members(g).any(|(j, y)| {
                j != i
                    && y.link_up
                    && match probe_tff {
                        None => y.state == IfState::Running && !group_failed,
                        Some(tff) => {
                            !y.probing()
                                || (y.state == IfState::Running
                                    && !group_failed
                                    && y.instances
                                        .iter()
                                        .any(|p| p.last_success_ns.is_some_and(|t| t > tff)))
                        }
                    }
            });
        let victims: Vec<usize> = if network_fine {
            vec![i]
        } else {
            self.members(g)
                .filter(|(j, y)| *j == i || y.functioning())
                .map(|(j, _)| j)
                .collect()
        };
        for v in victims {
            let was_active = self.is_active(v);
            let y = &mut self.interfaces[v];
            y.state = IfState::Failed;
            y.inactive = false;
            y.flap_reported = false;
            for p in &mut y.instances {
                p.reset_rtts();
            }
            let e = Event::InterfaceFailed {
                ifname: y.name.to_string(),
                group: y.group.clone(),
            };
            self.emit(e);
            if was_active && !self.groups[g].anonymous() {
                self.activate_another(g);
            }
        }
    }

    fn activate_another(&mut self, g: usize) {
        let candidates: Vec<usize> = self
            .members(g)
            .filter(|(_, y)| y.functioning() && y.inactive)
            .map(|(j, _)| j)
            .collect();
        if let Some(&pick) = candidates
            .iter()
            .find(|&&j| self.interfaces[j].standby)
            .or(candidates.first())
        {
            self.interfaces[pick].inactive = false;
        }
    }

    fn repair(&mut self, i: usize, _now_ns: u64) {
        let g = self.group_of(i);
        let group_was_failed = self.groups[g].state == GroupState::Failed;
        let x = &mut self.interfaces[i];
        x.state = if !x.instances.is_empty() && !x.probing() {
            IfState::NoTargets
        } else {
            IfState::Running
        };
        let e = Event::InterfaceRepaired {
            ifname: x.name.to_string(),
            group: x.group.clone(),
        };
        self.emit(e);
        self.transition_to_running(i, false, group_was_failed);
    }

    /// in.mpathd's `phyint_transition_to_running`: decide INACTIVE for an interface that became
    /// usable again.
    fn transition_to_running(&mut self, i: usize, onlining: bool, group_was_failed: bool) {
        let g = self.group_of(i);
        let first = std::mem::replace(&mut self.interfaces[i].first_appearance, false);
        if self.groups[g].anonymous() {
            self.interfaces[i].inactive = false;
            return;
        }
        let nonstandby = self.nonstandby_count(g);
        if self.interfaces[i].standby {
            self.interfaces[i].inactive = self.active_count(g, Some(i)) >= nonstandby;
            return;
        }
        let hold_back = !onlining
            && !self.config.failback
            && !group_was_failed
            && !first
            && self.active_count(g, Some(i)) > 0;
        self.interfaces[i].inactive = hold_back;
        if !hold_back {
            self.retire_surplus_standby(g, i);
        }
    }

    /// A standby that stood in goes back to standing by once `i`, not a standby, carries data
    /// and more members are active than the group's capacity.
    fn retire_surplus_standby(&mut self, g: usize, i: usize) {
        if self.active_count(g, None) <= self.nonstandby_count(g) {
            return;
        }
        let standby = self
            .members(g)
            .find(|(j, y)| *j != i && y.standby && self.is_active(*j))
            .map(|(j, _)| j);
        if let Some(s) = standby {
            self.interfaces[s].inactive = true;
        }
    }

    /// if_mpadm -d: take `ifname` out of service.
    ///
    /// # Errors
    /// Unknown interface, already offline, or no other usable member would remain.
    pub fn offline(&mut self, ifname: &str, now_ns: u64) -> Result<Vec<Output>, AdminError> {
        let i = self.lookup(ifname).ok_or(AdminError::UnknownInterface)?;
        if self.interfaces[i].state == IfState::Offline {
            return Err(AdminError::AlreadyOffline);
        }
        let g = self.group_of(i);
        let group_failed = self.groups[g].state == GroupState::Failed;
        let others = self
            .members(g)
            .filter(|(j, y)| {
                *j != i && y.state != IfState::Offline && (group_failed || y.functioning())
            })
            .count();
        if others < 1 {
            return Err(AdminError::MinRedundancy);
        }
        self.take_offline(i);
        // A member that duplicated this one's hardware address may come back now.
        self.refresh_hwaddr(g, now_ns);
        Ok(self.finish())
    }

    /// Offlines interface `i` without a redundancy check (in.mpathd's minimum redundancy 0).
    fn take_offline(&mut self, i: usize) {
        let g = self.group_of(i);
        let was_active = self.is_active(i);
        let x = &mut self.interfaces[i];
        x.failed_while_offline = x.state == IfState::Failed;
        x.state = IfState::Offline;
        x.inactive = false;
        if was_active {
            self.activate_another(g);
        }
    }

    /// The hardware address of `ifname` is `mac` (at start and whenever it changes). A member
    /// whose address another online member of its group already has is taken offline; it comes
    /// back when the conflict clears.
    pub fn set_hwaddr(&mut self, ifname: &str, mac: Option<[u8; 6]>, now_ns: u64) -> Vec<Output> {
        let Some(i) = self.lookup(ifname) else {
            return Vec::new();
        };
        self.interfaces[i].hwaddr = mac;
        let g = self.group_of(i);
        self.refresh_hwaddr(g, now_ns);
        self.finish()
    }

    fn refresh_hwaddr(&mut self, g: usize, now_ns: u64) {
        if self.groups[g].anonymous() {
            return;
        }
        let members: Vec<usize> = self.members(g).map(|(j, _)| j).collect();
        for &j in &members {
            let x = &self.interfaces[j];
            let Some(mac) = x.hwaddr else { continue };
            // Duplicate of an earlier member that is online.
            let dup = members.iter().take_while(|&&k| k != j).any(|&k| {
                let y = &self.interfaces[k];
                y.hwaddr == Some(mac) && y.state != IfState::Offline
            });
            let (name, group) = (x.name.clone(), x.group.clone());
            if dup && !x.offline_hwdup && x.state != IfState::Offline {
                self.emit(Event::HwAddrDuplicate {
                    ifname: name.to_string(),
                    group,
                });
                self.take_offline(j);
                self.interfaces[j].offline_hwdup = true;
            } else if !dup && x.offline_hwdup {
                self.emit(Event::HwAddrUnique {
                    ifname: name.to_string(),
                    group,
                });
                self.interfaces[j].offline_hwdup = false;
                self.bring_online(j, now_ns);
            }
        }
    }

    /// if_mpadm -r: return `ifname` to service.
    ///
    /// # Errors
    /// Unknown interface, not offline, or offlined for a hardware address still duplicated.
    pub fn online(&mut self, ifname: &str, now_ns: u64) -> Result<Vec<Output>, AdminError> {
        let i = self.lookup(ifname).ok_or(AdminError::UnknownInterface)?;
        if self.interfaces[i].state != IfState::Offline {
            return Err(AdminError::NotOffline);
        }
        if self.interfaces[i].offline_hwdup {
            return Err(AdminError::HwAddrDup);
        }
        self.bring_online(i, now_ns);
        Ok(self.finish())
    }

    fn bring_online(&mut self, i: usize, now_ns: u64) {
        let g = self.group_of(i);
        let group_was_failed = self.groups[g].state == GroupState::Failed;
        let interval = self.groups[g].interval_ns;
        let x = &mut self.interfaces[i];
        if x.failed_while_offline || !x.link_up {
            x.state = IfState::Failed;
        } else {
            x.state = if !x.instances.is_empty() && !x.probing() {
                IfState::NoTargets
            } else {
                IfState::Running
            };
        }
        let mut instances = std::mem::take(&mut self.interfaces[i].instances);
        for inst in &mut instances {
            inst.clear_history();
            self.schedule_first(inst, interval, now_ns);
        }
        self.interfaces[i].instances = instances;
        if self.interfaces[i].functioning() {
            self.transition_to_running(i, true, group_was_failed);
        }
    }

    /// Re-derives group `g`'s state from its members; reports it failing or usable again.
    fn refresh_group(&mut self, g: usize) {
        let Some((new, first_usable)) = self.derived_group_state(g) else {
            return;
        };
        let group = &mut self.groups[g];
        let old = std::mem::replace(&mut group.state, new);
        let settled = std::mem::replace(&mut group.settled, true);
        if old != GroupState::Failed && new == GroupState::Failed {
            let group = self.groups[g].name.clone();
            self.emit(Event::GroupFailed { group });
        } else if old == GroupState::Failed && new != GroupState::Failed && settled {
            let group = self.groups[g].name.clone();
            let ifname =
                first_usable.map_or_else(String::new, |j| self.interfaces[j].name.to_string());
            self.emit(Event::GroupUsable { group, ifname });
        }
    }

    /// The state group `g`'s members give it, and its first usable member (`None`: the anonymous
    /// group, or no members). Counted without a copy of any name: this runs for every touched
    /// group on every input that touches one.
    fn derived_group_state(&self, g: usize) -> Option<(GroupState, Option<usize>)> {
        if self.groups[g].anonymous() {
            return None;
        }
        let (mut usable, mut total, mut first_usable) = (0, 0, None);
        for (j, y) in self.members(g) {
            total += 1;
            if y.functioning() {
                usable += 1;
                first_usable.get_or_insert(j);
            }
        }
        let state = if total == 0 {
            return None;
        } else if usable == total {
            GroupState::Ok
        } else if usable == 0 {
            GroupState::Failed
        } else {
            GroupState::Degraded
        };
        Some((state, first_usable))
    }

    /// Ends an input: for the groups it touched, group states, activation changes and deadlines;
    /// then the outputs gathered. An input only changes the groups it touched, so the others
    /// need no look.
    fn finish(&mut self) -> Vec<Output> {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        for &g in &dirty {
            self.refresh_group(g);
        }
        for &g in &dirty {
            self.groups[g].dirty = false;
            for k in 0..self.groups[g].members.len() {
                let i = self.groups[g].members[k];
                let active = self.is_active(i);
                if self.interfaces[i].was_active.replace(active) != Some(active) {
                    self.out.push(Output::SetActive {
                        ifname: self.interfaces[i].name.to_string(),
                        active,
                    });
                }
                self.refresh_deadline(i);
            }
        }
        // Keep the allocation for the next input.
        dirty.clear();
        self.dirty = dirty;
        std::mem::take(&mut self.out)
    }

    /// Checks that what [`Self::finish`] derives is current for every group no input left
    /// pending: each member's activity as last reported, its deadline in the due index, and the
    /// group's state. The scenario tests call it after their inputs.
    #[cfg(test)]
    fn assert_derived_current(&self) {
        for (g, group) in self.groups.iter().enumerate() {
            if group.dirty {
                continue;
            }
            for &i in &group.members {
                let x = &self.interfaces[i];
                assert_eq!(
                    x.was_active,
                    Some(self.is_active(i)),
                    "{}: activity",
                    x.name
                );
                let due = self.interface_deadline(i);
                assert_eq!(x.due_ns, due, "{}: deadline", x.name);
                assert_eq!(self.due.due_of(i), due, "{}: due index", x.name);
            }
            if let Some((state, _)) = self.derived_group_state(g) {
                assert_eq!(state, group.state, "group {}: state", group.name);
            }
        }
    }

    /// The state of every interface.
    #[must_use]
    pub fn interfaces(&self) -> Vec<InterfaceView> {
        (0..self.interfaces.len())
            .map(|i| {
                let x = &self.interfaces[i];
                InterfaceView {
                    ifname: x.name.to_string(),
                    group: x.group.clone(),
                    state: x.state,
                    active: self.is_active(i),
                    inactive: x.inactive,
                    standby: x.standby,
                    link_up: x.link_up,
                    probing: x.probing(),
                    hwaddr_dup: x.offline_hwdup,
                }
            })
            .collect()
    }

    /// One interface.
    #[must_use]
    pub fn interface(&self, ifname: &str) -> Option<InterfaceView> {
        self.interfaces().into_iter().find(|v| v.ifname == ifname)
    }

    /// State and current FDT (ns) of a group.
    #[must_use]
    pub fn group(&self, name: &str) -> Option<(GroupState, u64)> {
        self.group_index(name)
            .map(|g| (self.groups[g].state, self.groups[g].fdt_ns))
    }

    /// CRTT (ns) of `target` as seen from `ifname`.
    #[must_use]
    pub fn crtt(&self, ifname: &str, target: IpAddr) -> Option<u64> {
        let x = &self.interfaces[self.if_index(ifname)?];
        x.instances
            .iter()
            .flat_map(|p| p.targets.iter())
            .find(|t| t.addr == target)
            .map(|t| t.rtt.crtt_ns())
    }
}
