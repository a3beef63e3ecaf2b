//! `cargo xtask vm-guest` (inside a VM, started by `vm-test`): measures how much slower this
//! machine is than the host, runs the test binaries one test at a time and prints each result as
//! a `SUITE-RESULT` line on the console.

use std::time::Duration;

use anyhow::Context as _;

use crate::suite::{self, Binary, RunOptions};

/// Arguments of `cargo xtask vm-guest`.
#[derive(Debug, Clone, clap::Args)]
pub struct GuestArgs {
    /// The suite's label (6.1, 6.1-lockdown, 6.12).
    #[arg(long)]
    pub label: String,
    /// The host's [`suite::yardstick_ns`], the reference of the time scale.
    #[arg(long)]
    pub host_yardstick_ns: u64,
    /// What ipmpd must choose on this kernel: tcx or clsact.
    #[arg(long)]
    pub expect_tc: String,
    /// What ipmpd must choose on this kernel: hook or poll.
    #[arg(long)]
    pub expect_carrier: String,
    /// A test binary as NAME=PATH.
    #[arg(long = "bin")]
    pub bins: Vec<String>,
    /// Only tests whose name contains one of these.
    #[arg(long)]
    pub filter: Vec<String>,
    /// Only this share of the tests (I/N): the suite is split across N VMs.
    #[arg(long)]
    pub shard: Option<suite::Shard>,
}

/// Largest time scale the tests accept: beyond it a limit would assert nothing.
const MAX_SCALE: f64 = 25.0;

/// Runs the suite; the exit status is 0 when the runner itself worked (test failures are in the
/// results, not the status).
///
/// # Errors
/// When a test binary cannot be listed.
pub fn run(args: &GuestArgs) -> anyhow::Result<()> {
    let bins: Vec<Binary> = args
        .bins
        .iter()
        .map(|b| {
            let (name, path) = b.split_once('=').context("--bin takes NAME=PATH")?;
            Ok(Binary {
                name: name.into(),
                path: path.into(),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let guest = suite::yardstick_ns();
    let scale = (guest as f64 / args.host_yardstick_ns as f64).clamp(1.0, MAX_SCALE);
    println!(
        "guest {}: kernel {}, yardstick {} us here vs {} us on the host: time limits x{scale:.1}",
        args.label,
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        guest / 1000,
        args.host_yardstick_ns / 1000
    );
    let env = vec![
        ("IPMPD_TIME_SCALE".to_owned(), format!("{scale:.2}")),
        ("IPMPD_EXPECT_TC".to_owned(), args.expect_tc.clone()),
        (
            "IPMPD_EXPECT_CARRIER".to_owned(),
            args.expect_carrier.clone(),
        ),
        ("IPMPD_VM".to_owned(), args.label.clone()),
    ];
    suite::run(
        &bins,
        &RunOptions {
            env,
            per_test: Duration::from_secs(600),
            print_lines: true,
            filter: args.filter.clone(),
            shard: args.shard,
            clean_between: true,
        },
    )?;
    Ok(())
}
