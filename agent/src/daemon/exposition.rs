//! The Prometheus exposition: a plain copy of what it shows ([`MetricsState`], taken on the
//! probing loop in one turn, so it is consistent) and its encoding ([`MetricsState::render`], run
//! on the exporter's thread, by [`super::openmetrics`]). At 1,024 members the encoding with a
//! prometheus-client registry took 38 to 49 ms; on the loop it held back every probe due
//! meanwhile (two intervals at FDT 100 ms), and they left together.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    net::IpAddr,
};

use agent_common::counters::IfaceCounters;

use super::{
    members::ProbeCounts,
    metrics::kernel_rejects,
    openmetrics::{Kind, Text},
};
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
    pub deadlines_woke_late: u64,
    /// (stream, kind, lines dropped).
    pub output_dropped: Vec<(&'static str, &'static str, u64)>,
    pub link_poll_interval_ns: u64,
    /// What the previous rendering cost: the probing loop's copy, and the exporter's encoding (ns).
    pub copy_ns: u64,
    pub encode_ns: u64,
}

impl MetricsState {
    /// The OpenMetrics text.
    #[must_use]
    pub fn render(&self) -> String {
        // About 90 bytes a series, and some 20 series per interface.
        let mut text = Text::new("ipmpd", 4096 + self.interfaces.len() * 2048);
        self.write_groups(&mut text);
        self.write_interfaces(&mut text);
        self.write_probes(&mut text);
        self.write_counters(&mut text);
        text.finish()
    }

    fn write_groups(&self, text: &mut Text) {
        let mut f = text.family(
            "group_state",
            "1 for the group's current state (ok, degraded, failed)",
            Kind::Gauge,
        );
        for g in &self.groups {
            let current = match g.state {
                GroupState::Ok => "ok",
                GroupState::Degraded => "degraded",
                GroupState::Failed => "failed",
            };
            let group = [("group", g.name.as_str())];
            f.one_hot(&group, "state", &["ok", "degraded", "failed"], current);
        }
        let mut f = text.family(
            "group_fdt_seconds",
            "Current failure detection time of the group",
            Kind::Gauge,
        );
        for g in &self.groups {
            f.sample(&[("group", &g.name)], seconds(g.fdt_ns));
        }
        let mut f = text.family(
            "group_configured_fdt_seconds",
            "Configured failure detection time of the group",
            Kind::Gauge,
        );
        for g in &self.groups {
            if let Some(c) = g.configured_s {
                f.sample(&[("group", &g.name)], c);
            }
        }
    }

    fn write_interfaces(&self, text: &mut Text) {
        type Flag = fn(&InterfaceRow) -> bool;
        let flags: [(&str, &str, Flag); 2] = [
            (
                "interface_active",
                "1 when the interface carries data traffic",
                |v| v.active,
            ),
            (
                "interface_link_up",
                "1 when the driver reports carrier",
                |v| v.link_up,
            ),
        ];
        for (name, help, flag) in flags {
            let mut f = text.family(name, help, Kind::Gauge);
            for v in &self.interfaces {
                f.sample(&interface_labels(v), flag(v));
            }
        }
        type State = fn(&InterfaceRow) -> &'static str;
        let states: [(&str, &str, &[&str], State); 2] = [
            (
                "interface_state",
                "1 for the interface's current state",
                &["ok", "failed", "offline", "unknown"],
                |v| v.state,
            ),
            (
                "interface_probe_state",
                "1 for the interface's current probe state",
                &["ok", "failed", "unknown", "disabled"],
                |v| v.probe,
            ),
        ];
        for (name, help, values, current) in states {
            let mut f = text.family(name, help, Kind::Gauge);
            for v in &self.interfaces {
                f.one_hot(&interface_labels(v), "state", values, current(v));
            }
        }
        let mut f = text.family(
            "target_crtt_seconds",
            "Smoothed round trip plus four mean deviations, per probe target",
            Kind::Gauge,
        );
        let mut target = String::new();
        for (ifname, addr, ns) in &self.crtts {
            target.clear();
            let _ = write!(target, "{addr}");
            f.sample(&[("interface", ifname), ("target", &target)], seconds(*ns));
        }
    }

