//! The real daemon (`ipmpd run`) in network namespaces: silent faults, carrier loss, slow
//! responders, target discovery from routes and by all-hosts probing, IPv6 link-local probing.

use std::time::Duration;

use serde_json::Value;
use tests::{
    daemon::{self, RunConfig, expect_failed_within_fdt, expect_within, wait_event, wait_outcome},
    monotonic_ns,
    procstat::Stat,
    topology::Lan,
};

const FDT_MS: u64 = 300;

fn two_members(fdt_ms: u64, targets: &str) -> String {
    format!(
        "[group.g]\nfdt_ms = {fdt_ms}\n\n[interface.h0]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.10\"]\n{targets}\n\n\
         [interface.h1]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.11\"]\n{targets}\n"
    )
}

fn at(v: &Value) -> u64 {
    v["at_ns"].as_u64().expect("at_ns")
}

fn acked_target(v: &Value) -> Option<String> {
    (v["probe"]["event"] == "probe_acked")
        .then(|| v["probe"]["target"].as_str().unwrap_or_default().to_owned())
}

/// Waits until the daemon is ready and the router target answers, then lets the quiet period end on
/// both members (first acks) and round trips settle.
fn probing(d: &mut daemon::Daemon) {
    d.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("daemon ready");
    d.wait_for(Duration::from_secs(5), |v| {
        acked_target(v).as_deref() == Some("192.0.2.1")
    })
    .expect("router target from the route answers");
    std::thread::sleep(Duration::from_millis(1500));
}

/// Whether `ifname`'s replies wake the daemon's loop (see [`daemon::wakes_within`]).
fn wakes_within(cfg: &RunConfig, lan: &Lan, ifname: &str, want: bool, limit: Duration) -> bool {
    let ifindex = lan.host().ifindex(ifname);
    daemon::wakes_within(&cfg.instance, ifindex, want, limit)
}

/// Cuts h0 silently (both ways) and expects its failure within the configured FDT.
fn h0_fails_silently_within_the_fdt(lan: &Lan, d: &mut daemon::Daemon, what: &str) {
    let fault = lan.switch().drop_all("sw-h0");
    let what = fault.describe(what);
    // Nothing here slows round trips: the configured FDT is the limit, raised or not.
    let ms = expect_within(
        d,
        "ipmultipath.interface.failed",
        "h0",
        fault.began_ns,
        FDT_MS,
        &what,
    );
    eprintln!("{what}: failed after {ms} ms");
}

#[test]
fn silent_path_fault_is_detected_within_the_fdt_and_repaired_within_twice_it() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    // A route through the router makes it a router target.
    lan.topo.route(lan.host, "198.51.100.0/24 via 192.0.2.1");
    let cfg = RunConfig::new("silent", &two_members(FDT_MS, ""), None);
    let mut d = cfg.spawn(lan.host());
    probing(&mut d);
    let fdt = Duration::from_millis(tests::scaled_ns(FDT_MS));
    for ifname in ["h0", "h1"] {
        assert!(
            !wakes_within(&cfg, &lan, ifname, false, fdt),
            "a running member's replies wait for the loop's next turn ({ifname})"
        );
    }
    h0_fails_silently_within_the_fdt(&lan, &mut d, "silent fault");
    d.wait_for(Duration::from_secs(1), |v| {
        v["event"] == "active" && v["ifname"] == "h0" && v["active"] == false
    })
    .expect("h0 deactivated");
    assert!(
        wakes_within(&cfg, &lan, "h0", true, fdt),
        "a failed member's replies wake the loop: each counts toward its repair"
    );
    assert!(
        d.drain()
            .iter()
            .all(|v| v["event"] != "ipmultipath.group.failed"),
        "h1 shows the network works: an interface failure"
    );
    let fixed = monotonic_ns();
    lan.switch().undrop_all("sw-h0");
    let repaired = wait_event(
        &mut d,
        Duration::from_secs(5),
        "ipmultipath.interface.repaired",
        Some("h0"),
    )
    .expect("repair detected");
    let repair_ms = (at(&repaired) - fixed) / 1_000_000;
    assert!(
        repair_ms <= tests::scaled_ns(2 * FDT_MS),
        "repaired after {repair_ms} ms; limit 2 x FDT = {} ms",
        2 * FDT_MS
    );
    assert!(
        !wakes_within(&cfg, &lan, "h0", false, fdt),
        "repaired, its replies wait again"
    );
    // A second fault right away is reported again: state changes are never rate-limited.
    d.seen.clear();
    lan.switch().drop_all("sw-h0");
    wait_event(
        &mut d,
        Duration::from_secs(5),
        "ipmultipath.interface.failed",
        Some("h0"),
    )
    .expect("second failure reported");
}

