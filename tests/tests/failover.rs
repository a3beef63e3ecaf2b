//! Failover on Linux: the group's data address moves to a working member and the neighbours learn
//! it at once from the announcements.

use std::time::Duration;

use tests::{
    daemon::{Daemon, RunConfig, poll_until, wait_event},
    topology::Lan,
};

fn holder(lan: &Lan) -> Option<String> {
    ["h0", "h1"]
        .into_iter()
        .find(|i| {
            lan.host()
                .sh(&format!("ip -o addr show dev {i}"))
                .contains("192.0.2.100/24")
        })
        .map(str::to_owned)
}

/// Waits for the data address to be moved, then checks it is on `to`.
fn expect_moved_to(d: &mut Daemon, lan: &Lan, to: &str, what: &str) {
    wait_event(d, Duration::from_secs(3), "ipmultipath.address.moved", None)
        .unwrap_or_else(|| panic!("{what}: no move reported"));
    assert_eq!(holder(lan).as_deref(), Some(to), "{what}");
}

/// Waits up to `timeout` for `ifname` to become active (or inactive).
fn expect_active(d: &mut Daemon, ifname: &str, active: bool, timeout: Duration, what: &str) {
    d.wait_for(timeout, |v| {
        v["event"] == "active" && v["ifname"] == ifname && v["active"] == active
    })
    .unwrap_or_else(|| panic!("{what}"));
}

/// [`GROUP`] with the route `198.51.100.0/24 via 192.0.2.1` (the router has 198.51.100.1).
fn group_with_route() -> String {
    GROUP.replace(
        "data_addresses",
        "routes = [\"198.51.100.0/24 via 192.0.2.1\"]\ndata_addresses",
    )
}

const GROUP: &str = "[group.g]\nfdt_ms = 300\ndata_addresses = [\"192.0.2.100/24\"]\n\n\
    [interface.h0]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.10\"]\ntargets = [\"192.0.2.1\"]\n\n\
    [interface.h1]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.11\"]\ntargets = [\"192.0.2.1\"]\n";

#[test]
fn the_data_address_moves_on_silent_loss_and_carrier_loss_and_neighbours_follow() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    let cfg = RunConfig::new("failover", GROUP, None);
    let mut d = cfg.spawn(lan.host());
    d.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("daemon ready");
    assert_eq!(
        holder(&lan).as_deref(),
        Some("h0"),
        "placed on the first active member"
    );
    assert!(
        lan.router().try_sh("ping -c 2 -i 0.2 -W 1 192.0.2.100"),
        "the peer reaches the data address"
    );
    let neigh = |lan: &Lan| lan.router().sh("ip neigh show 192.0.2.100 dev r0");
    assert!(neigh(&lan).contains(&lan.host().mac("h0")));
    std::thread::sleep(Duration::from_millis(1200)); // past the neighbour entry's locktime

    d.seen.clear();
    lan.switch().drop_all("sw-h0");
    let moved = wait_event(
        &mut d,
        Duration::from_secs(5),
        "ipmultipath.address.moved",
        None,
    )
    .expect("moved");
    assert_eq!(
        (
            moved["params"]["from"].as_str(),
            moved["params"]["to"].as_str()
        ),
        (Some("h0"), Some("h1"))
    );
    assert_eq!(
        holder(&lan).as_deref(),
        Some("h1"),
        "added on h1 and removed from h0"
    );
    let h1_mac = lan.host().mac("h1");
    poll_until(tests::scaled(Duration::from_secs(2)), || {
        neigh(&lan).contains(&h1_mac)
    });
    assert!(
        neigh(&lan).contains(&h1_mac),
        "the gratuitous ARP updated the peer: {}",
        neigh(&lan)
    );
    assert!(
        lan.router().try_sh("ping -c 2 -i 0.2 -W 1 192.0.2.100"),
        "the flow resumes through h1"
    );

    lan.switch().undrop_all("sw-h0");
    wait_event(
        &mut d,
        Duration::from_secs(5),
        "ipmultipath.interface.repaired",
        Some("h0"),
    )
    .expect("repaired");
    d.seen.clear();
    std::thread::sleep(Duration::from_millis(1200));
    // A single address stays where it is after a repair: h1 holds its share (rebalancing needs two).
    assert_eq!(holder(&lan).as_deref(), Some("h1"));

    lan.switch().link_down("sw-h1");
    let moved = wait_event(
        &mut d,
        Duration::from_secs(5),
        "ipmultipath.address.moved",
        None,
    )
    .expect("moved back on carrier loss");
    assert_eq!(moved["params"]["to"], "h0");
    assert_eq!(holder(&lan).as_deref(), Some("h0"));
}

