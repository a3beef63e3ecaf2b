//! The packages `cargo xtask package` builds, installed as an operator would: the .deb with dpkg
//! on this machine (every file present and working, then purged without a trace), the .rpm into a
//! scratch root with rpm. `cargo xtask test` builds them once and passes their paths in
//! `IPMPD_DEB` and `IPMPD_RPM`; run alone, a test builds them itself.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

/// What a command printed, asserting it succeeded.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} does not run: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The package whose path `var` names; when it is unset, both are built once per process.
fn package(var: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    if let Some(path) = std::env::var_os(var) {
        return path.into();
    }
    let dir = BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let status = Command::new("cargo")
            .args(["xtask", "package"])
            .current_dir(&root)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo xtask package failed");
        root.join("target/package")
    });
    let ext = if var == "IPMPD_DEB" { "deb" } else { "rpm" };
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == ext))
        .unwrap_or_else(|| panic!("no .{ext} in target/package"))
}

/// The paths a .deb places (files and links, not directories), absolute.
fn deb_paths(deb: &Path) -> BTreeSet<String> {
    run("dpkg-deb", &["--contents", &deb.display().to_string()])
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches('.').to_owned())
        .collect()
}

/// The directories a .deb creates.
fn deb_dirs(deb: &Path) -> Vec<String> {
    run("dpkg-deb", &["--contents", &deb.display().to_string()])
        .lines()
        .filter(|l| l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches('.').trim_end_matches('/').to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// What every package must hold, besides the man pages and completions listed from the tree.
const ESSENTIAL: &[&str] = &[
    "/usr/sbin/ipmpd",
    "/usr/lib/systemd/system/ipmpd.service",
    "/usr/lib/systemd/catalog/ipmpd.catalog",
    "/etc/ipmpd/ipmpd.toml",
    "/etc/iproute2/rt_protos.d/ipmpd.conf",
];

/// Whether dpkg knows the package in any state (installed, half-installed, config files left).
fn known(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| {
            let status = String::from_utf8_lossy(&o.stdout);
            o.status.success() && !status.trim().is_empty() && !status.contains("not-installed")
        })
}

#[test]
fn the_deb_installs_every_file_works_and_purges_without_a_trace() {
    if !tests::privileged() {
        return;
    }
    if tests::vm().is_some() {
        tests::not_run("packages install on the host, whose root the VM shares read-only");
        return;
    }
    let deb = package("IPMPD_DEB");
    if known("ipmpd") {
        // Left by an interrupted run, in whatever state: start from a clean machine.
        run("dpkg", &["--purge", "ipmpd"]);
    }
    let paths = deb_paths(&deb);
    let existed_before: BTreeSet<String> = deb_dirs(&deb)
        .into_iter()
        .chain(paths.iter().cloned())
        .filter(|p| Path::new(p).exists())
        .collect();
    for path in &paths {
        assert!(
            !existed_before.contains(path),
            "{path} exists before the package is installed: this machine is not clean"
        );
    }
    for path in ESSENTIAL
        .iter()
        .chain(&["/usr/sbin/ipmpstat", "/usr/sbin/if_mpadm"])
    {
        assert!(paths.contains(*path), "the .deb lacks {path}: {paths:?}");
    }
    for page in [
        "man8/ipmpd.8",
        "man8/ipmpstat.8",
        "man8/if_mpadm.8",
        "man5/ipmpd.toml.5",
    ] {
        let path = format!("/usr/share/man/{page}.gz");
        assert!(paths.contains(&path), "the .deb lacks {path}");
    }

    // Installed inside the guarded part: a failure anywhere still purges.
    let result = std::panic::catch_unwind(|| {
        run("dpkg", &["-i", &deb.display().to_string()]);
        check_installed(&paths);
    });
    run("dpkg", &["--purge", "ipmpd"]);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert!(!known("ipmpd"), "dpkg still knows ipmpd after --purge");
    let left: Vec<&String> = paths
        .iter()
        .filter(|p| Path::new(p).symlink_metadata().is_ok())
        .collect();
    assert!(left.is_empty(), "dpkg --purge left {left:?}");
    let dirs_left: Vec<String> = deb_dirs(&deb)
        .into_iter()
        .filter(|d| !existed_before.contains(d) && Path::new(d).exists())
        .collect();
    assert!(
        dirs_left.is_empty(),
        "dpkg --purge left directories {dirs_left:?}"
    );
}

/// Everything an operator would try right after `dpkg -i`.
fn check_installed(paths: &BTreeSet<String>) {
    let listed = run("dpkg", &["-L", "ipmpd"]);
    for path in paths {
        assert!(listed.lines().any(|l| l == path), "dpkg -L lacks {path}");
        assert!(
            Path::new(path).symlink_metadata().is_ok(),
            "{path} is not on disk"
        );
    }
    let conffiles = run("dpkg-query", &["-W", "-f=${Conffiles}", "ipmpd"]);
    for conf in [
        "/etc/ipmpd/ipmpd.toml",
        "/etc/iproute2/rt_protos.d/ipmpd.conf",
    ] {
        assert!(
            conffiles.contains(conf),
            "{conf} is not a conffile: {conffiles}"
        );
    }
    let version = env!("CARGO_PKG_VERSION");
    for name in ["ipmpd", "ipmpstat", "if_mpadm"] {
        let out = run(&format!("/usr/sbin/{name}"), &["--version"]);
        assert_eq!(out.trim(), format!("{name} {version}"));
    }
    // The example as shipped (nothing configured), and uncommented (the example group).
    let shipped = run(
        "/usr/sbin/ipmpd",
        &[
            "check-config",
            "--defaults",
            "/dev/null",
            "--config",
            "/etc/ipmpd/ipmpd.toml",
        ],
    );
    assert!(shipped.contains("0 group(s)"), "{shipped}");
    let example = std::fs::read_to_string("/etc/ipmpd/ipmpd.toml").unwrap();
    let dir = std::env::temp_dir().join(format!("ipmpd-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let uncommented = dir.join("ipmpd.toml");
    std::fs::write(&uncommented, tests::uncomment_example(&example)).unwrap();
    let out = run(
        "/usr/sbin/ipmpd",
        &[
            "check-config",
            "--defaults",
            "/dev/null",
            "--config",
            &uncommented.display().to_string(),
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.contains("1 group(s), 2 interface(s)"), "{out}");
    // The installed unit, with the installed man pages its Documentation= names.
    let out = Command::new("systemd-analyze")
        .args(["verify", "/usr/lib/systemd/system/ipmpd.service"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {err}"
    );
    for page in paths.iter().filter(|p| p.starts_with("/usr/share/man/")) {
        let out = Command::new("man")
            .args(["--warnings", "-l", page])
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && out.stdout.len() > 500 && err.trim().is_empty(),
            "man -l {page}: {err}"
        );
    }
    for name in ["ipmpd", "ipmpstat", "if_mpadm"] {
        assert!(
            run("man", &["-w", name]).starts_with("/usr/share/man/man8/"),
            "man does not find {name}(8)"
        );
        // bash-completion loads /usr/share/bash-completion/completions/NAME on first use.
        let script =
            format!("source /usr/share/bash-completion/completions/{name} && complete -p {name}");
        let registered = run("bash", &["-c", &script]);
        assert!(registered.contains(name), "{registered}");
    }
}

#[test]
fn the_rpm_holds_what_the_deb_holds_and_installs_into_a_scratch_root() {
    if !tests::privileged() {
        return;
    }
    if tests::vm().is_some() {
        tests::not_run("packages are built and read on the host");
        return;
    }
    let rpm = package("IPMPD_RPM");
    let deb = package("IPMPD_DEB");
    let rpm_arg = rpm.display().to_string();
    let listed: BTreeSet<String> = run("rpm", &["-qlp", &rpm_arg])
        .lines()
        .map(str::to_owned)
        .collect();
    // The same files, where Fedora's layout differs from Debian's: uncompressed man pages (rpm
    // compresses at build time only in rpmbuild), zsh's site-functions, no copyright file, and
    // the two links made by the scriptlets.
    let expected: BTreeSet<String> = deb_paths(&deb)
        .into_iter()
        .filter(|p| {
            !p.ends_with("/copyright") && p != "/usr/sbin/ipmpstat" && p != "/usr/sbin/if_mpadm"
        })
        .map(|p| {
            p.trim_end_matches(".gz")
                .replace("/zsh/vendor-completions/", "/zsh/site-functions/")
        })
        .collect();
    assert_eq!(listed, expected);
    let conf = run("rpm", &["-qcp", &rpm_arg]);
    assert_eq!(
        conf.lines().collect::<Vec<_>>(),
        [
            "/etc/ipmpd/ipmpd.toml",
            "/etc/iproute2/rt_protos.d/ipmpd.conf"
        ]
    );
    let scripts = run("rpm", &["-qp", "--scripts", &rpm_arg]);
    for needed in [
        "ln -sf ipmpd /usr/sbin/ipmpstat",
        "ln -sf ipmpd /usr/sbin/if_mpadm",
        "rm -f /usr/sbin/ipmpstat /usr/sbin/if_mpadm",
        "/usr/sbin/ipmpd detach",
    ] {
        assert!(
            scripts.contains(needed),
            "no `{needed}` in the scriptlets: {scripts}"
        );
    }
    // Installed into a root of its own (the scriptlets need that root's shell, so they are left
    // out; their text is checked above).
    let root = std::env::temp_dir().join(format!("ipmpd-rpm-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let root_arg = root.display().to_string();
    run("rpm", &["--root", &root_arg, "--initdb"]);
    run(
        "rpm",
        &[
            "--root",
            &root_arg,
            "-i",
            "--nodeps",
            "--noscripts",
            &rpm_arg,
        ],
    );
    let missing: Vec<&String> = listed
        .iter()
        .filter(|p| !root.join(p.trim_start_matches('/')).exists())
        .collect();
    let version = run(
        &root.join("usr/sbin/ipmpd").display().to_string(),
        &["--version"],
    );
    let _ = std::fs::remove_dir_all(&root);
    assert!(missing.is_empty(), "not installed: {missing:?}");
    assert_eq!(
        version.trim(),
        format!("ipmpd {}", env!("CARGO_PKG_VERSION"))
    );
}
