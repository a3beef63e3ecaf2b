//! The opt-in Prometheus endpoint (`ipmpd run --metrics [ADDR]`, loopback by default): per group
//! and per interface state, FDTs, CRTTs, probe and reject counters, failovers by cause and events
//! by name, encoded with the prometheus-client crate. Rendered by the daemon from one consistent
//! state once a second and served off the detection thread ([`super::exporter`]).

use std::{collections::HashMap, sync::atomic::AtomicU64};

use agent_common::counters::IfaceCounters;
use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::{
    control::snapshot::RejectRow,
    engine::{IfState, views::probe_state},
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
    /// Probes skipped by a late loop since the last report, by interface.
    pub missed_unreported: HashMap<String, u64>,
    /// Lines dropped by (stream, kind), as last reported in an event.
    pub output_dropped_reported: HashMap<(&'static str, &'static str), u64>,
    /// The carrier poll's current interval in ns (0: no poll), kept by the link watcher.
    pub link_poll_interval_ns: std::sync::Arc<AtomicU64>,
}

/// The kernel's reasons for not queueing a probe reply, with its counts.
fn kernel_rejects(c: &IfaceCounters) -> [(&'static str, u64); 7] {
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

/// Bumps `key` in `map`.
pub fn bump<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u64>, key: K) {
    *map.entry(key).or_default() += 1;
}

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl super::Daemon {
    /// The exposition of the current state.
    pub(super) fn metrics_text(&self) -> String {
        let mut reg = Registry::with_prefix("ipmpd");
        let group_state = Family::<Labels, Gauge>::default();
        let fdt = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        let fdt_configured = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        for g in self.engine.groups() {
            for s in ["ok", "degraded", "failed"] {
                let on = format!("{:?}", g.state).eq_ignore_ascii_case(s);
                group_state
                    .get_or_create(&labels(&[("group", &g.name), ("state", s)]))
                    .set(i64::from(on));
            }
            fdt.get_or_create(&labels(&[("group", &g.name)]))
                .set(g.fdt_ns as f64 / 1e9);
            if let Some(c) = self.rec.desired.groups.iter().find(|c| c.name == g.name) {
                let configured = c
                    .fdt_ms
                    .map_or(self.rec.desired.fdt_ms as f64 / 1e3, |ms| ms as f64 / 1e3);
                fdt_configured
                    .get_or_create(&labels(&[("group", &g.name)]))
                    .set(configured);
            }
        }
        reg.register(
            "group_state",
            "1 for the group's current state (ok, degraded, failed)",
            group_state,
        );
        reg.register(
            "group_fdt_seconds",
            "Current failure detection time of the group",
            fdt,
        );
        reg.register(
            "group_configured_fdt_seconds",
            "Configured failure detection time of the group",
            fdt_configured,
        );

        let active = Family::<Labels, Gauge>::default();
        let link = Family::<Labels, Gauge>::default();
        let state = Family::<Labels, Gauge>::default();
        let probe = Family::<Labels, Gauge>::default();
        for v in self.engine.interfaces() {
            let l = labels(&[("interface", &v.ifname), ("group", &v.group)]);
            active.get_or_create(&l).set(i64::from(v.active));
            link.get_or_create(&l).set(i64::from(v.link_up));
            let current = match v.state {
                IfState::Running => "ok",
                IfState::NoTargets => "unknown",
                IfState::Failed => "failed",
                IfState::Offline => "offline",
            };
            for s in ["ok", "failed", "offline", "unknown"] {
                state
                    .get_or_create(&labels(&[
                        ("interface", &v.ifname),
                        ("group", &v.group),
                        ("state", s),
                    ]))
                    .set(i64::from(s == current));
            }
            let p = probe_state(v.state, self.engine.probe_enabled(&v.ifname), v.probing);
            for s in ["ok", "failed", "unknown", "disabled"] {
                probe
                    .get_or_create(&labels(&[
                        ("interface", &v.ifname),
                        ("group", &v.group),
                        ("state", s),
                    ]))
                    .set(i64::from(s == p));
            }
        }
        reg.register(
            "interface_active",
            "1 when the interface carries data traffic",
            active,
        );
        reg.register(
            "interface_link_up",
            "1 when the driver reports carrier",
            link,
        );
        reg.register(
            "interface_state",
            "1 for the interface's current state",
            state,
        );
        reg.register(
            "interface_probe_state",
            "1 for the interface's current probe state",
            probe,
        );

        let crtt = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        for t in self.engine.targets() {
            for target in &t.targets {
                if let Some(c) = self.engine.crtt(&t.ifname, *target) {
                    crtt.get_or_create(&labels(&[
                        ("interface", &t.ifname),
                        ("target", &target.to_string()),
                    ]))
                    .set(c as f64 / 1e9);
                }
            }
        }
        reg.register(
            "target_crtt_seconds",
            "Smoothed round trip plus four mean deviations, per probe target",
            crtt,
        );

        let counter = |map: &HashMap<String, u64>, key: &str| {
            let fam = Family::<Labels, Counter>::default();
            for (k, v) in map {
                fam.get_or_create(&labels(&[(key, k)])).inc_by(*v);
            }
            fam
        };
        let (sent, acked, lost, missed) = (
            Family::<Labels, Counter>::default(),
            Family::<Labels, Counter>::default(),
            Family::<Labels, Counter>::default(),
            Family::<Labels, Counter>::default(),
        );
        for (ifname, c) in self.io.members.probe_counts() {
            let l = labels(&[("interface", ifname)]);
            sent.get_or_create(&l).inc_by(c.sent);
            acked.get_or_create(&l).inc_by(c.acked);
            lost.get_or_create(&l).inc_by(c.lost);
            missed.get_or_create(&l).inc_by(c.missed);
        }
        reg.register("probes_sent", "Failure-detection probes sent", sent);
        reg.register("probes_acked", "Probes answered", acked);
        reg.register("probes_lost", "Probes given up", lost);
        reg.register(
            "probes_missed",
            "Probes not sent because the loop was scheduled too late (whole intervals skipped)",
            missed,
        );
        reg.register(
            "events",
            "Catalogue events reported, by name",
            counter(&self.out.counts.events, "event"),
        );
        let rejected = Family::<Labels, Counter>::default();
        for r in self.out.counts.rejected_rows() {
            rejected
                .get_or_create(&labels(&[
                    ("interface", &r.interface),
                    ("reason", &r.reason),
                ]))
                .inc_by(r.count);
        }
        reg.register(
            "probe_replies_rejected",
            "Probe replies not accepted (by the XDP program or the daemon), by reason",
            rejected,
        );
        let control = Family::<Labels, Counter>::default();
        for (reason, n) in self.out.control.refusals().by_reason() {
            control
                .get_or_create(&labels(&[("reason", reason)]))
                .inc_by(n);
        }
        reg.register(
            "control_refused",
            "Control-socket connections refused or dropped, by reason",
            control,
        );
        let failovers = Family::<Labels, Counter>::default();
        for ((group, cause), n) in &self.out.counts.failovers {
            failovers
                .get_or_create(&labels(&[("group", group), ("cause", cause)]))
                .inc_by(*n);
        }
        reg.register(
            "failovers",
            "Data-address moves, by group and cause",
            failovers,
        );
        for (name, help, n) in [
            (
                "deadlines",
                "Engine deadlines (probe sends, loss timeouts) the loop woke up for",
                self.out.counts.deadlines,
            ),
            (
                "deadlines_missed",
                "Engine deadlines met more than 1 ms late",
                self.out.counts.deadlines_missed,
            ),
        ] {
            let c = Counter::<u64, AtomicU64>::default();
            c.inc_by(n);
            reg.register(name, help, c);
        }
        let dropped = Family::<Labels, Counter>::default();
        for (stream, kind, n) in self.output_dropped() {
            dropped
                .get_or_create(&labels(&[("stream", stream), ("kind", kind)]))
                .inc_by(n);
        }
        reg.register(
            "output_lines_dropped",
            "Lines for standard output or error, or records for journald, dropped because their reader did not keep up (or journald was not there), by stream and kind",
            dropped,
        );
        let poll = Gauge::<f64, AtomicU64>::default();
        poll.set(
            self.out
                .counts
                .link_poll_interval_ns
                .load(std::sync::atomic::Ordering::Relaxed) as f64
                / 1e9,
        );
        reg.register(
            "link_poll_interval_seconds",
            "Current carrier poll interval (stretched beyond its floor to keep the CPU budget; 0: no poll)",
            poll,
        );
        let mut out = String::new();
        let _ = encode(&mut out, &reg);
        out
    }
}
