//! Scenario tests of the engine with a simulated clock and a simulated network.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
};

use super::{
    AdminError, Engine, EngineConfig, Event, GroupState, IfKey, IfState, Iface, MemberSpec, Output,
    Prior, ReplyMismatch, constants::FAILURE_DETECTION_QP_NS, rng::Jitter,
};

const MS: u64 = 1_000_000;
const S: u64 = 1_000 * MS;

fn ip(last: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, last])
}

/// The engine plus a network that answers probes after a per-interface RTT, or drops them.
struct Sim {
    e: Engine,
    now: u64,
    /// (arrival time, interface, seq, target, rtt, sent time, prompt)
    pending: Vec<(u64, String, u16, IpAddr, u64, u64, bool)>,
    /// Replies not marked prompt are read only when the engine next wakes (as the daemon reads
    /// replies queued without a wake-up), not when they arrive.
    lazy_replies: bool,
    /// (interface, prompt) of every probe sent.
    prompts: Vec<(String, bool)>,
    /// Per interface: Some(rtt) answers, None drops silently.
    paths: HashMap<String, Option<u64>>,
    events: Vec<(u64, Event)>,
    active: HashMap<String, bool>,
    sent: Vec<(u64, String, IpAddr, u16)>,
    /// (sent time, interface)
    discoveries: Vec<(u64, String)>,
    rtt_probes: usize,
    /// (delivery time, interface, target, rtt, sent time)
    rtt_pending: Vec<(u64, String, IpAddr, u64, u64)>,
    /// Targets that stopped answering.
    silent_targets: Vec<IpAddr>,
    /// Wake-ups for the engine's own deadlines (ticks).
    ticks: usize,
    /// Replies name their interface by the key last given for it (asked again once stale), as
    /// the daemon does, instead of by name.
    by_key: bool,
    keys: HashMap<String, IfKey>,
    /// Inputs given to the engine so far.
    inputs: usize,
    /// A stall of the host until then: no reply arrives before it (they queue, in order).
    held_until: u64,
}

/// A member of `group`; with a test address, it probes targets 1 and 2.
fn spec(ifname: &str, group: &str, standby: bool, test: Option<u8>) -> MemberSpec {
    MemberSpec {
        ifname: ifname.into(),
        group: group.into(),
        standby,
        test_addrs: test.map(ip).into_iter().collect(),
        targets: if test.is_some() {
            vec![ip(1), ip(2)]
        } else {
            vec![]
        },
    }
}

impl Sim {
    fn new(fdt_ms: u64, failback: bool) -> Self {
        let config = EngineConfig {
            user_fdt_ns: fdt_ms * MS,
            failback,
            seed: 7,
        };
        Self {
            e: Engine::new(config),
            now: 0,
            pending: vec![],
            lazy_replies: false,
            prompts: vec![],
            paths: HashMap::new(),
            events: vec![],
            active: HashMap::new(),
            sent: vec![],
            discoveries: vec![],
            rtt_probes: 0,
            rtt_pending: vec![],
            silent_targets: vec![],
            ticks: 0,
            by_key: false,
            keys: HashMap::new(),
            inputs: 0,
            held_until: 0,
        }
    }

    /// How a reply names `ifname`: its name, or with `by_key` the key kept for it (a fresh one
    /// when the kept one went stale; the name when the engine does not track it).
    fn who<'a>(&mut self, ifname: &'a str) -> Iface<'a> {
        if !self.by_key {
            return Iface::Name(ifname);
        }
        match self.e.key_again(self.keys.get(ifname).copied(), ifname) {
            Some(k) => {
                self.keys.insert(ifname.to_owned(), k);
                Iface::Key(k)
            }
            None => Iface::Name(ifname),
        }
    }

    fn member(&mut self, ifname: &str, group: &str, standby: bool, test: Option<u8>) {
        self.paths.insert(ifname.into(), Some(MS / 10));
        let out = self
            .e
            .add_member(&spec(ifname, group, standby, test), true, self.now);
        self.absorb(out);
    }

    /// Tracks a member of group "g" with what it had before, as the daemon does after a
    /// restart or a reload: one `Engine::track` with the prior.
    fn tracked(&mut self, ifname: &str, test: Option<u8>, prior: Prior) {
        self.paths.insert(ifname.into(), Some(MS / 10));
        let spec = spec(ifname, "g", false, test);
        let out = self.e.track(&spec, true, None, Some(prior), self.now);
        self.absorb(out);
    }

    fn absorb(&mut self, out: Vec<Output>) {
        // Every input leaves the derived state current, whichever way it re-derived it: checked
        // after each input of a small engine, and after every 64th of a large one (the check
        // walks every member; after each of 100 groups' inputs it doubled a test's time).
        self.inputs += 1;
        if self.e.interfaces.len() <= 16 || self.inputs.is_multiple_of(64) {
            self.e.assert_derived_current();
        }
        for o in out {
            match o {
                Output::SendProbe {
                    ifname,
                    key,
                    target,
                    seq,
                    sent_ns,
                    prompt_reply,
                    ..
                } => {
                    assert_eq!(
                        self.e.key(&ifname),
                        Some(key),
                        "a probe names its sender's key"
                    );
                    let ifname = ifname.to_string();
                    self.sent.push((self.now, ifname.clone(), target, seq));
                    self.prompts.push((ifname.clone(), prompt_reply));
                    if self.silent_targets.contains(&target) {
                        continue;
                    }
                    if let Some(&Some(rtt)) = self.paths.get(&ifname) {
                        // A stalled host's round trips last until the stall ends.
                        let arrival = (self.now + rtt).max(self.held_until);
                        self.pending.push((
                            arrival,
                            ifname,
                            seq,
                            target,
                            arrival - self.now,
                            sent_ns,
                            prompt_reply,
                        ));
                    }
                }
                Output::SendDiscovery {
                    ifname,
                    key,
                    sent_ns,
                    ..
                } => {
                    assert_eq!(self.e.key(&ifname), Some(key));
                    self.discoveries.push((sent_ns, ifname.to_string()));
                }
                Output::SendRttProbe {
                    ifname,
                    key,
                    target,
                    sent_ns,
                    ..
                } => {
                    assert_eq!(self.e.key(&ifname), Some(key));
                    let ifname = ifname.to_string();
                    self.rtt_probes += 1;
                    if let Some(Some(rtt)) = self.paths.get(&ifname) {
                        self.rtt_pending
                            .push((self.now + rtt, ifname, target, *rtt, sent_ns));
                    }
                }
                Output::SetActive { ifname, active } => {
                    self.active.insert(ifname, active);
                }
                Output::Event(e) => self.events.push((self.now, e)),
            }
        }
    }

    /// Runs the world until `t`.
    fn run_until(&mut self, t: u64) {
        for _ in 0..1_000_000 {
            let next_reply = self
                .pending
                .iter()
                .filter(|p| p.6 || !self.lazy_replies)
                .map(|p| p.0)
                .chain(self.rtt_pending.iter().map(|p| p.0))
                .min();
            let next = [self.e.next_deadline(), next_reply]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next.filter(|n| *n <= t) else {
                break;
            };
            self.now = next.max(self.now);
            if let Some(pos) = self.rtt_pending.iter().position(|p| p.0 <= self.now) {
                let (_, ifname, target, rtt, sent) = self.rtt_pending.remove(pos);
                let who = self.who(&ifname);
                if let Ok(out) = self.e.rtt_reply(who, target, sent, rtt, self.now) {
                    self.absorb(out);
                }
            } else if let Some(pos) = self.pending.iter().position(|p| p.0 <= self.now) {
                let (_, ifname, seq, target, rtt, sent, _) = self.pending.remove(pos);
                let who = self.who(&ifname);
                if let Ok(out) = self.e.probe_reply(who, seq, target, sent, rtt, self.now) {
                    self.absorb(out);
                }
            } else {
                self.ticks += 1;
                let out = self.e.tick(self.now);
                self.absorb(out);
            }
        }
        self.now = t;
        let out = self.e.tick(t);
        self.absorb(out);
    }

    fn run_for(&mut self, d: u64) {
        self.run_until(self.now + d);
    }

    fn link(&mut self, ifname: &str, up: bool) {
        let out = self.e.link_changed(ifname, up, self.now);
        self.absorb(out);
    }

    fn state(&self, ifname: &str) -> IfState {
        self.e.interface(ifname).unwrap().state
    }

    fn is_active(&self, ifname: &str) -> bool {
        self.e.interface(ifname).unwrap().active
    }

    fn first_event(&self, pred: impl Fn(&Event) -> bool) -> Option<u64> {
        self.events.iter().find(|(_, e)| pred(e)).map(|(t, _)| *t)
    }

    /// Past the start-up quiet period with every path answering.
    fn settle(&mut self) {
        self.run_for(FAILURE_DETECTION_QP_NS + S);
    }
}

