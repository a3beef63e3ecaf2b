//! The daemon follows a host that does not stand still: interfaces that appear after it, vanish,
//! come back with a new index or a new name, VLANs with dots in their names, test addresses that
//! come and go, routes, rules and addresses other programs remove, reloads, restarts.

use std::time::{Duration, Instant};

use serde_json::Value;
use tests::{
    daemon::{self, Daemon, RunConfig, poll_until, probe_id_value, wait_event, wakes_within},
    topology::Lan,
};

const FDT_MS: u64 = 300;

/// A group of `members` (name, test address) with a data address and a route.
fn group(members: &[(&str, &str)]) -> String {
    let mut s = format!(
        "[group.g]\nfdt_ms = {FDT_MS}\ntable = 1000\ndata_addresses = [\"192.0.2.100/24\"]\nroutes = [\"198.51.100.0/24 via 192.0.2.1\"]\n"
    );
    for (name, test) in members {
        s.push_str(&format!(
            "\n[interface.\"{name}\"]\ngroup = \"g\"\ntest_addresses = [\"{test}\"]\ntargets = [\"192.0.2.1\"]\n"
        ));
    }
    s
}

fn acked_on(v: &Value, ifname: &str) -> bool {
    v["probe"]["event"] == "probe_acked" && v["probe"]["ifname"] == ifname
}

fn ready(d: &mut Daemon) -> Value {
    d.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("daemon ready")
}

/// `ipmpd stat -i -P -o interface,group,state,link` of the daemon of `cfg`.
fn stat_i(lan: &Lan, cfg: &RunConfig) -> String {
    let (ok, out, err) = daemon::run(
        lan.host(),
        &[
            "stat",
            "-i",
            "-P",
            "-o",
            "interface,group,active,state,link",
            "--instance",
            &cfg.instance,
        ],
    );
    assert!(ok, "{err}");
    out
}

fn holder(lan: &Lan) -> Option<String> {
    let out = lan.host().sh("ip -o addr show to 192.0.2.100/32");
    out.split_whitespace().nth(1).map(str::to_owned)
}

/// Whether `cfg`'s daemon takes replies on `ifname` (XDP, or TC ingress on veth with TCX).
fn attached(lan: &Lan, cfg: &RunConfig, ifname: &str) -> bool {
    daemon::reply_program_on(lan.host(), &cfg.instance, ifname)
}

fn pins(cfg: &RunConfig) -> Vec<String> {
    daemon::link_pins(&cfg.instance)
}

#[test]
fn an_interface_created_after_start_is_tracked_within_a_second_and_again_after_it_is_recreated() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, false);
    let cfg = RunConfig::new(
        "late",
        &group(&[("h0", "192.0.2.10"), ("h1", "192.0.2.11")]),
        None,
    );
    let mut d = cfg.spawn(lan.host());
    wait_event(
        &mut d,
        Duration::from_secs(10),
        "ipmultipath.setup.waiting",
        Some("h1"),
    )
    .expect("the absent member is said to be waited for");
    ready(&mut d);
    // From before the interface exists: `plug` creates, addresses and raises it (several `ip` runs).
    let t0 = Instant::now();
    lan.plug("h1", "192.0.2.11/24");
    let tracked = wait_event(
        &mut d,
        Duration::from_secs(1),
        "ipmultipath.setup.tracked",
        Some("h1"),
    )
    .expect("tracked within a second");
    eprintln!("h1 tracked {:?} after its creation began", t0.elapsed());
    let first = tracked["params"]["ifindex"].as_u64().unwrap();
    d.wait_for(Duration::from_secs(3), |v| acked_on(v, "h1"))
        .expect("and probing");
    assert!(attached(&lan, &cfg, "h1"));
    assert!(daemon::has_reply_pin(&pins(&cfg), first));
    // Deleted: let go; created again (a new index): tracked again, the programs on the new device.
    lan.unplug("h1");
    wait_event(
        &mut d,
        Duration::from_secs(2),
        "ipmultipath.setup.untracked",
        Some("h1"),
    )
    .expect("untracked when deleted");
    d.seen.clear();
    lan.plug_with_index(
        "h1",
        "192.0.2.11/24",
        Some(u32::try_from(first).unwrap() + 100),
    );
    let again = wait_event(
        &mut d,
        Duration::from_secs(1),
        "ipmultipath.setup.tracked",
        Some("h1"),
    )
    .expect("tracked again");
    let second = again["params"]["ifindex"].as_u64().unwrap();
    assert_ne!(first, second, "a new device");
    d.seen.clear();
    d.wait_for(Duration::from_secs(3), |v| acked_on(v, "h1"))
        .expect("probing on the new device");
    assert!(attached(&lan, &cfg, "h1"));
    let p = pins(&cfg);
    assert!(daemon::has_reply_pin(&p, second), "{p:?}");
    assert!(
        !daemon::has_reply_pin(&p, first),
        "nothing left of the old device: {p:?}"
    );
    // The new device's identity is in the datapath, the old one's is gone, and its wake bit
    // follows the new member: clear while it runs, set once it fails.
    let (first, second) = (
        u32::try_from(first).unwrap(),
        u32::try_from(second).unwrap(),
    );
    assert_eq!(
        probe_id_value(&cfg.instance, first),
        None,
        "the old device's identity"
    );
    let limit = tests::scaled(Duration::from_secs(3));
    assert!(
        !wakes_within(&cfg.instance, second, false, limit),
        "a running member's replies wait for the loop"
    );
    lan.switch().drop_all("sw-h1");
    wait_event(
        &mut d,
        Duration::from_secs(3),
        "ipmultipath.interface.failed",
        Some("h1"),
    )
    .expect("the new device fails");
    assert!(
        wakes_within(&cfg.instance, second, true, limit),
        "a failed member's replies wake the loop"
    );
}

