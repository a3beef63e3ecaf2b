//! When each interface next has something due, in two dense arrays beside the interfaces: the
//! engine's next deadline and the interfaces a tick serves come from a scan of 8 bytes per
//! interface instead of a walk over every interface's state (hundreds of bytes each, most of a
//! wake-up's cost once wake-ups come by the thousand a second at 1,024 members). An ordered set
//! was tried and measured first: its insert and remove on every reply cost more than the scans.

/// Per interface index: its due time (`u64::MAX`: nothing due) and the earliest time a tick may
/// serve it (its due time less its group's send slack).
#[derive(Debug, Default)]
pub struct DueIndex {
    due: Vec<u64>,
    serve_at: Vec<u64>,
}

impl DueIndex {
    /// Interface `i` is next due at `due`, and a tick may serve it up to `slack` early.
    pub fn set(&mut self, i: usize, due: u64, slack: u64) {
        if i >= self.due.len() {
            self.due.resize(i + 1, u64::MAX);
            self.serve_at.resize(i + 1, u64::MAX);
        }
        self.due[i] = due;
        self.serve_at[i] = if due == u64::MAX {
            u64::MAX
        } else {
            due.saturating_sub(slack)
        };
    }

    /// Interface `i` was removed and the indexes above it moved down by one.
    pub fn removed(&mut self, i: usize) {
        if i < self.due.len() {
            self.due.remove(i);
            self.serve_at.remove(i);
        }
    }

    /// The earliest due time.
    #[must_use]
    pub fn first(&self) -> Option<u64> {
        let first = self.due.iter().copied().min()?;
        (first != u64::MAX).then_some(first)
    }

    /// Into `out`, in index order, every interface a tick at `now` may serve.
    pub fn candidates(&self, now: u64, out: &mut Vec<usize>) {
        out.clear();
        out.extend(
            self.serve_at
                .iter()
                .enumerate()
                .filter(|&(_, &t)| t <= now)
                .map(|(i, _)| i),
        );
    }

    /// The due time kept for interface `i` (for checks).
    #[cfg(test)]
    #[must_use]
    pub fn due_of(&self, i: usize) -> u64 {
        self.due.get(i).copied().unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_due_time_and_nothing_due() {
        let mut d = DueIndex::default();
        assert_eq!(d.first(), None);
        d.set(2, 50, 0);
        d.set(0, u64::MAX, 0);
        assert_eq!(d.first(), Some(50));
        assert_eq!(d.due_of(1), u64::MAX, "grown with nothing due");
        d.set(1, 20, 0);
        assert_eq!(d.first(), Some(20));
        d.set(1, u64::MAX, 5);
        assert_eq!(d.first(), Some(50));
    }

    #[test]
    fn candidates_are_served_their_own_slack_early_in_index_order() {
        let mut d = DueIndex::default();
        for (i, due, slack) in [
            (3, 100, 0),
            (1, 105, 5),
            (0, 111, 5),
            (2, 90, 0),
            (4, 3, 10),
        ] {
            d.set(i, due, slack);
        }
        let mut out = Vec::new();
        d.candidates(100, &mut out);
        assert_eq!(out, [1, 2, 3, 4]);
        d.removed(1);
        d.candidates(100, &mut out);
        assert_eq!(out, [1, 2, 3], "the indexes above moved down");
        assert_eq!(d.due_of(0), 111);
    }
}