/// Packets held in `ifname`'s root qdisc, from `tc -s qdisc show`.
fn qdisc_backlog(lan: &Lan, ifname: &str) -> u64 {
    let out = lan.host().sh(&format!("tc -s qdisc show dev {ifname}"));
    out.split_whitespace()
        .skip_while(|w| *w != "backlog")
        .nth(2)
        .and_then(|p| p.strip_suffix('p'))
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_member_whose_transmit_queue_is_stuck_loses_only_its_own_probes() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    lan.topo.route(lan.host, "198.51.100.0/24 via 192.0.2.1");
    let cfg = RunConfig::new("stuckq", &two_members(FDT_MS, ""), None);
    let metrics = "127.0.0.1:9875";
    let mut d = cfg.spawn_with(lan.host(), &["--metrics", metrics]);
    probing(&mut d);
    // h0's transmit queue holds every packet (1 bit a second, no practical limit), as a NIC whose
    // transmit has hung does: its probes stay charged to the send buffer of the socket that sent
    // them. The probes of both members share one socket's buffer (212,992 bytes by default, a few
    // hundred probes) until it fills; from then on they must go on each member's own socket, or
    // h1 would lose its probes to h0's fault.
    // A permanent neighbour: with the entry left to expire, its resolution would be held too and
    // later probes would wait (and be dropped) in the neighbour's queue instead of the qdisc.
    lan.host()
        .sh("ip neigh replace 192.0.2.1 dev h0 lladdr 02:00:00:00:00:99 nud permanent");
    lan.host()
        .sh("tc qdisc add dev h0 root tbf rate 8bit burst 1600 limit 100000000");
    wait_event(
        &mut d,
        Duration::from_secs(10),
        "ipmultipath.interface.failed",
        Some("h0"),
    )
    .expect("h0 fails: its probes never leave");
    let held = std::time::Instant::now();
    let limit = Duration::from_nanos(tests::scaled_ns(120_000_000_000));
    // One socket's default buffer holds about 520 probes (measured on 6.18: the backlog stopped
    // there when nothing went on the members' own sockets). More than that: the shared buffer is
    // full and h0's own socket took the rest.
    while qdisc_backlog(&lan, "h0") < 700 {
        assert!(
            held.elapsed() < limit,
            "h0's queue holds only {} probes after {limit:?}: the shared socket's buffer is full \
             and no probe went on the members' own sockets",
            qdisc_backlog(&lan, "h0")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // A few more FDTs after the shared buffer must have filled.
    std::thread::sleep(Duration::from_millis(tests::scaled_ns(5 * FDT_MS)));
    let seen = d.drain();
    assert!(
        seen.iter().all(
            |v| !(v["event"] == "ipmultipath.interface.failed" && v["ifname"] == "h1")
                && v["event"] != "ipmultipath.group.failed"
        ),
        "h1 lost probes to h0's stuck queue"
    );
    // Counted: once the shared socket was full, the probes of both members went on their own
    // sockets, and the kernel took every one of h1's.
    let text = daemon::scrape_metrics(&lan.host().path(), metrics).expect("metrics");
    let count = |name: &str, ifname: &str| {
        daemon::metric_total(
            &text,
            &format!("ipmpd_{name}_total"),
            &[("interface", ifname)],
        )
    };
    assert!(count("probes_fallback", "h0") > 0.0, "{text}");
    assert!(count("probes_fallback", "h1") > 0.0, "{text}");
    // Written, at zero (a missing series would sum to zero too).
    for reason in ["buffer_full", "refused"] {
        let series = format!("ipmpd_probes_unsent_total{{interface=\"h1\",reason=\"{reason}\"}} 0");
        assert!(text.lines().any(|l| l == series), "no {series:?} in {text}");
    }
    lan.host().sh("tc qdisc del dev h0 root");
}

#[test]
fn carrier_loss_is_detected_at_once() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, true);
    let cfg = RunConfig::new(
        "carrier",
        &two_members(1000, "targets = [\"192.0.2.1\"]"),
        None,
    );
    // The poll's floor at FDT 1 s is 10 ms; a fixed interval (not stretched by the CPU budget,
    // which the bench measures) makes two intervals the limit.
    let mut d = cfg.spawn_with(lan.host(), &["--link-poll-cpu", "100"]);
    d.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("daemon ready");
    std::thread::sleep(Duration::from_millis(500));
    let t0 = lan.switch().set_link_fast("sw-h0", false).began_ns;
    let down = wait_event(
        &mut d,
        Duration::from_secs(3),
        "ipmultipath.link.down",
        Some("h0"),
    )
    .expect("link down");
    let failed = wait_event(
        &mut d,
        Duration::from_secs(3),
        "ipmultipath.interface.failed",
        Some("h0"),
    )
    .expect("failure");
    let ms = (at(&failed) - t0) as f64 / 1e6;
    if let Some(link) = d
        .seen
        .iter()
        .find(|v| v["event"] == "link" && v["change"] == "down")
    {
        let ns = |k: &str| link[k].as_u64().unwrap_or(0);
        eprintln!(
            "failure {ms:.2} ms after the carrier loss: seen by the {} after {:.2} ms, in ipmpd's loop {:.2} ms later",
            link["source"],
            ns("at_ns").saturating_sub(t0) as f64 / 1e6,
            at(&failed).saturating_sub(ns("seen_ns")) as f64 / 1e6,
        );
    }
    assert!(
        ms < 20.0 * tests::time_scale(),
        "failure {ms:.2} ms after carrier loss on a NIC-like link (FDT 1 s; time scale x{})",
        tests::time_scale()
    );
    assert!(at(&down) <= at(&failed));
    lan.switch().set_link_fast("sw-h0", true);
    wait_event(
        &mut d,
        Duration::from_secs(3),
        "ipmultipath.link.up",
        Some("h0"),
    )
    .expect("link up");
    wait_event(
        &mut d,
        Duration::from_secs(5),
        "ipmultipath.interface.repaired",
        Some("h0"),
    )
    .expect("repaired by probes once the link is back");
}

