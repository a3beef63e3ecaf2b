//! Careless administrators and crashes: files with typos, odd bytes or a million lines; a crash
//! between two steps of a move; a member pulled out from under the daemon. The daemon reports
//! every problem with its line, keeps detecting while it reads, and leaves the host as it should.

use std::time::Duration;

use tests::{
    daemon::{Daemon, RunConfig, expect_within, run, wait_event},
    monotonic_ns,
    topology::Lan,
};

const GROUP: &str = "[group.g]\nfdt_ms = 300\ndata_addresses = [\"192.0.2.100/24\"]\n\n\
    [interface.h0]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.10\"]\ntargets = [\"192.0.2.1\"]\n\n\
    [interface.h1]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.11\"]\ntargets = [\"192.0.2.1\"]\n";

fn ready(cfg: &RunConfig, lan: &Lan) -> Daemon {
    let mut d = cfg.spawn(lan.host());
    d.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
        .expect("daemon ready");
    d
}

fn holders(lan: &Lan) -> Vec<&'static str> {
    ["h0", "h1"]
        .into_iter()
        .filter(|i| {
            lan.host()
                .try_sh(&format!("ip -o addr show dev {i} | grep -q 192.0.2.100/24"))
        })
        .collect()
}

fn check_config(lan: &Lan, cfg: &RunConfig) -> (bool, String) {
    let (ok, out, err) = run(
        lan.host(),
        &[
            "check-config",
            "--config",
            &cfg.dir.join("ipmpd.toml").display().to_string(),
            "--defaults",
            &cfg.dir.join("mpathd").display().to_string(),
        ],
    );
    (ok, out + &err)
}

#[test]
fn check_config_reports_every_problem_by_line_and_notes_interfaces_not_there_yet() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    let bad = "[group.a]\ndata_addresses = [\"192.0.2.100/24\"]\nfdt_ms = = 5\n\
        [group.b]\ndata_addresses = [\"192.0.2.100/24\"]\n\
        [interface.h0]\ngroup = \"a\"\ntest_addresses = [\"192.0.2.10\"]\ntargets = [\"224.0.0.5\"]\n\
        [interface.a-name-longer-than-ifnamsiz]\ngroup = \"a\"\n\
        [interface.h1]\ngroup = \"b\"\ntest_addresses = [\"192.0.2.10\"]\nbogus = 1 2\n";
    let cfg = RunConfig::new("checkbad", bad, Some("# 12345\u{e9}\nFAILBACK=no\n"));
    let (ok, out) = check_config(&lan, &cfg);
    assert!(!ok, "errors fail the check: {out}");
    for (line, what) in [
        (3, "the first syntax error"),
        (
            15,
            "the second syntax error, after recovering from the first",
        ),
    ] {
        assert!(
            out.contains(&format!("ipmpd.toml:{line}:")),
            "{what}: {out}"
        );
    }
    for what in [
        "192.0.2.100",
        "224.0.0.5",
        "a-name-longer-than-ifnamsiz",
        "192.0.2.10",
    ] {
        assert!(out.contains(what), "{what} reported: {out}");
    }
    assert!(
        out.contains("FAILBACK=no"),
        "the defaults file still read: {out}"
    );
    // A byte that is not UTF-8 costs its line, not the file.
    std::fs::write(cfg.dir.join("mpathd"), b"\xff\xfe\nFAILBACK=no\n").unwrap();
    std::fs::write(
        cfg.dir.join("ipmpd.toml"),
        "[group.g]\n[interface.h0]\ngroup = \"g\"\n[interface.later0]\ngroup = \"g\"\n",
    )
    .unwrap();
    let (_, out) = check_config(&lan, &cfg);
    assert!(
        out.contains("mpathd:1:") && out.contains("FAILBACK=no"),
        "{out}"
    );
    assert!(
        out.contains("note: later0 does not exist now"),
        "absent now, maybe later: {out}"
    );
    std::fs::write(cfg.dir.join("mpathd"), "").unwrap();
    let (ok, out) = check_config(&lan, &cfg);
    assert!(ok, "a note is no error: {out}");
    // A group FDT under the minimum becomes the minimum, with a warning (as in.mpathd does).
    std::fs::write(
        cfg.dir.join("ipmpd.toml"),
        "[group.g]\nfdt_ms = 3\n[interface.h0]\ngroup = \"g\"\n",
    )
    .unwrap();
    let (ok, out) = check_config(&lan, &cfg);
    assert!(
        ok && out.contains("warning:") && out.contains("10 ms"),
        "{out}"
    );
}

#[test]
fn a_reload_of_a_huge_broken_file_does_not_blind_detection() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    let cfg = RunConfig::new("hugereload", GROUP, None);
    let mut d = ready(&cfg, &lan);
    // 1.5 MB with a problem on nearly every line.
    let mut huge = String::from(GROUP);
    for i in 0..25_000 {
        huge += &format!(
            "[interface.bad{i}]\ngroup = \"missing\"\ntest_addresses = [\"198.51.100.{}\"]\n",
            i % 250
        );
    }
    assert!(huge.len() > 1_500_000);
    let path = cfg.dir.join("ipmpd.toml");
    std::fs::write(&path, &huge).unwrap();
    d.drain();
    d.seen.clear();
    d.signal(libc::SIGHUP);
    let cut = lan.switch().set_link_fast("sw-h0", false).began_ns;
    let what = "while a 1.8 MB file was read";
    expect_within(&mut d, "ipmultipath.link.down", "h0", cut, 100, what);
    d.wait_for(Duration::from_secs(60), |v| v["event"] == "reload_refused")
        .expect("the file refused, the running configuration kept");
    lan.switch().set_link_fast("sw-h0", true);
    let t = monotonic_ns();
    let (ok, out) = check_config(&lan, &cfg);
    println!(
        "check-config of {} bytes: {} ms, {} lines of output",
        huge.len(),
        (monotonic_ns() - t) / 1_000_000,
        out.lines().count()
    );
    assert!(!ok && out.contains("bad24999"), "every problem listed");
    assert!(d.running());
}

