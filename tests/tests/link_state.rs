//! The link-state mirror: carrier changes reach the pinned map and userspace, also on NIC-like
//! veths (equal ifindex on both ends) whose rtnetlink notifications come late or not at all.

use std::time::Duration;

use serde_json::Value;
use tests::{
    daemon::{self, Daemon, link_state_entry},
    topology::Lan,
};

fn link_state(instance: &str, ifindex: u32) -> Value {
    link_state_entry(instance, ifindex).expect("entry for the interface")
}

fn is_change(v: &Value, change: &str) -> bool {
    v["event"] == "link" && v["change"] == change
}

/// Sum of carrier transitions the events report.
fn transitions(events: &[Value]) -> u64 {
    events
        .iter()
        .filter(|v| v["event"] == "link")
        .map(|v| match &v["change"] {
            Value::String(s) if s == "down" || s == "up" => 1,
            Value::Object(o) => o
                .get("flapped")
                .and_then(|f| f["transitions"].as_u64())
                .unwrap_or(0),
            _ => 0,
        })
        .sum()
}

#[test]
fn carrier_change_reaches_the_pinned_map_and_userspace() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, false);
    let ifindex = lan.host().ifindex("h0");
    let mut d = Daemon::spawn(
        lan.host(),
        &["watch", "h0", "--json", "--instance", "lsmap"],
    );
    d.wait_for(Duration::from_secs(10), |v| is_change(v, "initial"))
        .expect("initial state");
    assert_eq!(link_state("lsmap", ifindex)["carrier"], 1);
    lan.switch().link_down("sw-h0");
    let ev = d
        .wait_for(Duration::from_secs(3), |v| is_change(v, "down"))
        .expect("userspace sees the loss");
    assert_eq!(ev["interface"], "h0");
    let s = link_state("lsmap", ifindex);
    assert_eq!(
        (s["carrier"].as_u64(), s["flaps"].as_u64()),
        (Some(0), Some(1)),
        "{s}"
    );
    assert_eq!(s["last_change_ns"], ev["at_ns"]);
    lan.switch().link_up("sw-h0");
    d.wait_for(Duration::from_secs(3), |v| is_change(v, "up"))
        .expect("and the repair");
    let s = link_state("lsmap", ifindex);
    assert_eq!(
        (s["carrier"].as_u64(), s["flaps"].as_u64()),
        (Some(1), Some(2)),
        "{s}"
    );
}

#[test]
fn nic_like_carrier_loss_is_seen_within_two_poll_intervals() {
    if !tests::privileged() {
        return;
    }
    nic_like_loss_within_two_polls(0, "nicpoll", false);
}

/// On a host with many more devices than members, the poll asks for each member alone (ethtool
/// LINKSTATE_GET per device) instead of dumping them all: the same bound holds.
#[test]
fn nic_like_carrier_loss_is_seen_within_two_poll_intervals_among_many_devices() {
    if !tests::privileged() {
        return;
    }
    nic_like_loss_within_two_polls(8, "nicpollmany", false);
}

/// A macvlan on a NIC-like link: the kernel copies the link's carrier to it only when linkwatch
/// handles the link (up to a second late, whatever the poll reads from the macvlan itself). The
/// poll reads the device below, so the same bound holds, both ways of asking.
#[test]
fn nic_like_carrier_loss_below_a_macvlan_is_seen_within_two_poll_intervals() {
    if !tests::privileged() {
        return;
    }
    nic_like_loss_within_two_polls(0, "nicpollmv", true);
    nic_like_loss_within_two_polls(8, "nicpollmvmany", true);
}