/// Polls (every 20 ms, for at most 2 s scaled) until instance `instance`'s pinned link state of
/// `ifindex` says carrier `want` on an interface that is up, as observed (a zeroed entry says
/// carrier 0 too, with no source).
fn mirrored_carrier(instance: &str, ifindex: u32, want: u64) -> bool {
    let mut last = None;
    let seen = poll_until(tests::scaled(Duration::from_secs(2)), || {
        last = daemon::link_state_entry(instance, ifindex);
        last.as_ref().is_some_and(|v| {
            v["carrier"].as_u64() == Some(want) && v["source"] != 0 && v["admin_up"] == 1
        })
    });
    if !seen {
        eprintln!("link state of {ifindex}: {last:?}");
    }
    seen
}

/// A member that appears without carrier is mirrored down once it is tracked, and is probed once
/// its carrier comes. (The link watcher asks the kernel for a new member's state; the XDP attach's
/// own link notification may say it first, so this does not isolate that request:
/// `netlink_dumps` tests it.) In the VMs the mirror's first look at h1 comes while it is still
/// administratively down: the pinned flag must follow it up though the carrier does not change.
#[test]
fn a_member_that_appears_without_carrier_is_mirrored_down_and_probed_once_it_comes() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, false);
    let cfg = RunConfig::new(
        "nocarrier",
        &group(&[("h0", "192.0.2.10"), ("h1", "192.0.2.11")]),
        None,
    );
    let mut d = cfg.spawn(lan.host());
    ready(&mut d);
    lan.plug_without_carrier("h1", "192.0.2.11/24");
    let tracked = wait_event(
        &mut d,
        Duration::from_secs(2),
        "ipmultipath.setup.tracked",
        Some("h1"),
    )
    .expect("h1 tracked");
    let ifindex = u32::try_from(tracked["params"]["ifindex"].as_u64().unwrap()).unwrap();
    assert!(
        mirrored_carrier(&cfg.instance, ifindex, 0),
        "h1 appeared without carrier"
    );
    lan.switch().link_up("sw-h1");
    assert!(
        mirrored_carrier(&cfg.instance, ifindex, 1),
        "h1's carrier came"
    );
    d.wait_for(Duration::from_secs(3), |v| acked_on(v, "h1"))
        .expect("h1 probed once its carrier came");
}

