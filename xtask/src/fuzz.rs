//! `cargo xtask fuzz --secs N`: every cargo-fuzz target in `fuzz/` for N seconds each, from its
//! seed corpus in `fuzz/corpus/TARGET` (kept as it is in the repository: what a run finds goes
//! to `target/fuzz-corpus/TARGET`). A finding fails the run and leaves its input in
//! `fuzz/artifacts/TARGET`. `cargo xtask test` runs each target briefly.

use std::{path::Path, time::Instant};

use anyhow::{Context as _, bail};

use crate::{nightly_cargo, workspace_root};

/// The targets, as in `fuzz/Cargo.toml`.
pub const TARGETS: &[&str] = &[
    "group_file",
    "mpathd_defaults",
    "netlink",
    "probe_header",
    "reply_matching",
    "control_request",
];

/// Arguments of `cargo xtask fuzz`.
#[derive(Debug, clap::Args)]
pub struct FuzzArgs {
    /// Seconds per target.
    #[arg(long, default_value_t = 60)]
    pub secs: u64,
    /// Only these targets (default: all).
    #[arg(long)]
    pub target: Vec<String>,
}

/// What one target's run did.
struct Outcome {
    target: String,
    runs: u64,
    corpus: usize,
    secs: u64,
}

/// Runs the targets for `args.secs` seconds each.
///
/// # Errors
/// When cargo-fuzz is missing, a target does not build, or a target finds something.
pub fn run(args: &FuzzArgs) -> anyhow::Result<()> {
    let targets: Vec<&str> = if args.target.is_empty() {
        TARGETS.to_vec()
    } else {
        for t in &args.target {
            if !TARGETS.contains(&t.as_str()) {
                bail!("no fuzz target {t}; there are {}", TARGETS.join(", "));
            }
        }
        args.target.iter().map(String::as_str).collect()
    };
    let root = workspace_root();
    println!(
        "== fuzzing: {} target(s), {} s each ==",
        targets.len(),
        args.secs
    );
    let status = nightly_cargo()
        .args(["fuzz", "build", "--fuzz-dir", "fuzz"])
        .status()
        .context("cannot run cargo-fuzz; `cargo xtask setup` installs it")?;
    if !status.success() {
        bail!("the fuzz targets did not build ({status}); `cargo xtask setup` installs cargo-fuzz");
    }
    let mut outcomes = Vec::new();
    for t in targets {
        outcomes.push(run_one(&root, t, args.secs)?);
    }
    println!("\n| target | runs | corpus | seconds |\n|---|---|---|---|");
    for o in &outcomes {
        println!("| {} | {} | {} | {} |", o.target, o.runs, o.corpus, o.secs);
    }
    Ok(())
}

fn run_one(root: &Path, target: &str, secs: u64) -> anyhow::Result<Outcome> {
    let work = root.join("target/fuzz-corpus").join(target);
    std::fs::create_dir_all(&work)?;
    let seeds = root.join("fuzz/corpus").join(target);
    let t0 = Instant::now();
    let out = nightly_cargo()
        .args(["fuzz", "run", "--fuzz-dir", "fuzz", target])
        .arg(&work)
        .arg(&seeds)
        .args([
            "--",
            &format!("-max_total_time={secs}"),
            "-rss_limit_mb=2048",
            "-max_len=65536",
            "-print_final_stats=1",
        ])
        .output()
        .with_context(|| format!("cannot run fuzz target {target}"))?;
    let log = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        for l in tail.iter().rev() {
            eprintln!("{l}");
        }
        bail!(
            "fuzz target {target} found a problem; its input is in fuzz/artifacts/{target} (`cargo +nightly fuzz run {target} FILE` replays it)"
        );
    }
    // libFuzzer's final statistics: "stat::number_of_executed_units: N".
    let runs = log
        .lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let corpus = std::fs::read_dir(&work).map_or(0, Iterator::count);
    let secs = t0.elapsed().as_secs();
    println!("fuzz {target}: {runs} inputs in {secs} s, corpus {corpus}, no finding");
    Ok(Outcome {
        target: target.to_owned(),
        runs,
        corpus,
        secs,
    })
}
