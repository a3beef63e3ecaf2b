//! The paths ipmpd chooses by probing the kernel: TCX links or a clsact qdisc with a netlink
//! filter, and the fentry carrier hook or the carrier poll. The clsact tests force that path
//! (`--tc-attach clsact`) so they run on every kernel; the hook tests run where the kernel allows
//! the hook and are listed as not run elsewhere. `cargo xtask test` runs them on the host and in
//! VMs on Debian 12's 6.1 (no TCX; hook), 6.1 with lockdown (no hook) and 6.12 (TCX; hook).

use std::time::Duration;

use serde_json::Value;
use tests::{
    daemon::{self, Daemon, RunConfig, bpftool_dump, wait_event},
    tcx::{Place, TcxDropper},
    topology::{Lan, Netns},
};

/// What `ipmpd features --json h0` reports in `ns`.
fn features(ns: &Netns) -> Value {
    daemon::features(ns, &["h0"])
}

/// The daemon of `cfg` started in `ns` with `extra` arguments, once ready, and its start-up event
/// `ipmultipath.datapath.features` (what it chose).
fn spawn_ready(cfg: &RunConfig, ns: &Netns, extra: &[&str]) -> (Daemon, Value) {
    let mut d = cfg.spawn_with(ns, extra);
    d.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("daemon ready");
    let features = wait_event(
        &mut d,
        Duration::from_secs(1),
        "ipmultipath.datapath.features",
        None,
    )
    .expect("the start-up event says what was chosen");
    (d, features)
}

/// Cuts h0 silently at the switch (its link stays up) and waits for the daemon to declare it
/// failed; panics with `what` when it does not within 5 s.
fn cut_h0_and_expect_failed(lan: &Lan, d: &mut Daemon, what: &str) {
    d.seen.clear();
    lan.switch().drop_all("sw-h0");
    wait_event(
        d,
        Duration::from_secs(5),
        "ipmultipath.interface.failed",
        Some("h0"),
    )
    .expect(what);
}

/// Whether the carrier hook is what ipmpd uses here.
fn hook_in_use(ns: &Netns) -> (bool, String) {
    let f = features(ns);
    let reason = f["carrier"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (f["carrier"]["source"] == "kernel_hook", reason)
}

/// `tc filter show dev IF egress` lines about bpf filters.
fn egress_filters(ns: &Netns, ifname: &str) -> Vec<String> {
    ns.sh(&format!("tc filter show dev {ifname} egress"))
        .lines()
        .filter(|l| l.contains("handle") || l.contains(" fh "))
        .map(str::to_owned)
        .collect()
}

/// The summary of five probes of 192.0.2.1 from h0 by `ipmpd probe` with `extra` arguments.
fn probe_summary(ns: &Netns, extra: &[&str]) -> Value {
    let args = [
        &["probe", "h0", "192.0.2.1", "-c", "5", "-i", "20", "--json"],
        extra,
    ]
    .concat();
    let (ok, out, err) = daemon::run(ns, &args);
    assert!(ok, "ipmpd probe failed: {err}");
    out.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "summary")
        .expect("a summary line")
}

fn prog_id(filter_line: &str) -> String {
    filter_line
        .split_whitespace()
        .skip_while(|w| *w != "id")
        .nth(1)
        .expect("a program id")
        .to_owned()
}

fn has_clsact(ns: &Netns, ifname: &str) -> bool {
    ns.sh(&format!("tc qdisc show dev {ifname}"))
        .contains("clsact")
}

#[test]
fn the_chosen_paths_are_the_ones_the_kernel_allows() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, false);
    let f = features(lan.host());
    let tc = f["tc"]["mode"].as_str().expect("tc mode").to_owned();
    let carrier = f["carrier"]["source"].as_str().expect("carrier").to_owned();
    eprintln!("features: {f}");
    assert!(tc == "tcx" || tc == "clsact", "{f}");
    assert!(carrier == "kernel_hook" || carrier == "poll", "{f}");
    if carrier == "poll" {
        assert!(
            !f["carrier"]["reason"]
                .as_str()
                .unwrap_or_default()
                .is_empty()
        );
    }
    // Replies on a veth are taken at TC ingress where the kernel has TCX; elsewhere by XDP,
    // which veth drivers run natively.
    if tc == "tcx" {
        assert_eq!(f["reply_hook"], "tc_ingress_on_veth", "{f}");
        assert_eq!(f["replies"]["h0"], "tc_ingress", "{f}");
        assert!(f["xdp"]["h0"].is_null(), "{f}");
    } else {
        assert_eq!(f["reply_hook"], "xdp", "{f}");
        assert_eq!(f["replies"]["h0"], "xdp", "{f}");
        assert_eq!(f["xdp"]["h0"], "driver", "{f}");
    }
    // The choice can be forced either way.
    let forced = daemon::features(lan.host(), &["--reply-hook", "xdp", "h0"]);
    assert_eq!(forced["replies"]["h0"], "xdp", "{forced}");
    assert_eq!(forced["xdp"]["h0"], "driver", "{forced}");
    // In the VM suites the kernel is known, and so is what ipmpd must choose there.
    if let Some(want) = tests::expected("TC") {
        assert_eq!(tc, want, "TC attach on this kernel");
    }
    if let Some(want) = tests::expected("CARRIER") {
        let want = if want == "hook" {
            "kernel_hook"
        } else {
            "poll"
        };
        assert_eq!(carrier, want, "carrier source on this kernel");
    }
    // Nothing stays attached after `features`.
    assert!(!lan.host().sh("ip link show h0").contains("xdp"));
    assert!(egress_filters(lan.host(), "h0").is_empty());
}

