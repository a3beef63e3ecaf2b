//! ipmpd as the detection sections run it: the group of two members they configure, and the
//! time of an event it reports.

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