#[test]
fn after_a_crash_between_add_and_delete_the_next_start_keeps_one_copy() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    let cfg = RunConfig::new("twocopies", GROUP, None);
    let d = ready(&cfg, &lan);
    assert_eq!(holders(&lan), ["h0"]);
    d.signal(libc::SIGKILL);
    // Killed after adding the address to h1 and before deleting it from h0.
    lan.host().sh("ip addr add 192.0.2.100/24 dev h1");
    assert_eq!(holders(&lan), ["h0", "h1"]);
    let _d = ready(&cfg, &lan);
    let deadline = std::time::Instant::now() + tests::scaled(Duration::from_secs(3));
    while holders(&lan).len() > 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(holders(&lan), ["h0"], "one copy, on the active member");
}

#[test]
fn arp_settings_changed_before_a_crash_go_back_after_the_next_clean_stop() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    let get = |ifname: &str| {
        lan.host()
            .sh(&format!(
                "cat /proc/sys/net/ipv4/conf/{ifname}/arp_ignore /proc/sys/net/ipv4/conf/{ifname}/arp_announce"
            ))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    lan.host().sh("sysctl -qw net.ipv4.conf.h1.arp_announce=1");
    let before = (get("h0"), get("h1"));
    assert_eq!(before, ("0 0".into(), "0 1".into()));
    let cfg = RunConfig::new("arpcrash", GROUP, None);
    let d = ready(&cfg, &lan);
    assert_eq!((get("h0"), get("h1")), ("1 2".into(), "1 2".into()));
    d.signal(libc::SIGKILL);
    // The next start runs with h1 left out of the group: it gives h1 back its settings at once,
    // and h0 its own at the clean stop.
    std::fs::write(
        cfg.dir.join("ipmpd.toml"),
        GROUP.split("[interface.h1]").next().unwrap(),
    )
    .unwrap();
    let mut d = ready(&cfg, &lan);
    assert_eq!(get("h1"), "0 1", "h1 is no member now: its values are back");
    d.stop();
    assert_eq!(get("h0"), "0 0", "the values from before the crash");
}

#[test]
fn a_removed_members_address_moves_and_the_neighbours_are_told() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(true, false);
    let cfg = RunConfig::new("removed", GROUP, None);
    let mut d = ready(&cfg, &lan);
    assert!(lan.router().try_sh("ping -c 2 -i 0.2 -W 1 192.0.2.100"));
    let neigh = |lan: &Lan| lan.router().sh("ip neigh show 192.0.2.100 dev r0");
    assert!(neigh(&lan).contains(&lan.host().mac("h0")));
    std::thread::sleep(Duration::from_millis(1200)); // past the neighbour entry's locktime
    let h1 = lan.host().mac("h1");
    d.seen.clear();
    lan.unplug("h0");
    wait_event(
        &mut d,
        Duration::from_secs(3),
        "ipmultipath.address.moved",
        None,
    )
    .expect("the address moved");
    assert_eq!(holders(&lan), ["h1"]);
    let deadline = std::time::Instant::now() + tests::scaled(Duration::from_secs(2));
    while !neigh(&lan).contains(&h1) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        neigh(&lan).contains(&h1),
        "the router learnt the new home from the announcement: {}",
        neigh(&lan)
    );
    let failed: Vec<&serde_json::Value> = d
        .drain()
        .iter()
        .filter(|v| v["event"] == "ipmultipath.address.moveFailed")
        .collect();
    assert!(
        failed.is_empty(),
        "a vanished interface is not a failed move: {failed:?}"
    );
}

#[test]
fn a_start_refused_for_its_configuration_exits_with_ex_config_and_leaves_nothing() {
    if !tests::privileged() {
        return;
    }
    let lan = Lan::new(false, false);
    let cfg = RunConfig::new("exconfig", "[group.g]\nfdt_ms = \"fast\"\n", None);
    let out = lan
        .host()
        .command(tests::daemon::binary())
        .args(cfg.run_args())
        .output()
        .expect("ipmpd runs");
    let err = String::from_utf8_lossy(&out.stderr);
    // EX_CONFIG: the unit's RestartPreventExitStatus=78 keeps systemd from restarting it in a loop.
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("ipmpd check-config"), "says what to do: {err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ipmpd.toml") && stdout.contains("\"line\":2"),
        "the problem with its line: {stdout}"
    );
    assert!(
        !std::path::Path::new(&format!("/sys/fs/bpf/ipmpd/{}", cfg.instance)).exists(),
        "no datapath loaded"
    );
}

#[test]
fn every_name_of_the_binary_answers_version() {
    let dir = std::env::temp_dir().join(format!("ipmpd-names-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["ipmpd", "ipmpstat", "if_mpadm"] {
        let link = dir.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(tests::daemon::binary(), &link).unwrap();
        let out = std::process::Command::new(&link)
            .arg("--version")
            .output()
            .expect("runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.starts_with(&format!("{name} ")),
            "{name} --version: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
