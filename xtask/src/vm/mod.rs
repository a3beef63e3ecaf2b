//! `cargo xtask vm-test`: the privileged tests on the kernels users have, under qemu. Debian 12's
//! 6.1 (no TCX: clsact; the carrier hook loads), the same 6.1 booted with
//! `lockdown=confidentiality` (the hook refused: the poll), and Debian 12's 6.12 (TCX and the
//! hook). The guest's root is the host's, shared read-only over 9p, so the guest runs the very
//! binaries the host built; its results come back as `SUITE-RESULT` lines on the serial console.

mod boot;
pub mod guest;

use std::path::PathBuf;

use anyhow::{Context as _, bail};

use crate::suite::{self, Binary, TestResult};

/// One kernel and how to boot it.
#[derive(Clone, Debug)]
pub struct VmKernel {
    /// Short name in the table and for `--kernel`.
    pub label: &'static str,
    /// The kernel image under /boot.
    pub image: PathBuf,
    /// Extra kernel command line.
    pub append: &'static str,
    /// What ipmpd must choose there: TC attach mode and carrier source.
    pub expect_tc: &'static str,
    pub expect_carrier: &'static str,
}

/// The newest image under /boot whose file name starts with `prefix` (generic flavour only: the
/// cloud flavour has no 9p).
fn newest_image(prefix: &str) -> Option<PathBuf> {
    let mut found: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir("/boot")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let rest = name.strip_prefix(prefix)?;
            if name.contains("cloud") || !name.ends_with("-amd64") {
                return None;
            }
            let key = rest
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse().ok())
                .collect();
            Some((key, e.path()))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}

/// The kernels of the VM suites, in the order they run.
///
/// # Errors
/// When a kernel image is missing (`cargo xtask setup` installs them).
pub fn kernels() -> anyhow::Result<Vec<VmKernel>> {
    let k61 = newest_image("vmlinuz-6.1.0-")
        .context("no /boot/vmlinuz-6.1.0-N-amd64: run `cargo xtask setup`")?;
    let k612 = newest_image("vmlinuz-6.12.")
        .context("no /boot/vmlinuz-6.12.N-amd64: run `cargo xtask setup`")?;
    Ok(vec![
        VmKernel {
            label: "6.1",
            image: k61.clone(),
            append: "",
            expect_tc: "clsact",
            expect_carrier: "hook",
        },
        VmKernel {
            label: "6.1-lockdown",
            image: k61,
            append: "lockdown=confidentiality",
            expect_tc: "clsact",
            expect_carrier: "poll",
        },
        VmKernel {
            label: "6.12",
            image: k612,
            append: "",
            expect_tc: "tcx",
            expect_carrier: "hook",
        },
    ])
}

/// The results of one suite (host or VM), for the table.
#[derive(Debug)]
pub struct SuiteRun {
    pub kernel: String,
    pub mode: String,
    pub results: Vec<TestResult>,
    /// Set when the VM itself failed (boot, timeout): its tests count as failed.
    pub error: Option<String>,
    pub secs: u64,
}

/// Runs the test binaries in a VM on `k`; `host_yardstick` is the host's [`suite::yardstick_ns`],
/// taken once before any VM starts so that a VM already running cannot skew it.
#[must_use]
fn run_kernel(
    k: &VmKernel,
    bins: &[Binary],
    exes: &boot::Exes,
    filter: &[String],
    host_yardstick: u64,
) -> SuiteRun {
    let t0 = std::time::Instant::now();
    let (results, error) = boot::run_suite(k, bins, exes, filter, host_yardstick);
    SuiteRun {
        kernel: image_release(k),
        mode: k.label.to_owned(),
        results,
        error,
        secs: t0.elapsed().as_secs(),
    }
}

/// The release of `k`'s image, from its file name.
fn image_release(k: &VmKernel) -> String {
    k.image
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .unwrap_or("?")
        .to_owned()
}

/// Prints the table of suites: kernel x mode x tests run / passed / not run; returns whether
/// everything that ran passed.
#[must_use]
pub fn print_table(runs: &[SuiteRun]) -> bool {
    println!();
    println!("| kernel | mode | tests run | passed | not run | time |");
    println!("|---|---|---|---|---|---|");
    let mut ok = true;
    for r in runs {
        let (run, passed, not_run) = suite::counts(&r.results);
        let mark = if r.error.is_some() || passed < run {
            ok = false;
            " FAILED"
        } else {
            ""
        };
        println!(
            "| {} | {} | {run} | {passed}{mark} | {not_run} | {} s |",
            r.kernel, r.mode, r.secs
        );
    }
    for r in runs {
        if let Some(e) = &r.error {
            println!("{} ({}): {e}", r.kernel, r.mode);
        }
        for t in &r.results {
            match &t.outcome {
                suite::Outcome::Failed(why) => {
                    println!(
                        "{} ({}): FAILED {}::{} ({why})",
                        r.kernel, r.mode, t.binary, t.test
                    );
                }
                suite::Outcome::NotRun(why) => {
                    println!(
                        "{} ({}): not run {}::{}: {why}",
                        r.kernel, r.mode, t.binary, t.test
                    );
                }
                suite::Outcome::Passed => {}
            }
        }
    }
    ok
}