const GROUP: &str = "[group.g]\nfdt_ms = 300\ndata_addresses = [\"192.0.2.100/24\"]\n\n\
    [interface.h0]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.10\"]\ntargets = [\"192.0.2.1\"]\n\n\
    [interface.h1]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.11\"]\ntargets = [\"192.0.2.1\"]\n";

#[test]
fn probes_are_kernel_stamped_through_a_clsact_filter() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, false);
    let summary = probe_summary(lan.host(), &["--tc-attach", "clsact"]);
    assert_eq!(summary["datapath"]["probes_stamped"], 5, "{summary}");
    assert_eq!(summary["net_rtt"]["count"], 5, "{summary}");
    // The diagnostic removes its filter and the qdisc it added.
    assert!(egress_filters(lan.host(), "h0").is_empty());
    assert!(!has_clsact(lan.host(), "h0"));
}

#[test]
fn without_tcx_one_clsact_filter_is_replaced_in_place_across_a_restart_and_detach_removes_it() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    let cfg = RunConfig::new("clsact", GROUP, None);
    let (mut d, features) = spawn_ready(&cfg, lan.host(), &["--tc-attach", "clsact"]);
    assert_eq!(features["params"]["tc_attach"], "clsact");
    let before = egress_filters(lan.host(), "h0");
    assert_eq!(before.len(), 1, "one filter: {before:?}");
    assert!(
        before[0].contains("pref 1") && before[0].contains("handle 0x1d0d"),
        "at ipmpd's fixed place: {before:?}"
    );
    assert!(before[0].contains("ipmpd_tc_stamp"), "{before:?}");
    assert!(has_clsact(lan.host(), "h0"));

    // A steady flow to the data address across a crash and a restart.
    let flow = lan.router().ping_flow("192.0.2.100", 300);
    std::thread::sleep(Duration::from_millis(500));
    d.kill_and_reap();
    assert_eq!(
        egress_filters(lan.host(), "h0"),
        before,
        "the filter outlives the killed daemon"
    );
    let mut d2 = cfg.spawn_with(lan.host(), &["--tc-attach", "clsact"]);
    d2.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("restarted");
    let summary = flow.loss();
    assert!(
        summary.contains(" 0% packet loss"),
        "no packet lost across the restart: {summary}"
    );
    let after = egress_filters(lan.host(), "h0");
    assert_eq!(after.len(), 1, "never two filters: {after:?}");
    assert!(after[0].contains("pref 1") && after[0].contains("handle 0x1d0d"));
    assert_ne!(
        prog_id(&after[0]),
        prog_id(&before[0]),
        "the new daemon's program replaced the old one inside the same filter"
    );
    // The adopted datapath still stamps and detects.
    cut_h0_and_expect_failed(&lan, &mut d2, "adopted datapath works");
    d2.stop();
    assert_eq!(
        egress_filters(lan.host(), "h0").len(),
        1,
        "a stopped daemon leaves its datapath for the next start"
    );
    let (ok, _, err) = daemon::run(lan.host(), &["detach", "--instance", &cfg.instance]);
    assert!(ok, "{err}");
    for ifname in ["h0", "h1"] {
        assert!(egress_filters(lan.host(), ifname).is_empty(), "{ifname}");
        assert!(
            !has_clsact(lan.host(), ifname),
            "ipmpd added the qdisc on {ifname}, so it removes it"
        );
        assert!(
            !lan.host()
                .sh(&format!("ip link show {ifname}"))
                .contains("xdp")
        );
    }
}

fn xdp_on(ns: &Netns, ifname: &str) -> bool {
    ns.sh(&format!("ip link show {ifname}")).contains("xdp")
}

