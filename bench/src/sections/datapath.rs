//! Datapath cost: the XDP and TC programs' cost per packet, measured with BPF_PROG_TEST_RUN by
//! the `tests` crate's `datapath_cost` example (built and run here with cargo).

use std::{fmt::Write as _, process::Command};

use anyhow::Context as _;
use serde_json::Value;

use crate::targets::Targets;

/// The benchmark section; `cargo` runs cargo from the workspace root.
pub fn datapath_cost(cargo: fn() -> Command, targets: &mut Targets) -> anyhow::Result<String> {
    let out = cargo()
        .args([
            "run",
            "-q",
            "--release",
            "-p",
            "tests",
            "--example",
            "datapath_cost",
        ])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "datapath_cost: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).context("datapath_cost output")?;
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let mut md =
        String::from("## Datapath cost per packet (BPF_PROG_TEST_RUN, median of 9 runs)\n\n");
    let burst = f("reply_burst");
    write!(
        md,
        "Command: `cargo run --release -p tests --example datapath_cost` (1,000,000 repeats per run; \
         replies in bursts of {burst:.0}, the ring drained between them: below the backlog of a \
         quarter of the ring from which replies force wake-ups).\n\n"
    )?;
    md += "| program | frame | ns/packet | target |\n|---|---|---|---|\n";
    let overhead = f("xdp_test_run_overhead_ns");
    let nonprobe = f("xdp_non_probe_ns");
    let reply = f("xdp_probe_reply_ns");
    let net = nonprobe - overhead;
    writeln!(
        md,
        "| XDP | calibration: a program that only returns XDP_PASS (the harness's own cost) | {overhead:.1} | |"
    )?;
    writeln!(
        md,
        "| XDP | 1,400-byte TCP (not a probe) | {nonprobe:.1} ({net:.1} above calibration) | {} |",
        targets.row(
            "XDP, non-probe frame, above the harness's calibration",
            format!("{net:.1} ns"),
            "≤ 20 ns",
            net <= 20.0
        )
    )?;
    writeln!(
        md,
        "| XDP | probe reply (parse, stamp, ring buffer, drop), no wake-up: a steady member | {reply:.1} ({:.1} above calibration) | |",
        reply - overhead
    )?;
    // The wake-up is the kernel's irq_work: a self-interrupt, dear in a virtual machine. The
    // program forces one only for members whose reply may change a decision, or a ring backlog.
    let wake = f("xdp_probe_reply_wake_ns");
    writeln!(
        md,
        "| XDP | probe reply with a forced wake-up of the reader: a member that is not running, or a ring a quarter full | {wake:.1} ({:.1} above calibration) | |",
        wake - overhead
    )?;
    writeln!(
        md,
        "| TC egress | probe (stamp, 2 checksum updates) | {:.1} | |",
        f("tc_probe_ns")
    )?;
    writeln!(
        md,
        "| TC egress | 1,400-byte TCP (not a probe) | {:.1} | |",
        f("tc_non_probe_ns")
    )?;
    Ok(md + "\n")
}