    fn write_probes(&self, text: &mut Text) {
        type Count = fn(&ProbeCounts) -> u64;
        let counts: [(&str, &str, Count); 5] = [
            ("probes_sent", "Failure-detection probes sent", |c| c.sent),
            ("probes_acked", "Probes answered", |c| c.acked),
            ("probes_lost", "Probes given up", |c| c.lost),
            (
                "probes_missed",
                "Probes not sent because the loop was scheduled too late (whole intervals skipped)",
                |c| c.missed,
            ),
            (
                "probes_fallback",
                "Probes of any kind (failure detection, discovery, RTT) sent on the interface's own socket because the shared probe socket was full or did not open",
                |c| c.fallback,
            ),
        ];
        for (name, help, count) in counts {
            let mut f = text.family(name, help, Kind::Counter);
            for (ifname, c) in &self.probes {
                f.sample(&[("interface", ifname)], count(c));
            }
        }
        let other: [(&str, Count); 2] =
            [("rtt", |c| c.rtt_sent), ("discovery", |c| c.discovery_sent)];
        let mut f = text.family(
            "probes_other_sent",
            "Probes sent besides failure detection, by kind: RTT-only probes (while the FDT is raised they go at the configured rate, to learn whether it can come back down) and discovery probes to all-hosts; packets on the link like the failure-detection ones",
            Kind::Counter,
        );
        for (ifname, c) in &self.probes {
            for (kind, count) in other {
                f.sample(&[("interface", ifname), ("kind", kind)], count(c));
            }
        }
        let unsent: [(&str, Count); 2] = [
            ("buffer_full", |c| c.unsent_buffer_full),
            ("refused", |c| c.unsent_refused),
        ];
        let mut f = text.family(
            "probes_unsent",
            "Probes of any kind (failure detection, discovery, RTT) not sent, by reason: the send buffer was full (treated as sent: a stuck link shows up as lost probes), or refused by the kernel or left without a socket",
            Kind::Counter,
        );
        for (ifname, c) in &self.probes {
            for (reason, count) in unsent {
                f.sample(&[("interface", ifname), ("reason", reason)], count(c));
            }
        }
        // The kernel's and the daemon's refusals, summed where both count a reason.
        let mut rejected: BTreeMap<(&str, &str), u64> = BTreeMap::new();
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
            *rejected.entry((ifname, reason)).or_default() += n;
        }
        let mut f = text.family(
            "probe_replies_rejected",
            "Probe replies not accepted (by the XDP program or the daemon), by reason",
            Kind::Counter,
        );
        for ((ifname, reason), n) in rejected {
            f.sample(&[("interface", ifname), ("reason", reason)], n);
        }
    }

    fn write_counters(&self, text: &mut Text) {
        let mut f = text.family(
            "events",
            "Catalogue events reported, by name",
            Kind::Counter,
        );
        for (name, n) in &self.events {
            f.sample(&[("event", name)], *n);
        }
        let mut f = text.family(
            "control_refused",
            "Control-socket connections refused or dropped, by reason",
            Kind::Counter,
        );
        for (reason, n) in &self.control_refused {
            f.sample(&[("reason", reason)], *n);
        }
        let mut f = text.family(
            "failovers",
            "Data-address moves, by group and cause",
            Kind::Counter,
        );
        for ((group, cause), n) in &self.failovers {
            f.sample(&[("group", group), ("cause", cause)], *n);
        }
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
            (
                "deadlines_woke_late",
                "Of the deadlines met late, those the loop was waiting for and the kernel woke it more than 1 ms late: other tasks had the CPU (--rt-priority helps); the rest were late because the loop was busy",
                self.deadlines_woke_late,
            ),
        ] {
            text.family(name, help, Kind::Counter).sample(&[], n);
        }
        let mut f = text.family(
            "output_lines_dropped",
            "Lines for standard output or error, or records for journald, dropped because their reader did not keep up (or journald was not there), by stream and kind",
            Kind::Counter,
        );
        for (stream, kind, n) in &self.output_dropped {
            f.sample(&[("stream", stream), ("kind", kind)], *n);
        }
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
            (
                "link_poll_interval_seconds",
                "Current carrier poll interval (stretched beyond its floor to keep the CPU budget; 0: no poll)",
                self.link_poll_interval_ns,
            ),
        ] {
            text.family(name, help, Kind::Gauge)
                .sample(&[], seconds(ns));
        }
    }
}

