//! RTT precision: `ipmpd probe`'s kernel-stamped and userspace round-trip times on a veth, idle
//! and with every core busy.

use std::{fmt::Write as _, time::Duration};

use serde_json::Value;
use tests::{daemon::run as run_ipmpd, topology::Lan};

use crate::{
    host::{num_cpus, stress},
    report::row,
    stats::stats,
};

fn probe_rtts(lan: &Lan, probes: usize) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let (ok, out, err) = run_ipmpd(
        lan.host(),
        &[
            "probe",
            "h0",
            "192.0.2.1",
            "-c",
            &probes.to_string(),
            "-i",
            "5",
            "--json",
            "--instance",
            "bench-rtt",
        ],
    );
    anyhow::ensure!(ok, "ipmpd probe: {err}");
    let (mut net, mut user) = (Vec::new(), Vec::new());
    for v in out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "reply")
    {
        if let Some(n) = v["net_rtt_ns"].as_u64() {
            net.push(n as f64 / 1000.0);
        }
        user.push(v["user_rtt_ns"].as_u64().unwrap_or(0) as f64 / 1000.0);
    }
    anyhow::ensure!(!net.is_empty(), "no replies");
    Ok((net, user))
}

/// The benchmark section.
pub fn rtt_precision(probes: usize) -> anyhow::Result<String> {
    let lan = Lan::new(false, false);
    let (net_idle, user_idle) = probe_rtts(&lan, probes)?;
    let mut stress = stress(num_cpus(), 120)?;
    std::thread::sleep(Duration::from_secs(1));
    let loaded = probe_rtts(&lan, probes);
    let _ = stress.kill();
    let _ = stress.wait();
    let (net_busy, user_busy) = loaded?;
    let p99 = |v: &[f64]| stats(v.to_vec()).2;
    let (ni, nb, ui, ub) = (
        p99(&net_idle),
        p99(&net_busy),
        p99(&user_idle),
        p99(&user_busy),
    );
    let mut md = format!(
        "## RTT precision: kernel-stamped vs userspace, {probes} probes every 5 ms on a veth\n\n\
         Command: `ipmpd probe h0 192.0.2.1 -c {probes} -i 5 --json` in namespaces; busy = `stress-ng --cpu {}` alongside.\n\n\
         | measure | n | min | median | p99 | max | unit |\n|---|---|---|---|---|---|---|\n",
        num_cpus()
    );
    md += &row("net_rtt (kernel), idle", "µs", net_idle);
    md += &row("rtt (userspace), idle", "µs", user_idle);
    md += &row("net_rtt (kernel), both cores busy", "µs", net_busy);
    md += &row("rtt (userspace), both cores busy", "µs", user_busy);
    writeln!(
        md,
        "\np99 busy / p99 idle: kernel-stamped {:.2}x (target ≤ 2x: {}), userspace {:.2}x.\n",
        nb / ni,
        if nb / ni <= 2.0 { "met" } else { "**missed**" },
        ub / ui
    )?;
    Ok(md)
}
