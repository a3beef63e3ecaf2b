//! `cargo xtask`: the project's own commands. `setup` installs what a fresh machine lacks; `test`,
//! `demo` and `bench` run it first when anything is missing.

mod bench;
mod bench_failover;
mod bench_load;
mod bench_peers;
mod bench_scale;
mod bench_tools;
mod demo;
mod plot;
mod setup;

use std::process::Command;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install everything a fresh machine lacks (Debian packages, nightly rust-src, bpf-linker, bpffs).
    Setup,
    /// Run all tests: unit tests, then the privileged TestRun and network-namespace tests.
    Test,
    /// Build a small topology in network namespaces, run ipmpd there and show what it sees.
    Demo,
    /// Run the benchmarks and write BENCHMARKS.md.
    Bench(bench::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Setup => setup::run(),
        Cmd::Test => test(),
        Cmd::Demo => demo::run(),
        Cmd::Bench(args) => bench::run(&args),
    }
}

/// Runs a command from the workspace root, failing with its name when it fails.
pub fn run_cmd(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// `cargo` with the workspace root as working directory.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(workspace_root());
    c
}

/// The workspace root.
#[must_use]
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds the agent (debug) and returns the path of the `ipmpd` binary.
pub fn build_agent(release: bool) -> anyhow::Result<std::path::PathBuf> {
    let mut c = cargo();
    c.args(["build", "-p", "agent"]);
    if release {
        c.arg("--release");
    }
    run_cmd(&mut c)?;
    Ok(workspace_root()
        .join("target")
        .join(if release { "release" } else { "debug" })
        .join("ipmpd"))
}

fn test() -> anyhow::Result<()> {
    setup::ensure()?;
    let bin = build_agent(false)?;
    println!("== unit tests ==");
    run_cmd(cargo().args([
        "test",
        "--workspace",
        "--exclude",
        "agent-ebpf",
        "--exclude",
        "tests",
    ]))?;
    println!("== privileged tests: TestRun and network namespaces ==");
    run_cmd(
        cargo()
            .args(["test", "-p", "tests", "--tests", "--", "--test-threads=1"])
            .env("IPMPD_BIN", &bin),
    )?;
    Ok(())
}
