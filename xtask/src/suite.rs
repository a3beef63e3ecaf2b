//! The privileged test suite as a list of test binaries and a runner: every test in its own
//! process (`--exact NAME`), one at a time, so its result is its exit status and a hung test is
//! stopped without losing the others. The same runner works on the host and inside the VMs
//! (`cargo xtask vm-guest`), where it prints its results as `SUITE-RESULT` lines on the console.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::panic_report::PanicReport;

/// One test binary of the `tests` package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binary {
    /// Its target name (`link_state`, `failover`, ...).
    pub name: String,
    pub path: PathBuf,
}

/// Builds the `tests` package's test binaries and lists them, from cargo's own report (never from
/// a glob in `target/debug/deps`, where stale hashes linger).
///
/// # Errors
/// When cargo fails or reports nothing.
pub fn build_binaries() -> anyhow::Result<Vec<Binary>> {
    let out = crate::cargo()
        .args([
            "test",
            "-p",
            "tests",
            "--tests",
            "--no-run",
            "--message-format=json",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo")?;
    if !out.status.success() {
        bail!("building the test binaries failed");
    }
    let mut bins = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let kinds = &v["target"]["kind"];
        let is_test = kinds
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "test"));
        if v["reason"] == "compiler-artifact"
            && is_test
            && let (Some(exe), Some(name)) =
                (v["executable"].as_str(), v["target"]["name"].as_str())
        {
            bins.push(Binary {
                name: name.to_owned(),
                path: exe.into(),
            });
        }
    }
    if bins.is_empty() {
        bail!("cargo reported no test binaries for the tests package");
    }
    bins.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(bins)
}

/// What became of one test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed(String),
    /// The test decided it cannot run here, and said why.
    NotRun(String),
}

/// One test's result.
#[derive(Clone, Debug)]
pub struct TestResult {
    pub binary: String,
    pub test: String,
    pub outcome: Outcome,
    pub millis: u128,
}

impl TestResult {
    /// The console line the host reads back from a VM.
    #[must_use]
    pub fn line(&self) -> String {
        let (kind, why) = match &self.outcome {
            Outcome::Passed => ("passed", String::new()),
            Outcome::Failed(w) => ("failed", w.clone()),
            Outcome::NotRun(w) => ("not-run", w.clone()),
        };
        format!(
            "SUITE-RESULT\t{}\t{}\t{kind}\t{}\t{}",
            self.binary,
            self.test,
            self.millis,
            why.replace(['\t', '\n'], " ")
        )
    }

    /// Parses a [`Self::line`] (anywhere in a console line: the kernel may prefix it).
    #[must_use]
    pub fn parse(line: &str) -> Option<Self> {
        let at = line.find("SUITE-RESULT\t")?;
        let mut f = line[at..].trim_end_matches('\r').split('\t').skip(1);
        let (binary, test, kind, millis) = (f.next()?, f.next()?, f.next()?, f.next()?);
        let why = f.next().unwrap_or_default().to_owned();
        let outcome = match kind {
            "passed" => Outcome::Passed,
            "failed" => Outcome::Failed(why),
            "not-run" => Outcome::NotRun(why),
            _ => return None,
        };
        Some(Self {
            binary: binary.into(),
            test: test.into(),
            outcome,
            millis: millis.parse().ok()?,
        })
    }
}

/// The tests of `bin` (`--list`).
fn list(bin: &Binary) -> anyhow::Result<Vec<String>> {
    let out = Command::new(&bin.path)
        .args(["--list", "--format=terse"])
        .output()
        .with_context(|| format!("cannot list the tests of {}", bin.path.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(str::to_owned)
        .collect())
}

/// One VM's share of a suite: the tests whose position among those kept is INDEX modulo COUNT
/// (alternate tests, so each share gets a like mix of long and short ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Whether the test at `position` (0-based, among those the filter keeps) is in this share.
    #[must_use]
    pub fn keeps(self, position: usize) -> bool {
        position % self.count.max(1) == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index + 1, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `I/N` with 1 <= I <= N (1-based, as printed).
    fn from_str(s: &str) -> Result<Self, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: a shard is I/N, e.g. 1/2"))?;
        let (i, n): (usize, usize) = (
            i.parse().map_err(|_| format!("{s:?}: I is not a number"))?,
            n.parse().map_err(|_| format!("{s:?}: N is not a number"))?,
        );
        if i == 0 || i > n {
            return Err(format!("{s:?}: a shard I/N needs 1 <= I <= N"));
        }
        Ok(Self {
            index: i - 1,
            count: n,
        })
    }
}