#[test]
fn targets_are_found_by_all_hosts_probing_without_routes() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    // Linux answers echo requests to 224.0.0.1 only with this off.
    lan.router()
        .sh("sysctl -qw net.ipv4.icmp_echo_ignore_broadcasts=0");
    let cfg = RunConfig::new("mcast", &two_members(FDT_MS, ""), None);
    let mut d = cfg.spawn(lan.host());
    d.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("daemon ready");
    let ack = d
        .wait_for(Duration::from_secs(5), |v| acked_target(v).is_some())
        .expect("a discovered target answers");
    assert_eq!(
        acked_target(&ack).as_deref(),
        Some("192.0.2.1"),
        "the router, not our own other address"
    );
}

#[test]
fn ipv6_probing_from_link_local_test_addresses() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, false);
    let ll = lan.host().link_local("h0");
    let router_ll = lan.router().link_local("r0");
    let group = format!(
        "[group.g]\nfdt_ms = {FDT_MS}\n\n[interface.h0]\ngroup = \"g\"\ntest_addresses = [\"{ll}\"]\n"
    );
    let cfg = RunConfig::new("v6", &group, None);
    let mut d = cfg.spawn(lan.host());
    d.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("daemon ready");
    let ack = d
        .wait_for(Duration::from_secs(5), |v| acked_target(v).is_some())
        .expect("ff02::1 discovery and ICMPv6 probes");
    assert_eq!(acked_target(&ack), Some(router_ll));
    std::thread::sleep(Duration::from_millis(700));
    let fault = lan.switch().drop_all("sw-h0");
    let ms = expect_failed_within_fdt(
        &mut d,
        "h0",
        fault.began_ns,
        FDT_MS,
        &fault.describe("IPv6 probes"),
    );
    println!("IPv6 fault found after {ms} ms");
}

