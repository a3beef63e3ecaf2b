//! One probe instance: the probing of one interface in one address family (in.mpathd's
//! "phyint instance"): targets in firing order, the 52-slot probe history, loss and ack counting.

use std::net::IpAddr;

use super::{
    constants::{FAILURE_DETECTION_QP_NS, NUM_PROBE_FAILS, PROBE_STATS_COUNT},
    rtt::RttEstimator,
};

/// State of one probe in the history (`PR_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeState {
    Unused,
    Unacked,
    Acked,
    Lost,
}

/// One slot of the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub seq: u16,
    pub target: Option<IpAddr>,
    pub state: ProbeState,
    pub start_ns: u64,
    pub acked_ns: u64,
}

impl Default for Slot {
    fn default() -> Self {
        Self {
            seq: 0,
            target: None,
            state: ProbeState::Unused,
            start_ns: 0,
            acked_ns: 0,
        }
    }
}

/// A probe target and its RTT statistics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub addr: IpAddr,
    pub rtt: RttEstimator,
    /// A sample held back because on its own it would push CRTT above the probe interval
    /// (`MAXDEFERREDRTT` = 1), and when it was learnt (ns): below in.mpathd's lowest interval
    /// the suspects must last [`MIN_SUSPECT_SPAN_NS`](super::constants::MIN_SUSPECT_SPAN_NS).
    pub deferred: Option<Deferred>,
}

impl Target {
    /// A fresh target.
    #[must_use]
    pub fn new(addr: IpAddr) -> Self {
        Self {
            addr,
            rtt: RttEstimator::default(),
            deferred: None,
        }
    }
}

/// A suspect RTT sample held back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deferred {
    pub rtt_ns: u64,
    pub at_ns: u64,
}

/// States of a router target out of rotation (`TG_*`; active ones are in `targets`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetState {
    /// Its own last five probes were lost while others answered.
    Dead,
    /// An outlier: far slower than the others.
    Slow,
    /// Recovered, waiting for a free slot.
    Unused,
}

/// Why a reply did not match (all counted as "unknown" by in.mpathd).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyMismatch {
    /// Sequence number outside [next − 52, next).
    OutOfWindow,
    /// The slot holds another probe or none.
    UnknownProbe,
    /// From an address the probe was not sent to ("Fake probe reply").
    Fake,
    /// The probe was already acknowledged ("Duplicate probe reply").
    Duplicate,
    /// It carries another send time than the probe in that slot, or no probe of its kind is in
    /// flight: an old reply replayed (the sequence number wraps within minutes at short FDTs).
    Stale,
    /// The interface's link is down: in.mpathd ignores every reply then (the probes in flight
    /// were forgotten when it went down).
    LinkDown,
}

/// The send times of the last few probes of one kind without a history slot (RTT-only and
/// all-hosts discovery probes), so that a reply counts only for one of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendLog {
    sent: [u64; 4],
    next: usize,
}

impl SendLog {
    /// Records a probe sent at `now_ns`.
    pub fn record(&mut self, now_ns: u64) {
        self.sent[self.next] = now_ns;
        self.next = (self.next + 1) % self.sent.len();
    }

    /// Whether a probe was sent at exactly `sent_ns`, no longer than `window_ns` before `now_ns`.
    #[must_use]
    pub fn recent(&self, sent_ns: u64, now_ns: u64, window_ns: u64) -> bool {
        sent_ns != 0
            && sent_ns <= now_ns
            && now_ns - sent_ns <= window_ns
            && self.sent.contains(&sent_ns)
    }
}

/// One tick of a strictly periodic schedule: its base and when it is due (base plus jitter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tick {
    pub base_ns: u64,
    pub due_ns: u64,
}

/// The base after `base_ns` of a schedule of period `interval`, and how many whole intervals were
/// skipped to reach it: a loop descheduled past them skips them rather than sending a burst.
#[must_use]
pub fn next_base(base_ns: u64, interval: u64, now_ns: u64) -> (u64, u64) {
    let next = base_ns + interval;
    if next + interval <= now_ns {
        let skipped = (now_ns - next) / interval;
        (next + skipped * interval, skipped)
    } else {
        (next, 0)
    }
}

/// What a matched reply did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acked {
    pub seq: u16,
    pub target: IpAddr,
    /// The probe had been declared lost and a late reply revived it.
    pub was_lost: bool,
}