#[test]
fn a_restart_moves_nothing() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    let cfg = RunConfig::new("restart", GROUP, None);
    let mut d = cfg.spawn(lan.host());
    d.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("daemon ready");
    // While it is stopped, the address ends up elsewhere (as a previous process may have left
    // it): the next start adopts it there. (With the daemon running, it would follow the change.)
    d.stop();
    lan.host()
        .sh("ip addr del 192.0.2.100/24 dev h0 && ip addr add 192.0.2.100/24 dev h1");
    let mut d = cfg.spawn(lan.host());
    d.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("restarted");
    let moved: Vec<serde_json::Value> = d
        .drain()
        .iter()
        .filter(|v| v["event"] == "ipmultipath.address.moved")
        .cloned()
        .collect();
    assert!(moved.is_empty(), "adopted where it was: {moved:?}");
    assert_eq!(holder(&lan).as_deref(), Some("h1"));
}

#[test]
fn arp_flux_settings_are_set_on_members_and_restored_on_a_clean_stop() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    let get = |key: &str| {
        lan.host()
            .sh(&format!("cat /proc/sys/net/ipv4/conf/h0/{key}"))
            .trim()
            .to_owned()
    };
    assert_eq!(
        (get("arp_ignore"), get("arp_announce")),
        ("0".into(), "0".into())
    );
    let cfg = RunConfig::new("arpflux", GROUP, None);
    let mut d = cfg.spawn(lan.host());
    d.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("daemon ready");
    assert_eq!(
        (get("arp_ignore"), get("arp_announce")),
        ("1".into(), "2".into())
    );
    d.stop();
    assert_eq!(
        (get("arp_ignore"), get("arp_announce")),
        ("0".into(), "0".into()),
        "restored"
    );
    assert_eq!(
        holder(&lan).as_deref(),
        Some("h0"),
        "the data address stays after a stop"
    );
}

#[test]
fn the_groups_routes_use_only_active_members() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    lan.router().sh("ip addr add 198.51.100.1/32 dev lo");
    let cfg = RunConfig::new("routes-mp", &group_with_route(), None);
    let mut d = cfg.spawn(lan.host());
    d.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("daemon ready");
    let route = |lan: &Lan| lan.host().sh("ip route show 198.51.100.0/24");
    let r = route(&lan);
    assert!(
        r.contains("dev h0") && r.contains("dev h1") && r.contains("via 192.0.2.1"),
        "multipath over both members: {r}"
    );
    assert!(lan.host().try_sh("ping -c 2 -i 0.2 -W 1 198.51.100.1"));
    d.seen.clear();
    lan.switch().drop_all("sw-h0");
    wait_event(
        &mut d,
        Duration::from_secs(5),
        "ipmultipath.interface.failed",
        Some("h0"),
    )
    .expect("h0 failed");
    let only_h1 = |r: &str| r.contains("dev h1") && !r.contains("dev h0");
    poll_until(tests::scaled(Duration::from_secs(2)), || {
        only_h1(&route(&lan))
    });
    let r = route(&lan);
    assert!(only_h1(&r), "only the active member is left: {r}");
    assert!(
        lan.host().try_sh("ping -c 3 -i 0.2 -W 1 198.51.100.1"),
        "traffic to the group's route flows through h1"
    );
}

