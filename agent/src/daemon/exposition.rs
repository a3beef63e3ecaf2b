//! The Prometheus exposition: a plain copy of what it shows ([`MetricsState`], taken on the
//! probing loop in one turn, so it is consistent) and its encoding ([`MetricsState::render`], run
//! on the exporter's thread). At 1,024 members the encoding took 38 to 49 ms; on the loop it held
//! back every probe due meanwhile (two intervals at FDT 100 ms), and they left together.

use std::{collections::HashMap, net::IpAddr, sync::atomic::AtomicU64};

use agent_common::counters::IfaceCounters;
use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use super::{members::ProbeCounts, metrics::kernel_rejects};
use crate::engine::GroupState;

/// One group's row.
#[derive(Debug)]
pub struct GroupRow {
    pub name: String,
    pub state: GroupState,
    pub fdt_ns: u64,
    /// The configured FDT in seconds; none for a group the configuration no longer names.
    pub configured_s: Option<f64>,
}

/// One interface's row.
#[derive(Debug)]
pub struct InterfaceRow {
    pub ifname: String,
    pub group: String,
    pub active: bool,
    pub link_up: bool,
    /// ok, failed, offline or unknown.
    pub state: &'static str,
    /// ok, failed, unknown or disabled.
    pub probe: &'static str,
}