#[test]
fn replies_are_taken_at_tc_ingress_when_asked_and_a_restart_with_the_other_hook_swaps_them() {
    // Forced both ways, so that the swap happens whatever the default on this kernel.
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    let h = lan.host();
    let (ok, out, err) = daemon::run(h, &["features", "--json", "--reply-hook", "tc", "h0"]);
    if !daemon::has_tcx(h) {
        // Refused with what to do, and nothing left attached.
        assert!(!ok, "--reply-hook tc without TCX: {out}");
        assert!(
            err.contains("--reply-hook tc needs TCX links") && err.contains("--reply-hook xdp"),
            "{err}"
        );
        assert!(!xdp_on(h, "h0"));
        return;
    }
    assert!(ok, "{err}");
    let f: Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(f["reply_hook"], "tc_ingress", "{f}");
    assert!(
        f["xdp"]["h0"].is_null(),
        "no XDP with replies at TC ingress: {f}"
    );

    // Replies taken, time-stamped and counted at TC ingress.
    let summary = probe_summary(h, &["--reply-hook", "tc"]);
    assert_eq!(summary["datapath"]["probe_replies"], 5, "{summary}");
    assert_eq!(summary["net_rtt"]["count"], 5, "{summary}");

    // A daemon taking replies at TC ingress, killed, and restarted with XDP under a steady flow:
    // the new hook replaces the old one, and the datapath detects.
    let idx = h.ifindex("h0");
    let cfg = RunConfig::new("replyhook", GROUP, None);
    let (mut d, event) = spawn_ready(&cfg, h, &["--reply-hook", "tc"]);
    assert_eq!(event["params"]["reply_hook"], "tc_ingress", "{event}");
    d.wait_for(Duration::from_secs(5), |v| {
        v["probe"]["event"] == "probe_acked" && v["probe"]["ifname"] == "h0"
    })
    .expect("h0's probes answered through TC ingress");
    let p = daemon::link_pins(&cfg.instance);
    assert!(p.contains(&format!("tcx-ingress-{idx}")), "{p:?}");
    assert!(!p.contains(&format!("xdp-{idx}")), "{p:?}");
    assert!(!xdp_on(h, "h0"));
    let flow = lan.router().ping_flow("192.0.2.100", 300);
    std::thread::sleep(Duration::from_millis(500));
    d.kill_and_reap();
    let mut d2 = cfg.spawn_with(h, &["--reply-hook", "xdp"]);
    d2.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("restarted");
    let summary = flow.loss();
    assert!(
        summary.contains(" 0% packet loss"),
        "no packet lost across the restart: {summary}"
    );
    let p = daemon::link_pins(&cfg.instance);
    assert!(p.contains(&format!("xdp-{idx}")), "{p:?}");
    assert!(
        !p.contains(&format!("tcx-ingress-{idx}")),
        "the TC ingress link is gone once XDP took over: {p:?}"
    );
    assert!(xdp_on(h, "h0"));
    d2.seen.clear();
    d2.wait_for(Duration::from_secs(5), |v| {
        v["probe"]["event"] == "probe_acked" && v["probe"]["ifname"] == "h0"
    })
    .expect("h0's probes answered through XDP");
    lan.switch().drop_all("sw-h0");
    wait_event(
        &mut d2,
        Duration::from_secs(5),
        "ipmultipath.interface.failed",
        Some("h0"),
    )
    .expect("the datapath detects after the swap");
    d2.stop();
    let (ok, _, err) = daemon::run(h, &["detach", "--instance", &cfg.instance]);
    assert!(ok, "{err}");
    assert!(!xdp_on(h, "h0"));
    assert!(daemon::link_pins(&cfg.instance).is_empty());
}

/// Whether `ns` reaches 192.0.2.1 through h0 with two pings.
fn pings_through_h0(ns: &Netns) -> bool {
    ns.try_sh("ping -c 2 -i 0.2 -W 1 -I h0 192.0.2.1")
}

