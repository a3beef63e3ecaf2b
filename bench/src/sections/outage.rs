//! The outage a steady UDP flow sees when a member fails, per fault type, on NIC-like links.
//!
//! The peer (router namespace) sends 10,000 UDP packets per second to the group's data address;
//! a receiver in the host namespace timestamps every arrival. For each fault on the member holding
//! the address, the outage is the longest gap between two arrivals around the fault: from the
//! first packet lost to the first packet received again.

use std::{fmt::Write as _, time::Duration};

use anyhow::Context as _;
use serde_json::Value;
use tests::{
    daemon::{Daemon, RunConfig, wait_event},
    monotonic_ns,
    topology::Lan,
};

use crate::{
    faults::{Flow, PPS},
    report::row,
    stats::p99,
};

const FDT_MS: u64 = 100;

fn holder(d: &mut Daemon, current: &str) -> String {
    d.drain()
        .iter()
        .rev()
        .find(|v| v["event"] == "ipmultipath.address.moved")
        .and_then(|v| v["params"]["to"].as_str().map(str::to_owned))
        .unwrap_or_else(|| current.to_owned())
}

/// (outage ms, decision-to-applied ms) per fault.
fn faults(lan: &Lan, d: &mut Daemon, flow: &Flow, carrier: bool, n: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut outages, mut applied) = (Vec::new(), Vec::new());
    let mut at = holder(d, "h0");
    for _ in 0..n {
        d.seen.clear();
        let port = format!("sw-{at}");
        let t = monotonic_ns();
        if carrier {
            lan.switch().set_link_fast(&port, false);
        } else {
            lan.switch().drop_all(&port);
        }
        let failed = wait_event(
            d,
            Duration::from_secs(3),
            "ipmultipath.interface.failed",
            Some(&at),
        );
        let moved = wait_event(d, Duration::from_secs(3), "ipmultipath.address.moved", None);
        std::thread::sleep(Duration::from_millis(400));
        outages.push(flow.max_gap_ms(t, monotonic_ns()));
        if let (Some(f), Some(m)) = (failed, moved) {
            let (f, m): (u64, u64) = (
                f["at_ns"].as_u64().unwrap_or(0),
                m["at_ns"].as_u64().unwrap_or(0),
            );
            applied.push(m.saturating_sub(f) as f64 / 1e6);
        }
        if carrier {
            lan.switch().set_link_fast(&port, true);
        } else {
            lan.switch().undrop_all(&port);
        }
        let _ = wait_event(
            d,
            Duration::from_secs(5),
            "ipmultipath.interface.repaired",
            Some(&at),
        );
        std::thread::sleep(Duration::from_millis(300));
        at = holder(d, if at == "h0" { "h1" } else { "h0" });
    }
    (outages, applied)
}

/// The benchmark section.
pub fn outage(n: usize) -> anyhow::Result<String> {
    let lan = Lan::new(true, true);
    let group = format!(
        "[group.g]\nfdt_ms = {FDT_MS}\ndata_addresses = [\"192.0.2.100/24\"]\n\n\
         [interface.h0]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.10\"]\ntargets = [\"192.0.2.1\"]\n\n\
         [interface.h1]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.11\"]\ntargets = [\"192.0.2.1\"]\n"
    );
    let cfg = RunConfig::new("bench-outage", &group, None);
    let mut d = cfg.spawn_without_probe_lines(lan.host(), &[]);
    d.wait_for(Duration::from_secs(10), |v: &Value| v["event"] == "ready")
        .context("daemon did not start")?;
    let flow = Flow::start(&lan)?;
    std::thread::sleep(Duration::from_secs(2));
    let (carrier, carrier_applied) = faults(&lan, &mut d, &flow, true, n);
    let (silent, silent_applied) = faults(&lan, &mut d, &flow, false, n);
    flow.stop();
    d.stop();
    let (pc, ps, pa) = (
        p99(&carrier),
        p99(&silent),
        p99(&[carrier_applied.clone(), silent_applied.clone()].concat()),
    );
    let mut md = format!(
        "## Failover outage of a steady UDP flow ({PPS} packets/s), {n} faults per type\n\n\
         `ipmpd run --json` (no line per probe), group of two NIC-like members (equal ifindex on both veth ends), FDT {FDT_MS} ms,\n\
         data address 192.0.2.100/24. The peer sends {PPS} UDP packets/s to it; the outage is the longest\n\
         gap between two arrivals around a fault on the member holding the address (first packet lost to\n\
         first packet received again). Decision-to-applied: `ipmultipath.interface.failed` to\n\
         `ipmultipath.address.moved` (address added on the new member and removed from the old one,\n\
         both acknowledged by the kernel; the first announcement follows at once).\n\n\
         | measure | n | min | median | p99 | max | unit |\n|---|---|---|---|---|---|---|\n"
    );
    md += &row("outage, carrier loss", "ms", carrier);
    md += &row("outage, silent loss", "ms", silent);
    md += &row(
        "decision to applied",
        "ms",
        [carrier_applied, silent_applied].concat(),
    );
    writeln!(
        md,
        "\nTargets: carrier loss p99 < 10 ms: {} ({pc:.2} ms); silent loss p99 < FDT + 10 ms: {} ({ps:.2} ms); \
         decision to applied < 1 ms: {} ({pa:.3} ms at p99).\n",
        if pc < 10.0 { "met" } else { "**missed**" },
        if ps < (FDT_MS + 10) as f64 {
            "met"
        } else {
            "**missed**"
        },
        if pa < 1.0 { "met" } else { "**missed**" },
    )?;
    Ok(md)
}