fn failed(name: &str) -> impl Fn(&Event) -> bool + '_ {
    move |e| matches!(e, Event::InterfaceFailed { ifname, .. } if ifname == name)
}

fn repaired(name: &str) -> impl Fn(&Event) -> bool + '_ {
    move |e| matches!(e, Event::InterfaceRepaired { ifname, .. } if ifname == name)
}

#[test]
fn probe_interval_is_fdt_over_seven_with_jitter_and_round_robin_targets() {
    let mut s = Sim::new(700, true);
    s.member("a", "g", false, Some(10));
    s.run_for(10 * S);
    let times: Vec<u64> = s.sent.iter().map(|x| x.0).collect();
    assert!(
        times.len() >= 95 && times.len() <= 101,
        "100 ms interval over 10 s: {} probes",
        times.len()
    );
    for w in times.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            (50 * MS..=150 * MS).contains(&gap),
            "each probe in the second half of its interval: gap {gap}"
        );
    }
    let targets: Vec<IpAddr> = s.sent.iter().take(4).map(|x| x.2).collect();
    assert_eq!(
        targets,
        vec![ip(1), ip(2), ip(1), ip(2)],
        "one target per probe, round robin"
    );
    assert!(
        s.sent.windows(2).all(|w| w[1].3 == w[0].3.wrapping_add(1)),
        "sequence numbers count up"
    );
}

#[test]
fn silent_loss_is_detected_within_the_fdt_and_repaired_within_twice_it() {
    let mut s = Sim::new(700, true);
    s.member("a", "g", false, Some(10));
    s.member("b", "g", false, Some(11));
    s.settle();
    assert_eq!(s.e.group("g").unwrap().0, GroupState::Ok);
    let fault = s.now;
    s.paths.insert("a".into(), None);
    s.run_for(2 * S);
    let detected = s.first_event(failed("a")).expect("failure detected");
    assert!(
        detected - fault <= 700 * MS,
        "detected after {} ms, FDT 700 ms",
        (detected - fault) / MS
    );
    assert_eq!(s.state("a"), IfState::Failed);
    assert!(!s.is_active("a") && s.is_active("b"));
    assert_eq!(s.e.group("g").unwrap().0, GroupState::Degraded);
    assert!(
        s.first_event(|e| matches!(e, Event::GroupFailed { .. }))
            .is_none(),
        "b shows the network works"
    );
    let fix = s.now;
    s.paths.insert("a".into(), Some(MS / 10));
    s.run_for(3 * S);
    let back = s.first_event(repaired("a")).expect("repair detected");
    assert!(
        back - fix <= 1400 * MS,
        "repaired after {} ms, limit 2 x FDT",
        (back - fix) / MS
    );
    assert!(s.is_active("a"), "FAILBACK=yes");
    assert_eq!(s.e.group("g").unwrap().0, GroupState::Ok);
}

/// Silent loss on `a` then its repair, replies read lazily or at once; returns (detection,
/// repair) delays and the probes counted lost before the fault.
fn fault_and_repair(fdt_ms: u64, lazy: bool) -> (u64, u64, usize) {
    let mut s = Sim::new(fdt_ms, true);
    s.lazy_replies = lazy;
    s.member("a", "g", false, Some(10));
    s.member("b", "g", false, Some(11));
    s.settle();
    let lost_before = s
        .events
        .iter()
        .filter(|(t, e)| *t > FAILURE_DETECTION_QP_NS && matches!(e, Event::ProbeLost { .. }))
        .count();
    assert!(
        s.prompts.iter().rev().take(10).all(|(_, p)| !p),
        "running members' replies can wait"
    );
    let fault = s.now;
    s.paths.insert("a".into(), None);
    s.run_for(2 * fdt_ms * MS + S);
    let detected = s.first_event(failed("a")).expect("failure detected") - fault;
    assert!(
        s.prompts.iter().rev().take(4).any(|(n, p)| n == "a" && *p),
        "a failed member's replies wake the reader: they count toward its repair"
    );
    let fix = s.now;
    s.paths.insert("a".into(), Some(MS / 10));
    s.run_for(4 * fdt_ms * MS + S);
    let repaired = s.first_event(repaired("a")).expect("repair detected") - fix;
    assert!(
        s.prompts.iter().rev().take(4).all(|(_, p)| !p),
        "repaired: lazy again"
    );
    (detected, repaired, lost_before)
}

