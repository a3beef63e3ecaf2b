//! ipmpd's test harness: network namespaces, veth pairs, bridges, addresses and routes built with
//! `ip`, fault injectors (carrier loss, silent loss with nftables), and helpers that run the real
//! `ipmpd` binary inside a namespace with `nsenter --net` (which, unlike `ip netns exec`, keeps the
//! host's bpffs visible).
//!
//! Every namespace name is unique per process and test; everything is deleted on drop, also when a
//! test panics.

pub mod daemon;
pub mod frames;
pub mod topology;

pub use topology::{Netns, Topology};

/// Runs a command, panicking with its output when it fails.
pub fn sh(cmd: &str) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "command failed: {cmd}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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