/// Probing of one interface in one family.
#[derive(Clone, Debug)]
pub struct ProbeInstance {
    pub test_addr: IpAddr,
    pub targets: Vec<Target>,
    /// Index of the next target in firing order.
    pub next_target: usize,
    pub next_seq: u16,
    history: [Slot; PROBE_STATS_COUNT],
    /// The sequence numbers of the (at most two) probes that may still be unacknowledged, oldest
    /// first: every unacknowledged slot is among them, so the deadline and expiry checks look
    /// at two slots instead of scanning the history. An entry whose slot has since been acked,
    /// lost, cleared or reused is stale and skipped (see [`ProbeInstance::unacked`]).
    outstanding: [Option<u16>; 2],
    /// The failure-detection probes' strictly periodic schedule at the current interval: the
    /// next probe goes out at `send.due_ns`.
    pub send: Tick,
    /// End of the start-up quiet period (cut short by the first ack).
    pub quiet_until_ns: u64,
    /// Time of the latest acknowledged probe.
    pub last_success_ns: Option<u64>,
    /// Probes the scheduler could not send on time (descheduled).
    pub missed: u64,
    /// The targets were found by all-hosts discovery (not configured or from routes).
    pub host_targets: bool,
    /// Router targets out of rotation: (address, state, since). They climb back one step per
    /// `MIN_RECOVERY_TIME`: dead → slow → unused → active.
    pub resting: Vec<(IpAddr, TargetState, u64)>,
    /// The engine has served this instance at least once (see `Engine::tick_instance`).
    pub served: bool,
    /// While the group's FDT is raised: the configured interval's ticks. A tick sends an
    /// RTT-only probe unless a failure-detection probe took it.
    pub rtt_tick: Option<Tick>,
    /// Index of the next RTT-only probe's target.
    pub rtt_target: usize,
    /// Recent RTT-only probes and all-hosts discoveries.
    pub rtt_probes: SendLog,
    pub discoveries: SendLog,
}

impl ProbeInstance {
    /// An instance created at `now_ns`, sending from `test_addr`.
    #[must_use]
    pub fn new(test_addr: IpAddr, now_ns: u64) -> Self {
        Self {
            test_addr,
            targets: Vec::new(),
            next_target: 0,
            next_seq: 1,
            history: [Slot::default(); PROBE_STATS_COUNT],
            outstanding: [None; 2],
            send: Tick {
                base_ns: now_ns,
                due_ns: now_ns,
            },
            quiet_until_ns: now_ns + FAILURE_DETECTION_QP_NS,
            last_success_ns: None,
            missed: 0,
            host_targets: false,
            served: false,
            rtt_tick: None,
            rtt_target: 0,
            resting: Vec::new(),
            rtt_probes: SendLog::default(),
            discoveries: SendLog::default(),
        }
    }

    fn slot_index(seq: u16) -> usize {
        usize::from(seq) % PROBE_STATS_COUNT
    }

    /// The slot of `seq` when it still holds that probe.
    fn slot_of(&self, seq: u16) -> Option<&Slot> {
        let slot = &self.history[Self::slot_index(seq)];
        (slot.seq == seq && slot.state != ProbeState::Unused).then_some(slot)
    }

    /// The probes of the window from newest to oldest, ending at the first slot that no longer
    /// holds the expected sequence number.
    fn newest_first(&self) -> impl Iterator<Item = &Slot> {
        (1..=PROBE_STATS_COUNT as u16)
            .map_while(move |back| self.slot_of(self.next_seq.wrapping_sub(back)))
    }

    /// The probes still unacknowledged, oldest first (at most two).
    fn unacked(&self) -> impl Iterator<Item = &Slot> {
        self.outstanding
            .iter()
            .flatten()
            .filter_map(|&seq| self.slot_of(seq))
            .filter(|s| s.state == ProbeState::Unacked)
    }

    /// Records probe `seq` to `target` started at `now_ns` and forces the second most recent
    /// unacknowledged probe to lost (at most two outstanding).
    pub fn record_sent(&mut self, target: IpAddr, now_ns: u64) -> u16 {
        let seq = self.next_seq;
        let mut older: [Option<u16>; 2] = [None; 2];
        for (to, slot) in older.iter_mut().zip(self.unacked()) {
            *to = Some(slot.seq);
        }
        // The newest of them stays outstanding; an older one is lost now.
        let newest = older[1].or(older[0]);
        if let (Some(old), Some(_)) = (older[0], older[1]) {
            self.history[Self::slot_index(old)].state = ProbeState::Lost;
        }
        self.history[Self::slot_index(seq)] = Slot {
            seq,
            target: Some(target),
            state: ProbeState::Unacked,
            start_ns: now_ns,
            acked_ns: 0,
        };
        self.outstanding = [newest, Some(seq)];
        self.next_seq = seq.wrapping_add(1);
        seq
    }