/// Someone else's program on h0's ingress that drops every frame (a firewall, another agent),
/// there before the daemon starts. With TCX it is a TCX program, and ipmpd links its reply
/// program first on the hook; without TCX it is a clsact filter (tc's matchall with a drop
/// action), and ipmpd takes replies by XDP, which runs before TC. Either way h0's replies are
/// taken and h0 stays up, while every other frame goes on to the dropper. With TCX, a dropper
/// linked ahead of ipmpd's program later hides the replies and h0 fails: the order on the hook is
/// what kept them.
#[test]
fn a_program_that_drops_every_frame_at_ingress_does_not_hide_replies_from_ipmpd() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    let h = lan.host();
    // The dropper drops ARP too: h0 and the router know each other's addresses beforehand.
    h.sh(&format!(
        "ip neigh replace 192.0.2.1 lladdr {} dev h0 nud permanent",
        lan.router().mac("r0")
    ));
    lan.router().sh(&format!(
        "ip neigh replace 192.0.2.10 lladdr {} dev r0 nud permanent",
        h.mac("h0")
    ));
    assert!(
        pings_through_h0(h),
        "h0 reaches the router before any dropper"
    );
    let tcx = daemon::has_tcx(h);
    let _behind = if tcx {
        Some(TcxDropper::ingress(h, "h0", Place::Last).expect("a TCX program on h0's ingress"))
    } else {
        h.sh("tc qdisc add dev h0 clsact && tc filter add dev h0 ingress matchall action drop");
        None
    };
    assert!(!pings_through_h0(h), "the dropper drops h0's frames");

    let cfg = RunConfig::new("ingressorder", GROUP, None);
    let (mut d, event) = spawn_ready(&cfg, h, &[]);
    let want = if tcx { "tc_ingress" } else { "xdp" };
    assert!(
        event["params"]["reply_hook"]
            .as_str()
            .is_some_and(|hook| hook.starts_with(want)),
        "replies taken at {want}: {event}"
    );
    d.wait_for(Duration::from_secs(5), |v| {
        v["probe"]["event"] == "probe_acked" && v["probe"]["ifname"] == "h0"
    })
    .expect("h0's probes answered with the dropper behind ipmpd's program");
    assert!(
        !pings_through_h0(h),
        "frames that are not ipmpd's replies go on to the dropper"
    );

    if tcx {
        d.seen.clear();
        let ahead = TcxDropper::ingress(h, "h0", Place::First).expect("a second TCX program");
        wait_event(
            &mut d,
            Duration::from_secs(5),
            "ipmultipath.interface.failed",
            Some("h0"),
        )
        .expect("a dropper ahead of ipmpd's program hides h0's replies");
        drop(ahead);
        wait_event(
            &mut d,
            Duration::from_secs(10),
            "ipmultipath.interface.repaired",
            Some("h0"),
        )
        .expect("h0 repaired once the dropper ahead is gone");
    }
    d.stop();
    let (ok, _, err) = daemon::run(h, &["detach", "--instance", &cfg.instance]);
    assert!(ok, "{err}");
    if !tcx {
        assert!(
            h.sh("tc filter show dev h0 ingress").contains("matchall"),
            "someone else's filter stays after ipmpd detached"
        );
    }
}

#[test]
fn a_clsact_qdisc_of_someone_else_stays_and_their_filter_in_ipmpds_place_is_refused() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, false);
    let h = lan.host();
    // u32 and bpf are the classifiers every kernel here has built in.
    h.sh("tc qdisc add dev h0 clsact && tc filter add dev h0 ingress pref 7 u32 match u32 0 0");
    let watch = |extra: &[&str]| {
        let mut args = vec![
            "watch",
            "h0",
            "--duration-ms",
            "300",
            "--tc-attach",
            "clsact",
        ];
        args.extend_from_slice(extra);
        daemon::run(h, &args)
    };
    let (ok, _, err) = watch(&[]);
    assert!(ok, "{err}");
    assert!(has_clsact(h, "h0"), "the administrator's qdisc stays");
    assert!(
        h.sh("tc filter show dev h0 ingress").contains("u32"),
        "and their filter on it"
    );
    assert!(
        egress_filters(h, "h0").is_empty(),
        "ipmpd's own filter is gone"
    );

    // Someone else's filter at ipmpd's priority: refused with what to do, nothing replaced.
    h.sh("tc filter add dev h0 egress pref 1 u32 match u32 0 0");
    let (ok, _, err) = watch(&[]);
    assert!(!ok, "refused");
    assert!(
        err.contains("holds ipmpd's place") && err.contains("tc filter show dev h0 egress"),
        "{err}"
    );
    let left = egress_filters(h, "h0");
    assert!(
        !left.is_empty() && left.iter().all(|l| l.contains("u32")),
        "{left:?}"
    );
    assert!(
        !h.sh("ip link show h0").contains("xdp"),
        "a refused start leaves nothing attached"
    );

    // An `ingress` qdisc keeps clsact out: said so, with the remedy.
    h.sh("tc qdisc del dev h0 clsact && tc qdisc add dev h0 ingress");
    let (ok, _, err) = watch(&[]);
    assert!(!ok);
    assert!(err.contains("\"ingress\" qdisc"), "{err}");
}

/// Percentile `p` (0..=100) of `v`.
fn pct(v: &mut [u64], p: usize) -> u64 {
    v.sort_unstable();
    v[((v.len() - 1) * p / 100).min(v.len() - 1)]
}

/// CPU time (user + system) of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