/// Arguments of `cargo xtask vm-test`.
#[derive(Debug, Clone, clap::Args)]
pub struct VmArgs {
    /// Only these kernels (6.1, 6.1-lockdown, 6.12); all when not given.
    #[arg(long = "kernel")]
    pub kernels: Vec<String>,
    /// Only tests whose name contains one of these.
    #[arg(long)]
    pub filter: Vec<String>,
}

/// `cargo xtask vm-test`.
///
/// # Errors
/// When anything fails.
pub fn run(args: &VmArgs) -> anyhow::Result<()> {
    crate::setup::ensure()?;
    crate::build_agent(false)?;
    let bins = suite::build_binaries()?;
    let runs = run_all(&bins, args)?;
    if !print_table(&runs) {
        bail!("tests failed in a VM");
    }
    Ok(())
}

/// Copies the binaries a VM runs (ipmpd, xtask, the test binaries) to `target/vm/bin/`, so a
/// rebuild while the VMs run (they read the host's files live) cannot change what they test.
fn snapshot(bins: &[Binary]) -> anyhow::Result<(Vec<Binary>, PathBuf, PathBuf)> {
    let dir = crate::workspace_root().join("target/vm/bin");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let copy = |from: &std::path::Path, name: &str| -> anyhow::Result<PathBuf> {
        let to = dir.join(name);
        std::fs::copy(from, &to)
            .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
        Ok(to)
    };
    let ipmpd = copy(&crate::workspace_root().join("target/debug/ipmpd"), "ipmpd")?;
    let xtask = copy(
        &std::env::current_exe().context("cannot find the xtask binary")?,
        "xtask",
    )?;
    let bins = bins
        .iter()
        .map(|b| {
            Ok(Binary {
                name: b.name.clone(),
                path: copy(&b.path, &format!("test-{}", b.name))?,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((bins, ipmpd, xtask))
}

/// How many VMs run at once: one per core (each VM has one vCPU, which TCG runs on one host
/// thread), at least one; `IPMPD_VM_JOBS` overrides it.
fn vm_jobs() -> usize {
    std::env::var("IPMPD_VM_JOBS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
        .max(1)
}

/// Runs the VM suites `args` selects, [`vm_jobs`] at a time, the lockdown suite last (it took the
/// least time in the runs on record, so it fills the gap the first suite to end leaves); the
/// results come back in [`kernels`]' order. Each VM's console lines carry its label, so interleaved output stays
/// readable.
///
/// # Errors
/// When an unknown kernel is asked for, or none is installed.
pub fn run_all(bins: &[Binary], args: &VmArgs) -> anyhow::Result<Vec<SuiteRun>> {
    let all = kernels()?;
    let (bins, ipmpd, xtask) = snapshot(bins)?;
    let bins = bins.as_slice();
    let exes = boot::Exes { ipmpd, xtask };
    for want in &args.kernels {
        if !all.iter().any(|k| k.label == want) {
            bail!("unknown kernel {want:?}: choose among 6.1, 6.1-lockdown, 6.12");
        }
    }
    let chosen: Vec<&VmKernel> = all
        .iter()
        .filter(|k| args.kernels.is_empty() || args.kernels.iter().any(|w| w == k.label))
        .collect();
    let host_yardstick = suite::yardstick_ns();
    let jobs = vm_jobs().min(chosen.len().max(1));
    println!(
        "== VMs: {} ({jobs} at a time) ==",
        chosen
            .iter()
            .map(|k| format!("{} ({})", k.label, k.image.display()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // A stack: the runners pop from the end, so the lockdown suite goes first in it.
    let mut queue: Vec<usize> = (0..chosen.len()).rev().collect();
    queue.sort_by_key(|&i| usize::from(chosen[i].label != "6.1-lockdown"));
    let queue = std::sync::Mutex::new(queue);
    let done = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let next = queue.lock().map(|mut q| q.pop()).unwrap_or(None);
                    let Some(i) = next else { break };
                    let k = chosen[i];
                    println!("== VM: {} starts ==", k.label);
                    let run = run_kernel(k, bins, &exes, &args.filter, host_yardstick);
                    println!("== VM: {} ended after {} s ==", k.label, run.secs);
                    if let Ok(mut d) = done.lock() {
                        d.push((i, run));
                    }
                }
            });
        }
    });
    let mut done = done
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a VM runner thread panicked"))?;
    done.sort_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, r)| r).collect())
}