#[test]
fn replies_read_at_the_next_wake_up_change_no_verdict() {
    for fdt_ms in [10, 100, 700] {
        let eager = fault_and_repair(fdt_ms, false);
        let lazy = fault_and_repair(fdt_ms, true);
        assert_eq!(
            lazy.2, 0,
            "FDT {fdt_ms} ms: an answered probe was counted lost"
        );
        assert_eq!(eager.2, 0);
        assert!(
            lazy.0 <= fdt_ms * MS && eager.0 <= fdt_ms * MS,
            "FDT {fdt_ms} ms: detected after {} / {} ns",
            lazy.0,
            eager.0
        );
        assert_eq!(lazy.0, eager.0, "FDT {fdt_ms} ms: the same detection time");
        assert!(
            lazy.1 <= 2 * fdt_ms * MS,
            "FDT {fdt_ms} ms: repaired after {} ns (eager {})",
            lazy.1,
            eager.1
        );
    }
}

#[test]
fn losses_in_the_quiet_period_do_not_count_until_the_first_reply() {
    let mut s = Sim::new(700, true);
    s.paths.insert("a".into(), None);
    s.member("a", "g", false, Some(10));
    s.paths.insert("a".into(), None);
    s.member("b", "g", false, Some(11));
    s.run_for(30 * S);
    assert!(
        s.first_event(failed("a")).is_none(),
        "no failure inside the 40 s quiet period"
    );
    s.run_for(15 * S);
    assert!(
        s.first_event(failed("a")).is_some(),
        "failure once the quiet period is over"
    );
}

#[test]
fn carrier_loss_fails_at_once_and_repair_needs_the_link_and_probes() {
    let mut s = Sim::new(10_000, true);
    s.member("a", "g", false, Some(10));
    s.member("b", "g", false, Some(11));
    s.settle();
    s.link("a", false);
    assert_eq!(
        s.first_event(failed("a")),
        Some(s.now),
        "link-based detection is immediate"
    );
    assert!(
        s.events
            .iter()
            .any(|(_, e)| *e == Event::LinkDown { ifname: "a".into() })
    );
    s.link("a", true);
    s.run_for(S);
    assert!(
        s.first_event(repaired("a")).is_none(),
        "link up alone does not repair a probed interface"
    );
    s.run_for(30 * S);
    assert!(
        s.first_event(repaired("a")).is_some(),
        "10 acknowledged probes do"
    );
}

#[test]
fn all_members_failing_is_a_group_failure_and_the_first_repair_announces_usable() {
    let mut s = Sim::new(1000, true);
    s.member("a", "g", false, None);
    s.member("b", "g", false, None);
    s.settle();
    s.link("a", false);
    s.link("b", false);
    assert_eq!(s.e.group("g").unwrap().0, GroupState::Failed);
    assert!(
        s.first_event(|e| matches!(e, Event::GroupFailed { group } if group == "g"))
            .is_some()
    );
    s.link("b", true);
    assert!(
        s.first_event(|e| matches!(e, Event::GroupUsable { ifname, .. } if ifname == "b"))
            .is_some()
    );
    assert!(s.is_active("b"));
}

#[test]
fn failback_no_keeps_a_repaired_interface_inactive_until_needed() {
    let mut s = Sim::new(1000, false);
    s.member("a", "g", false, None);
    s.member("b", "g", false, None);
    s.settle();
    s.link("a", false);
    s.link("a", true);
    assert_eq!(s.state("a"), IfState::Running);
    assert!(!s.is_active("a"), "FAILBACK=no: repaired but inactive");
    s.link("b", false);
    assert!(s.is_active("a"), "activated when the other member fails");
}

#[test]
fn failback_no_still_activates_when_the_group_had_failed() {
    let mut s = Sim::new(1000, false);
    s.member("a", "g", false, None);
    s.settle();
    s.link("a", false);
    s.link("a", true);
    assert!(s.is_active("a"));
}

#[test]
fn standby_takes_over_and_steps_back() {
    let mut s = Sim::new(1000, true);
    s.member("a", "g", false, None);
    s.member("s", "g", true, None);
    s.settle();
    assert!(
        s.is_active("a") && !s.is_active("s"),
        "standby inactive while not needed"
    );
    s.link("a", false);
    assert!(s.is_active("s"), "standby activated on failure");
    s.link("a", true);
    assert!(
        s.is_active("a") && !s.is_active("s"),
        "standby steps back on repair"
    );
}

#[test]
fn link_flapping_holds_back_repair() {
    let mut s = Sim::new(1000, true);
    s.member("a", "g", false, None);
    s.member("b", "g", false, None);
    s.settle();
    for _ in 0..3 {
        s.link("a", false);
        s.run_for(S);
        s.link("a", true);
        s.run_for(S);
    }
    assert_eq!(
        s.state("a"),
        IfState::Failed,
        "third link-up within a minute: no repair"
    );
    assert!(
        s.events
            .iter()
            .any(|(_, e)| *e == Event::LinkFlapping { ifname: "a".into() })
    );
    s.run_for(61 * S);
    assert_eq!(
        s.state("a"),
        IfState::Running,
        "repaired once the link is stable"
    );
}