/// An interface row's labels.
fn interface_labels(v: &InterfaceRow) -> [(&'static str, &str); 2] {
    [("interface", &v.ifname), ("group", &v.group)]
}

/// Nanoseconds as the seconds a Prometheus gauge carries.
fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

impl super::exporter::Rendering for MetricsState {
    fn encode(&self) -> String {
        self.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state with every table filled, two groups and interfaces, both families of targets, a
    /// refusal both the kernel and the daemon count, and label values that need escaping.
    fn filled(members: usize) -> MetricsState {
        let mut state = MetricsState {
            groups: vec![
                GroupRow {
                    name: "g".into(),
                    state: GroupState::Degraded,
                    fdt_ns: 250_000_000,
                    configured_s: Some(0.1),
                },
                GroupRow {
                    name: "odd\"name\\\n".into(),
                    state: GroupState::Ok,
                    fdt_ns: 10_000_000_000,
                    configured_s: None,
                },
            ],
            deadlines: 12_345,
            deadlines_missed: 7,
            deadlines_woke_late: 5,
            link_poll_interval_ns: 2_000_000,
            copy_ns: 1_500_000,
            encode_ns: 61_000_000,
            control_refused: vec![("uid", 2), ("too_many", 0)],
            output_dropped: vec![("stdout", "event", 3), ("journal", "log", 0)],
            events: vec![("link.down".into(), 4), ("probe.missed".into(), 1)],
            failovers: vec![(("g".into(), "probe".into()), 5)],
            ..MetricsState::default()
        };
        for i in 0..members {
            let ifname = format!("e{i}");
            state.interfaces.push(InterfaceRow {
                ifname: ifname.clone(),
                group: if i % 2 == 0 {
                    "g".into()
                } else {
                    "odd\"name\\\n".into()
                },
                active: i % 3 == 0,
                link_up: i % 5 != 0,
                state: ["ok", "failed", "offline", "unknown"][i % 4],
                probe: ["ok", "failed", "unknown", "disabled"][i % 4],
            });
            let v4 = IpAddr::from([192, 0, 2, (i % 250) as u8 + 1]);
            let v6: IpAddr = format!("2001:db8::{i:x}").parse().expect("an address");
            state.crtts.push((ifname.clone(), v4, 1_234_567 * i as u64));
            state.crtts.push((ifname.clone(), v6, 0));
            state.probes.push((
                ifname.clone(),
                ProbeCounts {
                    sent: 100 + i as u64,
                    rtt_sent: 7,
                    discovery_sent: 1,
                    acked: 90,
                    lost: 10,
                    missed: i as u64,
                    unsent_buffer_full: 2,
                    unsent_refused: 1,
                    fallback: 3,
                },
            ));
            state.kernel.push((
                ifname.clone(),
                IfaceCounters {
                    rejected_magic: 3,
                    ring_full: i as u64,
                    ..IfaceCounters::default()
                },
            ));
            state.rejected.insert((ifname.clone(), "replayed"), 2);
            state.rejected.insert((ifname, "magic"), 1);
        }
        state
    }

    #[test]
    fn every_series_is_written_once_and_rows_keep_the_members_order() {
        let members = 64;
        let text = filled(members).render();
        let samples: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.rsplit_once(' ').expect("a value").0)
            .collect();
        let unique: std::collections::HashSet<_> = samples.iter().collect();
        assert_eq!(unique.len(), samples.len(), "a series written twice");
        // Per group 3 states, an FDT, and one configured FDT; per interface 2 flags, 8 states,
        // 2 CRTTs, 5 probe counts, 2 reasons of an unsent probe, 8 reasons of refusal (the
        // kernel's 7 and "replayed"), 2 kinds of other probes; 13 rows of daemon-wide counters
        // and gauges.
        assert_eq!(samples.len(), 2 * 4 + 1 + members * 29 + 13);
        let active: Vec<_> = samples
            .iter()
            .filter_map(|s| s.strip_prefix("ipmpd_interface_active{interface=\""))
            .map(|s| s.split('"').next().expect("a name"))
            .collect();
        let expected: Vec<_> = (0..members).map(|i| format!("e{i}")).collect();
        assert_eq!(active, expected);
        let families = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        assert_eq!(families, 26);
    }

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
        state.probes.push((
            "e0".into(),
            ProbeCounts {
                unsent_buffer_full: 2,
                rtt_sent: 40,
                ..ProbeCounts::default()
            },
        ));
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
            r#"ipmpd_probes_unsent_total{interface="e0",reason="buffer_full"} 2"#,
            r#"ipmpd_probes_unsent_total{interface="e0",reason="refused"} 0"#,
            r#"ipmpd_probes_fallback_total{interface="e0"} 0"#,
            r#"ipmpd_probes_other_sent_total{interface="e0",kind="rtt"} 40"#,
            r#"ipmpd_probes_other_sent_total{interface="e0",kind="discovery"} 0"#,
            "ipmpd_exposition_copy_seconds 0.0015",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