#[test]
fn a_slow_responder_raises_the_fdt_and_it_falls_back_after_the_delay_is_removed() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, false);
    let delay_file = std::env::temp_dir().join(format!("ipmpd-delay-{}", std::process::id()));
    std::fs::write(&delay_file, "0").unwrap();
    lan.router()
        .sh("sysctl -qw net.ipv4.icmp_echo_ignore_all=1");
    let responder = concat!(env!("CARGO_MANIFEST_DIR"), "/helpers/slow_responder.py");
    let mut resp = lan
        .router()
        .command("python3")
        .arg(responder)
        .arg(&delay_file)
        .spawn()
        .unwrap();
    // FDT 1 s, probes 143 ms apart, replies 200 ms late: late by more than an interval, so the
    // FDT must rise, and short of failure by five intervals (715 ms), so a one-vCPU guest whose
    // Python responder stalls now and then still separates "slow" from "failed". (At FDT 300 ms
    // and 60 ms the margin was 150 ms, and a loaded 6.12 guest once used it up.)
    let group = "[group.g]\nfdt_ms = 1000\n\n[interface.h0]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.10\"]\ntargets = [\"192.0.2.1\"]\n";
    let cfg = RunConfig::new("slow", group, None);
    let mut d = cfg.spawn(lan.host());
    d.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("daemon ready");
    d.wait_for(Duration::from_secs(5), |v| acked_target(v).is_some())
        .expect("responder answers");
    std::fs::write(&delay_file, "200").unwrap();
    let raised = d
        .wait_for(Duration::from_secs(10), |v| {
            v["event"] == "ipmultipath.fdt.raised"
        })
        .expect("FDT raised");
    let msg = raised["message"].as_str().unwrap();
    assert!(msg.starts_with("Cannot meet requested failure detection time of 1000 ms on (inet h0) new failure detection time for group \"g\" is "), "{msg}");
    let failed = d
        .drain()
        .iter()
        .any(|v| v["event"] == "ipmultipath.interface.failed");
    assert!(
        !failed,
        "slow is not failed; the daemon said:\n{}",
        d.tail(40)
    );
    std::fs::write(&delay_file, "0").unwrap();
    // in.mpathd waits 60 s after a raise before lowering the FDT again.
    let improved = d
        .wait_for(Duration::from_secs(100), |v| {
            v["event"] == "ipmultipath.fdt.improved"
        })
        .expect("FDT lowered again");
    assert!(
        improved["message"]
            .as_str()
            .unwrap()
            .starts_with("Improved failure detection time ")
    );
    let _ = resp.kill();
    let _ = resp.wait();
    let _ = std::fs::remove_file(&delay_file);
}

#[test]
fn sighup_keeps_the_running_configuration_when_the_new_one_is_bad_and_applies_a_good_one() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, false);
    let good = format!(
        "[group.g]\nfdt_ms = {FDT_MS}\n\n[interface.h0]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.10\"]\ntargets = [\"192.0.2.1\"]\n"
    );
    let cfg = RunConfig::new("hup", &good, None);
    let metrics = "127.0.0.1:9876";
    let mut d = cfg.spawn_with(lan.host(), &["--metrics", metrics]);
    d.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("daemon ready");
    // The configured FDT, and the one in force (in.mpathd's rule may have raised it above the
    // configured one in a slow VM, never below), as the exporter publishes them.
    let fdts = || {
        let text = daemon::scrape_metrics(&lan.host().path(), metrics).expect("metrics");
        let g = [("group", "g")];
        (
            daemon::metric_total(&text, "ipmpd_group_configured_fdt_seconds", &g),
            daemon::metric_total(&text, "ipmpd_group_fdt_seconds", &g),
        )
    };
    std::fs::write(cfg.dir.join("ipmpd.toml"), "[group.g]\nfdt_ms = \"fast\"\n").unwrap();
    d.signal(libc::SIGHUP);
    d.wait_for(Duration::from_secs(5), |v| v["event"] == "reload_refused")
        .expect("bad configuration refused");
    d.seen.clear();
    d.wait_for(Duration::from_secs(5), |v| acked_target(v).is_some())
        .expect("still probing with the old configuration");
    assert!(d.running());
    let (configured, in_force) = fdts();
    assert!(
        (configured - 0.3).abs() < 1e-9 && in_force >= 0.3 - 1e-9,
        "the refused reload changed nothing: configured {configured} s, in force {in_force} s"
    );
    std::fs::write(
        cfg.dir.join("ipmpd.toml"),
        good.replace("fdt_ms = 300", "fdt_ms = 500"),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    d.wait_for(Duration::from_secs(5), |v| v["event"] == "reloading")
        .expect("good configuration accepted");
    d.seen.clear();
    let ready = d
        .wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("the reloaded daemon is ready");
    assert_eq!(ready["interfaces"][0]["ifname"], "h0");
    // A reload is a reconcile pass in the same process: the one the test started is still
    // running (a daemon that forked a successor and exited would not be).
    assert!(d.running(), "same process, new configuration");
    // And the new configuration is the one in force (the exporter's copy follows within a turn
    // of the daemon's loop).
    daemon::poll_until(tests::scaled(Duration::from_secs(5)), || {
        (fdts().0 - 0.5).abs() < 1e-9
    });
    let (configured, in_force) = fdts();
    assert!(
        (configured - 0.5).abs() < 1e-9 && in_force >= 0.5 - 1e-9,
        "the reloaded FDT is in force: configured {configured} s, in force {in_force} s"
    );
}