/// A LAN with NIC-like host links, where the kernel allows the carrier hook (else the test is
/// listed as not run).
fn nic_like_lan_with_the_hook() -> Option<Lan> {
    let lan = Lan::new(false, true);
    let (hook, reason) = hook_in_use(lan.host());
    if !hook {
        // Inside a VM suite the kernel is known: where it must allow the hook, a refusal fails.
        assert_ne!(
            tests::expected("CARRIER").as_deref(),
            Some("hook"),
            "this kernel must allow the carrier hook, but ipmpd refused it: {reason}"
        );
        tests::not_run(&format!(
            "this kernel refuses the carrier hook ({reason}); the link_state tests cover the poll"
        ));
        return None;
    }
    Some(lan)
}

/// `ipmpd watch IFNAME` as instance `instance`, once it has reported the initial state.
fn watch(lan: &Lan, ifname: &str, instance: &str) -> Daemon {
    let mut d = Daemon::spawn(
        lan.host(),
        &["watch", ifname, "--json", "--instance", instance],
    );
    d.wait_for(Duration::from_secs(10), |v| {
        v["event"] == "link" && v["change"] == "initial"
    })
    .expect("initial state");
    d
}

#[test]
fn on_nic_like_links_the_hook_reports_every_carrier_change_at_once_and_idles_at_no_cost() {
    if !tests::privileged() {
        return;
    }
    let Some(lan) = nic_like_lan_with_the_hook() else {
        return;
    };
    let ifindex = lan.host().ifindex("h0");
    let mut d = watch(&lan, "h0", "hooknic");
    // Idle: nothing to poll, nothing to wake for.
    std::thread::sleep(Duration::from_millis(300));
    let (t0, c0) = (tests::monotonic_ns(), cpu_ticks(d.pid()));
    std::thread::sleep(Duration::from_secs(3));
    let (t1, c1) = (tests::monotonic_ns(), cpu_ticks(d.pid()));
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let idle_pct = (c1 - c0) as f64 / hz / ((t1 - t0) as f64 / 1e9) * 100.0;
    // From the change to the watcher thread (what the daemon's decision waits for), and on to this
    // test through ipmpd's stdout.
    let (mut latencies, mut to_test) = (Vec::new(), Vec::new());
    for round in 0..10u64 {
        for (up, change) in [(false, "down"), (true, "up")] {
            lan.switch().set_link_fast("sw-h0", up);
            let ev = d
                .wait_for(Duration::from_secs(3), |v| {
                    v["event"] == "link"
                        && v["change"] == change
                        && v["flaps"] == 2 * round + 1 + u64::from(up)
                })
                .unwrap_or_else(|| panic!("round {round}: {change} not seen"));
            let arrived = tests::monotonic_ns();
            assert_eq!(
                ev["source"], 4,
                "round {round}: the hook, not rtnetlink or the poll, saw it first: {ev}"
            );
            if !up {
                let at = ev["at_ns"].as_u64().unwrap();
                latencies.push(ev["seen_ns"].as_u64().unwrap().saturating_sub(at));
                to_test.push(arrived.saturating_sub(at));
            }
        }
        // 50 ms flaps: none may be missed.
        std::thread::sleep(Duration::from_millis(50));
    }
    let entry = bpftool_dump("/sys/fs/bpf/ipmpd/hooknic/LINK_STATE");
    let v = entry
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == ifindex)
        .expect("entry")["value"]
        .clone();
    assert_eq!(v["flaps"], 20, "{v}");
    assert_eq!(
        v["source"], 4,
        "the last writer of the map is the hook: {v}"
    );
    assert_eq!(v["hook_records_lost"], 0, "{v}");
    let (p50, p99) = (pct(&mut latencies, 50), pct(&mut latencies, 99));
    eprintln!(
        "hook: carrier loss reached ipmpd after p50 {} us, p99 {} us (this test, through a pipe: p99 {} us); idle CPU {idle_pct:.2} % over {:.1} s (time scale x{:.1})",
        p50 / 1000,
        p99 / 1000,
        pct(&mut to_test, 99) / 1000,
        (t1 - t0) as f64 / 1e9,
        tests::time_scale()
    );
    assert!(
        p99 <= tests::scaled_ns(1_000_000),
        "p99 {p99} ns from the change to ipmpd's watcher"
    );
    assert!(idle_pct < 0.5, "idle CPU {idle_pct:.2} %");
}

