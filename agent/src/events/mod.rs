//! Events: the catalogue, rendering engine events into it, and rate limiting of repeats.

pub mod catalogue;
pub mod journal;

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::engine::Event;

/// Severity, with the syslog priority each maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Emergency,
    Alert,
    Error,
    Notice,
    Informational,
    Debug,
}

impl Severity {
    /// syslog(3) priority (LOG_EMERG .. LOG_DEBUG).
    #[must_use]
    pub fn syslog_priority(self) -> u8 {
        match self {
            Self::Emergency => 0,
            Self::Alert => 1,
            Self::Error => 3,
            Self::Notice => 5,
            Self::Informational => 6,
            Self::Debug => 7,
        }
    }
}

/// Type of an event parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ParamType {
    Str,
    Int,
    Float,
}

/// One catalogue entry.
#[derive(Debug, Serialize)]
pub struct EventSpec {
    pub name: &'static str,
    pub severity: Severity,
    pub template: &'static str,
    pub params: &'static [(&'static str, ParamType)],
    pub description: &'static str,
    pub causes: &'static str,
    pub action: &'static str,
}

/// The entry called `name`.
#[must_use]
pub fn spec(name: &str) -> Option<&'static EventSpec> {
    catalogue::CATALOGUE.iter().find(|e| e.name == name)
}

/// An event ready to log: catalogue entry, parameters and the rendered message.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rendered {
    pub name: &'static str,
    pub severity: Severity,
    pub message: String,
    pub params: Map<String, Value>,
}

/// Renders `name` with `params`; unknown placeholders stay as written.
#[must_use]
pub fn render(name: &str, params: Map<String, Value>) -> Option<Rendered> {
    let spec = spec(name)?;
    let mut message = spec.template.to_owned();
    for (k, v) in &params {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        message = message.replace(&format!("{{{k}}}"), &text);
    }
    Some(Rendered {
        name: spec.name,
        severity: spec.severity,
        message,
        params,
    })
}

/// The catalogue name and parameters of an engine event; probe results are not catalogue events.
#[must_use]
pub fn from_engine(e: &Event) -> Option<Rendered> {
    // Per-probe events are no catalogue events: out before any JSON is built (one per probe).
    if matches!(e, Event::ProbeLost { .. } | Event::ProbeAcked { .. }) {
        return None;
    }
    let mut v = serde_json::to_value(e).ok()?;
    let params = v.as_object_mut()?;
    params.remove("event");
    let name = match e {
        Event::LinkDown { .. } => "ipmultipath.link.down",
        Event::LinkUp { .. } => "ipmultipath.link.up",
        Event::LinkFlapping { .. } => "ipmultipath.link.flapping",
        Event::InterfaceFailed { .. } => "ipmultipath.interface.failed",
        Event::InterfaceRepaired { .. } => "ipmultipath.interface.repaired",
        Event::GroupFailed { .. } => "ipmultipath.group.failed",
        Event::GroupUsable { .. } => "ipmultipath.group.usable",
        Event::FdtRaised { .. } => "ipmultipath.fdt.raised",
        Event::FdtImproved { .. } => "ipmultipath.fdt.improved",
        Event::HwAddrDuplicate { .. } => "ipmultipath.hwaddr.duplicate",
        Event::HwAddrUnique { .. } => "ipmultipath.hwaddr.unique",
        Event::ProbesMissed { .. } => "ipmultipath.probe.missed",
        Event::ProbeLost { .. } | Event::ProbeAcked { .. } => return None,
    };
    render(name, params.clone())
}

/// Holds back repeats of one event (same name and parameters but counts) beyond a burst within a window,
/// and counts them, so a flapping cause cannot flood the log; the next one let through carries
/// the count of those held back.
#[derive(Debug)]
pub struct RateLimiter {
    window_ns: u64,
    burst: u32,
    /// Per event: window start, events let through in it, events held back since the last one let through.
    last: HashMap<String, (u64, u32, u64)>,
}

impl RateLimiter {
    /// At most `burst` of each distinct event per `window_ns`.
    #[must_use]
    pub fn new(window_ns: u64, burst: u32) -> Self {
        Self {
            window_ns,
            burst: burst.max(1),
            last: HashMap::new(),
        }
    }