#[test]
fn a_member_with_a_duplicate_hardware_address_is_offlined() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    let link = lan.host().sh("ip -o link show h0");
    let mac = link
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .expect("h0 has an Ethernet address");
    lan.host().sh(&format!("ip link set h1 address {mac}"));
    let cfg = RunConfig::new(
        "hwdup",
        &two_members(1000, "targets = [\"192.0.2.1\"]"),
        None,
    );
    let mut d = cfg.spawn(lan.host());
    let ev = wait_event(
        &mut d,
        Duration::from_secs(10),
        "ipmultipath.hwaddr.duplicate",
        Some("h1"),
    )
    .expect("duplicate reported");
    assert_eq!(
        ev["message"],
        "IP interface h1 has a hardware address which is not unique in group g; offlining"
    );
    let ready = d
        .wait_for(Duration::from_secs(5), |v| v["event"] == "ready")
        .expect("ready");
    let h1 = ready["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["ifname"] == "h1")
        .unwrap()
        .clone();
    assert_eq!(
        (h1["state"].as_str(), h1["hwaddr_dup"].as_bool()),
        (Some("offline"), Some(true)),
        "{h1}"
    );
    // Giving h1 its own address again brings it back.
    lan.host().sh("ip link set h1 address 02:00:00:00:77:01");
    let ev = wait_event(
        &mut d,
        Duration::from_secs(5),
        "ipmultipath.hwaddr.unique",
        Some("h1"),
    )
    .expect("unique again");
    assert_eq!(
        ev["message"],
        "IP interface h1 now has a unique hardware address in group g; onlining"
    );
}

#[test]
fn with_track_interfaces_only_with_groups_no_ungrouped_interfaces_are_watched_in_the_anonymous_group()
 {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    let group = "[group.g]\n\n[interface.h0]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.10\"]\ntargets = [\"192.0.2.1\"]\n";
    let cfg = RunConfig::new(
        "anon",
        group,
        Some("TRACK_INTERFACES_ONLY_WITH_GROUPS=no\n"),
    );
    let mut d = cfg.spawn(lan.host());
    let ready = d
        .wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("ready");
    let h1 = ready["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["ifname"] == "h1")
        .expect("h1 tracked")
        .clone();
    assert_eq!(h1["group"], "", "the anonymous group");
    assert!(
        ready["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["ifname"] != "lo"),
        "loopback is not eligible"
    );
    lan.switch().link_down("sw-h1");
    wait_event(
        &mut d,
        Duration::from_secs(3),
        "ipmultipath.interface.failed",
        Some("h1"),
    )
    .expect("link-based detection in the anonymous group");
    assert!(
        d.drain()
            .iter()
            .all(|v| v["event"] != "ipmultipath.group.failed")
    );
}

#[test]
fn router_targets_follow_route_changes_at_run_time() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, false);
    // No route and no answer to all-hosts: nothing to probe yet.
    let group = format!(
        "[group.g]\nfdt_ms = {FDT_MS}\n\n[interface.h0]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.10\"]\n"
    );
    let cfg = RunConfig::new("routes", &group, None);
    let mut d = cfg.spawn(lan.host());
    let ready = d
        .wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("daemon ready");
    assert_eq!(ready["interfaces"][0]["state"], "no_targets");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        d.drain().iter().all(|v| acked_target(v).is_none()),
        "no target yet"
    );
    lan.topo.route(lan.host, "198.51.100.0/24 via 192.0.2.1");
    let ack = d
        .wait_for(Duration::from_secs(5), |v| acked_target(v).is_some())
        .expect("the new route's next hop is probed");
    assert_eq!(acked_target(&ack).as_deref(), Some("192.0.2.1"));
}

