//! `cargo xtask bench`: measurements of the datapath and the link-state mirror, written to
//! BENCHMARKS.md. Every figure comes from this run; ratios compare figures of the same run.
//!
//! xtask parses [`BenchArgs`], builds the release agent, and calls [`run`]. The sections are in
//! `sections`, one module each; what several of them share is here beside them: `faults`
//! (the faults injected, the timed UDP flow, detection tallies), `peers_tools` (bfdd,
//! keepalived and ping as child processes), `ipmpd` (its group file and event times),
//! `procfs` (CPU time of processes), `floor` (a bare sender: the kernel's cost of the probes alone), `host` (the machine, and `stress-ng`), `stats`,
//! `report` (table rows, where plots go), `plot` (the SVGs) and `targets` (the table of
//! targets at the top of BENCHMARKS.md).

mod faults;
mod floor;
mod host;
mod ipmpd;
mod peers_tools;
mod plot;
mod procfs;
mod report;
mod sections;
mod stats;
mod targets;

use std::{fmt::Write as _, path::Path, process::Command};

pub use faults::Flow;
use report::Plots;
use sections::{carrier, datapath, load, outage, peers, poll, rtt, scale, throughput};
use targets::Targets;

/// What one run hands each section in turn: where plots go, the targets checked so far, and how
/// to run cargo. A full run and a run of one section differ only in their [`Plots`].
struct Run {
    /// Where the sections' plots are written, and how BENCHMARKS.md shows them.
    plots: Plots,
    /// The targets the sections checked so far, for the table at the top of BENCHMARKS.md.
    targets: Targets,
    /// `cargo` with the workspace root as working directory.
    cargo: fn() -> Command,
}

/// Every section: `--only` name, progress line, and what it runs (adding the targets it checks);
/// a full run takes them in order.
type Section = (
    &'static str,
    &'static str,
    fn(&BenchArgs, &mut Run) -> anyhow::Result<String>,
);
const SECTIONS: &[Section] = &[
    ("datapath", "datapath cost (TestRun)", |_, r| {
        datapath::datapath_cost(r.cargo, &mut r.targets)
    }),
    (
        "rtt",
        "RTT precision, idle and with both cores busy",
        |a, _| rtt::rtt_precision(a.probes),
    ),
    (
        "carrier",
        "carrier-loss detection on a NIC-like veth",
        |a, r| carrier::carrier_detection(a.faults, &mut r.targets),
    ),
    ("poll", "CPU cost of the carrier poll", |_, r| {
        poll::poll_cost(r.cargo)
    }),
    ("load", "ipmpd and bfdd under full CPU load", |a, r| {
        load::under_load(a.idle_secs, a.faults, &r.plots, &mut r.targets)
    }),
    (
        "throughput",
        "veth throughput with and without ipmpd attached",
        |_, r| throughput::throughput(&mut r.targets),
    ),
    ("scale", "scale: 16 to 1,024 tracked interfaces", |a, r| {
        scale::scale(&a.sizes, &r.plots, &mut r.targets)
    }),
    (
        "peers",
        "detection against bfdd, keepalived and ping",
        |a, r| peers::peers(a.faults, &r.plots, &mut r.targets),
    ),
    ("outage", "failover outage of a steady UDP flow", |a, _| {
        outage::outage(a.faults)
    }),
];

/// Options of `cargo xtask bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Carrier faults per detection measurement.
    #[arg(long, default_value_t = 20)]
    faults: usize,
    /// Probes per RTT-precision run.
    #[arg(long, default_value_t = 1000)]
    probes: usize,
    /// Length of the loaded fault-free run that counts false failures, in seconds.
    #[arg(long, default_value_t = 300)]
    idle_secs: u64,
    /// Interface counts of the scale section.
    #[arg(long, value_delimiter = ',', default_values_t = scale::SIZES.to_vec())]
    sizes: Vec<usize>,
    /// Run one section only (datapath, rtt, carrier, poll, load, throughput, scale, peers,
    /// outage) and print it; BENCHMARKS.md is written only by a full run.
    #[arg(long)]
    only: Option<String>,
}

/// Runs the benchmarks `args` asks for with the release ipmpd `IPMPD_BIN` names: a full run writes
/// BENCHMARKS.md (and its plots under docs/bench) in the workspace at `root`, a run of one section
/// (`--only`) prints it. `cargo` runs cargo from `root`.
///
/// # Errors
/// When `--only` names no section, or a section fails (a tool missing, a daemon not starting, a
/// measurement without result), or BENCHMARKS.md cannot be written.
pub fn run(args: &BenchArgs, root: &Path, cargo: fn() -> Command) -> anyhow::Result<()> {
    let mut md = String::new();
    let started = std::time::Instant::now();
    writeln!(md, "# Benchmarks\n")?;
    writeln!(
        md,
        "Written by `cargo xtask bench` (release build) on {}; {} cores; kernel {}.",
        host::host_line(),
        host::num_cpus(),
        host::kernel()
    )?;
    writeln!(
        md,
        "Percentiles are nearest-rank. The machine is shared and noisy: compare ratios within this run.\n"
    )?;

    if let Some(name) = &args.only {
        let Some((_, _, run)) = SECTIONS.iter().find(|(n, _, _)| n == name) else {
            anyhow::bail!(
                "no section {name:?}: {}",
                SECTIONS.iter().map(|s| s.0).collect::<Vec<_>>().join(", ")
            );
        };
        let mut one = Run {
            plots: Plots::scratch(),
            targets: Targets::default(),
            cargo,
        };
        println!("{}", run(args, &mut one)?);
        println!("{}", one.targets.markdown());
        return Ok(());
    }
    let mut full = Run {
        plots: Plots::beside_benchmarks(root),
        targets: Targets::default(),
        cargo,
    };
    let mut sections = String::new();
    for (_, title, run) in SECTIONS {
        println!("bench: {title}");
        sections += &run(args, &mut full)?;
    }
    md += &full.targets.markdown();
    md += &sections;
    writeln!(md, "\nWhole run: {:.0} s.", started.elapsed().as_secs_f64())?;
    std::fs::write(root.join("BENCHMARKS.md"), &md)?;
    println!("{md}");
    Ok(())
}
