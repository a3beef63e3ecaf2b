//! `cargo xtask demo`: a host with two interfaces on one subnet, a switch (bridge) and a router, all
//! in network namespaces; ipmpd probes the router from h0 while h0's switch port loses carrier and
//! then silently drops everything. Cleans up when done (also on failure).

use std::{
    process::Command,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use tests::topology::Lan;

use crate::{build_agent, setup};

fn say(what: &str) {
    println!("\n== demo: {what} ==");
}

pub fn run() -> anyhow::Result<()> {
    setup::ensure()?;
    let bin = build_agent(false)?;
    say(
        "topology: host {h0 192.0.2.10, h1 192.0.2.11} -- switch br0 -- router r0 192.0.2.1 (host links NIC-like)",
    );
    let lan = Lan::new(true, true);
    let mut probe = Command::new("nsenter")
        .arg(format!("--net={}", lan.host().path()))
        .arg(&bin)
        .args([
            "probe",
            "h0",
            "192.0.2.1",
            "--interval",
            "100",
            "--count",
            "60",
            "--timeout",
            "300",
            "--link-poll-us",
            "1000",
            "--instance",
            "demo",
        ])
        .spawn()
        .context("cannot start ipmpd")?;
    let start = Instant::now();
    let at = |secs: f64| {
        let t = Duration::from_secs_f64(secs);
        if let Some(left) = t.checked_sub(start.elapsed()) {
            std::thread::sleep(left);
        }
    };
    at(1.5);
    say(
        "cutting h0's switch port: carrier loss (the carrier poll sees it in about a millisecond; rtnetlink alone can take up to a second on a NIC)",
    );
    lan.switch().link_down("sw-h0");
    at(2.0);
    say("the link-state mirror, as bpftool shows the pinned map");
    let _ = Command::new("bpftool")
        .args(["map", "dump", "pinned", "/sys/fs/bpf/ipmpd/demo/LINK_STATE"])
        .status();
    at(2.8);
    say("restoring h0's switch port");
    lan.switch().link_up("sw-h0");
    at(4.0);
    say(
        "silent loss: the switch drops everything on h0's port, the link stays up; only probes notice",
    );
    lan.switch().drop_all("sw-h0");
    at(5.0);
    say("ending the silent loss");
    lan.switch().undrop_all("sw-h0");
    let status = probe.wait()?;
    say("done; removing the namespaces");
    anyhow::ensure!(status.success(), "ipmpd probe failed: {status}");
    Ok(())
}