    /// The next target in firing order, advancing the pointer.
    pub fn take_next_target(&mut self) -> Option<IpAddr> {
        if self.targets.is_empty() {
            return None;
        }
        let i = self.next_target % self.targets.len();
        self.next_target = (i + 1) % self.targets.len();
        Some(self.targets[i].addr)
    }

    /// CRTT of `addr`, or `fallback_ns` when unknown (in.mpathd uses the group probe interval).
    #[must_use]
    pub fn crtt_or(&self, addr: IpAddr, fallback_ns: u64) -> u64 {
        self.targets
            .iter()
            .find(|t| t.addr == addr)
            .map(|t| t.rtt.crtt_ns())
            .filter(|c| *c > 0)
            .unwrap_or(fallback_ns)
    }

    /// Marks unacknowledged probes lost once `now > start + CRTT(target) + grace`. Returns the
    /// lost ones.
    pub fn expire(&mut self, now_ns: u64, fallback_ns: u64, grace_ns: u64) -> Vec<(u16, IpAddr)> {
        let lost: Vec<(u16, IpAddr)> = self
            .unacked()
            .filter_map(|slot| Some((slot, slot.target?)))
            .filter(|&(slot, target)| {
                now_ns > slot.start_ns + self.crtt_or(target, fallback_ns) + grace_ns
            })
            .map(|(slot, target)| (slot.seq, target))
            .collect();
        for &(seq, _) in &lost {
            self.history[Self::slot_index(seq)].state = ProbeState::Lost;
        }
        lost
    }

    /// When the earliest unacknowledged probe is given up on by [`ProbeInstance::expire`] with
    /// the same `fallback_ns` and `grace_ns` (the first `now` past its limit).
    #[must_use]
    pub fn next_expiry(&self, fallback_ns: u64, grace_ns: u64) -> Option<u64> {
        self.unacked()
            .filter_map(|s| Some(s.start_ns + self.crtt_or(s.target?, fallback_ns) + grace_ns + 1))
            .min()
    }

    /// Matches a reply to probe `seq`, sent at `sent_ns` (the tagged send time it carries), from
    /// `from` at `now_ns`.
    ///
    /// # Errors
    /// Why it does not match.
    pub fn ack(
        &mut self,
        seq: u16,
        from: IpAddr,
        sent_ns: u64,
        now_ns: u64,
    ) -> Result<Acked, ReplyMismatch> {
        let age = self.next_seq.wrapping_sub(seq);
        if age == 0 || usize::from(age) > PROBE_STATS_COUNT {
            return Err(ReplyMismatch::OutOfWindow);
        }
        let slot = &mut self.history[Self::slot_index(seq)];
        if slot.seq != seq || slot.state == ProbeState::Unused {
            return Err(ReplyMismatch::UnknownProbe);
        }
        if slot.start_ns != sent_ns {
            return Err(ReplyMismatch::Stale);
        }
        if slot.target != Some(from) {
            return Err(ReplyMismatch::Fake);
        }
        if slot.state == ProbeState::Acked {
            return Err(ReplyMismatch::Duplicate);
        }
        let was_lost = slot.state == ProbeState::Lost;
        slot.state = ProbeState::Acked;
        slot.acked_ns = now_ns;
        self.last_success_ns = Some(now_ns);
        // The first reply ends the start-up quiet period.
        self.quiet_until_ns = self.quiet_until_ns.min(now_ns);
        Ok(Acked {
            seq,
            target: from,
            was_lost,
        })
    }

    /// Consecutive lost probes, newest first, skipping probes still outstanding.
    #[must_use]
    pub fn consecutive_lost(&self) -> u32 {
        self.newest_first()
            .skip_while(|s| s.state == ProbeState::Unacked)
            .take_while(|s| s.state == ProbeState::Lost)
            .count() as u32
    }

