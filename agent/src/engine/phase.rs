//! A group's shared send phase: its members' probe rounds start together and each round's send
//! time is drawn once for the group, so a group's probes share one wake-up instead of one each.
//!
//! in.mpathd draws every interface's send time on its own, in the second half of its round
//! (`[base + interval / 2, base + interval)`). Each member still sends at a time drawn in that
//! window; the members of one group now draw it together. Spreading probes over time matters
//! between hosts (a target is not hit by every host at once), which the draw still does; within
//! one host, each wake-up costs tens of microseconds of CPU on a virtual machine, which at FDT
//! 10 ms is most of what probing costs.

/// The round start and send time the group last drew (`None`: no member has drawn yet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendPhase(Option<(u64, u64)>);

impl SendPhase {
    /// Where a member that starts probing at `now_ns` begins its first round: in step with the
    /// group's rounds when the group has any (at or after `now_ns`, less than an interval
    /// later), otherwise `draw()`.
    pub fn first_base(&self, now_ns: u64, interval: u64, draw: impl FnOnce() -> u64) -> u64 {
        let interval = interval.max(1);
        match self.0 {
            Some((base, _)) if base >= now_ns => base - (base - now_ns) / interval * interval,
            Some((base, _)) => {
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
    /// round when it lies in this round's window (the interval may have changed since), otherwise
    /// `draw()`, which becomes the group's.
    pub fn send_at(&mut self, base_ns: u64, interval: u64, draw: impl FnOnce() -> u64) -> u64 {
        let window = base_ns.saturating_add(interval / 2)..base_ns.saturating_add(interval.max(1));
        match self.0 {
            Some((base, send)) if base == base_ns && window.contains(&send) => send,
            _ => {
                let send = draw();
                self.0 = Some((base_ns, send));
                send
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_member_draws_and_the_others_join_its_rounds() {
        let mut phase = SendPhase::default();
        let base = phase.first_base(1_000, 100, || 1_042);
        assert_eq!(base, 1_042);
        assert_eq!(phase.send_at(base, 100, || 1_120), 1_120);
        // Later members start in step with the group's round, never before `now`, within one
        // interval of it, and take the group's send time when their round is the group's.
        for (now, want) in [
            (1_000, 1_042),
            (1_042, 1_042),
            (1_043, 1_142),
            (1_500, 1_542),
        ] {
            let b = phase.first_base(now, 100, || unreachable!("the group has rounds"));
            assert_eq!(b, want, "joining at {now}");
        }
        assert_eq!(
            phase.send_at(1_042, 100, || unreachable!("drawn for this round")),
            1_120
        );
        // Joining a later round: it draws, and that round's draw is the group's from then on.
        assert_eq!(phase.send_at(1_142, 100, || 1_199), 1_199);
        assert_eq!(phase.send_at(1_142, 100, || unreachable!()), 1_199);
    }

    #[test]
    fn a_draw_outside_this_rounds_window_is_not_shared() {
        let mut phase = SendPhase::default();
        assert_eq!(phase.send_at(1_000, 100, || 1_099), 1_099);
        // The interval halved since: 1,099 is past this round's window [1,025, 1,050).
        assert_eq!(phase.send_at(1_000, 50, || 1_030), 1_030);
        assert_eq!(phase.send_at(1_000, 50, || unreachable!()), 1_030);
    }
}
