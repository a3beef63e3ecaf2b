//! Running the real `ipmpd` binary inside a namespace.

use std::{
    io::{BufRead as _, BufReader},
    os::fd::{AsRawFd as _, RawFd},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::Netns;

/// CLOCK_MONOTONIC in nanoseconds.
#[must_use]
pub fn clock_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The ipmpd binary: `$IPMPD_BIN`, else the workspace's `target/{debug,release}/ipmpd`.
#[must_use]
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("IPMPD_BIN") {
        return p.into();
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    for profile in ["debug", "release"] {
        let p = target.join(profile).join("ipmpd");
        if p.exists() {
            return p;
        }
    }
    panic!("ipmpd binary not found: run `cargo build -p agent` or set IPMPD_BIN");
}

/// Runs `ipmpd ARGS` to completion inside `ns`; returns (success, stdout, stderr).
#[must_use]
pub fn run(ns: &Netns, args: &[&str]) -> (bool, String, String) {
    let out = ns
        .command(binary())
        .args(args)
        .output()
        .expect("ipmpd runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What `ipmpd features --json ARGS` reports in `ns`.
#[must_use]
pub fn features(ns: &Netns, args: &[&str]) -> Value {
    let (ok, out, err) = run(ns, &[&["features", "--json"], args].concat());
    assert!(ok, "ipmpd features failed: {err}");
    serde_json::from_str(out.trim()).expect("one JSON object")
}

/// Whether ipmpd attaches TC programs as TCX links in `ns`'s kernel, which taking probe replies
/// at TC ingress (`--reply-hook tc`) needs.
#[must_use]
pub fn has_tcx(ns: &Netns) -> bool {
    features(ns, &[])["tc"]["mode"] == "tcx"
}

/// The names of instance `instance`'s link pins, sorted.
#[must_use]
pub fn link_pins(instance: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(format!("/sys/fs/bpf/ipmpd/{instance}/links"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Whether `pins` (an instance's link pins) hold the link of a program taking replies on
/// `ifindex`: XDP, or TC ingress (veth, where the kernel has TCX).
#[must_use]
pub fn has_reply_pin(pins: &[String], ifindex: impl std::fmt::Display) -> bool {
    pins.iter()
        .any(|p| *p == format!("xdp-{ifindex}") || *p == format!("tcx-ingress-{ifindex}"))
}

/// Whether a program of instance `instance` takes replies on `ifname` in `ns`: XDP, as `ip link`
/// shows it, or the TCX ingress link the instance pinned for the device (the bpftool here does
/// not show a TCX link's device; the pin is the link, so it is attached while the pin exists).
#[must_use]
pub fn reply_program_on(ns: &Netns, instance: &str, ifname: &str) -> bool {
    if ns.sh(&format!("ip link show {ifname}")).contains("xdp") {
        return true;
    }
    let idx = ns.ifindex(ifname);
    Path::new(&format!(
        "/sys/fs/bpf/ipmpd/{instance}/links/tcx-ingress-{idx}"
    ))
    .exists()
}

/// A running ipmpd whose stdout JSON lines are collected; killed (SIGTERM, then SIGKILL) on drop.
pub struct Daemon {
    child: Child,
    lines: mpsc::Receiver<Value>,
    pub seen: Vec<Value>,
    /// Set while the reader of its stdout stops reading (see [`Daemon::stall_stdout`]).
    stalled: Arc<AtomicBool>,
    /// Its stdout pipe's reading end, while the reader thread holds it (-1: none).
    stdout_fd: RawFd,
}

impl Daemon {
    /// Starts `ipmpd ARGS` in `ns` (ARGS should include `--json`).
    #[must_use]
    pub fn spawn(ns: &Netns, args: &[&str]) -> Self {
        Self::spawn_env(ns, args, &[])
    }

    /// [`Daemon::spawn`] with `env` added to the environment (e.g. systemd's `NOTIFY_SOCKET`).
    #[must_use]
    pub fn spawn_env(ns: &Netns, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start(ns, args, env, Stdio::inherit())
    }

    /// [`Daemon::spawn_env`] with standard error written to `log` (for what it logs).
    #[must_use]
    pub fn spawn_logged(ns: &Netns, args: &[&str], env: &[(&str, &str)], log: &Path) -> Self {
        let file = std::fs::File::create(log).expect("log file");
        Self::start(ns, args, env, Stdio::from(file))
    }

    /// [`Daemon::spawn`] behind `wrapper` (such as `setpriv` with a capability taken away).
    #[must_use]
    pub fn spawn_wrapped(ns: &Netns, wrapper: &[&str], args: &[&str]) -> Self {
        Self::start_wrapped(ns, wrapper, args, &[], Stdio::inherit())
    }

    /// [`Daemon::spawn_wrapped`] with standard error written to `log` (for what it logs).
    #[must_use]
    pub fn spawn_wrapped_logged(ns: &Netns, wrapper: &[&str], args: &[&str], log: &Path) -> Self {
        let file = std::fs::File::create(log).expect("log file");
        Self::start_wrapped(ns, wrapper, args, &[], Stdio::from(file))
    }

    fn start(ns: &Netns, args: &[&str], env: &[(&str, &str)], stderr: Stdio) -> Self {
        Self::start_wrapped(ns, &[], args, env, stderr)
    }

    fn start_wrapped(
        ns: &Netns,
        wrapper: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
        stderr: Stdio,
    ) -> Self {
        let mut child = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = ns.command(program);
                c.args(rest).arg(binary());
                c
            }
            None => ns.command(binary()),
        };
        let mut child = child
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("ipmpd starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let stdout_fd = stdout.as_raw_fd();
        let (tx, lines) = mpsc::channel();
        let stalled = Arc::new(AtomicBool::new(false));
        let paused = Arc::clone(&stalled);
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            loop {
                // A stalled reader reads nothing, so the pipe fills; it ends with the test.
                while paused.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                let Some(Ok(line)) = lines.next() else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && tx.send(v).is_err()
                {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
            stalled,
            stdout_fd,
        }
    }

    /// Stops reading its stdout, as a paused pager or a stuck log collector does, with the pipe
    /// shrunk to one page where the kernel lets us so that it fills within a few lines.
    pub fn stall_stdout(&self) {
        self.stalled.store(true, Ordering::Relaxed);
        if self.stdout_fd < 0 {
            return;
        }
        // Refused (EBUSY) while more than a page is in the pipe: the reader has just stopped.
        for _ in 0..50 {
            // SAFETY: fcntl on the pipe the reader thread holds open until it ends, which a
            // stalled reader does not; F_SETPIPE_SZ reads no memory of ours.
            if unsafe { libc::fcntl(self.stdout_fd, libc::F_SETPIPE_SZ, 4096) } >= 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Reads its stdout again.
    pub fn resume_stdout(&self) {
        self.stalled.store(false, Ordering::Relaxed);
    }

    /// Starts any command in `ns` (its stdout discarded), killed on drop.
    #[must_use]
    pub fn spawn_command(ns: &Netns, argv: &[&str]) -> Self {
        let (program, rest) = argv.split_first().expect("a command to start");
        let mut child = ns
            .command(program)
            .args(rest)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the command starts");
        let _ = child.stdout.take();
        let (_tx, lines) = mpsc::channel();
        Self {
            child,
            lines,
            seen: Vec::new(),
            stalled: Arc::default(),
            stdout_fd: -1,
        }
    }

    /// Waits up to `timeout` (stretched by [`crate::time_scale`] in a VM) for a line matching
    /// `pred`; returns it (lines read meanwhile are kept).
    pub fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + crate::scaled(timeout);
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return Some(v.clone());
        }
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return Some(v);
                    }
                }
                Err(_) => return None,
            }
        }
        None
    }

    /// The last `n` lines seen, one per line: what a failed timing assertion shows.
    #[must_use]
    pub fn tail(&self, n: usize) -> String {
        let from = self.seen.len().saturating_sub(n);
        self.seen[from..]
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Lines that arrived so far (non-blocking).
    pub fn drain(&mut self) -> &[Value] {
        while let Ok(v) = self.lines.try_recv() {
            self.seen.push(v);
        }
        &self.seen
    }

    /// Sends `signal` to it.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Its process id (the namespace is entered before exec, so this is ipmpd's).
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills it with SIGKILL, as a crash would, and returns once it is gone (reaped), so what
    /// the test looks at next is what a dead daemon left behind.
    pub fn kill_and_reap(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops it with SIGTERM (so it cleans up its pins) and waits up to 5 s (scaled in a VM).
    pub fn stop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        if poll_until(crate::scaled(Duration::from_secs(5)), || !self.running()) {
            self.drain();
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// The value of `ifindex`'s entry in instance `instance`'s pinned map `map`, as bpftool formats
/// it, if there is one.
#[must_use]
pub fn pinned_entry(instance: &str, map: &str, ifindex: u32) -> Option<Value> {
    bpftool_dump(&format!("/sys/fs/bpf/ipmpd/{instance}/{map}"))
        .as_array()?
        .iter()
        .find(|e| e["key"].as_u64() == Some(u64::from(ifindex)))
        .map(|e| e["value"].clone())
}

/// Instance `instance`'s pinned link-state entry for `ifindex` (carrier, flaps, last change), if
/// the mirror has written one.
#[must_use]
pub fn link_state_entry(instance: &str, ifindex: u32) -> Option<Value> {
    pinned_entry(instance, "LINK_STATE", ifindex)
}

/// Asks `done` every 20 ms until it says yes or `limit` has passed; whether it said yes.
pub fn poll_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The counters of `ifindex`'s entry in the per-CPU map pinned at `path`, each summed over the
/// CPUs, as an object of field names (read with [`bpftool_dump`], which names the fields from
/// BTF); `None` while there is no such entry.
#[must_use]
pub fn per_cpu_sums(path: &str, ifindex: u32) -> Option<Value> {
    let dump = bpftool_dump(path);
    let entry = dump.as_array()?.iter().find(|e| e["key"] == ifindex)?;
    let mut sums = serde_json::Map::new();
    for cpu in entry["values"].as_array()? {
        for (field, value) in cpu["value"].as_object()? {
            let total = sums.get(field).and_then(Value::as_u64).unwrap_or(0) + value.as_u64()?;
            sums.insert(field.clone(), total.into());
        }
    }
    Some(Value::Object(sums))
}

/// `bpftool -j map dump pinned PATH` as JSON: one element per entry, each the BTF-formatted form
/// (named fields) that bpftool prints beside the raw bytes.
#[must_use]
pub fn bpftool_dump(path: &str) -> Value {
    let out = Command::new("bpftool")
        .args(["-j", "map", "dump", "pinned", path])
        .output()
        .expect("bpftool runs");
    assert!(
        out.status.success(),
        "bpftool map dump pinned {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw: Value = serde_json::from_slice(&out.stdout).expect("bpftool prints JSON");
    let entries = raw.as_array().expect("an array of entries");
    Value::Array(
        entries
            .iter()
            .map(|e| e.get("formatted").cloned().unwrap_or_else(|| e.clone()))
            .collect(),
    )
}

/// The value of `ifindex` in instance `instance`'s pinned `PROBE_IDS` map (the member's ICMP
/// identifier and wake bit; `None`: no entry).
#[must_use]
pub fn probe_id_value(instance: &str, ifindex: u32) -> Option<u64> {
    pinned_entry(instance, "PROBE_IDS", ifindex)?.as_u64()
}

/// Whether the replies of the member with index `ifindex` wake the daemon's loop (the wake bit
/// of its `PROBE_IDS` value): `want` as soon as it is so, or what it still is after `limit`.
#[must_use]
pub fn wakes_within(instance: &str, ifindex: u32, want: bool, limit: Duration) -> bool {
    let wakes = || {
        let value =
            probe_id_value(instance, ifindex).expect("the member's identity is in PROBE_IDS");
        value & u64::from(agent_common::PROBE_ID_WAKE) != 0
    };
    // Reached `want`, or still the other way.
    poll_until(limit, || wakes() == want) == want
}

/// The sum of every sample of metric `name` in the exposition `text` whose labels include each
/// of `labels` (all samples when empty).
#[must_use]
pub fn metric_total(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A daemon configuration in a fresh temporary directory, removed on drop together with the
/// instance's pins (a stopped daemon leaves them for its successor to adopt).
pub struct RunConfig {
    pub dir: PathBuf,
    pub instance: String,
}

impl RunConfig {
    /// Writes `group_file` (and `defaults`, when given) for instance `instance`.
    #[must_use]
    pub fn new(instance: &str, group_file: &str, defaults: Option<&str>) -> Self {
        let dir =
            std::env::temp_dir().join(format!("ipmpd-test-{}-{instance}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("ipmpd.toml"), group_file).expect("group file");
        std::fs::write(dir.join("mpathd"), defaults.unwrap_or("")).expect("defaults");
        Self {
            dir,
            instance: format!("t{}-{instance}", std::process::id()),
        }
    }

    /// Arguments for `ipmpd run`.
    #[must_use]
    pub fn run_args(&self) -> Vec<String> {
        vec![
            "run".into(),
            "--json".into(),
            "--json-probes".into(),
            "--config".into(),
            self.dir.join("ipmpd.toml").display().to_string(),
            "--defaults".into(),
            self.dir.join("mpathd").display().to_string(),
            "--instance".into(),
            self.instance.clone(),
        ]
    }

    /// Starts the daemon in `ns`.
    #[must_use]
    pub fn spawn(&self, ns: &Netns) -> Daemon {
        self.spawn_with(ns, &[])
    }

    /// Starts the daemon in `ns` with `extra` arguments.
    #[must_use]
    pub fn spawn_with(&self, ns: &Netns, extra: &[&str]) -> Daemon {
        self.spawn_env(ns, extra, &[])
    }

    /// Starts the daemon in `ns` with `extra` arguments and `env` added to its environment.
    #[must_use]
    pub fn spawn_env(&self, ns: &Netns, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        self.with_args(true, extra, |args| Daemon::spawn_env(ns, args, env))
    }

    /// Starts the daemon in `ns` with `extra` arguments as a production daemon runs: events as
    /// JSON, but no line per probe (thousands a second at a short FDT or many members, which
    /// would cost more than the probing and could block the loop on a slow reader).
    #[must_use]
    pub fn spawn_without_probe_lines(&self, ns: &Netns, extra: &[&str]) -> Daemon {
        self.with_args(false, extra, |args| Daemon::spawn(ns, args))
    }

    /// Starts the daemon in `ns` behind `wrapper` (see [`Daemon::spawn_wrapped`]) with `extra`
    /// arguments.
    #[must_use]
    pub fn spawn_wrapped(&self, ns: &Netns, wrapper: &[&str], extra: &[&str]) -> Daemon {
        self.with_args(true, extra, |args| Daemon::spawn_wrapped(ns, wrapper, args))
    }

    /// [`RunConfig::spawn_wrapped`] without a line per probe (see
    /// [`RunConfig::spawn_without_probe_lines`]).
    #[must_use]
    pub fn spawn_wrapped_without_probe_lines(
        &self,
        ns: &Netns,
        wrapper: &[&str],
        extra: &[&str],
    ) -> Daemon {
        self.with_args(false, extra, |args| {
            Daemon::spawn_wrapped(ns, wrapper, args)
        })
    }

    /// Calls `f` with [`RunConfig::run_args`] (less `--json-probes` without `probe_lines`)
    /// followed by `extra`.
    fn with_args<R>(&self, probe_lines: bool, extra: &[&str], f: impl FnOnce(&[&str]) -> R) -> R {
        let run = self.run_args();
        let mut args: Vec<&str> = run
            .iter()
            .map(String::as_str)
            .filter(|a| probe_lines || *a != "--json-probes")
            .collect();
        args.extend_from_slice(extra);
        f(&args)
    }
}

impl Drop for RunConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir_all(format!("/sys/fs/bpf/ipmpd/{}", self.instance));
        let _ = std::fs::remove_file(format!("/run/ipmpd/{}.state.json", self.instance));
    }
}

/// The named catalogue event about `ifname`, when it arrives within `timeout`.
pub fn wait_event(
    d: &mut Daemon,
    timeout: Duration,
    name: &str,
    ifname: Option<&str>,
) -> Option<Value> {
    d.wait_for(timeout, |v| {
        v["event"] == name && ifname.is_none_or(|i| v["params"]["ifname"] == i)
    })
}

/// Whichever of catalogue event `name` (taken) or `{name}Refused` the daemon says first within
/// `timeout`: whether it was taken, and the event (a refusal's `params.reason` says why).
pub fn wait_outcome(d: &mut Daemon, timeout: Duration, name: &str) -> Option<(bool, Value)> {
    let refused = format!("{name}Refused");
    let v = d.wait_for(timeout, |v| {
        v["event"] == name || v["event"] == refused.as_str()
    })?;
    Some((v["event"] == name, v))
}

/// Waits (up to 5 s, scaled) for catalogue event `name` about `ifname` and asserts that it came
/// at most `limit_ms` (scaled in a VM) after `since_ns`, a CLOCK_MONOTONIC time taken just before
/// the fault; returns how long it took, in ms.
pub fn expect_within(
    d: &mut Daemon,
    name: &str,
    ifname: &str,
    since_ns: u64,
    limit_ms: u64,
    what: &str,
) -> u64 {
    let v = wait_event(d, Duration::from_secs(5), name, Some(ifname))
        .unwrap_or_else(|| panic!("{what}: no {name} for {ifname}"));
    let at = v["at_ns"].as_u64().expect("at_ns");
    let ms = at.saturating_sub(since_ns) / 1_000_000;
    assert!(
        ms <= crate::scaled_ns(limit_ms),
        "{what}: {name} after {ms} ms; limit {limit_ms} ms (time scale x{}); the daemon's last \
         lines, fault at {since_ns} ns:\n{}",
        crate::time_scale(),
        d.tail(40)
    );
    ms
}

/// Asserts that `ifname` is declared failed within the failure detection time in force at the
/// fault: `configured_ms`, or what the daemon last raised or lowered it to (in.mpathd raises the
/// FDT when round trips are slow, as the first IPv6 probes can be while neighbours are resolved,
/// and its promise is the FDT it announced). Only for tests where slow first round trips are
/// expected; elsewhere [`expect_within`] holds the configured FDT. Returns how long it took, in ms.
pub fn expect_failed_within_fdt(
    d: &mut Daemon,
    ifname: &str,
    fault_ns: u64,
    configured_ms: u64,
    what: &str,
) -> u64 {
    d.drain();
    let fdt_ms = d
        .seen
        .iter()
        .filter(|v| {
            v["event"] == "ipmultipath.fdt.raised" || v["event"] == "ipmultipath.fdt.improved"
        })
        .filter(|v| v["at_ns"].as_u64().is_some_and(|t| t <= fault_ns))
        .filter_map(|v| v["params"]["fdt_ms"].as_u64())
        .next_back()
        .unwrap_or(configured_ms);
    if fdt_ms != configured_ms {
        println!("{what}: the daemon raised the FDT to {fdt_ms} ms before the fault");
    }
    expect_within(
        d,
        "ipmultipath.interface.failed",
        ifname,
        fault_ns,
        fdt_ms,
        what,
    )
}

/// Runs `ipmpd ARGS` in `ns` as user `nobody` with no capabilities; returns (success, stdout,
/// stderr).
#[must_use]
pub fn run_unprivileged(ns: &Netns, args: &[&str]) -> (bool, String, String) {
    run_wrapped(ns, &NOBODY, args)
}

/// `setpriv` arguments that make the rest of the command line run as `nobody`, with no groups and
/// no capabilities.
pub const NOBODY: [&str; 5] = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=-all",
];

/// Runs `WRAPPER... ipmpd ARGS` in `ns` (a wrapper such as [`NOBODY`], or `unshare -Ur` after it);
/// returns (success, stdout, stderr).
#[must_use]
pub fn run_wrapped(ns: &Netns, wrapper: &[&str], args: &[&str]) -> (bool, String, String) {
    let (program, rest) = wrapper.split_first().expect("a wrapper to run ipmpd under");
    let out = ns
        .command(program)
        .args(rest)
        .arg(binary())
        .args(args)
        .output()
        .expect("the wrapper runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `GET /metrics` from ipmpd's metrics endpoint at `addr`, from inside the namespace at `ns_path`;
/// the whole HTTP response (head and body).
///
/// # Errors
/// When nothing listens or the answer does not arrive within 5 s.
pub fn scrape_metrics(ns_path: &str, addr: &str) -> std::io::Result<String> {
    use std::io::{Read as _, Write as _};
    let addr = addr.to_owned();
    let scrape = move || {
        let mut s = std::net::TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    };
    // A namespace that cannot be entered is an error to report, as a refused connection is.
    std::panic::catch_unwind(|| crate::spawn::in_netns_thread(ns_path, scrape))
        .unwrap_or_else(|_| Err(std::io::Error::other("metrics scraper panicked")))
}