#[test]
fn slow_responders_raise_the_fdt_and_it_falls_back_after_settling() {
    let mut s = Sim::new(700, true);
    s.member("a", "g", false, Some(10));
    s.settle();
    s.paths.insert("a".into(), Some(150 * MS));
    s.run_for(10 * S);
    let raised = s.events.iter().find_map(|(_, e)| match e {
        Event::FdtRaised {
            user_fdt_ms,
            fdt_ms,
            group,
            ..
        } => Some((*user_fdt_ms, *fdt_ms, group.clone())),
        _ => None,
    });
    let (user, new, group) = raised.expect("Cannot meet requested failure detection time");
    assert_eq!((user, group.as_str()), (700, "g"));
    assert!(new > 700);
    assert_eq!(s.state("a"), IfState::Running, "slow is not failed");
    let (rtt_before, fd_before) = (s.rtt_probes, s.sent.len());
    s.run_for(5 * S);
    let (rtt, fd) = (s.rtt_probes - rtt_before, s.sent.len() - fd_before);
    assert!(
        rtt > 25 && fd > 3,
        "RTT-only probes on the configured 100 ms ticks while raised: {rtt} (and {fd} others)"
    );
    // One probe per configured tick, of either kind, as in in.mpathd: the raise removes
    // failure-detection probes and RTT-only probes take their ticks, never more.
    assert!(
        (48..=52).contains(&(rtt + fd)),
        "5 s of 100 ms ticks: {rtt} RTT-only + {fd} failure-detection probes"
    );
    s.paths.insert("a".into(), Some(MS / 10));
    s.run_for(30 * S);
    assert!(
        !s.events
            .iter()
            .any(|(_, e)| matches!(e, Event::FdtImproved { .. })),
        "not before 60 s of settling"
    );
    s.run_for(120 * S);
    assert!(
        s.events
            .iter()
            .any(|(_, e)| matches!(e, Event::FdtImproved { .. })),
        "Improved failure detection time"
    );
    assert_eq!(
        s.e.group("g").unwrap().1,
        700 * MS,
        "back to the configured FDT"
    );
    let rtt_after = s.rtt_probes;
    s.run_for(2 * S);
    assert_eq!(
        s.rtt_probes, rtt_after,
        "no RTT-only probes once the FDT is back"
    );
}

fn fdt_raised(s: &Sim) -> bool {
    s.events
        .iter()
        .any(|(_, e)| matches!(e, Event::FdtRaised { .. }))
}

/// A settled `fdt_ms` group of one member (two targets); then `slow` runs for a while.
fn settled_then(fdt_ms: u64, slow: impl FnOnce(&mut Sim)) -> Sim {
    let mut s = Sim::new(fdt_ms, true);
    s.member("a", "g", false, Some(10));
    s.settle();
    slow(&mut s);
    s.run_for(S);
    s
}

/// The host stalls for `d`: every reply due meanwhile arrives when it ends, in order.
fn stall(d: u64) -> impl FnOnce(&mut Sim) {
    move |s: &mut Sim| {
        s.held_until = s.now + d;
        s.run_for(d);
    }
}

#[test]
fn a_stall_of_a_few_milliseconds_does_not_raise_a_10_ms_fdt() {
    // Probes 1.4 ms apart, each target's 2.9 ms apart: after a 6 ms stall two of each target's
    // replies in a row come back later than the 1.4 ms interval, which is all in.mpathd's rule
    // asks before raising (and the raise would hold for a minute); below its lowest interval
    // the suspect samples must have lasted 14 ms, and these all arrive at once.
    let s = settled_then(10, stall(6 * MS));
    assert!(!fdt_raised(&s), "raised by one stall");
    assert_eq!(s.e.group("g").unwrap().1, 10 * MS);
    assert_eq!(s.state("a"), IfState::Running, "a stall is not a failure");
}

#[test]
fn slowness_that_lasts_raises_a_10_ms_fdt() {
    let s = settled_then(10, |s| {
        s.paths.insert("a".into(), Some(4 * MS));
        s.run_for(100 * MS);
        s.paths.insert("a".into(), Some(MS / 10));
    });
    assert!(fdt_raised(&s), "not raised by 100 ms of 4 ms round trips");
    assert!(s.e.group("g").unwrap().1 > 10 * MS);
    assert_eq!(s.state("a"), IfState::Running, "slow is not failed");
}

#[test]
fn from_in_mpathds_lowest_fdt_up_two_suspect_samples_in_a_row_raise_it() {
    // FDT 100 ms: probes 14.3 ms apart, each target's 28.6 ms; after a 60 ms stall two of each
    // target's replies in a row are suspect, and in.mpathd's rule raises at once.
    let s = settled_then(100, stall(60 * MS));
    assert!(fdt_raised(&s), "in.mpathd raises on two suspects in a row");
    assert_eq!(s.state("a"), IfState::Running, "slow is not failed");
}

#[test]
fn raised_fdts_do_not_multiply_the_wake_ups() {
    // 16 groups of two at FDT 100 ms, replies read at the next wake-up as the daemon reads them.
    // While half the groups' FDTs are raised, their RTT-only probes keep the configured ticks: due
    // with the failure-detection probes' slack, they share the others' wake-ups instead of each
    // taking one of its own (the scale bench woke 8 times as often after 234 raises).
    let mut s = Sim::new(100, true);
    s.lazy_replies = true;
    const GROUPS: u32 = 16;
    let names: Vec<(String, String)> = (0..GROUPS)
        .flat_map(|g| {
            [
                (format!("a{g}"), format!("g{g}")),
                (format!("b{g}"), format!("g{g}")),
            ]
        })
        .collect();
    for (i, (ifname, group)) in names.iter().enumerate() {
        s.member(ifname, group, false, Some(10 + (i % 2) as u8));
    }
    s.settle();
    let wake_ups = |s: &mut Sim| {
        let before = s.ticks;
        s.run_for(2 * S);
        s.ticks - before
    };
    let equal = wake_ups(&mut s);
    // Slow round trips on the even groups raise their FDT; back to fast, the raise stays (in.mpathd
    // lowers it only after a minute of settling).
    for (ifname, _) in names
        .iter()
        .filter(|(_, g)| g[1..].parse::<u32>().unwrap() % 2 == 0)
    {
        s.paths.insert(ifname.clone(), Some(30 * MS));
    }
    s.run_for(5 * S);
    for (ifname, _) in &names {
        s.paths.insert(ifname.clone(), Some(MS / 10));
    }
    s.run_for(S);
    let raised = (0..GROUPS)
        .filter(|g| s.e.group(&format!("g{g}")).unwrap().1 > 100 * MS)
        .count();
    assert!(raised >= 4, "only {raised} groups raised");
    let (rtt_before, sent_before) = (s.rtt_probes, s.sent.len());
    let unequal = wake_ups(&mut s);
    assert!(
        s.rtt_probes > rtt_before && s.sent.len() > sent_before,
        "both kinds of probe go"
    );
    assert!(
        unequal * 10 <= equal * 12,
        "{unequal} wake-ups in 2 s with {raised} groups raised against {equal} without"
    );
}