#[test]
fn sigkill_and_restart_move_nothing_and_drop_no_packet_of_a_steady_flow() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    let cfg = RunConfig::new("sigkill", GROUP, None);
    let mut d = cfg.spawn(lan.host());
    d.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("daemon ready");
    assert!(lan.router().try_sh("ping -c 1 -W 1 192.0.2.100"));
    // 400 packets, one every 10 ms, from the peer to the data address.
    let flow = lan.router().ping_flow("192.0.2.100", 400);
    std::thread::sleep(Duration::from_millis(800));
    d.kill_and_reap();
    assert!(
        tests::daemon::reply_program_on(lan.host(), &cfg.instance, "h0"),
        "the pinned link of the reply program outlives the killed daemon"
    );
    let mut d2 = cfg.spawn(lan.host());
    d2.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("restarted");
    let summary = flow.loss();
    assert!(
        summary.contains(" 0% packet loss"),
        "no packet lost across the restart: {summary}"
    );
    assert!(
        d2.drain()
            .iter()
            .all(|v| v["event"] != "ipmultipath.address.moved"),
        "nothing moved"
    );
    assert_eq!(holder(&lan).as_deref(), Some("h0"));
    // The restarted daemon still detects failures through the adopted datapath.
    d2.seen.clear();
    lan.switch().drop_all("sw-h0");
    wait_event(
        &mut d2,
        Duration::from_secs(5),
        "ipmultipath.interface.failed",
        Some("h0"),
    )
    .expect("adopted datapath works");
}

#[test]
fn an_ipv6_data_address_moves_and_unsolicited_neighbour_advertisements_update_the_peer() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    let group = GROUP.replace("\"192.0.2.100/24\"", "\"2001:db8::100/64\"");
    let cfg = RunConfig::new("v6addr", &group, None);
    let mut d = cfg.spawn(lan.host());
    d.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("daemon ready");
    let has = |ifname: &str| {
        lan.host()
            .sh(&format!("ip -o -6 addr show dev {ifname}"))
            .contains("2001:db8::100/64")
    };
    assert!(has("h0"));
    assert!(
        lan.router()
            .try_sh("ping -6 -c 2 -i 0.2 -W 1 2001:db8::100"),
        "the peer reaches the IPv6 data address"
    );
    let neigh = |lan: &Lan| lan.router().sh("ip -6 neigh show 2001:db8::100 dev r0");
    assert!(neigh(&lan).contains(&lan.host().mac("h0")));
    std::thread::sleep(Duration::from_millis(1200));
    d.seen.clear();
    lan.switch().drop_all("sw-h0");
    wait_event(
        &mut d,
        Duration::from_secs(5),
        "ipmultipath.address.moved",
        None,
    )
    .expect("moved");
    assert!(has("h1") && !has("h0"));
    let h1_mac = lan.host().mac("h1");
    poll_until(tests::scaled(Duration::from_secs(2)), || {
        neigh(&lan).contains(&h1_mac)
    });
    assert!(
        neigh(&lan).contains(&h1_mac),
        "the unsolicited NA updated the peer: {}",
        neigh(&lan)
    );
    assert!(
        lan.router()
            .try_sh("ping -6 -c 2 -i 0.2 -W 1 2001:db8::100"),
        "the flow resumes through h1"
    );
}

#[test]
fn failback_no_keeps_the_repaired_member_inactive_and_the_address_where_it_is() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    let cfg = RunConfig::new("failback", GROUP, Some("FAILBACK=no\n"));
    let mut d = cfg.spawn(lan.host());
    d.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("daemon ready");
    // The first reply ends the start-up quiet period; before it, losses do not count.
    d.wait_for(Duration::from_secs(5), |v| {
        v["probe"]["event"] == "probe_acked" && v["probe"]["ifname"] == "h0"
    })
    .expect("h0 probes answered");
    d.seen.clear();
    lan.switch().drop_all("sw-h0");
    wait_event(
        &mut d,
        Duration::from_secs(5),
        "ipmultipath.address.moved",
        None,
    )
    .expect("moved to h1");
    lan.switch().undrop_all("sw-h0");
    wait_event(
        &mut d,
        Duration::from_secs(5),
        "ipmultipath.interface.repaired",
        Some("h0"),
    )
    .expect("repaired");
    std::thread::sleep(Duration::from_millis(500));
    let after: Vec<serde_json::Value> = d.drain().to_vec();
    assert!(
        !after
            .iter()
            .any(|v| v["event"] == "active" && v["ifname"] == "h0" && v["active"] == true),
        "FAILBACK=no: h0 stays inactive after its repair"
    );
    assert_eq!(
        holder(&lan).as_deref(),
        Some("h1"),
        "the address stays on h1"
    );
}