    /// Consecutive acknowledged probes, newest first, skipping probes still outstanding.
    #[must_use]
    pub fn consecutive_acked(&self) -> u32 {
        self.newest_first()
            .skip_while(|s| s.state == ProbeState::Unacked)
            .take_while(|s| s.state == ProbeState::Acked)
            .count() as u32
    }

    /// Acknowledgements that count toward repair: consecutive acks overall, or those of the
    /// current target alone (the target of the newest answered-or-lost probe), whichever is more.
    #[must_use]
    pub fn repair_acks(&self) -> u32 {
        let current = self
            .newest_first()
            .find(|s| s.state != ProbeState::Unacked)
            .and_then(|s| s.target);
        let of_current = current.map_or(0, |t| {
            self.newest_first()
                .filter(|s| s.target == Some(t))
                .skip_while(|s| s.state == ProbeState::Unacked)
                .take_while(|s| s.state == ProbeState::Acked)
                .count() as u32
        });
        self.consecutive_acked().max(of_current)
    }

    /// Consecutive lost probes to `addr`, newest first, skipping outstanding ones.
    #[must_use]
    pub fn target_consecutive_lost(&self, addr: IpAddr) -> u32 {
        self.newest_first()
            .filter(|s| s.target == Some(addr))
            .skip_while(|s| s.state == ProbeState::Unacked)
            .take_while(|s| s.state == ProbeState::Lost)
            .count() as u32
    }

    /// Takes `addr` out of rotation in `state` at `now_ns` (router targets), or forgets it (host
    /// targets: discovery finds a replacement). The last target always stays.
    pub fn retire_target(&mut self, addr: IpAddr, state: TargetState, now_ns: u64) -> bool {
        if self.targets.len() <= 1 {
            return false;
        }
        self.targets.retain(|t| t.addr != addr);
        self.next_target %= self.targets.len();
        if !self.host_targets {
            self.resting.push((addr, state, now_ns));
        }
        true
    }

    /// One recovery step per `step_ns` for resting router targets; unused ones rejoin when a slot
    /// is free (or fewer than `min_targets` are active).
    pub fn recover_targets(&mut self, now_ns: u64, step_ns: u64, max_targets: usize) {
        for (_, state, since) in &mut self.resting {
            if now_ns.saturating_sub(*since) >= step_ns {
                *state = match *state {
                    TargetState::Dead => TargetState::Slow,
                    TargetState::Slow | TargetState::Unused => TargetState::Unused,
                };
                *since = now_ns;
            }
        }
        while self.targets.len() < max_targets {
            let Some(pos) = self
                .resting
                .iter()
                .position(|(_, s, _)| *s == TargetState::Unused)
            else {
                break;
            };
            let (addr, _, _) = self.resting.remove(pos);
            self.targets.push(Target::new(addr));
        }
    }

    /// Start time of the oldest probe of the current run of losses (time of first failure).
    #[must_use]
    pub fn first_failure_ns(&self) -> Option<u64> {
        self.newest_first()
            .skip_while(|s| s.state == ProbeState::Unacked)
            .take_while(|s| s.state == ProbeState::Lost)
            .last()
            .map(|s| s.start_ns)
    }

    /// Whether this instance says the path failed: `NUM_PROBE_FAILS` consecutive losses after the
    /// quiet period.
    #[must_use]
    pub fn probe_failed(&self, now_ns: u64) -> bool {
        now_ns >= self.quiet_until_ns && self.consecutive_lost() >= NUM_PROBE_FAILS
    }

    /// Forgets the probe history (on link down: successes from before an outage must not count
    /// toward repair).
    pub fn clear_history(&mut self) {
        self.history = [Slot::default(); PROBE_STATS_COUNT];
    }

    /// Resets every target's RTT statistics (on failure).
    pub fn reset_rtts(&mut self) {
        for t in &mut self.targets {
            t.rtt = RttEstimator::default();
            t.deferred = None;
        }
    }

    /// The most recent slots (newest first), for ipmpstat -p style views.
    pub fn recent(&self) -> impl Iterator<Item = &Slot> {
        self.newest_first()
            .filter(|s| s.state != ProbeState::Unused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const U: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    fn inst() -> ProbeInstance {
        let mut i = ProbeInstance::new(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 10)), 0);
        i.targets = vec![Target::new(T), Target::new(U)];
        i
    }

