//! A hostile host on the link (a switch port towards the host under test): it records and replays
//! probe replies, reflects probes with rewritten timestamps, replays captured discovery replies
//! from other sources, and floods replies of foreign identities. None of it may count as an
//! answer, all of it is counted, and a fault behind it is still found within the FDT.

use std::time::Duration;

use serde_json::Value;
use tests::{
    daemon::{Daemon, RunConfig, expect_within, wait_event},
    hostile::{OnLink, cpu_ns, refusals, refused},
    monotonic_ns,
    topology::Lan,
};

const FDT_MS: u64 = 300;

/// One member probing the router.
const ONE: &str = "[group.g]\nfdt_ms = 300\n\n\
    [interface.h0]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.10\"]\ntargets = [\"192.0.2.1\"]\n";

fn ready(cfg: &RunConfig, lan: &Lan, extra: &[&str]) -> Daemon {
    let mut d = cfg.spawn_with(lan.host(), extra);
    d.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("daemon ready");
    d.wait_for(Duration::from_secs(5), |v| {
        v["probe"]["event"] == "probe_acked"
    })
    .expect("the router answers");
    d
}

fn socket(cfg: &RunConfig) -> String {
    format!("/run/ipmpd/{}.sock", cfg.instance)
}

fn at(v: &Value) -> u64 {
    v["at_ns"].as_u64().expect("at_ns")
}

/// Silences the router (its switch port drops everything), waits for `h0` to fail and returns how
/// long that took, in ms; asserts that no probe was acknowledged in between.
fn fault_found_in_time(d: &mut Daemon, lan: &Lan, what: &str) -> u64 {
    d.drain();
    d.seen.clear();
    let fault = lan.switch().drop_all("sw-r0");
    // nft's rule is in force once it returns (a VM under emulation takes a while to get there);
    // replies already on their way then may still land in the next few ms.
    let in_force = fault.in_force_ns;
    let ms = expect_within(
        d,
        "ipmultipath.interface.failed",
        "h0",
        fault.began_ns,
        FDT_MS,
        &fault.describe(what),
    );
    let grace = tests::scaled_ns(20_000_000);
    let acks: Vec<&Value> = d
        .seen
        .iter()
        .filter(|v| v["probe"]["event"] == "probe_acked" && at(v) > in_force + grace)
        .collect();
    assert!(
        acks.is_empty(),
        "{what}: nothing may count as an answer: {acks:?}"
    );
    ms
}

fn repair(d: &mut Daemon, lan: &Lan) {
    lan.switch().undrop_all("sw-r0");
    d.seen.clear();
    wait_event(
        d,
        Duration::from_secs(5),
        "ipmultipath.interface.repaired",
        Some("h0"),
    )
    .expect("repaired");
}

#[test]
fn reflected_probes_with_rewritten_timestamps_are_refused_and_the_fault_is_found_in_time() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, false);
    let cfg = RunConfig::new("reflect", ONE, None);
    let mut d = ready(&cfg, &lan, &[]);
    for how in ["past", "future"] {
        let secs = format!("{}", tests::scaled(Duration::from_secs(3)).as_secs_f64());
        let reflector = OnLink::start(lan.switch(), &["reflect", "sw-h0", &secs, how]);
        std::thread::sleep(Duration::from_millis(200));
        let ms = fault_found_in_time(&mut d, &lan, how);
        let summary = reflector.finish();
        assert!(summary["reflected"].as_u64().unwrap() > 0, "{summary}");
        println!("transmit time in the {how}: found in {ms} ms; {summary}");
        assert!(
            d.seen
                .iter()
                .all(|v| v["event"] != "ipmultipath.fdt.raised"),
            "a forged round trip raised the FDT"
        );
        repair(&mut d, &lan);
    }
    let rows = refusals(lan.host(), &socket(&cfg));
    assert!(
        refused(&rows, "daemon", "h0", "bad_timestamp") > 0,
        "{rows:?}"
    );
    assert!(
        d.seen
            .iter()
            .any(|v| v["event"] == "ipmultipath.probe.rejected"
                && v["params"]["reason"] == "bad_timestamp")
            || d.wait_for(Duration::from_secs(2), |v| v["event"]
                == "ipmultipath.probe.rejected")
                .is_some(),
        "reported as an event"
    );
}

#[test]
fn recorded_replies_replayed_are_refused_and_the_fault_is_found_in_time() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, false);
    let cfg = RunConfig::new("replay", ONE, None);
    let mut d = ready(&cfg, &lan, &[]);
    let file = cfg.dir.join("recorded");
    let file = file.display().to_string();
    let rec = OnLink::start(lan.switch(), &["record", "sw-h0", "2", &file]).finish();
    assert!(rec["recorded"].as_u64().unwrap() > 10, "{rec}");
    let secs = format!("{}", tests::scaled(Duration::from_secs(3)).as_secs_f64());
    let replayer = OnLink::start(lan.switch(), &["replay", "sw-h0", &file, &secs]);
    std::thread::sleep(Duration::from_millis(200));
    let ms = fault_found_in_time(&mut d, &lan, "replayed replies");
    let summary = replayer.finish();
    println!("replayed: found in {ms} ms; {summary}");
    let rows = refusals(lan.host(), &socket(&cfg));
    let old = ["replayed", "unknown", "duplicate"]
        .iter()
        .map(|r| refused(&rows, "daemon", "h0", r))
        .sum::<u64>();
    assert!(old > 0, "counted as replayed: {rows:?}");
}