/// Five losses and repairs of h0, a NIC-like link, each seen within two poll intervals of a fixed
/// 10 ms poll, with `extra_pairs` more veth pairs (carrier up) on the host; with `stacked`, on a
/// macvlan over h0 (the member) rather than on h0.
fn nic_like_loss_within_two_polls(extra_pairs: usize, instance: &str, stacked: bool) {
    let lan = Lan::new(false, true);
    for i in 0..extra_pairs {
        lan.host()
            .sh(&format!("ip link add x{i} type veth peer name xp{i} && ip link set x{i} up && ip link set xp{i} up"));
    }
    let member = if stacked {
        lan.host()
            .sh("ip link add link h0 name mv0 type macvlan mode bridge && ip link set mv0 up");
        // Linkwatch held before each loss: the kernel copies h0's loss to mv0 (and notifies
        // it) late, as on a busy host; only a poll of h0 meets the bound.
        lan.add_spare_nic_like();
        "mv0"
    } else {
        "h0"
    };
    let poll_us = 10_000u64;
    let mut d = Daemon::spawn(
        lan.host(),
        &[
            "watch",
            member,
            "--json",
            "--instance",
            instance,
            // The poll, also where the kernel allows the carrier hook (the way it asks is the
            // test), at a fixed interval, not stretched by the CPU budget: the poll is timed.
            "--carrier",
            "poll",
            "--link-poll-cpu",
            "100",
            "--link-poll-us",
            &poll_us.to_string(),
        ],
    );
    d.wait_for(Duration::from_secs(10), |v| is_change(v, "initial"))
        .expect("initial state");
    let way = d
        .wait_for(Duration::from_secs(10), |v| v["event"] == "carrier_poll")
        .expect("the poll says how it asks");
    let many = extra_pairs > 0;
    assert_eq!(
        way["way"],
        if many { "each member" } else { "dump" },
        "{way}"
    );
    assert_eq!(way["members"], 1, "{way}");
    let mut by_source = std::collections::BTreeMap::new();
    for round in 0..5 {
        if stacked {
            lan.hold_linkwatch();
        }
        let after = lan.switch().set_link_timed("sw-h0", false).in_force_ns;
        let ev = d
            .wait_for(Duration::from_secs(3), |v| {
                is_change(v, "down") && v["flaps"] == 2 * round + 1
            })
            .expect("loss seen");
        assert_eq!(ev["interface"], member, "{ev}");
        let at = ev["at_ns"].as_u64().unwrap();
        assert!(
            at <= after + tests::scaled_ns(2 * poll_us * 1000),
            "round {round}: seen {} us after the change completed; limit two poll intervals ({} us, \
             time scale x{})",
            (at.saturating_sub(after)) / 1000,
            2 * poll_us,
            tests::time_scale()
        );
        *by_source
            .entry(ev["source_name"].as_str().unwrap_or("?").to_owned())
            .or_insert(0) += 1;
        lan.switch().set_link_timed("sw-h0", true);
        d.wait_for(Duration::from_secs(3), |v| {
            is_change(v, "up") && v["flaps"] == 2 * round + 2
        })
        .expect("repair seen");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("who saw the 5 losses first: {by_source:?}");
    // The notifications of a NIC-like link come late: the poll, whichever way it asks, sees it.
    assert!(
        by_source.contains_key("carrier poll"),
        "the poll saw none of the 5 losses first: {by_source:?}"
    );
}

#[test]
fn nic_like_50ms_flaps_are_never_missed() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, true);
    let ifindex = lan.host().ifindex("h0");
    let mut d = Daemon::spawn(
        lan.host(),
        &[
            "watch",
            "h0",
            "--json",
            "--instance",
            "nicflap",
            // A fixed interval, not stretched by the CPU budget: the poll itself is timed.
            "--link-poll-cpu",
            "100",
            "--link-poll-us",
            "10000",
        ],
    );
    d.wait_for(Duration::from_secs(10), |v| is_change(v, "initial"))
        .expect("initial state");
    for _ in 0..10 {
        lan.switch().link_down("sw-h0");
        std::thread::sleep(Duration::from_millis(50));
        lan.switch().link_up("sw-h0");
        std::thread::sleep(Duration::from_millis(150));
    }
    // Every flap reported within a bound; then a look, longer than the old pause after the last
    // flap, for any extra one.
    daemon::poll_until(tests::scaled(Duration::from_secs(3)), || {
        transitions(d.drain()) >= 20
    });
    std::thread::sleep(Duration::from_millis(300));
    let events = d.drain().to_vec();
    assert_eq!(
        transitions(&events),
        20,
        "every one of 10 down/up flaps reported: {events:?}"
    );
    daemon::poll_until(tests::scaled(Duration::from_secs(1)), || {
        link_state("nicflap", ifindex)["flaps"] == 20
    });
    assert_eq!(link_state("nicflap", ifindex)["flaps"], 20);
}

#[test]
fn a_flap_shorter_than_the_poll_interval_is_still_counted() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, true);
    let ifindex = lan.host().ifindex("h0");
    // A 500 ms poll and a flap of a few ms: the kernel's carrier counters give it away.
    let mut d = Daemon::spawn(
        lan.host(),
        &[
            "watch",
            "h0",
            "--json",
            "--instance",
            "shortflap",
            // A fixed interval, not stretched by the CPU budget: the poll itself is timed.
            "--link-poll-cpu",
            "100",
            "--link-poll-us",
            "500000",
        ],
    );
    d.wait_for(Duration::from_secs(10), |v| is_change(v, "initial"))
        .expect("initial state");
    lan.switch()
        .sh("ip link set sw-h0 down && ip link set sw-h0 up");
    // The next poll, at most 500 ms away, sees the counters moved.
    daemon::poll_until(tests::scaled(Duration::from_secs(2)), || {
        transitions(d.drain()) >= 2
    });
    // Then more than one poll interval more: a later poll must not report the flap again.
    std::thread::sleep(tests::scaled(Duration::from_millis(600)));
    let events = d.drain().to_vec();
    assert_eq!(transitions(&events), 2, "{events:?}");
    daemon::poll_until(tests::scaled(Duration::from_secs(1)), || {
        link_state("shortflap", ifindex)["flaps"] == 2
    });
    assert_eq!(link_state("shortflap", ifindex)["flaps"], 2);
}