/// How the runner runs each test.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Environment for every test (IPMPD_BIN, the time scale, expectations of the kernel).
    pub env: Vec<(String, String)>,
    /// Longest a single test may take.
    pub per_test: Duration,
    /// Print each result as a `SUITE-RESULT` line (inside a VM).
    pub print_lines: bool,
    /// Only tests whose `BINARY::TEST` name contains one of these (all when empty).
    pub filter: Vec<String>,
    /// Only every COUNT-th of the tests the filter keeps, starting with the INDEX-th (0-based):
    /// one VM's share of a suite split across VMs.
    pub shard: Option<Shard>,
    /// After each test, delete every network namespace and ipmpd pin a failed test left (only in
    /// a VM, which runs nothing else).
    pub clean_between: bool,
}

/// Runs every test of `bins`, one process per test.
///
/// # Errors
/// When a binary cannot be listed.
pub fn run(bins: &[Binary], opts: &RunOptions) -> anyhow::Result<Vec<TestResult>> {
    let report_dir = std::env::temp_dir().join(format!("ipmpd-suite-{}", std::process::id()));
    std::fs::create_dir_all(&report_dir)?;
    let mut results = Vec::new();
    let mut kept = 0usize;
    for bin in bins {
        for test in list(bin)? {
            let full = format!("{}::{test}", bin.name);
            if !opts.filter.is_empty() && !opts.filter.iter().any(|f| full.contains(f.as_str())) {
                continue;
            }
            kept += 1;
            if opts.shard.is_some_and(|s| !s.keeps(kept - 1)) {
                continue;
            }
            let r = run_one(bin, &test, opts, &report_dir.join("not-run"));
            if opts.clean_between {
                clean_up();
            }
            if opts.print_lines {
                println!("{}", r.line());
            }
            results.push(r);
        }
    }
    let _ = std::fs::remove_dir_all(&report_dir);
    Ok(results)
}

fn run_one(bin: &Binary, test: &str, opts: &RunOptions, report: &Path) -> TestResult {
    let _ = std::fs::remove_file(report);
    println!("---- {} :: {test}", bin.name);
    let t0 = Instant::now();
    let child = Command::new(&bin.path)
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .envs(opts.env.iter().map(|(k, v)| (k, v)))
        .env("IPMPD_TEST_REPORT", report)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let outcome = match child {
        Err(e) => Outcome::Failed(format!("cannot start: {e}")),
        Ok(mut child) => {
            // Echo the test's output as it comes, so a log shows where a hang is.
            let stdout = child.stdout.take();
            let echo = std::thread::spawn(move || {
                if let Some(s) = stdout {
                    for_each_line(s, |line| println!("{line}"));
                }
            });
            let panic = echo_stderr(child.stderr.take());
            let status = wait_bounded(&mut child, opts.per_test);
            let _ = echo.join();
            let why = |s: String| match panic.after_exit() {
                p if p.is_empty() => s,
                p => format!("{s}: {p}"),
            };
            match status {
                None => Outcome::Failed(why(format!("timed out after {:?}", opts.per_test))),
                Some(s) if s.success() => match std::fs::read_to_string(report) {
                    Ok(why) if !why.trim().is_empty() => Outcome::NotRun(why.trim().to_owned()),
                    _ => Outcome::Passed,
                },
                Some(s) => Outcome::Failed(why(s.to_string())),
            }
        }
    };
    let r = TestResult {
        binary: bin.name.clone(),
        test: test.to_owned(),
        outcome,
        millis: t0.elapsed().as_millis(),
    };
    println!(
        "---- {} :: {test}: {:?} in {} ms",
        bin.name, r.outcome, r.millis
    );
    r
}

/// The panic a test's standard error reports, read by the thread that echoes it.
struct StderrPanic {
    report: Arc<Mutex<PanicReport>>,
    ended: mpsc::Receiver<()>,
}

impl StderrPanic {
    /// The panic reported (empty: none), once the test has exited. Waits a moment for the rest of
    /// its standard error, never for the end of it: a daemon the test left running may hold it
    /// open.
    fn after_exit(&self) -> String {
        let _ = self.ended.recv_timeout(Duration::from_secs(2));
        self.report.lock().map(|r| r.text()).unwrap_or_default()
    }
}

