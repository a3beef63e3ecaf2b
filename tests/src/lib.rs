//! ipmpd's test harness: network namespaces, veth pairs, bridges, addresses and routes built with
//! `ip`, fault injectors (carrier loss, silent loss with nftables), and helpers that run the real
//! `ipmpd` binary inside a namespace, entered as `nsenter --net` does (which, unlike `ip netns
//! exec`, keeps the host's bpffs visible; see [`spawn`]).
//!
//! Every namespace name is unique per process and test; everything is deleted on drop, also when a
//! test panics.

#![allow(
    clippy::missing_panics_doc,
    reason = "a harness helper panics to fail the test that called it, with the reason"
)]

pub mod daemon;
pub mod frames;
pub mod hostile;
pub mod procstat;
pub mod spawn;
pub mod tcx;
pub mod topology;

pub use topology::{Netns, Topology};

/// Runs a shell command line (without a shell when it needs none, see [`spawn::shell`]),
/// panicking with its output when it fails; its stdout.
pub fn sh(cmd: &str) -> String {
    spawn::checked_output(spawn::shell(None, cmd), cmd)
}

/// Whether this process may do what the privileged tests need. With `CI=true` a missing privilege
/// is a failure, not a skip.
#[must_use]
pub fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but the privileged tests are not running as root"
        );
        eprintln!("skipping: needs root (run `sudo -E cargo xtask test`)");
    }
    root
}

/// CLOCK_MONOTONIC in nanoseconds (the clock ipmpd and BPF use).
#[must_use]
pub fn monotonic_ns() -> u64 {
    daemon::clock_ns()
}

/// Records that the calling test cannot run on this machine, and why, for the suite runner's
/// table (`cargo xtask test`); the test should return right after. Never a silent pass: the
/// runner lists the test as not run, with the reason.
pub fn not_run(reason: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("unknown test")
        .to_owned();
    eprintln!("NOT RUN {test}: {reason}");
    if let Some(path) = std::env::var_os("IPMPD_TEST_REPORT") {
        use std::io::Write as _;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{reason}");
        }
    }
}

/// How much slower this machine is than the one the time limits were set on: 1 on the host, the
/// factor `cargo xtask vm-test` measured at boot inside a VM under emulation.
#[must_use]
pub fn time_scale() -> f64 {
    std::env::var("IPMPD_TIME_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 1.0)
        .unwrap_or(1.0)
}

/// A time limit of the host, stretched by [`time_scale`].
#[must_use]
pub fn scaled(d: std::time::Duration) -> std::time::Duration {
    d.mul_f64(time_scale())
}

/// A limit in ns, stretched by [`time_scale`].
#[must_use]
pub fn scaled_ns(ns: u64) -> u64 {
    (ns as f64 * time_scale()) as u64
}

/// Inside a VM suite: the kernel's label (6.1, 6.1-lockdown, 6.12).
#[must_use]
pub fn vm() -> Option<String> {
    std::env::var("IPMPD_VM").ok()
}

/// What the VM suite says ipmpd must choose on this kernel: `IPMPD_EXPECT_TC` (tcx or clsact) and
/// `IPMPD_EXPECT_CARRIER` (hook or poll); `None` on the host, where the machine decides.
#[must_use]
pub fn expected(what: &str) -> Option<String> {
    std::env::var(format!("IPMPD_EXPECT_{what}")).ok()
}

/// The example group file (`packaging/etc/ipmpd.toml`) with its example uncommented: table
/// headers and `key = value` lines lose their leading `#`, prose comments stay.
#[must_use]
pub fn uncomment_example(example: &str) -> String {
    example
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.starts_with('[') || rest.contains(" = ") => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A scratch directory of this test process, removed when dropped (also when a test fails).
pub struct ScratchDir(pub std::path::PathBuf);

impl ScratchDir {
    /// A fresh, empty directory for `name` under the temporary directory.
    #[must_use]
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ipmpd-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