/// A macvlan over a NIC-like link: the kernel copies the link's carrier loss to the macvlan only
/// when linkwatch handles the link (held here, as on a busy host). The hook records the loss on
/// the link itself, within the command that made it, and the macvlan member goes down with it.
#[test]
fn the_hook_takes_a_macvlan_down_with_the_nic_below_at_once() {
    if !tests::privileged() {
        return;
    }
    let Some(lan) = nic_like_lan_with_the_hook() else {
        return;
    };
    lan.host()
        .sh("ip link add link h0 name mv0 type macvlan mode bridge && ip link set mv0 up");
    lan.add_spare_nic_like();
    let below = lan.host().ifindex("h0");
    let mut d = watch(&lan, "mv0", "hookmv");
    // The device below has an entry for the hook to write.
    assert!(
        daemon::poll_until(tests::scaled(Duration::from_secs(2)), || {
            daemon::link_state_entry("hookmv", below).is_some()
        }),
        "no LINK_STATE entry for h0, below mv0"
    );
    for round in 0..5u64 {
        lan.hold_linkwatch();
        let cut = lan.switch().set_link_fast("sw-h0", false);
        let ev = d
            .wait_for(Duration::from_secs(3), |v| {
                v["event"] == "link" && v["change"] == "down" && v["flaps"] == 2 * round + 1
            })
            .unwrap_or_else(|| panic!("round {round}: the loss not seen"));
        assert_eq!(ev["interface"], "mv0", "{ev}");
        assert_eq!(ev["source"], 4, "round {round}: the hook saw it: {ev}");
        let at = ev["at_ns"].as_u64().unwrap();
        assert!(
            (cut.began_ns..=cut.in_force_ns).contains(&at),
            "round {round}: stamped {} us after the command that cut h0 returned: mv0's own change, not h0's",
            at.saturating_sub(cut.in_force_ns) / 1000
        );
        lan.switch().set_link_fast("sw-h0", true);
        d.wait_for(Duration::from_secs(3), |v| {
            v["event"] == "link" && v["change"] == "up" && v["flaps"] == 2 * round + 2
        })
        .unwrap_or_else(|| panic!("round {round}: the repair not seen"));
    }
    let h0 = daemon::link_state_entry("hookmv", below).expect("h0's entry");
    assert_eq!(h0["source"], 4, "the hook writes h0's entry: {h0}");
}

#[test]
fn a_group_fails_over_on_carrier_loss_through_the_chosen_carrier_source() {
    if !tests::privileged() {
        return;
    }
    fails_over_on_carrier_loss("h0");
}

/// The same with the member a macvlan on the NIC-like h0, and linkwatch held (as on a busy host):
/// the kernel would tell of the macvlan's loss up to a second late; the hook records h0's.
#[test]
fn a_macvlan_member_fails_over_on_its_nics_carrier_loss_without_waiting_for_linkwatch() {
    if !tests::privileged() {
        return;
    }
    fails_over_on_carrier_loss("h0m");
}

/// A group of `member` (h0, or h0m: a macvlan on h0) and h1, both NIC-like: h0's carrier loss
/// fails `member` and moves the data address to h1 far inside a second.
fn fails_over_on_carrier_loss(member: &str) {
    let lan = Lan::new(true, true);
    let (hook, _) = hook_in_use(lan.host());
    let stacked = member != "h0";
    if stacked {
        lan.host().sh(&format!(
            "ip link add link h0 name {member} type macvlan mode bridge && ip link set {member} up \
             && ip addr del 192.0.2.10/24 dev h0 && ip addr add 192.0.2.10/24 dev {member}"
        ));
        lan.add_spare_nic_like();
    }
    let cfg = RunConfig::new(
        if stacked { "mvfail" } else { "hookfail" },
        &GROUP.replace("[interface.h0]", &format!("[interface.{member}]")),
        None,
    );
    let (mut d, chosen) = spawn_ready(&cfg, lan.host(), &[]);
    assert_eq!(
        chosen["params"]["carrier_source"],
        if hook { "kernel hook" } else { "carrier poll" }
    );
    d.wait_for(Duration::from_secs(5), |v| {
        v["probe"]["event"] == "probe_acked" && v["probe"]["ifname"] == member
    })
    .expect("the member is probed");
    // The daemon knows the member's kind from its link dump: replies at TC ingress on a veth
    // where the kernel has TCX, by XDP on the macvlan and on kernels without TCX.
    let at_tc = chosen["params"]["tc_attach"] == "tcx" && !stacked;
    let idx = lan.host().ifindex(member);
    let pins = daemon::link_pins(&cfg.instance);
    assert_eq!(
        (
            pins.contains(&format!("tcx-ingress-{idx}")),
            pins.contains(&format!("xdp-{idx}"))
        ),
        (at_tc, !at_tc),
        "{chosen} {pins:?}"
    );
    if stacked {
        lan.hold_linkwatch();
    }
    d.seen.clear();
    let cut = lan.switch().set_link_fast("sw-h0", false).in_force_ns;
    let link = d
        .wait_for(Duration::from_secs(3), |v| {
            v["event"] == "link" && v["ifname"] == member && v["change"] == "down"
        })
        .expect("the loss is seen");
    // Without the hook, a notification may still come first where linkwatch was not held (the
    // hold is a race with the kernel's own pace); link_state's macvlan test times the poll.
    if hook {
        assert_eq!(link["source"], "kernel hook", "{link}");
    } else {
        assert!(
            link["source"] == "carrier poll" || link["source"] == "rtnetlink notification",
            "{link}"
        );
    }
    let failed = wait_event(
        &mut d,
        Duration::from_secs(2),
        "ipmultipath.interface.failed",
        Some(member),
    )
    .expect("failed");
    let moved = wait_event(
        &mut d,
        Duration::from_secs(2),
        "ipmultipath.address.moved",
        None,
    )
    .expect("moved");
    assert_eq!(moved["params"]["to"], "h1");
    let took = failed["at_ns"].as_u64().unwrap().saturating_sub(cut);
    eprintln!(
        "carrier loss to interface.failed on {member}: {} us through the {}",
        took / 1000,
        link["source"]
    );
    // Far inside a second: not waiting for linkwatch's batched notification.
    assert!(
        took < tests::scaled_ns(100_000_000),
        "{took} ns from the cut to the failure"
    );
}