#[test]
fn a_ten_millisecond_fdt_works() {
    let mut s = Sim::new(100, true);
    s.e.add_group("fast", Some(10 * MS));
    s.member("a", "fast", false, Some(10));
    s.member("b", "fast", false, Some(11));
    for name in ["a", "b"] {
        s.paths.insert(name.into(), Some(20_000)); // 20 µs
    }
    s.settle();
    let fault = s.now;
    s.paths.insert("a".into(), None);
    s.run_for(100 * MS);
    let t = s.first_event(failed("a")).expect("detected");
    assert!(
        t - fault <= 10 * MS,
        "detected after {} µs at FDT 10 ms",
        (t - fault) / 1000
    );
}

#[test]
fn offline_is_refused_without_another_usable_member_and_online_restores() {
    let mut s = Sim::new(1000, true);
    s.member("a", "g", false, None);
    s.member("b", "g", false, None);
    s.settle();
    assert_eq!(s.e.offline("x", s.now), Err(AdminError::UnknownInterface));
    let out = s.e.offline("a", s.now).unwrap();
    s.absorb(out);
    assert_eq!(s.state("a"), IfState::Offline);
    assert!(!s.is_active("a"));
    assert_eq!(s.e.offline("a", s.now), Err(AdminError::AlreadyOffline));
    assert_eq!(
        s.e.offline("b", s.now),
        Err(AdminError::MinRedundancy),
        "b is the last usable member"
    );
    assert_eq!(s.e.online("b", s.now), Err(AdminError::NotOffline));
    let out = s.e.online("a", s.now).unwrap();
    s.absorb(out);
    assert!(s.is_active("a"));
}

#[test]
fn anonymous_group_members_are_always_active_and_fail_alone() {
    let mut s = Sim::new(1000, false);
    s.member("a", "", false, None);
    s.member("b", "", false, None);
    s.settle();
    s.link("a", false);
    assert!(
        s.first_event(|e| matches!(e, Event::GroupFailed { .. }))
            .is_none()
    );
    s.link("a", true);
    assert!(
        s.is_active("a"),
        "no FAILBACK semantics in the anonymous group"
    );
}

#[test]
fn a_member_back_after_its_removal_retires_the_standby_that_stood_in() {
    for failback in [true, false] {
        let mut s = Sim::new(700, failback);
        s.member("a", "g", false, Some(10));
        s.member("b", "g", false, Some(11));
        s.member("c", "g", true, Some(12));
        s.settle();
        assert!(!s.is_active("c"), "the standby stands by");
        let out = s.e.remove_member("a", s.now);
        s.absorb(out);
        assert!(
            s.is_active("c"),
            "the standby stands in for the removed member"
        );
        s.member("a", "g", false, Some(10));
        s.run_for(S);
        assert!(s.is_active("a") && s.is_active("b"));
        assert!(
            !s.is_active("c"),
            "failback {failback}: the standby stands by again"
        );
    }
}

#[test]
fn a_failed_member_tracked_again_with_its_prior_never_retires_the_standby_in_between() {
    let mut s = Sim::new(700, true);
    s.member("a", "g", false, Some(10));
    s.member("b", "g", false, Some(11));
    s.member("c", "g", true, Some(12));
    s.settle();
    s.paths.insert("a".into(), None);
    s.run_for(2 * S);
    assert_eq!(s.state("a"), IfState::Failed);
    assert!(s.is_active("c"), "the standby stands in");
    // Gone and back (a new index, say), with what it had before: still failed.
    let prior = s.e.prior("a", s.now).unwrap();
    let out = s.e.remove_member("a", s.now);
    s.absorb(out);
    let out = s.e.track(
        &spec("a", "g", false, Some(10)),
        true,
        None,
        Some(prior),
        s.now,
    );
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::SetActive { ifname, .. } if ifname == "c")),
        "no activation change for the standby: {out:?}"
    );
    s.absorb(out);
    assert_eq!(s.state("a"), IfState::Failed);
    assert!(s.is_active("c") && !s.is_active("a"));
    assert!(s.e.due_index_consistent());
}

#[test]
fn invariants_hold_over_random_event_sequences() {
    for seed in 1..150u64 {
        let mut r = Jitter::new(seed);
        let failback = r.next_unit() < 0.5;
        let mut s = Sim::new(700, failback);
        s.lazy_replies = seed % 2 == 0;
        let names = ["a", "b", "c"];
        for (k, n) in names.iter().enumerate() {
            s.member(
                n,
                "g",
                k == 2 && r.next_unit() < 0.5,
                if r.next_unit() < 0.5 {
                    Some(10 + k as u8)
                } else {
                    None
                },
            );
        }
        s.settle();
        for _ in 0..60 {
            let k = (r.next_unit() * 3.0) as usize % 3;
            let n = names[k];
            match (r.next_unit() * 8.0) as u32 {
                0 => s.link(n, false),
                1 => s.link(n, true),
                2 => {
                    s.paths.insert(n.into(), None);
                }
                3 => {
                    s.paths.insert(n.into(), Some(MS / 10));
                }
                4 => {
                    let out = if r.next_unit() < 0.5 {
                        s.e.offline(n, s.now)
                    } else {
                        s.e.online(n, s.now)
                    };
                    if let Ok(out) = out {
                        s.absorb(out);
                    }
                }
                5 => {
                    // Gone and back (the indexes above it move down, then it is last).
                    let out = s.e.remove_member(n, s.now);
                    s.absorb(out);
                    s.active.remove(n);
                    s.member(n, "g", false, Some(10 + k as u8));
                }
                6 => {
                    // Its spec again (a reload): replaced in place, at the same index.
                    s.member(n, "g", false, Some(10 + k as u8));
                }
                _ => {}
            }
            assert!(s.e.due_index_consistent(), "seed {seed}: the due index");
            s.run_for(r.between(10 * MS, 2 * S));
            assert!(s.e.due_index_consistent(), "seed {seed}: the due index");
            let views = s.e.interfaces();
            for v in &views {
                assert!(
                    !(v.active && matches!(v.state, IfState::Failed | IfState::Offline)),
                    "seed {seed}: {v:?} failed/offline yet active"
                );
                assert_eq!(
                    s.active.get(&v.ifname).copied(),
                    Some(v.active),
                    "seed {seed}: SetActive outputs track the state"
                );
            }
            let usable = views
                .iter()
                .filter(|v| matches!(v.state, IfState::Running | IfState::NoTargets))
                .count();
            let active = views.iter().filter(|v| v.active).count();
            let nonstandby = views.iter().filter(|v| !v.standby).count();
            if usable > 0 {
                assert!(
                    active >= 1,
                    "seed {seed}: a usable member exists but none is active: {views:?}"
                );
            }
            assert!(
                active <= nonstandby.max(1),
                "seed {seed}: more active than the configured capacity: {views:?}"
            );
        }
    }
}

