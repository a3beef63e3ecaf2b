//! ipmpd as the detection sections run it: the group of two members they configure, the time
//! of an event it reports, and the raises of its failure detection time during a round.

use std::time::Duration;

use serde_json::Value;
use tests::daemon::Daemon;

pub fn two_member_group(fdt_ms: u64) -> String {
    format!(
        "[group.g]\nfdt_ms = {fdt_ms}\n\n[interface.h0]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.10\"]\ntargets = [\"192.0.2.1\"]\n\n\
         [interface.h1]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.11\"]\ntargets = [\"192.0.2.1\"]\n"
    )
}

/// The time ipmpd declared h0 failed (or repaired, with `event`), at or after `after`.
pub fn ipmpd_event(d: &mut Daemon, event: &str, after: u64, timeout: Duration) -> Option<u64> {
    d.wait_for(timeout, |v: &Value| {
        v["event"] == event && v["params"]["ifname"] == "h0" && v["at_ns"].as_u64() >= Some(after)
    })
    .and_then(|v| v["at_ns"].as_u64())
}

/// The raises of ipmpd's failure detection time a round saw (`ipmultipath.fdt.raised`: the
/// probes' round trips did not fit the FDT asked for, so in.mpathd's rule lengthened it). A
/// raised FDT is a slow detection that is ipmpd's rule at work, not its loop falling behind.
#[derive(Clone, Copy, Debug, Default)]
pub struct FdtRaises {
    pub count: usize,
    pub highest_ms: u64,
}

impl FdtRaises {
    /// Counts the raises among `events` (each event once: call it before they are cleared).
    pub fn add(&mut self, events: &[Value]) {
        for v in events
            .iter()
            .filter(|v| v["event"] == "ipmultipath.fdt.raised")
        {
            self.count += 1;
            self.highest_ms = self
                .highest_ms
                .max(v["params"]["fdt_ms"].as_u64().unwrap_or(0));
        }
    }

    /// "not raised", or how often and how high.
    #[must_use]
    pub fn describe(&self) -> String {
        if self.count == 0 {
            "not raised".into()
        } else if self.count == 1 {
            format!("raised once, to {} ms", self.highest_ms)
        } else {
            format!(
                "raised {} times, to {} ms at the highest",
                self.count, self.highest_ms
            )
        }
    }
}

#[cfg(test)]
// Not `tests`: that is the crate whose `Daemon` this module uses.
mod unit {
    use super::*;

    #[test]
    fn raises_are_counted_with_the_highest_fdt() {
        let mut r = FdtRaises::default();
        assert_eq!(r.describe(), "not raised");
        r.add(&[
            serde_json::json!({ "event": "ipmultipath.fdt.raised", "params": { "fdt_ms": 21 } }),
        ]);
        assert_eq!(r.describe(), "raised once, to 21 ms");
        r.add(&[
            serde_json::json!({ "event": "ipmultipath.fdt.raised", "params": { "fdt_ms": 34 } }),
            serde_json::json!({ "event": "ipmultipath.interface.failed", "params": { "fdt_ms": 99 } }),
            serde_json::json!({ "event": "ipmultipath.fdt.raised", "params": { "fdt_ms": 21 } }),
        ]);
        assert_eq!((r.count, r.highest_ms), (3, 34));
        assert_eq!(r.describe(), "raised 3 times, to 34 ms at the highest");
    }
}
