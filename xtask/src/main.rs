//! `cargo xtask`: the project's own commands. `setup` installs what a fresh machine lacks; `test`,
//! `demo` and `bench` run it first when anything is missing.

mod demo;
mod fuzz;
mod package;
mod panic_report;
mod setup;
mod suite;
mod vm;

use std::{os::unix::fs::PermissionsExt as _, process::Command};

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
    /// Run all tests: formatting and lints, unit tests, the privileged tests on this kernel, then
    /// the same in VMs on Debian 12's 6.1 (with and without lockdown) and 6.12.
    Test(TestArgs),
    /// The privileged tests in VMs only (Debian 12's 6.1, 6.1 locked down, 6.12).
    VmTest(vm::VmArgs),
    /// Inside a VM started by vm-test: run the test binaries and print their results.
    #[command(hide = true)]
    VmGuest(vm::guest::GuestArgs),
    /// Build a small topology in network namespaces, run ipmpd there and show what it sees.
    Demo,
    /// Run the benchmarks and write BENCHMARKS.md.
    Bench(bench::BenchArgs),
    /// Run every fuzz target (cargo-fuzz, nightly) for --secs seconds each.
    Fuzz(fuzz::FuzzArgs),
    /// Build the .deb and the .rpm into target/package.
    Package,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Setup => setup::run(),
        Cmd::Test(args) => test(&args),
        Cmd::VmTest(args) => vm::run(&args),
        Cmd::VmGuest(args) => vm::guest::run(&args),
        Cmd::Demo => demo::run(),
        Cmd::Bench(args) => run_bench(&args),
        Cmd::Fuzz(args) => {
            setup::ensure()?;
            fuzz::run(&args)
        }
        Cmd::Package => {
            setup::ensure()?;
            package::build().map(drop)
        }
    }
}

/// `cargo xtask bench`: the benchmark crate's run, with the release agent it measures; with
/// `IPMPD_BENCH_BIN=PATH`, that binary instead (an A/B of two builds in one session).
fn run_bench(args: &bench::BenchArgs) -> anyhow::Result<()> {
    setup::ensure()?;
    let bin = match std::env::var_os("IPMPD_BENCH_BIN") {
        Some(path) => {
            let path = std::path::PathBuf::from(path);
            let executable = std::fs::metadata(&path)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
            if !executable {
                bail!(
                    "IPMPD_BENCH_BIN={} is not an executable file: give the path of an ipmpd \
                     binary, or unset IPMPD_BENCH_BIN to measure a release build of this tree",
                    path.display()
                );
            }
            path
        }
        None => build_agent(true)?,
    };
    // SAFETY: set before any thread of this process exists; the harness reads it to find ipmpd.
    unsafe { std::env::set_var("IPMPD_BIN", &bin) };
    bench::run(args, &workspace_root(), cargo)
}

/// Runs a command from the workspace root, failing with its name when it fails.
///
/// # Errors
/// When the command cannot start or fails.
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

/// `cargo +nightly` from the workspace root, free of the toolchain the xtask itself runs under
/// (for cargo-fuzz and the eBPF crate's lints).
pub fn nightly_cargo() -> Command {
    let mut c = Command::new("cargo");
    c.arg("+nightly").current_dir(workspace_root());
    for key in [
        "RUSTUP_TOOLCHAIN",
        "RUSTC",
        "RUSTDOC",
        "CARGO",
        "RUSTC_WRAPPER",
    ] {
        c.env_remove(key);
    }
    c
}

/// The workspace root.
#[must_use]
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds the agent (debug) and returns the path of the `ipmpd` binary.
///
/// # Errors
/// When the build fails.
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

/// Seconds per fuzz target in `cargo xtask test`.
const FUZZ_SECS_IN_TEST: u64 = 15;

/// Arguments of `cargo xtask test`.
#[derive(Debug, clap::Args)]
struct TestArgs {
    /// Skip the VM suites (a quicker run while developing; CI runs them).
    #[arg(long)]
    no_vm: bool,
    /// Only privileged tests whose name contains one of these (unit tests always run).
    #[arg(long)]
    filter: Vec<String>,
}

fn test(args: &TestArgs) -> anyhow::Result<()> {
    let t0 = std::time::Instant::now();
    setup::ensure()?;
    println!("== formatting and lints ==");
    run_cmd(cargo().args(["fmt", "--all", "--check"]))?;
    run_cmd(cargo().args([
        "clippy",
        "--workspace",
        "--exclude",
        "agent-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The kernel programs, linted for their own target (the workspace run cannot build them).
    run_cmd(nightly_cargo().args([
        "clippy",
        "-p",
        "agent-ebpf",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
        "--release",
        "--",
        "-D",
        "warnings",
    ]))?;
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
    // The harness's own unit tests (its library): pure, so here rather than in the suites, which
    // run only its integration test binaries.
    run_cmd(cargo().args(["test", "-p", "tests", "--lib"]))?;
    // Each fuzz target briefly: a regression in a parser shows here; long runs are
    // `cargo xtask fuzz --secs N`.
    fuzz::run(&fuzz::FuzzArgs {
        secs: FUZZ_SECS_IN_TEST,
        target: Vec::new(),
    })?;
    println!("== packages: the .deb and the .rpm the package tests install ==");
    let packages = package::build()?;
    println!("== privileged tests on this kernel: TestRun and network namespaces ==");
    let bins = suite::build_binaries()?;
    let host_t0 = std::time::Instant::now();
    let results = suite::run(
        &bins,
        &suite::RunOptions {
            env: vec![
                ("IPMPD_BIN".into(), bin.display().to_string()),
                ("IPMPD_DEB".into(), packages.deb.display().to_string()),
                ("IPMPD_RPM".into(), packages.rpm.display().to_string()),
            ],
            per_test: std::time::Duration::from_secs(300),
            print_lines: false,
            filter: args.filter.clone(),
            shard: None,
            clean_between: false,
        },
    )?;
    let mut runs = vec![vm::SuiteRun {
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        mode: "host".into(),
        results,
        error: None,
        secs: host_t0.elapsed().as_secs(),
    }];
    if args.no_vm {
        println!("== VM suites skipped (--no-vm) ==");
    } else {
        runs.extend(vm::run_all(
            &bins,
            &vm::VmArgs {
                kernels: Vec::new(),
                filter: args.filter.clone(),
            },
        )?);
    }
    let ok = vm::print_table(&runs);
    println!("all tests took {} s", t0.elapsed().as_secs());
    if !ok {
        bail!("tests failed");
    }
    Ok(())
}