/// Everything the exposition shows, copied from the daemon in one turn of its loop.
#[derive(Debug, Default)]
pub struct MetricsState {
    pub groups: Vec<GroupRow>,
    pub interfaces: Vec<InterfaceRow>,
    /// (interface, target, CRTT in ns).
    pub crtts: Vec<(String, IpAddr, u64)>,
    pub probes: Vec<(String, ProbeCounts)>,
    pub events: Vec<(String, u64)>,
    /// Kernel counters per interface, for the XDP program's refusals.
    pub kernel: Vec<(String, IfaceCounters)>,
    /// (interface, reason) → replies the daemon refused.
    pub rejected: HashMap<(String, &'static str), u64>,
    pub control_refused: Vec<(&'static str, u64)>,
    /// (group, cause) → data-address moves.
    pub failovers: Vec<((String, String), u64)>,
    pub deadlines: u64,
    pub deadlines_missed: u64,
    /// (stream, kind, lines dropped).
    pub output_dropped: Vec<(&'static str, &'static str, u64)>,
    pub link_poll_interval_ns: u64,
    /// What the previous rendering cost: the probing loop's copy, and the exporter's encoding (ns).
    pub copy_ns: u64,
    pub encode_ns: u64,
}

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A family of gauges that are 1 for the row's current value of `key` and 0 for the others.
fn one_hot<'a>(
    family: &Family<Labels, Gauge>,
    base: &[(&str, &'a str)],
    key: &'a str,
    values: &[&'a str],
    current: &str,
) {
    for v in values {
        let mut l = base.to_vec();
        l.push((key, v));
        family
            .get_or_create(&labels(&l))
            .set(i64::from(*v == current));
    }
}

impl MetricsState {
    /// The OpenMetrics text.
    #[must_use]
    pub fn render(&self) -> String {
        let mut reg = Registry::with_prefix("ipmpd");
        self.register_groups(&mut reg);
        self.register_interfaces(&mut reg);
        self.register_probes(&mut reg);
        self.register_counters(&mut reg);
        let mut out = String::new();
        let _ = encode(&mut out, &reg);
        out
    }

    fn register_groups(&self, reg: &mut Registry) {
        let state = Family::<Labels, Gauge>::default();
        let fdt = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        let configured = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        for g in &self.groups {
            let current = match g.state {
                GroupState::Ok => "ok",
                GroupState::Degraded => "degraded",
                GroupState::Failed => "failed",
            };
            let group = [("group", g.name.as_str())];
            one_hot(
                &state,
                &group,
                "state",
                &["ok", "degraded", "failed"],
                current,
            );
            fdt.get_or_create(&labels(&group))
                .set(g.fdt_ns as f64 / 1e9);
            if let Some(c) = g.configured_s {
                configured.get_or_create(&labels(&group)).set(c);
            }
        }
        reg.register(
            "group_state",
            "1 for the group's current state (ok, degraded, failed)",
            state,
        );
        reg.register(
            "group_fdt_seconds",
            "Current failure detection time of the group",
            fdt,
        );
        reg.register(
            "group_configured_fdt_seconds",
            "Configured failure detection time of the group",
            configured,
        );
    }

    fn register_interfaces(&self, reg: &mut Registry) {
        let active = Family::<Labels, Gauge>::default();
        let link = Family::<Labels, Gauge>::default();
        let state = Family::<Labels, Gauge>::default();
        let probe = Family::<Labels, Gauge>::default();
        for v in &self.interfaces {
            let base = [
                ("interface", v.ifname.as_str()),
                ("group", v.group.as_str()),
            ];
            let l = labels(&base);
            active.get_or_create(&l).set(i64::from(v.active));
            link.get_or_create(&l).set(i64::from(v.link_up));
            let states = ["ok", "failed", "offline", "unknown"];
            one_hot(&state, &base, "state", &states, v.state);
            let probes = ["ok", "failed", "unknown", "disabled"];
            one_hot(&probe, &base, "state", &probes, v.probe);
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
        for (ifname, target, ns) in &self.crtts {
            crtt.get_or_create(&labels(&[
                ("interface", ifname),
                ("target", &target.to_string()),
            ]))
            .set(*ns as f64 / 1e9);
        }
        reg.register(
            "target_crtt_seconds",
            "Smoothed round trip plus four mean deviations, per probe target",
            crtt,
        );
    }

    fn register_probes(&self, reg: &mut Registry) {
        let (sent, acked, lost, missed) = (
            Family::<Labels, Counter>::default(),
            Family::<Labels, Counter>::default(),
            Family::<Labels, Counter>::default(),
            Family::<Labels, Counter>::default(),
        );
        for (ifname, c) in &self.probes {
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
        let rejected = Family::<Labels, Counter>::default();
        let kernel = self.kernel.iter().flat_map(|(ifname, c)| {
            kernel_rejects(c)
                .into_iter()
                .map(move |(reason, n)| (ifname.as_str(), reason, n))
        });
        let daemon = self
            .rejected
            .iter()
            .map(|((ifname, reason), n)| (ifname.as_str(), *reason, *n));
        for (ifname, reason, n) in kernel.chain(daemon) {
            rejected
                .get_or_create(&labels(&[("interface", ifname), ("reason", reason)]))
                .inc_by(n);
        }
        reg.register(
            "probe_replies_rejected",
            "Probe replies not accepted (by the XDP program or the daemon), by reason",
            rejected,
        );
    }

    fn register_counters(&self, reg: &mut Registry) {
        let events = Family::<Labels, Counter>::default();
        for (name, n) in &self.events {
            events.get_or_create(&labels(&[("event", name)])).inc_by(*n);
        }
        reg.register("events", "Catalogue events reported, by name", events);
        let control = Family::<Labels, Counter>::default();
        for (reason, n) in &self.control_refused {
            control
                .get_or_create(&labels(&[("reason", reason)]))
                .inc_by(*n);
        }
        reg.register(
            "control_refused",
            "Control-socket connections refused or dropped, by reason",
            control,
        );
        let failovers = Family::<Labels, Counter>::default();
        for ((group, cause), n) in &self.failovers {
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
                self.deadlines,
            ),
            (
                "deadlines_missed",
                "Engine deadlines met more than 1 ms late",
                self.deadlines_missed,
            ),
        ] {
            let c = Counter::<u64, AtomicU64>::default();
            c.inc_by(n);
            reg.register(name, help, c);
        }
        let dropped = Family::<Labels, Counter>::default();
        for (stream, kind, n) in &self.output_dropped {
            dropped
                .get_or_create(&labels(&[("stream", stream), ("kind", kind)]))
                .inc_by(*n);
        }
        reg.register(
            "output_lines_dropped",
            "Lines for standard output or error, or records for journald, dropped because their reader did not keep up (or journald was not there), by stream and kind",
            dropped,
        );
        for (name, help, ns) in [
            (
                "exposition_copy_seconds",
                "Time the probing loop spent copying its state for the previous rendering of these metrics",
                self.copy_ns,
            ),
            (
                "exposition_encode_seconds",
                "Time the exporter's thread spent encoding the previous rendering of these metrics",
                self.encode_ns,
            ),
        ] {
            let g = Gauge::<f64, AtomicU64>::default();
            g.set(ns as f64 / 1e9);
            reg.register(name, help, g);
        }
        let poll = Gauge::<f64, AtomicU64>::default();
        poll.set(self.link_poll_interval_ns as f64 / 1e9);
        reg.register(
            "link_poll_interval_seconds",
            "Current carrier poll interval (stretched beyond its floor to keep the CPU budget; 0: no poll)",
            poll,
        );
    }
}

impl super::exporter::Rendering for MetricsState {
    fn encode(&self) -> String {
        self.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_renders_one_hot_states_and_both_sources_of_refusals() {
        let mut state = MetricsState {
            groups: vec![GroupRow {
                name: "g".into(),
                state: GroupState::Degraded,
                fdt_ns: 250_000_000,
                configured_s: Some(0.1),
            }],
            interfaces: vec![InterfaceRow {
                ifname: "e0".into(),
                group: "g".into(),
                active: true,
                link_up: false,
                state: "failed",
                probe: "failed",
            }],
            kernel: vec![(
                "e0".into(),
                IfaceCounters {
                    rejected_magic: 3,
                    ..IfaceCounters::default()
                },
            )],
            ..MetricsState::default()
        };
        state.rejected.insert(("e0".into(), "replayed"), 2);
        state.copy_ns = 1_500_000;
        let text = state.render();
        for line in [
            r#"ipmpd_group_state{group="g",state="degraded"} 1"#,
            r#"ipmpd_group_state{group="g",state="ok"} 0"#,
            r#"ipmpd_group_fdt_seconds{group="g"} 0.25"#,
            r#"ipmpd_group_configured_fdt_seconds{group="g"} 0.1"#,
            r#"ipmpd_interface_link_up{interface="e0",group="g"} 0"#,
            r#"ipmpd_interface_state{interface="e0",group="g",state="failed"} 1"#,
            r#"ipmpd_interface_probe_state{interface="e0",group="g",state="ok"} 0"#,
            r#"ipmpd_probe_replies_rejected_total{interface="e0",reason="magic"} 3"#,
            r#"ipmpd_probe_replies_rejected_total{interface="e0",reason="replayed"} 2"#,
            r#"ipmpd_probe_replies_rejected_total{interface="e0",reason="ring_full"} 0"#,
            "ipmpd_exposition_copy_seconds 0.0015",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