#[test]
fn a_renamed_interface_takes_no_programs_along_and_a_dotted_name_works() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, false);
    // Named like a VLAN (the kernels of the test machines have no 8021q; the name is what
    // matters: pins named after interfaces could not hold a dot).
    lan.plug("h1.100", "192.0.2.11/24");
    let text = group(&[("h0", "192.0.2.10"), ("h1.100", "192.0.2.11")]);
    let cfg = RunConfig::new("rename", &text, None);
    let mut d = cfg.spawn(lan.host());
    ready(&mut d);
    d.wait_for(Duration::from_secs(3), |v| acked_on(v, "h1.100"))
        .expect("an interface with a dot in its name is probed");
    let dotted = lan.host().ifindex("h1.100");
    assert!(daemon::has_reply_pin(&pins(&cfg), dotted));
    let idx = lan.host().ifindex("h0");
    assert!(daemon::has_reply_pin(&pins(&cfg), idx));
    lan.host()
        .sh("ip link set h0 down && ip link set h0 name uplink0 && ip link set uplink0 up");
    wait_event(
        &mut d,
        Duration::from_secs(2),
        "ipmultipath.setup.untracked",
        Some("h0"),
    )
    .expect("the name is gone: so is the member");
    assert!(
        !attached(&lan, &cfg, "uplink0"),
        "the programs do not follow the old name"
    );
    assert!(!daemon::has_reply_pin(&pins(&cfg), idx));
    // Renamed back: tracked again, same device.
    d.seen.clear();
    lan.host()
        .sh("ip link set uplink0 down && ip link set uplink0 name h0 && ip link set h0 up");
    let t = wait_event(
        &mut d,
        Duration::from_secs(2),
        "ipmultipath.setup.tracked",
        Some("h0"),
    )
    .expect("tracked again");
    assert_eq!(t["params"]["ifindex"], idx);
    assert!(attached(&lan, &cfg, "h0"));
}

#[test]
fn a_reload_naming_an_absent_interface_keeps_running_and_tracks_it_when_it_appears() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, false);
    let cfg = RunConfig::new("reloadlate", &group(&[("h0", "192.0.2.10")]), None);
    let mut d = cfg.spawn(lan.host());
    ready(&mut d);
    let pid = d.pid();
    std::fs::write(
        cfg.dir.join("ipmpd.toml"),
        group(&[("h0", "192.0.2.10"), ("h1", "192.0.2.11")]),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    wait_event(
        &mut d,
        Duration::from_secs(3),
        "ipmultipath.setup.waiting",
        Some("h1"),
    )
    .expect("the new member is waited for");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        d.running(),
        "a reload naming an absent interface is no reason to stop"
    );
    assert_eq!(d.pid(), pid);
    lan.plug("h1", "192.0.2.11/24");
    wait_event(
        &mut d,
        Duration::from_secs(1),
        "ipmultipath.setup.tracked",
        Some("h1"),
    )
    .expect("tracked when it appears");
    assert!(
        d.drain()
            .iter()
            .all(|v| v["event"] != "ipmultipath.setup.untracked"),
        "h0 untouched by the reload"
    );
}

#[test]
fn a_test_address_added_later_starts_probing_with_no_fdt_raise_and_one_removed_stops_it() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    lan.host().sh("ip addr del 192.0.2.11/24 dev h1");
    let cfg = RunConfig::new(
        "lateaddr",
        &group(&[("h0", "192.0.2.10"), ("h1", "192.0.2.11")]),
        None,
    );
    let mut d = cfg.spawn(lan.host());
    ready(&mut d);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        d.drain().iter().all(|v| !acked_on(v, "h1")),
        "nothing to probe from yet"
    );
    lan.host().sh("ip addr add 192.0.2.11/24 dev h1");
    d.wait_for(Duration::from_secs(3), |v| acked_on(v, "h1"))
        .expect("probing starts when the address appears");
    std::thread::sleep(Duration::from_secs(2));
    let seen = d.drain().to_vec();
    assert!(
        seen.iter().all(|v| v["event"] != "ipmultipath.fdt.raised"),
        "no FDT raise from a late test address"
    );
    assert!(
        seen.iter()
            .all(|v| v["event"] != "ipmultipath.testaddr.missing"),
        "within in.mpathd's 20 s grace: nothing to say"
    );
    lan.host().sh("ip addr del 192.0.2.11/24 dev h1");
    // Probes in flight may still be reported lost; then a full second without any from h1.
    let deadline = Instant::now() + tests::scaled(Duration::from_secs(5));
    let mut quiet = false;
    while !quiet && Instant::now() < deadline {
        d.seen.clear();
        std::thread::sleep(Duration::from_secs(1));
        quiet = d.drain().iter().all(|v| v["probe"]["ifname"] != "h1");
    }
    assert!(quiet, "probing stopped");
    assert!(d.running());
}