#[test]
fn without_targets_all_hosts_discovery_finds_them_for_the_whole_group() {
    let mut s = Sim::new(700, true);
    let spec = |n: &str, t: u8| MemberSpec {
        ifname: n.into(),
        group: "g".into(),
        standby: false,
        test_addrs: vec![ip(t)],
        targets: vec![],
    };
    for (n, t) in [("a", 10), ("b", 11)] {
        s.paths.insert(n.into(), Some(MS / 10));
        let out = s.e.add_member(&spec(n, t), true, s.now);
        s.absorb(out);
    }
    assert_eq!(
        s.state("a"),
        IfState::NoTargets,
        "a test address but no targets: assumed working"
    );
    s.run_for(S);
    assert!(
        s.discoveries.iter().any(|(_, n)| n == "a"),
        "asks all-hosts"
    );
    assert!(s.sent.is_empty(), "no unicast probe without a target");
    // A reply to no discovery in flight (a captured one, replayed) injects nothing.
    assert!(
        s.e.discovered("a", ip(9), s.now.saturating_sub(5 * S), s.now)
            .is_err()
    );
    let asked = s
        .discoveries
        .iter()
        .rev()
        .find(|(_, n)| n == "a")
        .unwrap()
        .0;
    let out = s.e.discovered("a", ip(1), asked, s.now).unwrap();
    s.absorb(out);
    assert_eq!(s.state("a"), IfState::Running);
    assert_eq!(
        s.state("b"),
        IfState::Running,
        "host targets are shared in a named group"
    );
    s.run_for(S);
    assert!(s.sent.iter().any(|x| x.1 == "b" && x.2 == ip(1)));
}

#[test]
fn duplicate_hardware_addresses_are_offlined_and_onlined() {
    let mut s = Sim::new(1000, true);
    s.member("a", "g", false, None);
    s.member("b", "g", false, None);
    s.settle();
    let mac = Some([2, 0, 0, 0, 0, 1]);
    let out = s.e.set_hwaddr("a", mac, s.now);
    s.absorb(out);
    let out = s.e.set_hwaddr("b", mac, s.now);
    s.absorb(out);
    assert_eq!(s.state("b"), IfState::Offline);
    assert!(s.e.interface("b").unwrap().hwaddr_dup);
    assert!(s.events.iter().any(|(_, e)| *e
        == Event::HwAddrDuplicate {
            ifname: "b".into(),
            group: "g".into()
        }));
    assert_eq!(
        s.e.online("b", s.now),
        Err(AdminError::HwAddrDup),
        "if_mpadm -r refused while duplicated"
    );
    let out = s.e.set_hwaddr("b", Some([2, 0, 0, 0, 0, 2]), s.now);
    s.absorb(out);
    assert_eq!(s.state("b"), IfState::Running);
    assert!(s.is_active("b"));
    assert!(s.events.iter().any(|(_, e)| *e
        == Event::HwAddrUnique {
            ifname: "b".into(),
            group: "g".into()
        }));
}

#[test]
fn a_duplicate_is_onlined_when_the_other_member_goes_offline() {
    let mut s = Sim::new(1000, true);
    s.member("a", "g", false, None);
    s.member("b", "g", false, None);
    s.member("c", "g", false, None);
    let mac = Some([2, 0, 0, 0, 0, 1]);
    for n in ["a", "b"] {
        let out = s.e.set_hwaddr(n, mac, s.now);
        s.absorb(out);
    }
    assert_eq!(s.state("b"), IfState::Offline);
    let out = s.e.offline("a", s.now).unwrap();
    s.absorb(out);
    assert_eq!(
        s.state("b"),
        IfState::Running,
        "b's address is unique among the online members now"
    );
}

#[test]
fn a_dead_router_target_leaves_the_rotation_and_returns_after_recovery() {
    let mut s = Sim::new(700, true);
    s.member("a", "g", false, Some(10));
    s.settle();
    s.silent_targets.push(ip(2));
    s.run_for(3 * S);
    assert_eq!(
        s.state("a"),
        IfState::Running,
        "the other target answers: no failure"
    );
    let recent: Vec<IpAddr> = s.sent.iter().rev().take(5).map(|x| x.2).collect();
    assert!(
        recent.iter().all(|t| *t == ip(1)),
        "only the live target is probed now: {recent:?}"
    );
    s.silent_targets.clear();
    s.run_for(121 * S);
    let recent: Vec<IpAddr> = s.sent.iter().rev().take(4).map(|x| x.2).collect();
    assert!(
        recent.contains(&ip(2)),
        "back after dead -> slow -> unused: {recent:?}"
    );
}

#[test]
fn router_targets_follow_the_routing_table_and_win_over_hosts() {
    let mut s = Sim::new(700, true);
    let spec = MemberSpec {
        ifname: "a".into(),
        group: "g".into(),
        standby: false,
        test_addrs: vec![ip(10)],
        targets: vec![],
    };
    s.paths.insert("a".into(), Some(MS / 10));
    let out = s.e.add_member(&spec, true, s.now);
    s.absorb(out);
    s.run_for(S);
    let asked = s.discoveries.last().unwrap().0;
    let out = s.e.discovered("a", ip(7), asked, s.now).unwrap();
    s.absorb(out);
    let out = s.e.set_router_targets("a", true, &[ip(1)], s.now);
    s.absorb(out);
    s.sent.clear();
    s.run_for(S);
    assert!(!s.sent.is_empty(), "probing goes on");
    assert!(
        s.sent.iter().all(|x| x.2 == ip(1)),
        "the router replaced the host target"
    );
    let out = s.e.set_router_targets("a", true, &[ip(2)], s.now);
    s.absorb(out);
    s.sent.clear();
    s.run_for(S);
    assert!(!s.sent.is_empty(), "probing goes on");
    assert!(
        s.sent.iter().all(|x| x.2 == ip(2)),
        "a router that left the table is dropped"
    );
}

