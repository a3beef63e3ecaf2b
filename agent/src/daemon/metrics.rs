//! The counters the daemon keeps for the opt-in Prometheus endpoint (`ipmpd run --metrics [ADDR]`,
//! loopback by default), and the copy of its state the endpoint shows: per group and per
//! interface state, FDTs, CRTTs, probe and reject counters, failovers by cause and events by name.
//! The copy is taken on the probing loop, at most once a second and only for a scrape waiting; the
//! exporter's thread ([`super::exporter`]) encodes it ([`super::exposition`]).

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use agent_common::counters::IfaceCounters;

use super::exposition::{GroupRow, InterfaceRow, MetricsState};
use crate::{
    control::snapshot::RejectRow,
    engine::views::{if_state, probe_state},
};

/// Counters the daemon keeps for the endpoint.
#[derive(Debug, Default)]
pub struct Counts {
    /// (interface, reason) → probe replies refused in userspace (see `replies::Refused`).
    pub rejected: HashMap<(String, &'static str), u64>,
    /// The same, as last reported in an event.
    pub rejected_reported: HashMap<(String, &'static str), u64>,
    /// (group, cause) → data-address moves.
    pub failovers: HashMap<(String, String), u64>,
    /// Catalogue event name → count.
    pub events: HashMap<String, u64>,
    /// Kernel counters per interface, refreshed every second.
    pub kernel: HashMap<String, IfaceCounters>,
    /// Engine deadlines (probe sends, loss timeouts) the loop woke up for.
    pub deadlines: u64,
    /// Of those, the ones it woke up for more than [`LATE_NS`] late.
    pub deadlines_missed: u64,
    /// Of the missed ones, those the loop was waiting for that the kernel woke it for late (see
    /// [`woke_late`]).
    pub deadlines_woke_late: u64,
    /// Probes skipped by a late loop since the last report, by interface.
    pub missed_unreported: HashMap<Arc<str>, u64>,
    /// Output lines dropped, as last reported in an event, and when to report again.
    pub drop_reports: super::drop_reports::DropReports,
    /// How long the last copy of the state for the metrics exposition took the loop (ns).
    pub exposition_copy_ns: u64,
    /// The carrier poll's current interval in ns (0: no poll), kept by the link watcher.
    pub link_poll_interval_ns: Arc<AtomicU64>,
}

/// The kernel's reasons for not queueing a probe reply, with its counts.
pub(super) fn kernel_rejects(c: &IfaceCounters) -> [(&'static str, u64); 7] {
    [
        ("magic", c.rejected_magic),
        ("version", c.rejected_version),
        ("checksum_type", c.rejected_checksum_type),
        ("truncated", c.rejected_truncated),
        ("routing_header", c.rejected_routing_header),
        ("identity", c.rejected_identity),
        ("ring_full", c.ring_full),
    ]
}

impl Counts {
    /// Every refused probe reply, by interface, reason and where it was refused, sorted. The
    /// kernel's reasons are there from the first read, at zero too, so a Prometheus counter exists
    /// before its first increment.
    #[must_use]
    pub fn rejected_rows(&self) -> Vec<RejectRow> {
        let kernel = self.kernel.iter().flat_map(|(ifname, c)| {
            kernel_rejects(c)
                .into_iter()
                .map(|(reason, count)| RejectRow {
                    source: "kernel".into(),
                    interface: ifname.clone(),
                    reason: reason.into(),
                    count,
                })
        });
        let daemon = self
            .rejected
            .iter()
            .map(|((ifname, reason), count)| RejectRow {
                source: "daemon".into(),
                interface: ifname.clone(),
                reason: (*reason).into(),
                count: *count,
            });
        let mut rows: Vec<RejectRow> = kernel.chain(daemon).collect();
        rows.sort_by(|a, b| {
            (&a.interface, &a.source, &a.reason).cmp(&(&b.interface, &b.source, &b.reason))
        });
        rows
    }
}

/// How late a deadline may be met before it counts as missed: a tenth of the shortest probe
/// interval ipmpd allows (FDT 10 ms / 7 probes).
pub const LATE_NS: u64 = 1_000_000;

/// Whether a missed deadline `due` is the scheduler's doing rather than the loop's: the loop went
/// to wait at `wait_start` before `due`, and the kernel woke it more than [`LATE_NS`] after (the
/// CPU was another task's; `--rt-priority` is the remedy). Otherwise the loop itself was busy
/// past it (a long turn: too much work for one core, or a slow system call).
#[must_use]
pub fn woke_late(due: u64, wait_start: u64, woke: u64) -> bool {
    wait_start <= due && woke.saturating_sub(due) > LATE_NS
}

/// Bumps `key` in `map`.
pub fn bump<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u64>, key: K) {
    *map.entry(key).or_default() += 1;
}

impl super::Daemon {
    /// A copy of what the exposition shows, for the exporter's thread to encode: copying is
    /// a few allocations per member, where encoding on the loop held every probe back.
    pub(super) fn metrics_state(&self, encode_ns: u64) -> MetricsState {
        let configured: HashMap<&str, f64> = self
            .rec
            .desired
            .groups
            .iter()
            .map(|c| {
                let ms = c.fdt_ms.unwrap_or(self.rec.desired.fdt_ms);
                (c.name.as_str(), ms as f64 / 1e3)
            })
            .collect();
        let groups = self
            .engine
            .group_fdts()
            .map(|(name, state, fdt_ns)| GroupRow {
                name: name.to_owned(),
                state,
                fdt_ns,
                configured_s: configured.get(name).copied(),
            })
            .collect();
        let interfaces = self
            .engine
            .interfaces()
            .into_iter()
            .map(|v| InterfaceRow {
                state: if_state(v.state),
                probe: probe_state(v.state, self.engine.probe_enabled(&v.ifname), v.probing),
                active: v.active,
                link_up: v.link_up,
                ifname: v.ifname,
                group: v.group,
            })
            .collect();
        let counts = &self.out.counts;
        MetricsState {
            groups,
            interfaces,
            crtts: self
                .engine
                .crtts()
                .map(|(ifname, target, ns)| (ifname.to_owned(), target, ns))
                .collect(),
            probes: self
                .io
                .members
                .probe_counts()
                .map(|(ifname, c)| (ifname.to_owned(), c))
                .collect(),
            events: counts.events.iter().map(|(k, n)| (k.clone(), *n)).collect(),
            kernel: counts
                .kernel
                .iter()
                .map(|(ifname, c)| (ifname.clone(), *c))
                .collect(),
            rejected: counts.rejected.clone(),
            control_refused: self.out.control.refusals().by_reason().to_vec(),
            failovers: counts
                .failovers
                .iter()
                .map(|(k, n)| (k.clone(), *n))
                .collect(),
            deadlines: counts.deadlines,
            deadlines_missed: counts.deadlines_missed,
            deadlines_woke_late: counts.deadlines_woke_late,
            output_dropped: self
                .output_dropped()
                .iter()
                .map(|&((stream, kind), n)| (stream, kind, n))
                .collect(),
            link_poll_interval_ns: counts.link_poll_interval_ns.load(Ordering::Relaxed),
            copy_ns: counts.exposition_copy_ns,
            encode_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_is_the_schedulers_miss_only_when_the_loop_slept_through_it() {
        let due = 10_000_000;
        // Waiting since before it, woken 1.5 ms after: the CPU was another task's.
        assert!(woke_late(due, due - 5_000_000, due + 1_500_000));
        // Woken in time and then busy for 2 ms: the loop's own doing.
        assert!(!woke_late(due, due - 5_000_000, due + 200_000));
        // Gone to wait after it was due (the turn before ran past it): busy, however late the
        // wake-up.
        assert!(!woke_late(due, due + 100_000, due + 3_000_000));
        // Exactly the allowance is not late.
        assert!(!woke_late(due, due, due + LATE_NS));
    }
}