#[test]
fn a_standby_member_takes_over_and_steps_back() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    let group = GROUP.replace(
        "test_addresses = [\"192.0.2.11\"]",
        "standby = true\ntest_addresses = [\"192.0.2.11\"]",
    );
    let cfg = RunConfig::new("standby", &group, None);
    let mut d = cfg.spawn(lan.host());
    let ready = d
        .wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("daemon ready");
    let h1 = ready["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["ifname"] == "h1")
        .unwrap()
        .clone();
    assert_eq!(
        (h1["standby"].as_bool(), h1["active"].as_bool()),
        (Some(true), Some(false)),
        "standby inactive until needed"
    );
    d.seen.clear();
    lan.switch().link_down("sw-h0");
    expect_active(
        &mut d,
        "h1",
        true,
        Duration::from_secs(3),
        "standby activated",
    );
    expect_moved_to(&mut d, &lan, "h1", "address on the standby");
    d.seen.clear();
    lan.switch().link_up("sw-h0");
    expect_active(
        &mut d,
        "h1",
        false,
        Duration::from_secs(5),
        "standby steps back",
    );
    expect_moved_to(&mut d, &lan, "h0", "address back on h0");
}

#[test]
fn offline_and_online_move_the_address_and_the_last_usable_member_is_refused() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    let cfg = RunConfig::new("offline", GROUP, None);
    let mut d = cfg.spawn(lan.host());
    d.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("daemon ready");
    let sock = format!("/run/ipmpd/{}.sock", cfg.instance);
    let admin = |verb: &str, ifname: &str| {
        tests::daemon::run(lan.host(), &[verb, ifname, "--socket", &sock])
    };
    d.seen.clear();
    let (ok, _, err) = admin("offline", "h0");
    assert!(ok, "offline h0: {err}");
    expect_moved_to(&mut d, &lan, "h1", "the address leaves the offlined member");
    let (ok, _, err) = admin("offline", "h1");
    assert!(!ok);
    assert!(
        err.contains("cannot offline h1: no other functioning interfaces are in its IPMP group"),
        "{err}"
    );
    let (ok, _, err) = admin("offline", "h0");
    assert!(!ok && err.contains("already offline"), "{err}");
    let (ok, _, err) = admin("online", "h1");
    assert!(!ok && err.contains("is not offline"), "{err}");
    let (ok, _, err) = admin("offline", "nosuch");
    assert!(
        !ok && err.contains("nosuch: not a physical interface or not in an IPMP group"),
        "{err}"
    );
    let (ok, _, err) = admin("online", "h0");
    assert!(ok, "online h0: {err}");
    expect_active(
        &mut d,
        "h0",
        true,
        Duration::from_secs(3),
        "h0 active again",
    );
    // Without privileges: refused, and the daemon keeps answering.
    let (ok, _, err) =
        tests::daemon::run_unprivileged(lan.host(), &["offline", "h1", "--socket", &sock]);
    assert!(!ok && err.contains("permission denied"), "{err}");
    let (ok, _, err) = tests::daemon::run(
        lan.host(),
        &["online", "h1", "--socket", "/run/ipmpd/nonexistent.sock"],
    );
    assert!(!ok && err.contains("cannot contact ipmpd"), "{err}");
}