#[test]
fn with_failback_no_a_repaired_interface_stays_inactive_unless_the_group_had_failed() {
    for seed in 1..200u64 {
        let mut r = Jitter::new(seed);
        let mut s = Sim::new(1000, false);
        let names = ["a", "b", "c"];
        for n in names {
            s.member(n, "g", false, None);
        }
        s.settle();
        for _ in 0..40 {
            let n = names[(r.next_unit() * 3.0) as usize % 3];
            let up = r.next_unit() < 0.5;
            let group_failed_before = s.e.group("g").unwrap().0 == GroupState::Failed;
            let events_before = s.events.len();
            s.link(n, up);
            let repaired = s.events[events_before..]
                .iter()
                .any(|(_, e)| matches!(e, Event::InterfaceRepaired { ifname, .. } if ifname == n));
            if repaired && !group_failed_before {
                assert!(
                    !s.is_active(n),
                    "seed {seed}: {n} repaired with FAILBACK=no while the group worked, yet active"
                );
            }
            if repaired && group_failed_before {
                assert!(
                    s.is_active(n),
                    "seed {seed}: {n} repaired a failed group but stays inactive"
                );
            }
            s.run_for(r.between(MS, 100 * MS));
        }
    }
}

#[test]
fn many_groups_keep_their_cadence_and_a_fault_stays_in_its_group() {
    // 100 groups of two probing members at FDT 1 s: every member keeps in.mpathd's cadence (7
    // probes per FDT) although each tick only visits the members that have something due.
    let mut s = Sim::new(1000, true);
    for g in 0..100 {
        s.member(&format!("a{g}"), &format!("g{g}"), false, Some(10));
        s.member(&format!("b{g}"), &format!("g{g}"), false, Some(11));
    }
    s.settle();
    let from = s.now;
    s.run_for(5 * S);
    let mut per_member: HashMap<&str, usize> = HashMap::new();
    for (t, ifname, _, _) in &s.sent {
        if *t >= from {
            *per_member.entry(ifname.as_str()).or_default() += 1;
        }
    }
    assert_eq!(per_member.len(), 200, "every member probed");
    assert!(
        per_member.values().all(|n| (33..=37).contains(n)),
        "7 probes per FDT over 5 s: {:?}",
        per_member.values().min()..=per_member.values().max()
    );
    // A silent fault on one member fails that member only, and moves nothing elsewhere.
    let before = s.events.len();
    s.paths.insert("a7".into(), None);
    s.run_for(2 * S);
    let failed: Vec<&Event> = s.events[before..]
        .iter()
        .map(|(_, e)| e)
        .filter(|e| matches!(e, Event::InterfaceFailed { .. }))
        .collect();
    assert_eq!(
        failed,
        [&Event::InterfaceFailed {
            ifname: "a7".into(),
            group: "g7".into(),
        }]
    );
    assert!(!s.is_active("a7") && s.is_active("b7") && s.is_active("a8"));
}

#[test]
fn a_removed_member_hands_its_data_to_another_and_the_rest_keep_working() {
    let mut s = Sim::new(700, true);
    s.member("a", "g", false, Some(10));
    s.member("b", "g", false, Some(11));
    s.member("c", "g", true, Some(12));
    s.settle();
    assert!(s.is_active("a") && s.is_active("b") && !s.is_active("c"));
    let out = s.e.remove_member("a", s.now);
    s.absorb(out);
    assert!(s.e.interface("a").is_none());
    assert!(
        s.is_active("c"),
        "the standby stands in for the removed member"
    );
    // Indexes moved under the others: they still fail and repair on their own.
    s.paths.insert("b".into(), None);
    s.run_for(2 * S);
    assert_eq!(s.state("b"), IfState::Failed);
    assert_eq!(s.state("c"), IfState::Running);
    assert!(!s.e.remove_group("g"), "a group with members stays");
    let out = s.e.remove_member("b", s.now);
    s.absorb(out);
    let out = s.e.remove_member("c", s.now);
    s.absorb(out);
    assert!(s.e.remove_group("g"));
    assert!(s.e.group("g").is_none());
}

#[test]
fn a_test_address_that_appears_later_starts_probing_and_one_that_goes_stops_it() {
    let mut s = Sim::new(700, true);
    s.member("a", "g", false, None);
    s.member("b", "g", false, Some(11));
    s.settle();
    let before = s.sent.iter().filter(|x| x.1 == "a").count();
    assert_eq!(before, 0, "no test address: link-based only");
    let out = s.e.set_test_addrs("a", &[ip(10)], &[ip(1), ip(2)], s.now);
    s.absorb(out);
    s.run_for(2 * S);
    assert!(s.sent.iter().filter(|x| x.1 == "a").count() >= 15);
    assert_eq!(s.state("a"), IfState::Running);
    let (_, fdt) = s.e.group("g").unwrap();
    assert_eq!(fdt, 700 * MS, "a new test address raises nothing");
    let out = s.e.set_test_addrs("a", &[], &[], s.now);
    s.absorb(out);
    let n = s.sent.len();
    s.run_for(2 * S);
    assert!(
        s.sent[n..].iter().all(|x| x.1 != "a"),
        "no probes without a test address"
    );
    assert_eq!(s.state("a"), IfState::Running, "link-based: still working");
}

#[test]
fn a_failed_member_restored_after_a_restart_stays_failed_until_probes_repair_it() {
    let mut s = Sim::new(700, true);
    s.member("a", "g", false, Some(10));
    s.member("b", "g", false, Some(11));
    s.settle();
    s.paths.insert("a".into(), None);
    s.run_for(2 * S);
    assert_eq!(s.state("a"), IfState::Failed);
    let prior = s.e.prior("a", s.now).unwrap();
    assert!(prior.quiet_over);
    let prior_b = s.e.prior("b", s.now).unwrap();
    // A new engine (the restarted daemon) tracks both with what they had before.
    let mut t = Sim::new(700, true);
    t.now = s.now;
    t.tracked("a", Some(10), prior);
    t.paths.insert("a".into(), None);
    t.tracked("b", Some(11), prior_b);
    assert_eq!(t.state("a"), IfState::Failed);
    assert!(
        !t.is_active("a") && t.is_active("b"),
        "no data moves onto the failed member"
    );
    t.run_for(5 * S);
    assert_eq!(t.state("a"), IfState::Failed, "the path is still dead");
    // The path comes back: 10 acknowledged probes repair it (no quiet period to wait out).
    t.paths.insert("a".into(), Some(MS / 10));
    t.run_for(2 * S);
    assert_eq!(t.state("a"), IfState::Running);
    assert!(t.is_active("a"));
}

