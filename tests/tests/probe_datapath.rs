//! The probe datapath end to end in network namespaces: the real `ipmpd probe`, real veths.

use std::time::Duration;

use serde_json::Value;
use tests::{
    daemon::{self, Daemon, bpftool_dump},
    topology::Lan,
};

fn summary(out: &str) -> Value {
    out.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "summary")
        .expect("a summary line")
}

#[test]
fn ipv4_probes_get_kernel_stamped_rtts() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, false);
    let (ok, out, err) = daemon::run(
        lan.host(),
        &["probe", "h0", "192.0.2.1", "-c", "10", "-i", "20", "--json"],
    );
    assert!(ok, "ipmpd probe failed: {err}");
    let s = summary(&out);
    assert_eq!(s["sent"], 10);
    assert_eq!(s["received"], 10, "{out}");
    assert_eq!(
        s["net_rtt"]["count"], 10,
        "every reply carries both kernel stamps"
    );
    let net_median = s["net_rtt"]["median_ns"].as_u64().unwrap();
    let user_median = s["user_rtt"]["median_ns"].as_u64().unwrap();
    assert!(
        net_median > 0 && net_median < user_median,
        "kernel RTT {net_median} ns inside userspace RTT {user_median} ns"
    );
    assert_eq!(s["datapath"]["probe_replies"], 10);
    assert_eq!(s["datapath"]["probes_stamped"], 10);
    // The diagnostic leaves nothing attached or pinned behind.
    assert!(
        !std::path::Path::new("/sys/fs/bpf/ipmpd/probe-h0").exists(),
        "no pins left behind"
    );
    assert!(
        !lan.host().try_sh("ip link show h0 | grep -q xdp"),
        "XDP detached on exit"
    );
}

#[test]
fn ipv6_probes_from_link_local_test_addresses() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, false);
    let target = lan.router().link_local("r0");
    let (ok, out, err) = daemon::run(
        lan.host(),
        &["probe", "h0", &target, "-c", "5", "-i", "20", "--json"],
    );
    assert!(ok, "ipmpd probe failed: {err}");
    let s = summary(&out);
    assert_eq!(s["received"], 5, "{out}");
    assert_eq!(s["net_rtt"]["count"], 5);
    let reply = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "reply")
        .unwrap();
    assert_eq!(reply["target"], target.as_str());
}

#[test]
fn forged_and_invalid_replies_are_counted_by_reason_and_never_accepted() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, false);
    let mut d = Daemon::spawn(
        lan.host(),
        &[
            "probe",
            "h0",
            "192.0.2.1",
            "-i",
            "50",
            "--json",
            "--instance",
            "forge",
        ],
    );
    d.wait_for(Duration::from_secs(10), |v| v["event"] == "reply")
        .expect("probing works");
    let pid = lan.host().sh("pgrep -f 'ipmpd probe h0 192.0.2.1'");
    let pid: u32 = pid.split_whitespace().next().unwrap().parse().unwrap();
    let ifindex = lan.host().ifindex("h0");
    let id = ((pid & 0xff) << 8) | (ifindex & 0xff);
    let forge = concat!(env!("CARGO_MANIFEST_DIR"), "/helpers/forge_reply.py");
    for kind in ["magic", "version", "cksum", "truncated", "badtag", "ping"] {
        lan.router()
            .sh(&format!("python3 {forge} 192.0.2.10 {id} {kind} 3"));
    }
    // The kernel's counters, read the way an operator would.
    let mut counters = Value::Null;
    for _ in 0..50 {
        // bpftool prints named fields per CPU thanks to BTF.
        let sums = daemon::per_cpu_sums("/sys/fs/bpf/ipmpd/forge/IFACE_COUNTERS", ifindex)
            .expect("entry for h0");
        let sum = |field: &str| sums[field].as_u64().expect(field);
        counters = serde_json::json!({
            "magic": sum("rejected_magic"), "version": sum("rejected_version"),
            "cksum": sum("rejected_checksum_type"), "truncated": sum("rejected_truncated"),
        });
        if counters["truncated"] == 3 && counters["magic"] == 6 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        counters["magic"], 6,
        "wrong magic and plain pings: {counters}"
    );
    assert_eq!(counters["version"], 3, "{counters}");
    assert_eq!(counters["cksum"], 3, "{counters}");
    assert_eq!(counters["truncated"], 3, "{counters}");
    d.stop();
    let s = d
        .seen
        .iter()
        .find(|v| v["event"] == "summary")
        .expect("summary on SIGTERM")
        .clone();
    assert_eq!(
        s["rejected"]["bad_tag"], 3,
        "forged tags reach userspace and are refused: {s}"
    );
    assert_eq!(s["lost"], 0, "forgeries cost no real probe");
}

