//! A group's shared send phase: its members' probe rounds start together and each round's send
//! time is drawn once for the group, so a group's probes share one wake-up instead of one each.
//!
//! in.mpathd draws every probe instance's send time on its own, in the second half of its round
//! (`[base + interval / 2, base + interval)`). Each instance still sends at a time drawn in that
//! window; the members of one group (and the ungrouped interfaces, which form one group) now draw
//! it together. Spreading probes over time matters between hosts (a target is not hit by every
//! host at once), which the draw still does; within one host, each wake-up costs tens of
//! microseconds of CPU on a virtual machine, which at FDT 10 ms is most of what probing costs.
//!
//! A shared draw serves a bounded number of probes: they all carry the wake-up's time, leave one
//! after another, and each is given only the send slack (interval / 16) on top of its target's
//! round trip before it counts as lost; the probes of a larger group draw again in turns.

use super::constants::SEND_SLACK_DIVISOR;

/// CPU time allowed for sending one probe of a shared draw: the burst of a draw must fit in the
/// send slack. Sending took 6 to 16 µs a probe at 1,024 members on this project's test machine
/// (`cargo xtask bench --only scale`); 20 µs leaves room for a slower host.
const SEND_NS_PER_PROBE: u64 = 20_000;

/// The round start and send time the group last drew, and how many probes took it (`None`: no
/// member has drawn yet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendPhase(Option<(u64, u64, u64)>);

/// How many probes may share one draw at this probe interval (at least one).
fn shared_at_most(interval: u64) -> u64 {
    (interval / SEND_SLACK_DIVISOR / SEND_NS_PER_PROBE).max(1)
}

impl SendPhase {
    /// Where a member that starts probing at `now_ns` begins its first round: in step with the
    /// group's rounds when the group has any (at or after `now_ns`, less than an interval
    /// later), otherwise `draw()`.
    pub fn first_base(&self, now_ns: u64, interval: u64, draw: impl FnOnce() -> u64) -> u64 {
        let interval = interval.max(1);
        match self.0 {
            Some((base, ..)) if base >= now_ns => base - (base - now_ns) / interval * interval,
            Some((base, ..)) => {
                let behind = (now_ns - base) % interval;
                if behind == 0 {
                    now_ns
                } else {
                    now_ns + (interval - behind)
                }
            }
            None => draw(),
        }
    }

    /// The send time of a member's round starting at `base_ns`: the group's draw for the same
    /// round when it lies in this round's window (the interval may have changed since) and has
    /// room left, otherwise `draw()`, which becomes the group's.
    pub fn send_at(&mut self, base_ns: u64, interval: u64, draw: impl FnOnce() -> u64) -> u64 {
        let window = base_ns.saturating_add(interval / 2)..base_ns.saturating_add(interval.max(1));
        match &mut self.0 {
            Some((base, send, taken))
                if *base == base_ns
                    && window.contains(send)
                    && *taken < shared_at_most(interval) =>
            {
                *taken += 1;
                *send
            }
            _ => {
                let send = draw();
                self.0 = Some((base_ns, send, 1));
                send
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Times in milliseconds, as the engine's (nanoseconds) would be.
    const MS: u64 = 1_000_000;

    #[test]
    fn the_first_member_draws_and_the_others_join_its_rounds() {
        let mut phase = SendPhase::default();
        let base = phase.first_base(1_000 * MS, 100 * MS, || 1_042 * MS);
        assert_eq!(base, 1_042 * MS);
        assert_eq!(phase.send_at(base, 100 * MS, || 1_120 * MS), 1_120 * MS);
        // Later members start in step with the group's round, never before `now`, within one
        // interval of it, and take the group's send time when their round is the group's.
        for (now, want) in [
            (1_000 * MS, 1_042 * MS),
            (1_042 * MS, 1_042 * MS),
            (1_043 * MS, 1_142 * MS),
            (1_500 * MS, 1_542 * MS),
        ] {
            let b = phase.first_base(now, 100 * MS, || unreachable!("the group has rounds"));
            assert_eq!(b, want, "joining at {now}");
        }
        assert_eq!(
            phase.send_at(1_042 * MS, 100 * MS, || unreachable!(
                "drawn for this round"
            )),
            1_120 * MS
        );
        // Joining a later round: it draws, and that round's draw is the group's from then on.
        assert_eq!(
            phase.send_at(1_142 * MS, 100 * MS, || 1_199 * MS),
            1_199 * MS
        );
        assert_eq!(
            phase.send_at(1_142 * MS, 100 * MS, || unreachable!()),
            1_199 * MS
        );
    }

    #[test]
    fn a_draw_is_shared_by_as_many_probes_as_the_send_slack_has_room_for() {
        // FDT 10 ms: interval 1.43 ms, slack 89 µs: four probes of 20 µs a draw.
        let interval = 10_000_000 / 7;
        assert_eq!(shared_at_most(interval), 4);
        assert_eq!(shared_at_most(1_000_000_000 / 7), 446, "FDT 1 s");
        assert_eq!(shared_at_most(1), 1, "never none");
        let (first, second) = (1_000 + interval / 2 + 1, 1_000 + interval / 2 + 2);
        let mut phase = SendPhase::default();
        let mut draws = [first, second].into_iter();
        let times: Vec<u64> = (0..6)
            .map(|_| phase.send_at(1_000, interval, || draws.next().unwrap()))
            .collect();
        assert_eq!(
            times[..4],
            [first; 4],
            "the first four share the first draw"
        );
        assert_eq!(times[4..], [second; 2], "the next ones draw again");
    }

    #[test]
    fn a_draw_outside_this_rounds_window_is_not_shared() {
        let mut phase = SendPhase::default();
        assert_eq!(
            phase.send_at(1_000 * MS, 100 * MS, || 1_099 * MS),
            1_099 * MS
        );
        // The interval halved since: 1,099 is past this round's window [1,025, 1,050).
        assert_eq!(
            phase.send_at(1_000 * MS, 50 * MS, || 1_030 * MS),
            1_030 * MS
        );
        assert_eq!(
            phase.send_at(1_000 * MS, 50 * MS, || unreachable!()),
            1_030 * MS
        );
    }
}
