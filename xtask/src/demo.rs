//! `cargo xtask demo`: a host with two interfaces on one subnet, a switch (bridge) and a router, all
//! in network namespaces; ipmpd probes the router from h0 while h0's switch port loses carrier and
//! then silently drops everything. Cleans up when done (also on failure).

use std::{
    process::Command,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use tests::{monotonic_ns, topology::Lan};

use bench::Flow;

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
    anyhow::ensure!(status.success(), "ipmpd probe failed: {status}");
    daemon_part(&lan, &bin)?;
    say("done; removing the namespaces");
    Ok(())
}

/// The daemon on the same topology: group "uplinks" of h0 and h1 with a 100 ms FDT; h0 loses its
/// path silently, then its carrier.
fn daemon_part(lan: &Lan, bin: &std::path::Path) -> anyhow::Result<()> {
    say(
        "ipmpd run: group \"uplinks\" = h0 + h1 (h1 standby), FDT 100 ms, data address 192.0.2.100/24",
    );
    lan.topo.route(lan.host, "198.51.100.0/24 via 192.0.2.1");
    let dir = std::env::temp_dir().join(format!("ipmpd-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("ipmpd.toml");
    std::fs::write(
        &config,
        "[group.uplinks]\nfdt_ms = 100\ndata_addresses = [\"192.0.2.100/24\"]\n\n\
         [interface.h0]\ngroup = \"uplinks\"\ntest_addresses = [\"192.0.2.10\"]\n\n\
         [interface.h1]\ngroup = \"uplinks\"\nstandby = true\ntest_addresses = [\"192.0.2.11\"]\n",
    )?;
    let mut daemon = Command::new("nsenter")
        .arg(format!("--net={}", lan.host().path()))
        .arg(bin)
        .args(["run", "--config"])
        .arg(&config)
        .args(["--defaults", "/dev/null", "--instance", "demo-run"])
        .env("IPMPD_LOG", "info")
        .spawn()
        .context("cannot start ipmpd run")?;
    std::thread::sleep(Duration::from_millis(1500));
    say("the router now sends 10,000 UDP packets/s to 192.0.2.100; every arrival is timed");
    let flow = Flow::start(lan)?;
    std::thread::sleep(Duration::from_millis(500));
    let outage = |from: u64| {
        format!(
            "the flow's outage: {:.1} ms (first packet lost to first packet received again)",
            flow.max_gap_ms(from, monotonic_ns())
        )
    };

    say("silent loss on h0's switch port: probes fail, the standby h1 takes over the data address");
    let t = monotonic_ns();
    lan.switch().drop_all("sw-h0");
    std::thread::sleep(Duration::from_millis(800));
    say(&outage(t));
    say(
        "path restored: h0 is repaired and active again; the standby h1 steps back and the address returns to h0",
    );
    lan.switch().undrop_all("sw-h0");
    std::thread::sleep(Duration::from_millis(1000));
    say(
        "carrier loss on h0 (a NIC-like link): seen by the carrier poll within milliseconds, the address moves to h1 again",
    );
    let t = monotonic_ns();
    lan.switch().link_down("sw-h0");
    std::thread::sleep(Duration::from_millis(500));
    say(&outage(t));
    lan.switch().link_up("sw-h0");
    // On a NIC-like link the kernel transmits again only once linkwatch has reactivated the
    // queue (up to a second later); repair then takes 10 acknowledged probes.
    std::thread::sleep(Duration::from_millis(2000));
    flow.stop();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let _ = daemon.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all("/sys/fs/bpf/ipmpd/demo-run");
    Ok(())
}