#[test]
fn no_test_address_is_reported_after_the_grace_period_an_unowned_one_is_never_used_and_recovery_is_said()
 {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    // 192.0.2.99 is a typo: the host does not have it.
    let cfg = RunConfig::new(
        "grace",
        &group(&[("h0", "192.0.2.10"), ("h1", "192.0.2.99")]),
        None,
    );
    let mut d = cfg.spawn(lan.host());
    let t0 = Instant::now();
    ready(&mut d);
    let missing = wait_event(
        &mut d,
        Duration::from_secs(25),
        "ipmultipath.testaddr.missing",
        Some("h1"),
    )
    .expect("reported after the grace period");
    let after = t0.elapsed();
    assert!(
        after >= Duration::from_secs(19),
        "not before 20 s: {after:?}"
    );
    assert_eq!(
        missing["message"],
        "No test address configured on interface h1 disabling probe-based failure detection on it"
    );
    let seen = d.drain().to_vec();
    assert!(
        seen.iter().all(|v| v["probe"]["ifname"] != "h1"),
        "an address the host does not own is never probed from"
    );
    // The typo's interface is h1; with no usable test address only its carrier could fail it.
    // h0 probes every 43 ms from its first answer on, and in a guest under TCG sharing two cores
    // with another, one stall of a quarter of a second loses five of its probes: a failure by
    // in.mpathd's rules, not a consequence of h1's typo. (A fresh-clone CI run on the 6.1 guest
    // saw an interface fail here, without saying which; the message now names it.)
    let failures: Vec<&Value> = seen
        .iter()
        .filter(|v| v["event"] == "ipmultipath.interface.failed")
        .collect();
    assert!(
        failures.iter().all(|v| v["params"]["ifname"] != "h1"),
        "no false failure from a typo: {failures:?}"
    );
    lan.host().sh("ip addr add 192.0.2.99/24 dev h1");
    wait_event(
        &mut d,
        Duration::from_secs(2),
        "ipmultipath.testaddr.recovered",
        Some("h1"),
    )
    .expect("the recovery is said");
    d.wait_for(Duration::from_secs(3), |v| acked_on(v, "h1"))
        .expect("and probing starts");
}

#[test]
fn without_a_group_file_every_interface_is_tracked_in_the_anonymous_group() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    let cfg = RunConfig::new("nofile", "", Some("TRACK_INTERFACES_ONLY_WITH_GROUPS=no\n"));
    std::fs::remove_file(cfg.dir.join("ipmpd.toml")).unwrap();
    let mut d = cfg.spawn(lan.host());
    let r = ready(&mut d);
    let names: Vec<&str> = r["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["ifname"].as_str())
        .collect();
    assert!(names.contains(&"h0") && names.contains(&"h1"), "{names:?}");
    lan.switch().link_down("sw-h0");
    wait_event(
        &mut d,
        Duration::from_secs(3),
        "ipmultipath.interface.failed",
        Some("h0"),
    )
    .expect("link-based detection");
    lan.plug("h2", "192.0.2.12/24");
    wait_event(
        &mut d,
        Duration::from_secs(1),
        "ipmultipath.setup.tracked",
        Some("h2"),
    )
    .expect("an interface that appears joins");
}

#[test]
fn routes_rules_and_data_addresses_someone_removes_are_restored_within_one_fdt() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    let cfg = RunConfig::new(
        "restore",
        &group(&[("h0", "192.0.2.10"), ("h1", "192.0.2.11")]),
        None,
    );
    let mut d = cfg.spawn(lan.host());
    ready(&mut d);
    let h = lan.host();
    assert!(
        h.sh("ip route show proto 233").contains("198.51.100.0/24"),
        "{}",
        h.sh("ip route")
    );
    assert!(
        h.sh("ip rule show")
            .contains("from 192.0.2.100 lookup 1000")
    );
    for (what, cmd, check) in [
        (
            "route",
            "ip route del 198.51.100.0/24",
            "ip route show 198.51.100.0/24 proto 233",
        ),
        (
            "rule",
            "ip rule del from 192.0.2.100 lookup 1000",
            "ip rule show from 192.0.2.100",
        ),
        (
            "address",
            "ip addr del 192.0.2.100/24 dev h0",
            "ip -o addr show to 192.0.2.100/32",
        ),
    ] {
        d.seen.clear();
        let t0 = Instant::now();
        h.sh(cmd);
        let ev = wait_event(
            &mut d,
            Duration::from_millis(FDT_MS),
            "ipmultipath.host.restored",
            None,
        )
        .unwrap_or_else(|| panic!("the {what} is restored within one FDT"));
        eprintln!(
            "{what} restored after {:?}: {}",
            t0.elapsed(),
            ev["message"]
        );
        assert!(
            !h.sh(check).trim().is_empty(),
            "{what} back: {}",
            h.sh(check)
        );
    }
    assert!(lan.router().try_sh("ping -c 1 -W 1 192.0.2.100"));
}