    /// `Some(suppressed_before)` when `r` may be logged at `now_ns`, `None` when it is held back.
    pub fn admit(&mut self, r: &Rendered, now_ns: u64) -> Option<u64> {
        // A count is how much, not which: "missed sending 3 probes on m7" repeats "missed sending
        // 1 probes on m7". Keyed with it, every count was a new event (never held back, and one
        // more key kept for good: 110,000 of them in a minute of an overloaded daemon).
        let mut identity = r.params.clone();
        identity.remove("count");
        let key = format!("{}{}", r.name, Value::Object(identity));
        let entry = self.last.entry(key).or_insert((now_ns, 0, 0));
        if now_ns.saturating_sub(entry.0) >= self.window_ns {
            entry.0 = now_ns;
            entry.1 = 0;
        }
        if entry.1 >= self.burst {
            entry.2 += 1;
            return None;
        }
        entry.1 += 1;
        Some(std::mem::take(&mut entry.2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, Value)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn events_that_differ_only_in_their_count_are_repeats() {
        let mut rl = RateLimiter::new(1000, 1);
        let missed = |count: u64| {
            render(
                "ipmultipath.probe.missed",
                params(&[("ifname", Value::from("m7")), ("count", Value::from(count))]),
            )
            .expect("a catalogue event")
        };
        assert_eq!(rl.admit(&missed(1), 0), Some(0));
        assert_eq!(
            rl.admit(&missed(3), 10),
            None,
            "a repeat with another count"
        );
        assert_eq!(rl.last.len(), 1);
        assert_eq!(
            rl.admit(&missed(2), 1000),
            Some(1),
            "the held-back one is counted"
        );
    }

    #[test]
    fn names_are_unique_and_well_formed_and_templates_use_declared_params() {
        let mut seen = std::collections::HashSet::new();
        for e in catalogue::CATALOGUE {
            assert!(seen.insert(e.name), "duplicate {}", e.name);
            let parts: Vec<&str> = e.name.split('.').collect();
            assert!(parts.len() == 3 && parts[0] == "ipmultipath", "{}", e.name);
            let mut rest = e.template;
            while let Some(open) = rest.find('{') {
                let close = rest[open..].find('}').unwrap() + open;
                let p = &rest[open + 1..close];
                assert!(
                    e.params.iter().any(|(n, _)| *n == p),
                    "{}: {{{p}}} undeclared",
                    e.name
                );
                rest = &rest[close + 1..];
            }
            for (p, _) in e.params {
                assert!(
                    e.template.contains(&format!("{{{p}}}")),
                    "{}: {p} unused",
                    e.name
                );
            }
            assert!(!e.description.is_empty() && !e.causes.is_empty() && !e.action.is_empty());
        }
    }

    #[test]
    fn the_manual_pages_diagnostics_are_reproduced() {
        let s = |v: &str| Value::String(v.into());
        let cases = [
            (
                "ipmultipath.hwaddr.duplicate",
                params(&[("ifname", s("net0")), ("group", s("g"))]),
                "IP interface net0 has a hardware address which is not unique in group g; offlining",
            ),
            (
                "ipmultipath.hwaddr.unique",
                params(&[("ifname", s("net0")), ("group", s("g"))]),
                "IP interface net0 now has a unique hardware address in group g; onlining",
            ),
            (
                "ipmultipath.testaddr.notUnique",
                params(&[("address", s("192.0.2.10")), ("ifname", s("net0"))]),
                "Test address 192.0.2.10 is not unique in group; disabling probe-based failure detection on net0",
            ),
            (
                "ipmultipath.testaddr.missing",
                params(&[("ifname", s("net0"))]),
                "No test address configured on interface net0 disabling probe-based failure detection on it",
            ),
            (
                "ipmultipath.group.notPlumbed",
                params(&[
                    ("ifname", s("net0")),
                    ("group", s("g")),
                    ("version", Value::from(6)),
                ]),
                "IP net0 in group g is not plumbed for IPv6, affecting IPv6 connectivity",
            ),
            (
                "ipmultipath.link.flapping",
                params(&[("ifname", s("net0"))]),
                "The link has come up on net0 more than 2 times in the last minute; disabling repair until it stabilizes.",
            ),
            (
                "ipmultipath.config.smallFdt",
                params(&[("value", s("50"))]),
                "Too small failure detection time of 50, assuming minimum of 100 ms",
            ),
            (
                "ipmultipath.config.invalidFailback",
                params(&[("value", s("maybe"))]),
                "Invalid value for FAILBACK maybe",
            ),
            (
                "ipmultipath.config.invalidTrack",
                params(&[("value", s("1"))]),
                "Invalid value for TRACK_INTERFACES_ONLY_WITH_GROUPS 1",
            ),
            (
                "ipmultipath.fdt.raised",
                params(&[
                    ("user_fdt_ms", Value::from(100)),
                    ("family", s("inet")),
                    ("ifname", s("net0")),
                    ("group", s("g")),
                    ("fdt_ms", Value::from(420)),
                ]),
                "Cannot meet requested failure detection time of 100 ms on (inet net0) new failure detection time for group \"g\" is 420 ms",
            ),
            (
                "ipmultipath.fdt.improved",
                params(&[
                    ("fdt_ms", Value::from(100)),
                    ("family", s("inet6")),
                    ("ifname", s("net0")),
                    ("group", s("g")),
                ]),
                "Improved failure detection time 100 ms on (inet6 net0) for group \"g\"",
            ),
            (
                "ipmultipath.group.failed",
                params(&[("group", s("g"))]),
                "All IP interfaces in group g are now unusable",
            ),
            (
                "ipmultipath.group.usable",
                params(&[("ifname", s("net0")), ("group", s("g"))]),
                "At least 1 IP interface (net0) in group g is now usable",
            ),
            (
                "ipmultipath.link.down",
                params(&[("ifname", s("net0"))]),
                "The link has gone down on net0",
            ),
            (
                "ipmultipath.link.up",
                params(&[("ifname", s("net0"))]),
                "The link has come up on net0",
            ),
        ];
        for (name, p, expected) in cases {
            assert_eq!(render(name, p).unwrap().message, expected);
        }
    }

    #[test]
    fn engine_events_map_into_the_catalogue() {
        let r = from_engine(&Event::InterfaceFailed {
            ifname: "h0".into(),
            group: "g".into(),
        })
        .unwrap();
        assert_eq!(r.name, "ipmultipath.interface.failed");
        assert_eq!(r.message, "IP interface failure detected on h0 of group g");
        assert_eq!(r.severity.syslog_priority(), 3);
        assert!(
            from_engine(&Event::ProbeLost {
                ifname: "h0".into(),
                seq: 1,
                target: [192, 0, 2, 1].into()
            })
            .is_none()
        );
    }

    #[test]
    fn repeats_are_held_back_and_counted() {
        let mut rl = RateLimiter::new(1000, 1);
        let r = from_engine(&Event::LinkDown {
            ifname: "h0".into(),
        })
        .unwrap();
        assert_eq!(rl.admit(&r, 0), Some(0));
        assert_eq!(rl.admit(&r, 10), None);
        assert_eq!(rl.admit(&r, 20), None);
        let other = from_engine(&Event::LinkDown {
            ifname: "h1".into(),
        })
        .unwrap();
        assert_eq!(
            rl.admit(&other, 30),
            Some(0),
            "other parameters are another event"
        );
        assert_eq!(
            rl.admit(&r, 1000),
            Some(2),
            "the next one carries the count of those held back"
        );
    }

    #[test]
    fn a_burst_passes_before_throttling() {
        let mut rl = RateLimiter::new(1000, 3);
        let r = from_engine(&Event::LinkDown {
            ifname: "h0".into(),
        })
        .unwrap();
        let admitted: Vec<Option<u64>> = (0..5).map(|t| rl.admit(&r, t)).collect();
        assert_eq!(admitted, vec![Some(0), Some(0), Some(0), None, None]);
        assert_eq!(rl.admit(&r, 1000), Some(2));
    }
}
