//! What ships beside the binary: the systemd unit passes `systemd-analyze verify` with a low
//! exposure; journald reads the message catalogue, and the shell completions are the ones `ipmpd`
//! generates; the example configuration configures nothing and its example is valid.

#[test]
fn systemd_accepts_the_unit() {
    if !tests::privileged() {
        return;
    }
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/ipmpd.service"
    ))
    .unwrap();
    // Verify against the binary that was built (the unit names its installed path).
    let dir = std::env::temp_dir().join(format!("ipmpd-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ipmpd.service");
    std::fs::write(
        &path,
        unit.replace(
            "/usr/sbin/ipmpd",
            &tests::daemon::binary().display().to_string(),
        ),
    )
    .unwrap();
    // Documentation= names the project's man pages; let man find them where they are.
    let manpath = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/man");
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .env("MANPATH", manpath)
        .output()
        .expect("systemd-analyze runs");
    let err = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {err}"
    );
}

#[test]
fn the_unit_sandbox_keeps_exposure_low() {
    if !tests::privileged() {
        return;
    }
    let unit = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/ipmpd.service");
    let out = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true", unit])
        .output()
        .expect("systemd-analyze runs");
    let text = String::from_utf8_lossy(&out.stdout);
    // "→ Overall exposure level for ipmpd.service: 3.1 OK"
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("ipmpd.service: ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {text}"));
    println!("systemd-analyze security: exposure {score}");
    // 6.1 before the unit was tightened; 3.1 after.
    assert!(score <= 3.5, "exposure {score}:\n{text}");
}

#[test]
fn journalctl_reads_the_packaged_catalogue_which_is_the_one_ipmpd_generates() {
    let packaged = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/journald/ipmpd.catalog"
    ))
    .unwrap();
    let out = std::process::Command::new(tests::daemon::binary())
        .args(["events", "--journal-catalog"])
        .output()
        .expect("ipmpd runs");
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout) == packaged,
        "packaging/journald/ipmpd.catalog is stale: `ipmpd events --journal-catalog > packaging/journald/ipmpd.catalog`"
    );
    // journald's own tools, against a root of their own: the installed host is not touched.
    let root = std::env::temp_dir().join(format!("ipmpd-catalog-{}", std::process::id()));
    let dir = root.join("usr/lib/systemd/catalog");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ipmpd.catalog"), &packaged).unwrap();
    let journalctl = |args: &[&str]| {
        let out = std::process::Command::new("journalctl")
            .arg(format!("--root={}", root.display()))
            .args(args)
            .output()
            .expect("journalctl runs");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success() && err.trim().is_empty(),
            "journalctl {args:?}: {err}"
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    journalctl(&["--update-catalog"]);
    let listed = journalctl(&["--list-catalog"]);
    let entries = packaged.lines().filter(|l| l.starts_with("-- ")).count();
    assert_eq!(listed.lines().count(), entries, "{listed}");
    let id = ipmpd::events::journal::message_id("ipmultipath.interface.failed");
    let failed = journalctl(&["--dump-catalog", &id]);
    let _ = std::fs::remove_dir_all(&root);
    assert!(
        failed.contains("Subject: IP interface failure detected on @IFNAME@ of group @GROUP@")
            && failed.contains("Corrective action: Check the link"),
        "{failed}"
    );
}

#[test]
fn the_packaged_completions_are_the_ones_ipmpd_generates() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/completions");
    for program in ["ipmpd", "ipmpstat", "if_mpadm"] {
        for (shell, file) in [
            ("bash", format!("{program}.bash")),
            ("zsh", format!("_{program}")),
            ("fish", format!("{program}.fish")),
        ] {
            let out = std::process::Command::new(tests::daemon::binary())
                .args(["completions", shell, "--program", program])
                .output()
                .expect("ipmpd runs");
            assert!(out.status.success());
            let packaged = std::fs::read(format!("{dir}/{file}")).unwrap();
            assert!(
                out.stdout == packaged,
                "packaging/completions/{file} is stale: `ipmpd completions {shell} --program {program} > packaging/completions/{file}`"
            );
        }
        let bash = std::process::Command::new("bash")
            .args(["-n", &format!("{dir}/{program}.bash")])
            .status()
            .unwrap();
        assert!(bash.success(), "{program}.bash is not valid bash");
    }
}

#[test]
fn the_example_configuration_configures_nothing_as_shipped_and_is_valid_uncommented() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/etc/ipmpd.toml");
    let check = |config: &str| {
        let out = std::process::Command::new(tests::daemon::binary())
            .args([
                "check-config",
                "--defaults",
                "/dev/null",
                "--config",
                config,
            ])
            .output()
            .expect("ipmpd runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{config}: {text}");
        text
    };
    assert!(check(path).contains("0 group(s), 0 interface(s)"));
    let uncommented = tests::uncomment_example(&std::fs::read_to_string(path).unwrap());
    let dir = std::env::temp_dir().join(format!("ipmpd-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ipmpd.toml");
    std::fs::write(&file, &uncommented).unwrap();
    let text = check(&file.display().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(text.contains("1 group(s), 2 interface(s)"), "{text}");
    assert!(!text.contains("warning"), "{text}");
}