/// The notifications a `Type=notify` unit gets, read from a socket standing in for systemd's.
#[test]
fn systemd_hears_ready_watchdog_reloading_with_its_monotonic_time_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, false);
    let cfg = RunConfig::new(
        "notify",
        &format!(
            "[group.g]\nfdt_ms = {FDT_MS}\n\n[interface.h0]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.10\"]\ntargets = [\"192.0.2.1\"]\n"
        ),
        None,
    );
    let socket_path = cfg.dir.join("notify");
    let systemd = UnixDatagram::bind(&socket_path).expect("notify socket");
    systemd
        .set_read_timeout(Some(tests::scaled(Duration::from_secs(10))))
        .unwrap();
    let next = |what: &str| -> String {
        let mut buf = [0u8; 512];
        let n = systemd
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no notification ({what}): {e}"));
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    // WATCHDOG_USEC of 400 ms: a keep-alive every 200 ms.
    let d = cfg.spawn_env(
        lan.host(),
        &[],
        &[
            ("NOTIFY_SOCKET", &socket_path.display().to_string()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let ready = next("ready");
    assert_eq!(
        ready.lines().collect::<Vec<_>>(),
        ["READY=1", "STATUS=tracking 1 interfaces"],
        "{ready}"
    );
    assert_eq!(next("watchdog").trim(), "WATCHDOG=1");
    d.signal(libc::SIGHUP);
    let before = monotonic_ns() / 1000;
    // Keep-alives may come first; the reload notice carries the time it began.
    let reloading = (0..20)
        .map(|_| next("reloading"))
        .find(|m| m.starts_with("RELOADING=1"))
        .expect("RELOADING=1 after SIGHUP");
    let usec: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("RELOADING=1 without MONOTONIC_USEC: {reloading:?}"));
    let after = monotonic_ns() / 1000;
    assert!(
        usec + 1000 >= before && usec <= after + tests::scaled_ns(5_000_000) / 1000,
        "MONOTONIC_USEC={usec} is not the time of the reload ({before}..{after})"
    );
    assert!(
        (0..20).any(|_| next("ready after reload").trim() == "READY=1"),
        "READY=1 after the reload"
    );
    d.signal(libc::SIGTERM);
    assert!(
        (0..20).any(|_| next("stopping").trim() == "STOPPING=1"),
        "STOPPING=1 on SIGTERM"
    );
}

/// (scheduling policy, real-time priority) of each thread of `pid`, by thread name.
fn thread_policies(pid: u32) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("the daemon's threads") {
        let path = task.expect("a thread").path().join("stat");
        // A thread that ended between the listing and the read is skipped.
        let Some(stat) = Stat::read(path) else {
            continue;
        };
        // proc(5): rt_priority is field 40 and policy 41.
        let (policy, priority) = (stat.field(41), stat.field(40));
        out.push((stat.name, policy, priority));
    }
    out
}

const SCHED_FIFO: u64 = 1;
const SCHED_IDLE: u64 = 5;

/// The nice value of each thread of `pid`, by thread name.
fn thread_nices(pid: u32) -> Vec<(String, i64)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the daemon's threads")
        .filter_map(|task| Stat::read(task.expect("a thread").path().join("stat")))
        .map(|stat| {
            let nice = stat.nice();
            (stat.name, nice)
        })
        .collect()
}

/// The EEVDF time slice of each thread of `pid` in nanoseconds, by thread name; `None` where the
/// kernel shows none (before 6.12).
fn thread_slices(pid: u32) -> Vec<(String, Option<u64>)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the daemon's threads")
        .filter_map(|task| {
            let dir = task.expect("a thread").path();
            let name = std::fs::read_to_string(dir.join("comm")).ok()?;
            let sched = std::fs::read_to_string(dir.join("sched")).ok()?;
            let slice = sched.lines().find_map(|l| {
                let (key, value) = l.split_once(':')?;
                (key.trim() == "se.slice").then(|| value.trim().parse().ok())?
            });
            Some((name.trim().to_owned(), slice))
        })
        .collect()
}

/// Whether the running kernel has EEVDF's per-thread slice (6.12 and later): its
/// `/proc/.../sched` shows `se.slice` since the same change.
fn kernel_has_slices() -> bool {
    std::fs::read_to_string("/proc/thread-self/sched").is_ok_and(|s| s.contains("se.slice"))
}

