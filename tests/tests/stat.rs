//! `ipmpd stat` (ipmpstat) against a live daemon: a degraded group with an offline member and a
//! standby that took over, and a failed group.

use std::time::Duration;

use tests::{daemon::RunConfig, topology::Lan};

const GROUPS: &str = "[group.g]\nfdt_ms = 300\ndata_addresses = [\"192.0.2.100/24\"]\n\n\
    [group.f]\n\n\
    [interface.h0]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.10\"]\ntargets = [\"192.0.2.1\"]\n\n\
    [interface.h1]\ngroup = \"g\"\nstandby = true\ntest_addresses = [\"192.0.2.11\"]\ntargets = [\"192.0.2.1\"]\n\n\
    [interface.h2]\ngroup = \"f\"\n";

#[test]
fn every_mode_shows_the_expected_table() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    lan.topo.veth(lan.host, "h2", lan.switch, "sw-h2", None);
    lan.switch()
        .sh("ip link set sw-h2 master br0 && ip link set sw-h2 down");
    let cfg = RunConfig::new("stat", GROUPS, None);
    let mut d = cfg.spawn(lan.host());
    d.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("daemon ready");
    let sock = format!("/run/ipmpd/{}.sock", cfg.instance);
    let stat = |args: &[&str]| {
        let mut all = vec!["stat"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--socket", &sock]);
        let (ok, out, err) = tests::daemon::run(lan.host(), &all);
        assert!(ok, "ipmpd stat {args:?}: {err}");
        out
    };
    let (ok, _, err) = tests::daemon::run(lan.host(), &["offline", "h0", "--socket", &sock]);
    assert!(ok, "{err}");
    d.wait_for(Duration::from_secs(3), |v| {
        v["event"] == "ipmultipath.address.moved"
    })
    .expect("the standby took the address");

    // In a slow VM in.mpathd's rule may raise g's FDT when round trips stretch: the table then
    // shows an FDT the daemon reported (`ipmultipath.fdt.raised` / `.improved`), and nothing else.
    let groups = stat(&["-g"]);
    let reported: Vec<String> = d
        .drain()
        .iter()
        .filter(|v| {
            v["event"]
                .as_str()
                .is_some_and(|e| e.starts_with("ipmultipath.fdt."))
                && v["params"]["group"] == "g"
        })
        .filter_map(|v| v["params"]["fdt_ms"].as_u64())
        .map(|ms| format!("{:.2}s", ms as f64 / 1e3))
        .collect();
    let row = |fdt: &str| {
        format!(
            "GROUP      GROUPNAME  STATE     FDT       INTERFACES\n\
             f          f          failed    --        [h2]\n\
             g          g          degraded  {fdt:<10}h1 [h0]\n"
        )
    };
    assert!(
        std::iter::once("0.30s".to_owned())
            .chain(reported.iter().cloned())
            .any(|fdt| groups == row(&fdt)),
        "ipmpd stat -g:\n{groups}\nexpected g's FDT 0.30s or one reported: {reported:?}\n{}",
        row("0.30s")
    );
    assert_eq!(
        stat(&["-i"]),
        "INTERFACE  ACTIVE  GROUP      FLAGS    LINK       PROBE     STATE\n\
         h0         no      g          -----d-  up         ok        offline\n\
         h1         yes     g          -s-----  up         ok        ok\n\
         h2         no      f          -------  down       disabled  failed\n"
    );
    assert_eq!(
        stat(&["-t"]),
        "INTERFACE  MODE       TESTADDR            TARGETS\n\
         h0         routes     192.0.2.10          192.0.2.1\n\
         h1         routes     192.0.2.11          192.0.2.1\n\
         h2         disabled   --                  --\n"
    );
    assert_eq!(
        stat(&["-a"]),
        "ADDRESS             STATE  GROUP      INBOUND   OUTBOUND\n\
         192.0.2.100         up     g          h1        h1\n"
    );
    assert_eq!(
        stat(&["-i", "-P", "-o", "interface,STATE"]),
        "h0:offline\nh1:ok\nh2:failed\n"
    );
    assert_eq!(stat(&["-g", "-P", "-o", "groupname"]), "f\ng\n");
    let json: serde_json::Value = serde_json::from_str(&stat(&["-i", "--json"])).unwrap();
    assert_eq!(json[1]["flags"], "-s-----");

    // The same binary answers as ipmpstat and if_mpadm.
    let bin = tests::daemon::binary();
    let dir = cfg.dir.clone();
    for name in ["ipmpstat", "if_mpadm"] {
        std::os::unix::fs::symlink(&bin, dir.join(name)).unwrap();
    }
    let run_as = |name: &str, args: &[&str]| {
        lan.host()
            .command(dir.join(name))
            .args(args)
            .args(["--socket", &sock])
            .output()
            .unwrap()
    };
    let out = run_as("ipmpstat", &["-P", "-o", "address,inbound", "-a"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "192.0.2.100:h1\n");
    let out = run_as("if_mpadm", &["-r", "h0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.wait_for(Duration::from_secs(3), |v| {
        v["event"] == "active" && v["ifname"] == "h0" && v["active"] == true
    })
    .expect("h0 back");

    // Queries are for anyone: an unprivileged user reads the same table.
    let (ok, out, err) = tests::daemon::run_unprivileged(
        lan.host(),
        &["stat", "-g", "-P", "-o", "group,state", "--socket", &sock],
    );
    assert!(ok, "{err}");
    assert_eq!(out, "f:failed\ng:ok\n");

    // Usage errors and an absent daemon get clear messages.
    let (ok, _, err) = tests::daemon::run(lan.host(), &["stat", "-g", "-i", "--socket", &sock]);
    assert!(!ok && err.contains("exactly one of"), "{err}");
    let (ok, _, err) = tests::daemon::run(lan.host(), &["stat", "-g", "-P", "--socket", &sock]);
    assert!(!ok && err.contains("-P requires -o"), "{err}");
    let (ok, _, err) = tests::daemon::run(
        lan.host(),
        &["stat", "-g", "--socket", "/run/ipmpd/none.sock"],
    );
    assert!(
        !ok && err.contains("cannot contact ipmpd -- is IPMP in use?"),
        "{err}"
    );
}

/// Longest wait for one line of a follow stream: bounded, so that a stream that stops fails
/// the test with what it saw instead of hanging it (the VMs run 10 to 50 times slower).
const LINE_WAIT: Duration = Duration::from_secs(60);

/// The lines of a child's output, read on a thread of their own so that each wait is bounded.
fn line_channel(out: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::{BufRead as _, BufReader};
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn probes_and_events_stream_live() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    let cfg = RunConfig::new(
        "follow",
        GROUPS
            .replace("[group.f]\n\n", "")
            .replace("[interface.h2]\ngroup = \"f\"\n", "")
            .as_str(),
        None,
    );
    let mut d = cfg.spawn(lan.host());
    d.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("daemon ready");
    let sock = format!("/run/ipmpd/{}.sock", cfg.instance);
    let follow = |args: &[&str]| {
        lan.host()
            .command(tests::daemon::binary())
            .args(args)
            .args(["--socket", &sock])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // ipmpstat -p: a header, then acked probes with kernel-stamped NETRTT.
    let mut p = follow(&["stat", "-p"]);
    let lines = line_channel(p.stdout.take().unwrap());
    let header = lines
        .recv_timeout(LINE_WAIT)
        .expect("ipmpstat -p printed no header");
    assert_eq!(
        header,
        "TIME      INTERFACE  PROBE  NETRTT    RTT       RTTAVG    RTTDEV    TARGET"
    );
    let row = lines
        .recv_timeout(LINE_WAIT)
        .expect("ipmpstat -p printed no acknowledged probe");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells.len(), 8, "{row}");
    assert!(
        cells[0].ends_with('s') && cells[3].ends_with("ms") && cells[7] == "192.0.2.1",
        "{row}"
    );
    let _ = p.kill();
    let _ = p.wait();
    // events --follow: the failure of h0 arrives as it happens.
    let mut e = follow(&["events", "--follow", "--json"]);
    let lines = line_channel(e.stdout.take().unwrap());
    // The fault comes only once the daemon has confirmed the subscription: a fixed sleep was
    // shorter than the follower's start in a TCG guest, and the events went before it listened.
    let notice = line_channel(e.stderr.take().unwrap())
        .recv_timeout(LINE_WAIT)
        .expect("events --follow never said it was following");
    assert!(
        notice.starts_with("following the events of /run/ipmpd/"),
        "{notice}"
    );
    lan.switch().link_down("sw-h0");
    let mut seen = Vec::new();
    for _ in 0..20 {
        let Ok(l) = lines.recv_timeout(LINE_WAIT) else {
            break;
        };
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        let done = v["event"] == "ipmultipath.interface.failed";
        seen.push(v);
        if done {
            break;
        }
    }
    let _ = e.kill();
    let _ = e.wait();
    assert!(
        seen.iter()
            .any(|v| v["event"] == "ipmultipath.link.down" && v["params"]["ifname"] == "h0"),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|v| v["event"] == "ipmultipath.interface.failed"),
        "{seen:?}"
    );
    assert!(d.running());
}