#[test]
fn an_offlined_member_stays_offline_across_a_restart_and_a_new_fdt_applies_at_once() {
    let mut s = Sim::new(700, true);
    s.member("a", "g", false, Some(10));
    s.member("b", "g", false, Some(11));
    s.settle();
    let out = s.e.offline("a", s.now).unwrap();
    s.absorb(out);
    let prior = s.e.prior("a", s.now).unwrap();
    let mut t = Sim::new(700, true);
    t.tracked("a", Some(10), prior);
    t.member("b", "g", false, Some(11));
    assert_eq!(t.state("a"), IfState::Offline);
    assert!(t.e.online("a", t.now).is_ok());
    t.e.set_group_fdt("g", Some(1400 * MS));
    assert_eq!(t.e.group("g").unwrap().1, 1400 * MS);
    let n = t.sent.len();
    t.run_for(7 * S);
    let per_member = t.sent[n..].iter().filter(|x| x.1 == "b").count();
    assert!(
        (30..=36).contains(&per_member),
        "FDT 1.4 s: a probe per 200 ms, got {per_member}"
    );
}

#[test]
fn members_first_served_late_start_their_schedule_then_without_a_burst_or_missed_probes() {
    // FDT 100 ms: a probe every 14.3 ms. The daemon adds every member, then spends 1.4 s
    // attaching before its loop first turns.
    let mut s = Sim::new(100, true);
    for k in 0..64u8 {
        s.member(
            &format!("m{k}"),
            &format!("g{}", k / 2),
            false,
            Some(10 + k),
        );
    }
    s.now = 1_400 * MS;
    let interval = 100 * MS / 7;
    s.run_for(interval / 4);
    assert!(
        s.sent.is_empty(),
        "no burst at the first turn: {} probes",
        s.sent.len()
    );
    s.run_for(2 * interval);
    let first: HashSet<&str> = s.sent.iter().map(|(_, i, _, _)| i.as_str()).collect();
    assert_eq!(first.len(), 64, "every member probes within two intervals");
    assert!(
        !s.events
            .iter()
            .any(|(_, e)| matches!(e, Event::ProbesMissed { .. })),
        "nothing was missed: the schedules had not started"
    );
    // A member that was served and then descheduled still counts what it missed.
    s.now += 10 * interval;
    s.run_for(interval);
    assert!(
        s.events
            .iter()
            .any(|(_, e)| matches!(e, Event::ProbesMissed { count, .. } if *count >= 8))
    );
}

/// Members removed, re-added and failed while replies are in flight, answered by name or by
/// kept keys: the same probes and the same events either way.
#[test]
fn replies_by_kept_keys_decide_as_replies_by_name_through_removals() {
    let run = |by_key: bool| {
        let mut s = Sim::new(700, true);
        s.by_key = by_key;
        for (n, t) in [("a", 10), ("b", 11), ("c", 12), ("d", 13)] {
            s.member(n, "g", n == "d", Some(t));
        }
        s.settle();
        s.paths.insert("b".into(), None);
        s.run_for(S / 3);
        // Removed with replies to it and to the members above it in flight.
        let out = s.e.remove_member("a", s.now);
        s.absorb(out);
        s.run_for(S);
        s.member("a", "g", false, Some(10));
        s.run_for(S / 2);
        let out = s.e.remove_member("c", s.now);
        s.absorb(out);
        s.paths.insert("b".into(), Some(MS / 10));
        s.run_for(3 * S);
        (s.events, s.sent, s.keys.len())
    };
    let (by_name, by_key) = (run(false), run(true));
    assert!(
        by_name
            .0
            .iter()
            .any(|(_, e)| matches!(e, Event::InterfaceFailed { .. })),
        "the scenario fails b: {:?}",
        by_name.0
    );
    assert_eq!(by_name.0, by_key.0, "the same events");
    assert_eq!(by_name.1, by_key.1, "the same probes");
    assert_eq!(by_key.2, 4, "every member's replies came by key");
}

#[test]
fn a_key_is_refused_once_an_interface_is_removed_and_in_another_engine() {
    let mut s = Sim::new(700, true);
    for (n, t) in [("a", 10), ("b", 11), ("c", 12)] {
        s.member(n, "g", false, Some(t));
    }
    s.settle();
    let kept = s.e.key("c").unwrap();
    // b's index is c's once a has gone: its key must not name c then.
    let b_key = s.e.key("b").unwrap();
    assert!(s.e.holds(kept) && s.e.holds(b_key));
    s.paths.insert("c".into(), Some(S));
    s.run_for(S / 2);
    let pos = s.pending.iter().position(|p| p.1 == "c").unwrap();
    let (_, _, seq, target, rtt, sent, _) = s.pending.remove(pos);
    // "a" goes: "c" moves down an index, and the kept key no longer names it.
    let out = s.e.remove_member("a", s.now);
    s.absorb(out);
    assert!(!s.e.holds(kept) && !s.e.holds(b_key));
    assert_eq!(
        s.e.probe_reply(kept, seq, target, sent, rtt, s.now).err(),
        Some(ReplyMismatch::UnknownProbe)
    );
    let fresh = s.e.key("c").unwrap();
    assert_ne!(fresh, kept);
    let out =
        s.e.probe_reply(fresh, seq, target, sent, rtt, s.now)
            .unwrap();
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Event(Event::ProbeAcked { ifname, .. }) if &**ifname == "c"
    )));
    // Another engine with the same members, in the same order: none of its keys are good here.
    let mut other = Sim::new(700, true);
    for (n, t) in [("b", 11), ("c", 12)] {
        other.member(n, "g", false, Some(t));
    }
    assert!(!s.e.holds(other.e.key("c").unwrap()));
    assert!(s.e.key("a").is_none());
}
