//! Which interfaces have something due, ordered by when: the engine's next deadline and the
//! interfaces a tick serves, found without a look at the others. A tick and a deadline then cost
//! the same with 2 or 2,000 members (a scan of every interface per wake-up was most of a wake-up's
//! cost at 1,024 members, and wake-ups come by the thousand a second at FDT 100 ms).

use std::collections::BTreeSet;

/// Interface indexes by due time, mirroring each interface's `due_ns` (`u64::MAX`: nothing due,
/// not kept).
#[derive(Debug, Default)]
pub struct DueIndex {
    by_time: BTreeSet<(u64, usize)>,
    /// The longest send slack of any group seen: how far past `now` a tick looks. It only grows
    /// (until a rebuild), which can only make a tick look at a few more entries, each checked
    /// against its own group's slack.
    max_slack: u64,
}

impl DueIndex {
    /// Interface `i`'s due time moves from `old` to `new`.
    pub fn moved(&mut self, i: usize, old: u64, new: u64) {
        if old == new {
            return;
        }
        if old != u64::MAX {
            self.by_time.remove(&(old, i));
        }
        if new != u64::MAX {
            self.by_time.insert((new, i));
        }
    }

    /// A group's send slack, which a tick must look ahead by.
    pub fn note_slack(&mut self, slack: u64) {
        self.max_slack = self.max_slack.max(slack);
    }

    /// The earliest due time.
    #[must_use]
    pub fn first(&self) -> Option<u64> {
        self.by_time.first().map(|&(t, _)| t)
    }

    /// Into `out`, in index order, the interfaces due by `now` plus the longest slack: every one
    /// a tick at `now` may serve.
    pub fn candidates(&self, now: u64, out: &mut Vec<usize>) {
        out.clear();
        let horizon = now.saturating_add(self.max_slack);
        out.extend(
            self.by_time
                .range(..=(horizon, usize::MAX))
                .map(|&(_, i)| i),
        );
        out.sort_unstable();
    }

    /// Starts again from every interface's (index, due time) and its groups' slacks: after
    /// interfaces were removed and the indexes above moved down.
    pub fn rebuild(
        &mut self,
        due: impl IntoIterator<Item = (usize, u64)>,
        slacks: impl IntoIterator<Item = u64>,
    ) {
        self.by_time = due
            .into_iter()
            .filter(|&(_, t)| t != u64::MAX)
            .map(|(i, t)| (t, i))
            .collect();
        self.max_slack = slacks.into_iter().max().unwrap_or(0);
    }

    /// Every (due time, index) kept, in order (for checks).
    #[cfg(test)]
    pub fn entries(&self) -> impl Iterator<Item = (u64, usize)> + '_ {
        self.by_time.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_are_kept_per_interface_and_nothing_due_is_not_kept() {
        let mut d = DueIndex::default();
        d.moved(0, u64::MAX, 50);
        d.moved(1, u64::MAX, 20);
        d.moved(2, u64::MAX, u64::MAX);
        assert_eq!(d.first(), Some(20));
        d.moved(1, 20, 70);
        assert_eq!(d.first(), Some(50));
        d.moved(0, 50, u64::MAX);
        assert_eq!(d.entries().collect::<Vec<_>>(), [(70, 1)]);
    }

    #[test]
    fn candidates_look_ahead_by_the_longest_slack_in_index_order() {
        let mut d = DueIndex::default();
        for (i, t) in [(3, 100), (1, 105), (0, 111), (2, 90)] {
            d.moved(i, u64::MAX, t);
        }
        let mut out = Vec::new();
        d.candidates(100, &mut out);
        assert_eq!(out, [2, 3]);
        d.note_slack(5);
        d.note_slack(2);
        d.candidates(100, &mut out);
        assert_eq!(out, [1, 2, 3]);
        d.rebuild([(0, 111), (1, u64::MAX)], [1]);
        d.candidates(110, &mut out);
        assert_eq!(out, [0]);
        assert_eq!(d.first(), Some(111));
    }
}