#[test]
fn by_default_only_the_probing_loop_and_the_link_watcher_run_at_a_raised_priority() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    lan.topo.route(lan.host, "198.51.100.0/24 via 192.0.2.1");
    let cfg = RunConfig::new("nice", &two_members(FDT_MS, ""), None);
    let mut d = cfg.spawn_with(lan.host(), &["--metrics", "127.0.0.1:0"]);
    let (taken, ev) = wait_outcome(&mut d, Duration::from_secs(10), "ipmultipath.daemon.nice")
        .expect("the daemon says whether the raised priority took effect");
    assert!(taken, "{ev}");
    assert_eq!(ev["params"]["nice"], -10);
    let nices = thread_nices(d.pid());
    assert!(
        nices.len() >= 4,
        "probing, link, control, metrics: {nices:?}"
    );
    for (name, nice) in &nices {
        let want = if name == "ipmpd" || name == "ipmpd-link" {
            -10
        } else {
            0
        };
        assert_eq!(*nice, want, "{name}: {nices:?}");
    }
    assert!(
        thread_policies(d.pid()).iter().all(|t| t.1 != SCHED_FIFO),
        "nothing real-time without --rt-priority"
    );
    let (taken, ev) = wait_outcome(&mut d, Duration::from_secs(5), "ipmultipath.daemon.slice")
        .expect("the daemon says whether the time slice took effect");
    assert_eq!(ev["params"]["slice_us"], 100, "{ev}");
    if kernel_has_slices() {
        assert!(taken, "{ev}");
        let slices = thread_slices(d.pid());
        assert!(
            has_probing_and_link_threads(&slices),
            "the threads were read: {slices:?}"
        );
        for (name, slice) in &slices {
            let short = *slice == Some(100_000);
            let want = name == "ipmpd" || name == "ipmpd-link";
            assert_eq!(short, want, "{name}: {slices:?}");
        }
    } else {
        assert!(!taken, "{ev}");
        let reason = ev["params"]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("6.12"), "{ev}");
    }
    probing(&mut d);
    h0_fails_silently_within_the_fdt(&lan, &mut d, "silent fault at nice -10");
}

#[test]
fn nice_zero_and_slice_zero_leave_every_thread_as_started() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    lan.topo.route(lan.host, "198.51.100.0/24 via 192.0.2.1");
    let cfg = RunConfig::new("nice0", &two_members(FDT_MS, ""), None);
    let mut d = cfg.spawn_with(lan.host(), &["--nice", "0", "--slice-us", "0"]);
    probing(&mut d);
    let said = |name: &str| d.seen.iter().any(|v| v["event"].as_str() == Some(name));
    for name in [
        "ipmultipath.daemon.nice",
        "ipmultipath.daemon.niceRefused",
        "ipmultipath.daemon.slice",
        "ipmultipath.daemon.sliceRefused",
    ] {
        assert!(!said(name), "no priority taken, none reported: {name}");
    }
    let slices = thread_slices(d.pid());
    assert!(
        has_probing_and_link_threads(&slices),
        "the threads were read: {slices:?}"
    );
    assert!(
        slices.iter().all(|t| t.1 != Some(100_000)),
        "no thread has the short slice: {slices:?}"
    );
    let nices = thread_nices(d.pid());
    assert!(
        has_probing_and_link_threads(&nices),
        "the threads were read: {nices:?}"
    );
    assert!(nices.iter().all(|t| t.1 == 0), "{nices:?}");
}

/// Whether `threads` (name first) include the probing loop and the link watcher: a check that
/// every thread has some property means nothing when the threads could not be read.
fn has_probing_and_link_threads<T>(threads: &[(String, T)]) -> bool {
    ["ipmpd", "ipmpd-link"]
        .iter()
        .all(|name| threads.iter().any(|t| t.0 == *name))
}

#[test]
fn with_rt_priority_only_the_probing_loop_and_the_link_watcher_run_sched_fifo() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    lan.topo.route(lan.host, "198.51.100.0/24 via 192.0.2.1");
    let cfg = RunConfig::new("rt", &two_members(FDT_MS, ""), None);
    let mut d = cfg.spawn_with(
        lan.host(),
        &["--rt-priority", "7", "--metrics", "127.0.0.1:0"],
    );
    let (taken, ev) = wait_outcome(
        &mut d,
        Duration::from_secs(10),
        "ipmultipath.daemon.realtime",
    )
    .expect("the daemon says whether real-time scheduling took effect");
    assert!(taken, "{ev}");
    assert_eq!(ev["params"]["priority"], 7);
    let threads = thread_policies(d.pid());
    assert!(
        threads.len() >= 4,
        "probing, link, control, metrics: {threads:?}"
    );
    for (name, policy, priority) in &threads {
        if name == "ipmpd" || name == "ipmpd-link" {
            assert_eq!((*policy, *priority), (SCHED_FIFO, 7), "{name}: {threads:?}");
        } else if name == "ipmpd-metrics" {
            // The exposition is encoded in the background: it never holds the loop back.
            assert_eq!((*policy, *priority), (SCHED_IDLE, 0), "{name}: {threads:?}");
        } else {
            assert_eq!(
                (*policy, *priority),
                (0, 0),
                "{name} must stay SCHED_OTHER: {threads:?}"
            );
        }
    }
    assert_eq!(
        threads.iter().filter(|t| t.1 == SCHED_FIFO).count(),
        2,
        "exactly the probing loop and the link watcher: {threads:?}"
    );
    // Detection works as ever.
    probing(&mut d);
    h0_fails_silently_within_the_fdt(&lan, &mut d, "silent fault at real-time priority");
    // Every start-up event came before these: none says anything of a slice.
    assert!(
        !d.seen.iter().any(|v| v["event"]
            .as_str()
            .is_some_and(|e| e.starts_with("ipmultipath.daemon.slice"))),
        "a real-time thread has no time slice to take"
    );
}