/// aya's own records (through the `log` crate) reach ipmpd's log like its own, filtered by
/// `IPMPD_LOG`: what aya detected and loaded is there when an operator asks for it.
/// Pins left by a build whose maps had another shape are dropped, not adopted: here an
/// `IFACE_COUNTERS` with the 88-byte values of the builds before the stamp count moved out of it.
/// Adopted, its programs would write one layout and the counter reads expect another, with a
/// per-CPU read overrunning its buffer. The daemon says why, starts from scratch, and its fresh
/// map has this build's shape, counts and detects.
#[test]
fn pinned_maps_of_another_builds_shape_are_replaced_not_adopted() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, false);
    let cfg = RunConfig::new("oldshape", GROUP, None);
    let dir = format!("/sys/fs/bpf/ipmpd/{}", cfg.instance);
    std::fs::create_dir_all(format!("{dir}/links")).expect("pin directory");
    let stale = format!("{dir}/IFACE_COUNTERS");
    let created = std::process::Command::new("bpftool")
        .args(["map", "create", &stale, "type", "percpu_hash", "key", "4"])
        .args(["value", "88", "entries", "4096", "name", "IFACE_COUNTERS"])
        .output()
        .expect("bpftool runs");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let log = cfg.dir.join("stderr");
    let args = cfg.run_args();
    let mut d = Daemon::spawn_logged(
        lan.host(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &[("IPMPD_LOG", "info")],
        &log,
    );
    d.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("ready despite the stale pin");
    let stderr = strip_ansi(&std::fs::read_to_string(&log).unwrap_or_default());
    assert!(
        stderr.contains("the pinned maps are of another build's shape; starting from scratch")
            && stderr.contains(
                "IFACE_COUNTERS: pinned with type 5, key 4 bytes, value 88 bytes, 4096 entries"
            ),
        "{stderr}"
    );
    let shown = std::process::Command::new("bpftool")
        .args(["-j", "map", "show", "pinned", &stale])
        .output()
        .expect("bpftool runs");
    let shown: Value = serde_json::from_slice(&shown.stdout).expect("bpftool prints JSON");
    assert_eq!(
        shown["bytes_value"].as_u64(),
        Some(size_of::<agent_common::counters::IfaceCounters>() as u64),
        "the pin was replaced by this build's map: {shown}"
    );
    // Replies are counted in the fresh map, field by field as this build lays them out.
    let h0 = lan.host().ifindex("h0");
    let counted = daemon::poll_until(Duration::from_secs(5), || {
        daemon::per_cpu_sums(&stale, h0)
            .is_some_and(|sums| sums["probe_replies"].as_u64().is_some_and(|n| n > 0))
    });
    assert!(counted, "h0's probe replies are counted");
    cut_h0_and_expect_failed(&lan, &mut d, "the started-afresh datapath detects");
    d.stop();
    let (ok, _, err) = daemon::run(lan.host(), &["detach", "--instance", &cfg.instance]);
    assert!(ok, "{err}");
}

#[test]
fn ayas_log_records_reach_ipmpds_log() {
    if !tests::privileged() {
        return;
    }
    let out = std::process::Command::new(daemon::binary())
        .args(["features", "--json"])
        .env("IPMPD_LOG", "aya=debug")
        .output()
        .expect("ipmpd runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.lines()
            .any(|l| l.contains("aya::bpf") && l.contains("BPF Feature Detection")),
        "no record of aya's in the log: {err}"
    );
    let quiet = std::process::Command::new(daemon::binary())
        .args(["features", "--json"])
        .output()
        .expect("ipmpd runs");
    assert!(
        !String::from_utf8_lossy(&quiet.stderr).contains("aya::"),
        "aya's debug records are shown without IPMPD_LOG asking for them"
    );
}

