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
    /// Seconds of VM time: a split suite's shares added together.
    pub secs: u64,
}

/// Runs the test binaries in one VM (`run`: a kernel, or a share of its suite); `host_yardstick`
/// is the host's [`suite::yardstick_ns`], taken once before any VM starts so that a VM already
/// running cannot skew it.
#[must_use]
fn run_vm(
    run: boot::VmRun<'_>,
    bins: &[Binary],
    exes: &boot::Exes,
    filter: &[String],
    host_yardstick: u64,
) -> SuiteRun {
    let t0 = std::time::Instant::now();
    let (results, error) = boot::run_suite(run, bins, exes, filter, host_yardstick);
    SuiteRun {
        kernel: image_release(run.kernel),
        mode: run.kernel.label.to_owned(),
        results,
        error: error.map(|e| format!("{}: {e}", run.title())),
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
///
/// # Errors
/// When `IPMPD_VM_JOBS` is set to anything but a whole number of at least 1.
fn vm_jobs() -> anyhow::Result<usize> {
    let cores = || {
        std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
    };
    match std::env::var_os("IPMPD_VM_JOBS") {
        None => Ok(cores()),
        Some(v) => parse_vm_jobs(&v.to_string_lossy()),
    }
}

/// `IPMPD_VM_JOBS`'s value as a count of VMs at once.
fn parse_vm_jobs(v: &str) -> anyhow::Result<usize> {
    match v.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => bail!(
            "IPMPD_VM_JOBS={v:?} is not a count of VMs to run at once: give a whole number of at \
             least 1, or unset it for one per core"
        ),
    }
}

/// The VMs to boot for `chosen`, in the order they start with `jobs` at a time: every suite whole
/// except the lockdown one, which is split into `jobs` shares that run last, so that the runners
/// end together (the three suites take about as long as one another: two whole suites side by
/// side, then the third in halves side by side, take about half the time of three in a row).
fn plan<'a>(chosen: &[&'a VmKernel], jobs: usize) -> Vec<boot::VmRun<'a>> {
    let split = |k: &VmKernel| k.label == "6.1-lockdown" && jobs > 1;
    let mut runs: Vec<boot::VmRun<'a>> = chosen
        .iter()
        .filter(|k| !split(k))
        .map(|&kernel| boot::VmRun {
            kernel,
            shard: None,
        })
        .collect();
    for &kernel in chosen.iter().filter(|k| split(k)) {
        runs.extend((0..jobs).map(|index| boot::VmRun {
            kernel,
            shard: Some(suite::Shard { index, count: jobs }),
        }));
    }
    runs
}

/// Runs the VM suites `args` selects, [`vm_jobs`] VMs at a time in [`plan`]'s order; the results
/// come back in [`kernels`]' order, a split suite's shares joined into one run. Each VM's console
/// lines carry its label (and share), so interleaved output stays readable.
///
/// # Errors
/// When an unknown kernel is asked for, or none is installed.
pub fn run_all(bins: &[Binary], args: &VmArgs) -> anyhow::Result<Vec<SuiteRun>> {
    let jobs = vm_jobs()?;
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
    let runs = plan(&chosen, jobs);
    println!(
        "== VMs, {} at a time: {} ==",
        jobs.min(runs.len()),
        runs.iter()
            .map(|r| format!("{} ({})", r.title(), r.kernel.image.display()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // A stack: the runners pop from the end.
    let queue = std::sync::Mutex::new(runs.into_iter().rev().collect::<Vec<_>>());
    let done = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let next = queue.lock().map(|mut q| q.pop()).unwrap_or(None);
                    let Some(run) = next else { break };
                    println!("== VM {} starts ==", run.title());
                    let result = run_vm(run, bins, &exes, &args.filter, host_yardstick);
                    println!("== VM {} ended after {} s ==", run.title(), result.secs);
                    if let Ok(mut d) = done.lock() {
                        d.push(result);
                    }
                }
            });
        }
    });
    let done = done
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a VM runner thread panicked"))?;
    Ok(chosen
        .iter()
        .filter_map(|k| join_shares(k.label, &done))
        .collect())
}