    #[test]
    fn the_next_base_is_one_interval_on_or_skips_whole_intervals() {
        // On time, or late by less than an interval: one interval on, nothing skipped.
        assert_eq!(next_base(1_000, 100, 1_050), (1_100, 0));
        assert_eq!(next_base(1_000, 100, 1_199), (1_100, 0));
        // Late by a whole interval or more: the last base not after now, the rest skipped.
        assert_eq!(next_base(1_000, 100, 1_200), (1_200, 1));
        assert_eq!(next_base(1_000, 100, 1_750), (1_700, 6));
    }

    #[test]
    fn targets_fire_round_robin() {
        let mut i = inst();
        assert_eq!(
            [
                i.take_next_target(),
                i.take_next_target(),
                i.take_next_target()
            ],
            [Some(T), Some(U), Some(T)]
        );
    }

    #[test]
    fn at_most_two_probes_outstanding() {
        let mut i = inst();
        i.record_sent(T, 0);
        i.record_sent(T, 10);
        i.record_sent(T, 20);
        let states: Vec<_> = (1..=3)
            .map(|s| i.history[ProbeInstance::slot_index(s)].state)
            .collect();
        assert_eq!(
            states,
            [ProbeState::Lost, ProbeState::Unacked, ProbeState::Unacked]
        );
    }

    #[test]
    fn probes_expire_after_crtt_or_the_interval() {
        let mut i = inst();
        i.record_sent(T, 0);
        assert!(
            i.expire(100, 100, 0).is_empty(),
            "not past start + interval yet"
        );
        assert_eq!(i.expire(101, 100, 0), vec![(1, T)]);
        i.targets[0].rtt.sample(10);
        i.record_sent(T, 1000);
        assert_eq!(
            i.expire(1031, 100, 0),
            vec![(2, T)],
            "CRTT 30 replaces the interval"
        );
    }

    #[test]
    fn the_send_slack_is_waited_for_on_top_of_crtt() {
        let mut i = inst();
        i.record_sent(T, 0);
        assert!(i.expire(106, 100, 6).is_empty(), "within CRTT + grace");
        assert_eq!(i.expire(107, 100, 6), vec![(1, T)]);
        // A reply after that is a late one.
        assert!(i.ack(1, T, 0, 108).is_ok_and(|a| a.was_lost));
    }

    #[test]
    fn reply_matching_rules() {
        let mut i = inst();
        let s = i.record_sent(T, 0);
        assert_eq!(
            i.ack(s + 1, T, 0, 1),
            Err(ReplyMismatch::OutOfWindow),
            "not sent yet"
        );
        assert_eq!(i.ack(s, U, 0, 1), Err(ReplyMismatch::Fake));
        assert_eq!(
            i.ack(s, T, 0, 1),
            Ok(Acked {
                seq: s,
                target: T,
                was_lost: false
            })
        );
        assert_eq!(i.ack(s, T, 0, 2), Err(ReplyMismatch::Duplicate));
        for k in 0..PROBE_STATS_COUNT {
            i.record_sent(T, 10 + k as u64);
        }
        assert_eq!(
            i.ack(s, T, 0, 3),
            Err(ReplyMismatch::OutOfWindow),
            "52 probes later"
        );
    }

    #[test]
    fn a_reply_carrying_another_send_time_is_a_replay() {
        let mut i = inst();
        // A reply recorded 65,536 probes ago carries the same sequence number, not the same time.
        let s = i.record_sent(T, 5_000);
        assert_eq!(i.ack(s, T, 4_000, 5_001), Err(ReplyMismatch::Stale));
        assert!(i.ack(s, T, 5_000, 5_002).is_ok());
        let mut log = SendLog::default();
        log.record(100);
        assert!(log.recent(100, 150, 100));
        assert!(!log.recent(99, 150, 100), "not one of ours");
        assert!(!log.recent(100, 250, 100), "too old");
        assert!(!log.recent(0, 10, 100));
    }

    #[test]
    fn a_late_reply_revives_a_lost_probe() {
        let mut i = inst();
        let s = i.record_sent(T, 0);
        i.expire(1_000, 10, 0);
        assert_eq!(i.consecutive_lost(), 1);
        assert!(i.ack(s, T, 0, 1_001).unwrap().was_lost);
        assert_eq!((i.consecutive_lost(), i.consecutive_acked()), (0, 1));
    }