#[test]
fn what_an_earlier_configuration_left_is_removed_on_reload_and_start() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    let cfg = RunConfig::new(
        "stale",
        &group(&[("h0", "192.0.2.10"), ("h1", "192.0.2.11")]),
        None,
    );
    let mut d = cfg.spawn(lan.host());
    ready(&mut d);
    // Another group name, table, data address and route: the old ones must go.
    let new = group(&[("h0", "192.0.2.10"), ("h1", "192.0.2.11")])
        .replace("table = 1000", "table = 1001")
        .replace("192.0.2.100/24", "192.0.2.101/24")
        .replace("198.51.100.0/24", "203.0.113.0/24");
    std::fs::write(cfg.dir.join("ipmpd.toml"), &new).unwrap();
    d.seen.clear();
    d.signal(libc::SIGHUP);
    ready(&mut d);
    let h = lan.host();
    let routes = h.sh("ip route show table all proto 233");
    assert!(
        !routes.contains("198.51.100.0/24") && routes.contains("203.0.113.0/24"),
        "{routes}"
    );
    assert!(!routes.contains("table 1000"), "{routes}");
    let rules = h.sh("ip rule show");
    assert!(
        !rules.contains("192.0.2.100") && rules.contains("from 192.0.2.101 lookup 1001"),
        "{rules}"
    );
    assert!(holder(&lan).is_none(), "the old data address is gone");
    // A stop and a start with yet another configuration: the same on start.
    d.stop();
    std::fs::write(
        cfg.dir.join("ipmpd.toml"),
        group(&[("h0", "192.0.2.10"), ("h1", "192.0.2.11")]),
    )
    .unwrap();
    let mut d = cfg.spawn(lan.host());
    ready(&mut d);
    let routes = h.sh("ip route show table all proto 233");
    assert!(
        !routes.contains("203.0.113.0/24") && routes.contains("198.51.100.0/24"),
        "{routes}"
    );
    assert!(!h.sh("ip rule show").contains("192.0.2.101"));
    assert!(h.sh("ip -o addr show to 192.0.2.101/32").trim().is_empty());
    assert_eq!(holder(&lan).as_deref(), Some("h0"));
}

#[test]
fn a_member_failed_before_a_restart_is_still_failed_after_it_and_gets_no_data_address() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    let cfg = RunConfig::new(
        "prior",
        &group(&[("h0", "192.0.2.10"), ("h1", "192.0.2.11")]),
        None,
    );
    let mut d = cfg.spawn(lan.host());
    ready(&mut d);
    // Past the start-up quiet period's first answer: losses count from here.
    d.wait_for(Duration::from_secs(3), |v| acked_on(v, "h0"))
        .expect("h0 probing");
    lan.switch().drop_all("sw-h0");
    wait_event(
        &mut d,
        Duration::from_secs(3),
        "ipmultipath.interface.failed",
        Some("h0"),
    )
    .expect("silent fault detected");
    poll_until(tests::scaled(Duration::from_secs(2)), || {
        holder(&lan).as_deref() == Some("h1")
    });
    assert_eq!(holder(&lan).as_deref(), Some("h1"));
    // A crash in the middle of the fault, and a new process.
    d.kill_and_reap();
    let mut d = cfg.spawn(lan.host());
    let r = ready(&mut d);
    let h0 = r["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["ifname"] == "h0")
        .unwrap()
        .clone();
    assert_eq!(h0["state"], "failed", "still failed: {h0}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        holder(&lan).as_deref(),
        Some("h1"),
        "no data address moves onto it"
    );
    assert!(
        d.drain()
            .iter()
            .all(|v| v["event"] != "ipmultipath.address.moved")
    );
    assert!(
        stat_i(&lan, &cfg).contains("h0:g:no:failed:up"),
        "{}",
        stat_i(&lan, &cfg)
    );
    // Repaired by in.mpathd's rules: 10 probes answered.
    lan.switch().undrop_all("sw-h0");
    wait_event(
        &mut d,
        Duration::from_secs(5),
        "ipmultipath.interface.repaired",
        Some("h0"),
    )
    .expect("repaired by probes");
}