/// The runs of `label` (one, or the shares of a split suite) as one: results together, the VMs'
/// times added, every VM error kept.
fn join_shares(label: &str, done: &[SuiteRun]) -> Option<SuiteRun> {
    let mine: Vec<&SuiteRun> = done.iter().filter(|r| r.mode == label).collect();
    let first = mine.first()?;
    let errors: Vec<&str> = mine.iter().filter_map(|r| r.error.as_deref()).collect();
    Some(SuiteRun {
        kernel: first.kernel.clone(),
        mode: label.to_owned(),
        results: mine
            .iter()
            .flat_map(|r| r.results.iter().cloned())
            .collect(),
        error: (!errors.is_empty()).then(|| errors.join("; ")),
        secs: mine.iter().map(|r| r.secs).sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_jobs_takes_a_count_and_refuses_the_rest() {
        assert_eq!(parse_vm_jobs("2").unwrap(), 2);
        assert_eq!(parse_vm_jobs(" 1\n").unwrap(), 1);
        for bad in ["0", "two", "", "-1", "1.5"] {
            let e = parse_vm_jobs(bad).unwrap_err().to_string();
            assert!(e.contains("IPMPD_VM_JOBS"), "{bad:?}: {e}");
        }
    }

    fn kernel(label: &'static str) -> VmKernel {
        VmKernel {
            label,
            image: PathBuf::from("/boot/vmlinuz-6.1.0-1-amd64"),
            append: "",
            expect_tc: "clsact",
            expect_carrier: "poll",
        }
    }

    #[test]
    fn the_lockdown_suite_is_split_across_the_runners_and_runs_last() {
        let ks = [kernel("6.1"), kernel("6.1-lockdown"), kernel("6.12")];
        let chosen: Vec<&VmKernel> = ks.iter().collect();
        let titles = |jobs| {
            plan(&chosen, jobs)
                .iter()
                .map(boot::VmRun::title)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            titles(2),
            ["6.1", "6.12", "6.1-lockdown 1/2", "6.1-lockdown 2/2"]
        );
        // One at a time: nothing to split, the kernels' own order.
        assert_eq!(titles(1), ["6.1", "6.1-lockdown", "6.12"]);
        // Asked for alone, its halves run side by side.
        assert_eq!(
            plan(&[&ks[1]], 2)
                .iter()
                .map(boot::VmRun::title)
                .collect::<Vec<_>>(),
            ["6.1-lockdown 1/2", "6.1-lockdown 2/2"]
        );
        // Every VM builds its initramfs in a directory of its own, a plain name under target/vm.
        let dirs = plan(&chosen, 2)
            .iter()
            .map(boot::VmRun::dir_name)
            .collect::<Vec<_>>();
        assert_eq!(
            dirs,
            ["6.1", "6.12", "6.1-lockdown-1of2", "6.1-lockdown-2of2"]
        );
    }

    #[test]
    fn shares_join_into_one_run_with_every_result_and_error() {
        let share = |n: u128, error: Option<&str>| SuiteRun {
            kernel: "6.1.0-1-amd64".into(),
            mode: "6.1-lockdown".into(),
            results: vec![TestResult {
                binary: "b".into(),
                test: format!("t{n}"),
                outcome: suite::Outcome::Passed,
                millis: n,
            }],
            error: error.map(str::to_owned),
            secs: 10,
        };
        let other = SuiteRun {
            mode: "6.1".into(),
            ..share(9, None)
        };
        let done = [share(1, None), other, share(2, Some("boom"))];
        let joined = join_shares("6.1-lockdown", &done).unwrap();
        assert_eq!(joined.results.len(), 2);
        assert_eq!(joined.secs, 20);
        assert_eq!(joined.error.as_deref(), Some("boom"));
        assert!(join_shares("6.12", &done).is_none());
    }
}