/// A link event of `change` stamped at or after `after_ns`.
fn since(v: &Value, change: &str, after_ns: u64) -> bool {
    is_change(v, change) && v["at_ns"].as_u64() >= Some(after_ns)
}

/// A veth whose ends have different indexes: the kernel notifies its carrier changes at once, so
/// the poll (asked for at a fixed 1 ms, which costs a few % of a core where it runs) is off and
/// the notifications alone see the loss. The interface then comes back under its index with
/// equal indexes on both ends, batched like a NIC's: the poll turns on for it and sees the loss
/// first.
#[test]
fn the_poll_is_off_while_the_kernel_notifies_every_member_at_once() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, false);
    lan.plug_notified_at_once("h2", "192.0.2.12/24", 40, 41);
    assert_eq!(lan.host().ifindex("h2"), 40);
    let mut d = Daemon::spawn(
        lan.host(),
        &[
            "watch",
            "h2",
            "--json",
            "--instance",
            "polloff",
            "--carrier",
            "poll",
            "--link-poll-cpu",
            "100",
            "--link-poll-us",
            "1000",
        ],
    );
    d.wait_for(Duration::from_secs(10), |v| is_change(v, "initial"))
        .expect("initial state");
    let way = d
        .wait_for(Duration::from_secs(10), |v| v["event"] == "carrier_poll")
        .expect("the poll says it is off");
    assert_eq!(
        (&way["way"], &way["members"]),
        (&"off".into(), &1.into()),
        "{way}"
    );
    // Nothing wakes the watcher thread while nothing changes.
    let link_thread = || {
        tests::procstat::threads_cpu_ns_by_name(d.pid())
            .get("ipmpd-link")
            .copied()
            .expect("the daemon's ipmpd-link thread")
    };
    let before = link_thread();
    std::thread::sleep(Duration::from_secs(1));
    let spent = link_thread() - before;
    assert!(
        spent < 2_000_000,
        "the watcher thread spent {spent} ns in a second with the poll off"
    );
    let cut = lan.switch().set_link_timed("sw-h2", false);
    let ev = d
        .wait_for(Duration::from_secs(3), |v| since(v, "down", cut.began_ns))
        .expect("loss seen");
    assert_eq!(ev["source_name"], "rtnetlink notification", "{ev}");
    let at = ev["at_ns"].as_u64().unwrap();
    assert!(
        at <= cut.in_force_ns + tests::scaled_ns(20_000_000),
        "notified {} us after the change completed",
        at.saturating_sub(cut.in_force_ns) / 1000
    );
    let repair = lan.switch().set_link_timed("sw-h2", true);
    d.wait_for(Duration::from_secs(3), |v| since(v, "up", repair.began_ns))
        .expect("repair seen");

    // Re-created under the same index, now NIC-like.
    lan.unplug("h2");
    d.wait_for(Duration::from_secs(3), |v| is_change(v, "removed"))
        .expect("removal seen");
    let replugged = tests::monotonic_ns();
    lan.plug_with_index("h2", "192.0.2.12/24", Some(40));
    let way = d
        .wait_for(Duration::from_secs(3), |v| {
            v["event"] == "carrier_poll" && v["way"] != "off"
        })
        .expect("the poll turns on");
    assert_eq!(
        (&way["way"], &way["members"]),
        (&"dump".into(), &1.into()),
        "{way}"
    );
    d.wait_for(Duration::from_secs(3), |v| {
        v["event"] == "link" && v["carrier"] == true && v["at_ns"].as_u64() >= Some(replugged)
    })
    .expect("carrier back");
    let cut = lan.switch().set_link_timed("sw-h2", false);
    let ev = d
        .wait_for(Duration::from_secs(3), |v| since(v, "down", cut.began_ns))
        .expect("loss seen");
    assert_eq!(ev["source_name"], "carrier poll", "{ev}");
    let at = ev["at_ns"].as_u64().unwrap();
    assert!(
        at <= cut.in_force_ns + tests::scaled_ns(20_000_000),
        "polled {} us after the change completed",
        at.saturating_sub(cut.in_force_ns) / 1000
    );
}
