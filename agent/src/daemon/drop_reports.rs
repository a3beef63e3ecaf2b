//! When to say that output lines were dropped (`ipmultipath.daemon.outputDropped`). The report
//! is itself a line, queued for the very readers that stopped reading: made once a second, it
//! would take one of the slots a stalled reader's queue keeps for events every second, and after
//! a long enough stall push real events out. So a report waits while the previous one is still
//! queued for a reader that has not taken it; the counts add up meanwhile, and the next report,
//! once the reader reads again, has them all.

use std::collections::HashMap;

/// A stream and a kind of line (`("stdout", "probe")`), as the report names them.
pub type StreamKind = (&'static str, &'static str);

/// Where standard output's and standard error's queues stood just after a report was queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marks {
    pub stdout: u64,
    pub stderr: u64,
}

/// The drops reported so far, and where the last report was queued.
#[derive(Debug, Default)]
pub struct DropReports {
    /// Lines dropped by (stream, kind), as last reported.
    reported: HashMap<StreamKind, u64>,
    last: Option<Marks>,
}

impl DropReports {
    /// Where the last report was queued (`None`: no report yet).
    #[must_use]
    pub fn last_marks(&self) -> Option<Marks> {
        self.last
    }

    /// The reports due, given the drops counted so far (`dropped`, totals by stream and kind)
    /// and whether the last report has left every queue (`last_left`): one per stream and kind
    /// that dropped lines since its last report, with the count since then. None while the last
    /// report is still waiting; those drops are reported later, with the rest.
    pub fn due(
        &mut self,
        dropped: &[(StreamKind, u64)],
        last_left: bool,
    ) -> Vec<(StreamKind, u64)> {
        if !last_left {
            return Vec::new();
        }
        dropped
            .iter()
            .filter_map(|&(key, total)| {
                let before = self.reported.insert(key, total).unwrap_or(0);
                (total > before).then(|| (key, total - before))
            })
            .collect()
    }

    /// Notes where the queues stood once the reports [`Self::due`] returned were queued.
    pub fn queued(&mut self, marks: Marks) {
        self.last = Some(marks);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STDOUT_PROBE: StreamKind = ("stdout", "probe");
    const STDERR_EVENT: StreamKind = ("stderr", "event");

    #[test]
    fn each_stream_and_kind_is_reported_with_the_count_since_its_last_report() {
        let mut r = DropReports::default();
        assert!(
            r.due(&[(STDOUT_PROBE, 0), (STDERR_EVENT, 0)], true)
                .is_empty()
        );
        assert_eq!(
            r.due(&[(STDOUT_PROBE, 5), (STDERR_EVENT, 0)], true),
            vec![(STDOUT_PROBE, 5)]
        );
        assert_eq!(
            r.due(&[(STDOUT_PROBE, 7), (STDERR_EVENT, 2)], true),
            vec![(STDOUT_PROBE, 2), (STDERR_EVENT, 2)]
        );
        assert!(
            r.due(&[(STDOUT_PROBE, 7), (STDERR_EVENT, 2)], true)
                .is_empty()
        );
    }

    #[test]
    fn while_the_last_report_waits_nothing_is_reported_and_nothing_is_lost() {
        let mut r = DropReports::default();
        assert_eq!(r.due(&[(STDOUT_PROBE, 3)], true), vec![(STDOUT_PROBE, 3)]);
        let marks = Marks {
            stdout: 40,
            stderr: 9,
        };
        r.queued(marks);
        assert_eq!(r.last_marks(), Some(marks));
        // A reader stalled for an hour: one report queued, not 3,600.
        for total in 4..3_600 {
            assert!(r.due(&[(STDOUT_PROBE, total)], false).is_empty());
        }
        // It reads again: every drop since the first report, in one.
        assert_eq!(
            r.due(&[(STDOUT_PROBE, 3_600)], true),
            vec![(STDOUT_PROBE, 3_597)]
        );
    }
}