/// Every TCX attachment waits for an RCU grace period under the RTNL; a start with many members
/// expedites grace periods for the batch and puts `/sys/kernel/rcu_expedited` back, and a marker
/// a crashed ipmpd left makes the next start put it back too.
#[test]
fn many_tcx_attachments_and_detachments_expedite_grace_periods_and_put_the_switch_back() {
    const KNOB: &str = "/sys/kernel/rcu_expedited";
    if !tests::privileged() {
        return;
    }
    let Ok(found) = std::fs::read_to_string(KNOB) else {
        tests::not_run("this kernel has no /sys/kernel/rcu_expedited");
        return;
    };
    if found.trim() != "0" {
        tests::not_run("this machine expedites RCU grace periods already (rcu_expedited is set)");
        return;
    }
    let mut topo = tests::topology::Topology::default();
    let (host, peer) = (topo.ns("rcuh"), topo.ns("rcup"));
    let members = 12;
    let mut group = String::from("[group.g]\nfdt_ms = 1000\n\n");
    for i in 0..members {
        topo.veth(host, &format!("m{i}"), peer, &format!("p{i}"), None);
        let addr = format!("169.254.7.{}", 10 + i);
        topo.at(host).sh(&format!("ip addr add {addr}/24 dev m{i}"));
        group += &format!(
            "[interface.m{i}]\ngroup = \"g\"\ntest_addresses = [\"{addr}\"]\ntargets = [\"169.254.7.1\"]\n\n"
        );
    }
    let cfg = RunConfig::new("rcu", &group, None);
    let (ok, out, err) = daemon::run(topo.at(host), &["features", "--json", "m0"]);
    assert!(ok, "ipmpd features failed: {err}");
    let f: Value = serde_json::from_str(out.trim()).expect("one JSON object");
    if f["tc"]["mode"] != "tcx" {
        assert_ne!(
            tests::expected("TC").as_deref(),
            Some("tcx"),
            "this kernel must attach with TCX, but ipmpd chose {}",
            f["tc"]["mode"]
        );
        tests::not_run("no TCX here: clsact filters wait for no grace period");
        return;
    }
    // A marker as a crash mid-batch leaves it: the switch set, the value found before in the file.
    let marker = format!("/run/ipmpd/{}.rcu_expedited", cfg.instance);
    std::fs::create_dir_all("/run/ipmpd").unwrap();
    std::fs::write(&marker, "0").unwrap();
    std::fs::write(KNOB, "1").unwrap();
    // Whatever happens below, the machine gets back its switch and loses the marker.
    let _restore = Restore {
        knob: KNOB,
        value: found.trim().to_owned(),
        marker: marker.clone(),
    };
    let log = cfg.dir.join("stderr");
    let mut d = Daemon::spawn_logged(
        topo.at(host),
        &cfg.run_args()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &[("IPMPD_LOG", "info")],
        &log,
    );
    d.wait_for(Duration::from_secs(30), |v| v["event"] == "ready")
        .expect("ready");
    let knob = std::fs::read_to_string(KNOB).unwrap();
    let stderr = strip_ansi(&std::fs::read_to_string(&log).unwrap_or_default());
    d.stop();
    // The stopped daemon left its datapath pinned; detaching it expedites the same way.
    let (ok, detached, err) = daemon::run(topo.at(host), &["detach", "--instance", &cfg.instance]);
    assert!(ok, "ipmpd detach failed: {err}");
    // Two TCX links per veth member: the egress stamper and the reply program at ingress.
    let links = 2 * members;
    assert!(
        detached.contains(&format!(
            "RCU grace periods expedited for {links} TCX detachments"
        )),
        "{detached}"
    );
    assert_eq!(
        std::fs::read_to_string(KNOB).unwrap().trim(),
        "0",
        "detach put the switch back"
    );
    assert_eq!(knob.trim(), "0", "the switch is put back: {stderr}");
    assert!(!std::path::Path::new(&marker).exists(), "marker removed");
    assert!(
        stderr.contains("put back /sys/kernel/rcu_expedited"),
        "the crashed run's switch was put back at start: {stderr}"
    );
    assert!(
        stderr.contains("RCU grace periods expedited")
            && stderr.contains(&format!("attachments={members}")),
        "the batch of {members} TCX attachments was expedited: {stderr}"
    );
}

/// `text` without its terminal colour sequences (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Puts a sysfs switch back and removes a marker file when dropped (also on a failed assertion).
struct Restore {
    knob: &'static str,
    value: String,
    marker: String,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = std::fs::write(self.knob, &self.value);
        let _ = std::fs::remove_file(&self.marker);
    }
}