#[test]
fn malformed_oversized_and_half_open_requests_do_not_stall_the_daemon() {
    use std::{
        io::{BufRead as _, BufReader, Write as _},
        os::unix::{fs::PermissionsExt as _, net::UnixStream},
    };
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    let cfg = RunConfig::new("robust", GROUP, None);
    let mut d = cfg.spawn(lan.host());
    d.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("daemon ready");
    let sock = format!("/run/ipmpd/{}.sock", cfg.instance);
    let mode = |p: &str| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        (mode(&sock), mode("/run/ipmpd")),
        (0o666, 0o755),
        "anyone may connect; changes are checked per request"
    );
    // 100 half-open connections, 200 connections of random bytes, and a 100 MB line.
    let mut half_open = Vec::new();
    for _ in 0..100 {
        half_open.push(UnixStream::connect(&sock).unwrap());
    }
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..200 {
        let mut c = UnixStream::connect(&sock).unwrap();
        let junk: Vec<u8> = (0..512)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let _ = c.write_all(&junk);
    }
    let big = sock.clone();
    let flood = std::thread::spawn(move || {
        let mut huge = UnixStream::connect(&big).unwrap();
        let _ = huge.set_write_timeout(Some(Duration::from_secs(5)));
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..100 {
            if huge.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    // A correct query still gets its answer within 100 ms.
    let t = std::time::Instant::now();
    let mut q = UnixStream::connect(&sock).unwrap();
    q.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    q.write_all(b"{\"request\":\"ping\"}\n").unwrap();
    let mut answer = String::new();
    BufReader::new(q).read_line(&mut answer).unwrap();
    let took = t.elapsed();
    assert!(answer.contains("pong"), "{answer}");
    assert!(
        took < tests::scaled(Duration::from_millis(100)),
        "answered in {took:?}"
    );
    let _ = flood.join();
    let (ok, _, err) = tests::daemon::run(lan.host(), &["offline", "nosuch", "--socket", &sock]);
    assert!(!ok && err.contains("not a physical interface"), "{err}");
    assert!(d.running(), "no crash");
    drop(half_open);
}

/// A TCP client in the host namespace talking to the echo server at 198.51.100.1:7000.
struct TcpClient {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    stdin: std::process::ChildStdin,
}

impl TcpClient {
    fn connect(lan: &Lan) -> (Self, String) {
        use std::io::BufRead as _;
        let helper = concat!(env!("CARGO_MANIFEST_DIR"), "/helpers/tcp_echo.py");
        let mut child = lan
            .host()
            .command("python3")
            .args([helper, "client", "198.51.100.1", "7000"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let local = lines
            .recv_timeout(tests::scaled(Duration::from_secs(10)))
            .expect("connected");
        (
            Self {
                child,
                lines,
                stdin,
            },
            local,
        )
    }

    /// Sends `msg` and waits up to 15 s for its echo on the same connection.
    fn echo(&mut self, msg: &str) -> String {
        use std::io::Write as _;
        writeln!(self.stdin, "{msg}").unwrap();
        self.lines
            .recv_timeout(tests::scaled(Duration::from_secs(15)))
            .unwrap_or_else(|_| "timeout".into())
    }
}

impl Drop for TcpClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_connection_the_host_opens_without_binding_survives_a_silent_and_a_carrier_fault() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    lan.router().sh("ip addr add 198.51.100.1/32 dev lo");
    let cfg = RunConfig::new("tcp", &group_with_route(), None);
    let mut d = cfg.spawn(lan.host());
    d.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("daemon ready");
    d.wait_for(Duration::from_secs(3), |v| {
        v["probe"]["event"] == "probe_acked" && v["probe"]["ifname"] == "h0"
    })
    .expect("h0 probing");
    let helper = concat!(env!("CARGO_MANIFEST_DIR"), "/helpers/tcp_echo.py");
    let _server = Daemon::spawn_command(
        lan.router(),
        &["python3", helper, "server", "198.51.100.1", "7000"],
    );
    let (mut c, local) = TcpClient::connect(&lan);
    assert!(
        local.starts_with("local 192.0.2.100 "),
        "the kernel picked the data address, which moves, not a test address, which does not: {local}"
    );
    assert_eq!(c.echo("before"), "echo before");
    // Silent fault of the member holding the data address (it carries the connection inbound).
    d.seen.clear();
    lan.switch().drop_all("sw-h0");
    expect_moved_to(&mut d, &lan, "h1", "silent fault");
    assert_eq!(
        c.echo("after-silent"),
        "echo after-silent",
        "same connection"
    );
    lan.switch().undrop_all("sw-h0");
    wait_event(
        &mut d,
        Duration::from_secs(5),
        "ipmultipath.interface.repaired",
        Some("h0"),
    )
    .expect("h0 repaired");
    d.seen.clear();
    // Carrier fault of the member holding it now.
    lan.switch().link_down("sw-h1");
    expect_moved_to(&mut d, &lan, "h0", "carrier fault");
    assert_eq!(
        c.echo("after-carrier"),
        "echo after-carrier",
        "same connection"
    );
}