#[test]
fn other_traffic_is_untouched() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, false);
    let mut d = Daemon::spawn(
        lan.host(),
        &["watch", "h0", "--json", "--instance", "untouched"],
    );
    d.wait_for(Duration::from_secs(10), |v| v["event"] == "link")
        .expect("watching");
    assert!(
        lan.host().try_sh("ping -c 3 -i 0.2 -W 2 192.0.2.1"),
        "ping from another process still works"
    );
    let server = "import socket;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);\
                  s.bind((\"192.0.2.1\",7007));s.listen();c,_=s.accept();c.sendall(c.recv(100));c.close()";
    let mut srv = lan
        .router()
        .command("python3")
        .args(["-c", server])
        .spawn()
        .unwrap();
    let listening = daemon::poll_until(tests::scaled(Duration::from_secs(5)), || {
        lan.router().sh("ss -Hltn 'sport = :7007'").contains("7007")
    });
    assert!(listening, "the echo server never listened");
    let client = "import socket;c=socket.create_connection((\"192.0.2.1\",7007),timeout=5);c.sendall(b\"hello\");print(c.recv(100).decode())";
    let echoed = lan.host().sh(&format!("python3 -c '{client}'"));
    assert_eq!(echoed.trim(), "hello", "TCP through the attached interface");
    let _ = srv.wait();
    let dump = bpftool_dump("/sys/fs/bpf/ipmpd/untouched/IFACE_COUNTERS");
    let per_cpu = dump[0]["values"].as_array().unwrap();
    let sum = |f: &str| {
        per_cpu
            .iter()
            .map(|c| c["value"][f].as_u64().unwrap())
            .sum::<u64>()
    };
    assert!(sum("icmp_packets") >= 3, "XDP saw the three echo replies");
    assert_eq!(sum("probe_replies"), 0, "and took none of it");
    assert_eq!(
        sum("rejected_magic"),
        3,
        "the three ping replies were recognised as someone else's and passed"
    );
}

#[test]
fn bad_input_gets_clear_errors() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, false);
    let (ok, _, err) = daemon::run(lan.host(), &["probe", "nosuch0", "192.0.2.1", "-c", "1"]);
    assert!(!ok);
    assert!(
        err.contains("nosuch0")
            && (err.contains("test address") || err.contains("unknown interface")),
        "{err}"
    );
    let (ok, _, err) = daemon::run(lan.host(), &["watch", "nosuch0", "--duration-ms", "10"]);
    assert!(!ok);
    assert!(err.contains("unknown interface \"nosuch0\""), "{err}");
    let (ok, _, err) = daemon::run(
        lan.host(),
        &[
            "probe",
            "h0",
            "2001:db8::1",
            "--source",
            "192.0.2.10",
            "-c",
            "1",
        ],
    );
    assert!(!ok && err.contains("different families"), "{err}");
    // Without privileges: a message naming what is missing, no panic.
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(daemon::binary())
        .args(["watch", "lo", "--duration-ms", "10"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("root") || err.contains("CAP_"),
        "says which privilege is missing: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn the_carrier_hook_refusal_is_detected_and_reported() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, false);
    let (ok, out, err) = daemon::run(
        lan.host(),
        &["watch", "h0", "--duration-ms", "200", "--instance", "hook"],
    );
    assert!(ok, "{err}");
    // Either the kernel accepts the hook, or the agent says why not and polls.
    assert!(
        out.contains("link state: kernel hook")
            || (out.contains("kernel hook unavailable") && out.contains("carrier poll")),
        "{out}"
    );
}