#[test]
fn a_daemon_its_service_manager_started_real_time_keeps_it_only_where_it_measures() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    lan.topo.route(lan.host, "198.51.100.0/24 via 192.0.2.1");
    let cfg = RunConfig::new("rt-started", &two_members(FDT_MS, ""), None);
    // As `CPUSchedulingPolicy=fifo` in a unit would start it, with no --rt-priority.
    let log = cfg.dir.join("stderr");
    let args = cfg.run_args();
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(["--metrics", "127.0.0.1:0"]);
    let mut d =
        daemon::Daemon::spawn_wrapped_logged(lan.host(), &["chrt", "--fifo", "5"], &args, &log);
    // SCHED_FIFO has no time slice: the slice asked for by default is refused, and says why.
    let (taken, ev) = wait_outcome(&mut d, Duration::from_secs(10), "ipmultipath.daemon.slice")
        .expect("the daemon says whether the time slice took effect");
    assert!(!taken, "{ev}");
    let reason = ev["params"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("SCHED_FIFO (1)"), "{ev}");
    probing(&mut d);
    let threads = thread_policies(d.pid());
    assert!(
        threads.len() >= 4,
        "probing, link, control, metrics: {threads:?}"
    );
    for (name, policy, priority) in &threads {
        let want = match name.as_str() {
            "ipmpd" | "ipmpd-link" => (SCHED_FIFO, 5),
            "ipmpd-metrics" => (SCHED_IDLE, 0),
            _ => (0, 0),
        };
        assert_eq!((*policy, *priority), want, "{name}: {threads:?}");
    }
    h0_fails_silently_within_the_fdt(&lan, &mut d, "silent fault, started real-time");
    d.stop();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !stderr.contains("SCHED_RESET_ON_FORK"),
        "threads spawned later start normal without a warning: {stderr}"
    );
}

#[test]
fn a_refused_rt_priority_is_reported_and_the_daemon_probes_at_normal_priority() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    lan.topo.route(lan.host, "198.51.100.0/24 via 192.0.2.1");
    let cfg = RunConfig::new("rt-refused", &two_members(FDT_MS, ""), None);
    // Root without CAP_SYS_NICE, and no RLIMIT_RTPRIO to fall back on.
    let wrapper = [
        "prlimit",
        "--rtprio=0:0",
        "--",
        "setpriv",
        "--bounding-set=-sys_nice",
        "--inh-caps=-sys_nice",
        "--",
    ];
    let mut d = cfg.spawn_wrapped(lan.host(), &wrapper, &["--rt-priority", "7"]);
    let (taken, ev) = wait_outcome(
        &mut d,
        Duration::from_secs(10),
        "ipmultipath.daemon.realtime",
    )
    .expect("the daemon says whether real-time scheduling took effect");
    assert!(!taken, "{ev}");
    let reason = ev["params"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("RLIMIT_RTPRIO"),
        "the reason names the limit: {reason}"
    );
    // Without real-time scheduling the raised nice value is tried next, and refused alike.
    let (taken, ev) = wait_outcome(&mut d, Duration::from_secs(10), "ipmultipath.daemon.nice")
        .expect("the daemon says whether the raised priority took effect");
    assert!(!taken, "{ev}");
    let reason = ev["params"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("RLIMIT_NICE"),
        "the reason names the limit: {reason}"
    );
    let policies: Vec<(String, u64)> = thread_policies(d.pid())
        .into_iter()
        .map(|(name, policy, _)| (name, policy))
        .collect();
    assert!(
        has_probing_and_link_threads(&policies),
        "the threads were read: {policies:?}"
    );
    assert!(
        policies.iter().all(|t| t.1 == 0),
        "every thread at normal priority: {policies:?}"
    );
    let nices = thread_nices(d.pid());
    assert!(
        has_probing_and_link_threads(&nices),
        "the threads were read: {nices:?}"
    );
    assert!(nices.iter().all(|t| t.1 == 0), "and nice 0: {nices:?}");
    probing(&mut d);
    assert!(d.running(), "a refusal does not stop the daemon");
    h0_fails_silently_within_the_fdt(&lan, &mut d, "silent fault after the refusal");
}