/// Echoes `stderr` to ours line by line, keeping the last panic it reports.
fn echo_stderr(stderr: Option<std::process::ChildStderr>) -> StderrPanic {
    let report = Arc::new(Mutex::new(PanicReport::default()));
    let (done, ended) = mpsc::channel();
    let seen = Arc::clone(&report);
    std::thread::spawn(move || {
        if let Some(s) = stderr {
            for_each_line(s, |line| {
                eprintln!("{line}");
                if let Ok(mut r) = seen.lock() {
                    r.see(line);
                }
            });
        }
        let _ = done.send(());
    });
    StderrPanic { report, ended }
}

/// Calls `f` with each line of `r` until its end or an error; bytes that are not UTF-8 are
/// replaced, never the end of the reading (a pipe no longer read would fill and block the test).
fn for_each_line(r: impl std::io::Read, mut f: impl FnMut(&str)) {
    let mut r = BufReader::new(r);
    let mut buf = Vec::new();
    while matches!(r.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
        f(String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']));
        buf.clear();
    }
}

/// Deletes every network namespace and ipmpd's pins: what a failed test may leave behind.
fn clean_up() {
    let _ = Command::new("sh")
        .arg("-c")
        .arg("for n in $(ip netns list | cut -d' ' -f1); do ip netns del $n; done; rm -rf /sys/fs/bpf/ipmpd")
        .status();
}

/// Waits for `child` up to `limit`; kills it (and returns `None`) when it takes longer.
fn wait_bounded(
    child: &mut std::process::Child,
    limit: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The yardstick of how much slower a VM is than the host, in ns: the median of 11 rounds of a
/// mix of the work ipmpd's reaction to an event is made of, computation and system calls. (Process
/// spawning, 50x slower under TCG, would overstate it; the tests' own run times grow 5-15x.)
#[must_use]
pub fn yardstick_ns() -> u64 {
    let mut v: Vec<u64> = (0..11)
        .map(|_| {
            let t0 = Instant::now();
            let mut acc = 0u64;
            for i in 0..2_000u64 {
                for k in 0..256u64 {
                    acc = std::hint::black_box(acc.rotate_left(5) ^ (i * k));
                }
                // SAFETY: getppid has no preconditions.
                acc ^= u64::from(unsafe { libc::getppid() }.unsigned_abs());
            }
            std::hint::black_box(acc);
            u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX)
        })
        .collect();
    v.sort_unstable();
    v[v.len() / 2].max(1)
}

/// Counts of one suite run: (run, passed, not run).
#[must_use]
pub fn counts(results: &[TestResult]) -> (usize, usize, usize) {
    let not_run = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::NotRun(_)))
        .count();
    let passed = results
        .iter()
        .filter(|r| r.outcome == Outcome::Passed)
        .count();
    (results.len() - not_run, passed, not_run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_round_trip_and_survive_a_console_prefix() {
        let r = TestResult {
            binary: "link_state".into(),
            test: "hook_is_the_source".into(),
            outcome: Outcome::NotRun("the kernel refuses fentry\tat all".into()),
            millis: 12,
        };
        let line = format!("[  3.1] {}", r.line());
        let back = TestResult::parse(&line).unwrap();
        assert_eq!(
            (back.binary.as_str(), back.test.as_str(), back.millis),
            ("link_state", "hook_is_the_source", 12)
        );
        assert_eq!(
            back.outcome,
            Outcome::NotRun("the kernel refuses fentry at all".into())
        );
        assert!(TestResult::parse("test foo ... ok").is_none());
    }

    #[test]
    fn shares_split_every_test_exactly_once_and_parse_as_printed() {
        for count in 1..=4 {
            for position in 0..23 {
                let owners = (0..count)
                    .filter(|&index| Shard { index, count }.keeps(position))
                    .count();
                assert_eq!(owners, 1, "position {position} of {count} shares");
            }
        }
        let s: Shard = "2/3".parse().unwrap();
        assert_eq!(s, Shard { index: 1, count: 3 });
        assert_eq!(s.to_string(), "2/3");
        for bad in ["0/2", "3/2", "1", "a/2", "1/b", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad:?} accepted");
        }
    }
}