    #[test]
    fn quiet_period_holds_back_a_failure() {
        let mut i = inst();
        for k in 0..6 {
            i.record_sent(T, k);
        }
        i.expire(1_000_000, 10, 0);
        assert_eq!(i.consecutive_lost(), 6);
        assert!(!i.probe_failed(1_000_000), "inside the quiet period");
        assert!(i.probe_failed(FAILURE_DETECTION_QP_NS), "after it");
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut i = inst();
        i.next_seq = u16::MAX - 1;
        for k in 0..4 {
            let s = i.record_sent(T, k);
            i.ack(s, T, k, k).unwrap();
        }
        assert_eq!(i.next_seq, 2);
        assert_eq!(i.consecutive_acked(), 4);
    }

    #[test]
    fn loss_and_ack_runs_skip_outstanding_probes() {
        let mut i = inst();
        for k in 0..3 {
            let s = i.record_sent(T, k);
            i.ack(s, T, k, k).unwrap();
        }
        for k in 0..5 {
            i.record_sent(T, 100 + k);
        }
        i.expire(1_000_000, 10, 0);
        assert_eq!(i.consecutive_lost(), 5);
        assert_eq!(i.first_failure_ns(), Some(100));
        i.record_sent(T, 2_000_000);
        assert_eq!(
            i.consecutive_lost(),
            5,
            "the outstanding probe does not break the run"
        );
        assert!(
            i.probe_failed(3_000_000),
            "the first ack ended the quiet period"
        );
    }

    #[test]
    fn repair_counts_the_current_targets_acks_too() {
        let mut i = inst();
        // T answers, U does not: overall the run of acks never exceeds 1.
        for k in 0..20 {
            let s = i.record_sent(T, 10 * k);
            i.ack(s, T, 10 * k, 10 * k + 1).unwrap();
            i.record_sent(U, 10 * k + 5);
            i.expire(10 * k + 9, 1, 0);
        }
        let s = i.record_sent(T, 1_000);
        i.ack(s, T, 1_000, 1_001).unwrap();
        assert_eq!(i.consecutive_acked(), 1);
        assert_eq!(
            i.repair_acks(),
            21,
            "T alone has answered 21 times in a row"
        );
    }

    #[test]
    fn first_ack_ends_the_quiet_period() {
        let mut i = inst();
        let s = i.record_sent(T, 5);
        i.ack(s, T, 5, 7).unwrap();
        assert_eq!(i.quiet_until_ns, 7);
    }

    /// Every unacknowledged slot, found by scanning the whole history (what `unacked` spares).
    fn scanned_unacked(i: &ProbeInstance) -> Vec<u16> {
        let mut seqs: Vec<(u64, u16)> = i
            .history
            .iter()
            .filter(|s| s.state == ProbeState::Unacked)
            .map(|s| (s.start_ns, s.seq))
            .collect();
        seqs.sort_unstable();
        seqs.into_iter().map(|(_, seq)| seq).collect()
    }

    #[test]
    fn the_two_outstanding_slots_hold_every_unacked_probe_through_wraps_acks_losses_and_clears() {
        let mut i = inst();
        // Close to the end of the sequence space: the run wraps it.
        i.next_seq = u16::MAX - 500;
        // A fixed xorshift sequence: sends, acks of any of the last few, expiries, clears.
        let mut x: u32 = 0x9e37_79b9;
        let mut now = 0;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            now += u64::from(x % 7);
            match x % 11 {
                0..=4 => {
                    i.record_sent(if x & 1 == 0 { T } else { U }, now);
                }
                5..=7 => {
                    let seq = i.next_seq.wrapping_sub(1 + (x >> 8) as u16 % 4);
                    if let Some(slot) = i.slot_of(seq).copied() {
                        let _ = i.ack(seq, slot.target.unwrap(), slot.start_ns, now);
                    }
                }
                8 | 9 => {
                    i.expire(now, 15, 0);
                }
                _ => {
                    if x.is_multiple_of(97) {
                        i.clear_history();
                    }
                }
            }
            let fast: Vec<u16> = i.unacked().map(|s| s.seq).collect();
            assert_eq!(fast, scanned_unacked(&i), "at {now}");
            let scanned_expiry = i
                .history
                .iter()
                .filter(|s| s.state == ProbeState::Unacked)
                .map(|s| s.start_ns + i.crtt_or(s.target.unwrap(), 15) + 1)
                .min();
            assert_eq!(i.next_expiry(15, 0), scanned_expiry);
        }
    }
}