#[test]
fn starting_before_the_interfaces_exist_ends_in_the_same_state_as_starting_after() {
    if !tests::privileged() {
        return;
    }
    let text = group(&[("h0", "192.0.2.10"), ("h1", "192.0.2.11")]);
    let kernel_view = |lan: &Lan| {
        let h = lan.host();
        let addrs = h.sh("ip -o addr show to 192.0.2.100/32 | cut -d' ' -f2");
        let routes =
            h.sh("ip route show table all proto 233 | sed 's/dev [^ ]*//g; s/  */ /g' | sort");
        let rules = h.sh("ip rule show | grep 192.0.2.100 || true");
        format!("{addrs}|{routes}|{rules}")
    };
    // Interfaces first, then the daemon.
    let lan = Lan::new(true, false);
    let cfg = RunConfig::new("order1", &text, None);
    let mut d = cfg.spawn(lan.host());
    ready(&mut d);
    // Settled: both members probed and in use; the data address, its route and its rule in place.
    let settled = |lan: &Lan, cfg: &RunConfig| {
        let stat = stat_i(lan, cfg);
        let kernel = kernel_view(lan);
        let parts: Vec<&str> = kernel.split('|').collect();
        stat.contains("h0:g:yes:ok:up")
            && stat.contains("h1:g:yes:ok:up")
            && parts.iter().all(|p| !p.trim().is_empty())
            && parts[1].contains("198.51.100.0/24")
    };
    assert!(
        poll_until(tests::scaled(Duration::from_secs(5)), || settled(
            &lan, &cfg
        )),
        "interfaces first: never settled: {}{}",
        stat_i(&lan, &cfg),
        kernel_view(&lan)
    );
    let (stat_a, kernel_a) = (stat_i(&lan, &cfg), kernel_view(&lan));
    drop(d);
    drop(lan);
    // The daemon first, then the interfaces.
    let lan = Lan::new(false, false);
    lan.unplug("h0");
    let cfg = RunConfig::new("order2", &text, None);
    let mut d = cfg.spawn(lan.host());
    ready(&mut d);
    lan.plug("h0", "192.0.2.10/24");
    lan.plug("h1", "192.0.2.11/24");
    lan.host()
        .sh("sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2");
    wait_event(
        &mut d,
        Duration::from_secs(2),
        "ipmultipath.setup.tracked",
        Some("h1"),
    )
    .expect("h1");
    // The same end state, reached (or not) within a bound rather than after a guessed pause.
    poll_until(tests::scaled(Duration::from_secs(5)), || {
        stat_i(&lan, &cfg) == stat_a && kernel_view(&lan) == kernel_a
    });
    let (stat_b, kernel_b) = (stat_i(&lan, &cfg), kernel_view(&lan));
    assert_eq!(stat_a, stat_b, "ipmpd stat -i -P");
    assert_eq!(kernel_a, kernel_b, "addresses, routes and rules");
    assert!(
        stat_b.contains("h0:g:yes:ok:up") && stat_b.contains("h1:g:yes:ok:up"),
        "{stat_b}"
    );
}

#[test]
fn the_next_hops_of_a_multipath_route_become_router_targets() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, false);
    lan.router().sh("ip addr add 192.0.2.2/24 dev r0");
    let text = format!(
        "[group.g]\nfdt_ms = {FDT_MS}\n\n[interface.h0]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.10\"]\n"
    );
    let cfg = RunConfig::new("mpath", &text, None);
    let mut d = cfg.spawn(lan.host());
    ready(&mut d);
    lan.host()
        .sh("ip route add 198.51.100.0/24 nexthop via 192.0.2.1 nexthop via 192.0.2.2");
    let targets = |lan: &Lan| {
        let (ok, out, err) = daemon::run(
            lan.host(),
            &[
                "stat",
                "-t",
                "-P",
                "-o",
                "interface,targets",
                "--instance",
                &cfg.instance,
            ],
        );
        assert!(ok, "{err}");
        out
    };
    poll_until(tests::scaled(Duration::from_secs(3)), || {
        targets(&lan).split_whitespace().count() >= 2
    });
    let got = targets(&lan);
    let mut found: Vec<&str> = got
        .trim()
        .trim_start_matches("h0:")
        .split_whitespace()
        .collect();
    found.sort_unstable();
    assert_eq!(found, ["192.0.2.1", "192.0.2.2"], "{got}");
}
