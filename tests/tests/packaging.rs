//! The systemd unit passes `systemd-analyze verify`.

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