#[test]
fn captured_discovery_replies_from_spoofed_sources_add_no_target() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, false);
    lan.router()
        .sh("sysctl -qw net.ipv4.icmp_echo_ignore_broadcasts=0");
    let group = "[group.g]\nfdt_ms = 300\n\n[interface.h0]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.10\"]\n";
    let cfg = RunConfig::new("discovery", group, None);
    let mut d = ready(&cfg, &lan, &[]);
    let file = cfg.dir.join("recorded").display().to_string();
    let rec = OnLink::start(lan.switch(), &["record", "sw-h0", "2", &file]).finish();
    assert!(rec["recorded"].as_u64().unwrap() > 0, "{rec}");
    // The same replies, from a host that does not exist, for as long as discovery may run again.
    let secs = format!("{}", tests::scaled(Duration::from_secs(4)).as_secs_f64());
    let summary = OnLink::start(
        lan.switch(),
        &["replay", "sw-h0", &file, &secs, "192.0.2.77"],
    )
    .finish();
    println!("{summary}");
    let (ok, out, err) = tests::daemon::run(
        lan.host(),
        &[
            "stat",
            "-t",
            "-P",
            "-o",
            "targets",
            "--socket",
            &socket(&cfg),
        ],
    );
    assert!(ok, "{err}");
    assert!(!out.contains("192.0.2.77"), "a spoofed target: {out}");
    assert!(out.contains("192.0.2.1"), "the real one stays: {out}");
    assert!(
        d.drain()
            .iter()
            .all(|v| v["probe"]["target"] != "192.0.2.77"),
        "no probe to the spoofed host"
    );
    let rows = refusals(lan.host(), &socket(&cfg));
    let counted: u64 = [
        "replayed",
        "unknown",
        "wrong_source",
        "discovery",
        "duplicate",
    ]
    .iter()
    .map(|r| refused(&rows, "daemon", "h0", r))
    .sum();
    assert!(counted > 0, "{rows:?}");
}

#[test]
fn a_flood_of_replies_with_foreign_identities_causes_no_false_failure() {
    if !tests::privileged() {
        return;
    }
    flood_of_foreign_replies("flood", &[]);
}

#[test]
fn a_flood_of_foreign_replies_is_also_dropped_where_replies_are_taken_at_tc_ingress() {
    if !tests::privileged() {
        return;
    }
    if !tests::daemon::has_tcx(Lan::new(false, false).host()) {
        tests::not_run(
            "--reply-hook tc needs TCX, which this kernel has not (kernel_paths tests the refusal)",
        );
        return;
    }
    flood_of_foreign_replies("floodtc", &["--reply-hook", "tc"]);
}

/// A flood of replies with other identities while `extra` (the daemon's arguments) is running:
/// no false failure, the kernel drops and counts them, and probes are answered after it.
fn flood_of_foreign_replies(instance: &str, extra: &[&str]) {
    let lan = Lan::new(true, false);
    let group = "[group.g]\nfdt_ms = 1000\n\n\
        [interface.h0]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.10\"]\ntargets = [\"192.0.2.1\"]\n\n\
        [interface.h1]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.11\"]\ntargets = [\"192.0.2.1\"]\n";
    let cfg = RunConfig::new(instance, group, None);
    let mut d = ready(&cfg, &lan, extra);
    let mac = lan.host().mac("h0");
    d.seen.clear();
    let (cpu0, t0) = (cpu_ns(d.pid()), monotonic_ns());
    let flood = OnLink::start(lan.switch(), &["flood", "sw-h0", &mac, "192.0.2.10", "10"]);
    let summary = flood.finish();
    let (cpu1, t1) = (cpu_ns(d.pid()), monotonic_ns());
    let cpu = (cpu1 - cpu0) as f64 / (t1 - t0) as f64 * 100.0;
    println!("flood: {summary}; ipmpd used {cpu:.1} % of a core meanwhile");
    d.drain();
    let failures: Vec<&Value> = d
        .seen
        .iter()
        .filter(|v| {
            v["event"] == "ipmultipath.interface.failed" || v["event"] == "ipmultipath.link.down"
        })
        .collect();
    assert!(
        failures.is_empty(),
        "false failure under the flood: {failures:?}"
    );
    let rows = refusals(lan.host(), &socket(&cfg));
    let dropped = refused(&rows, "kernel", "h0", "identity");
    let flooded = summary["flooded"].as_u64().unwrap();
    assert!(
        dropped > flooded / 2,
        "the kernel program dropped them ({dropped} of {flooded}): {rows:?}"
    );
    assert_eq!(
        refused(&rows, "kernel", "h0", "ring_full"),
        0,
        "nothing of theirs reached the ring"
    );
    // Probes still answered after the flood.
    d.seen.clear();
    d.wait_for(Duration::from_secs(3), |v| {
        v["probe"]["event"] == "probe_acked" && v["probe"]["ifname"] == "h0"
    })
    .expect("h0 still probes");
}
