//! Scale: `ipmpd run` tracking N interfaces (groups of two) at FDT 1 s and 100 ms; what it costs.
//!
//! Each group gets its own /25 in 169.254.0.0/16 (link-local: the documentation ranges hold too
//! few addresses for 1,024 test addresses) and a bridge in the peer namespace that carries the
//! target. Neighbour entries are static on both sides: the kernel's neighbour table limit
//! (gc_thresh3, 1,024 by default) is global across namespaces, and ARP is not what is measured.

use std::{
    fmt::Write as _,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use serde_json::Value;
use tests::{
    daemon::{RunConfig, metric_total},
    topology::Netns,
};

/// Interface counts measured.
pub const SIZES: &[usize] = &[16, 64, 256, 1024];
/// FDTs measured at each size, in ms.
const FDTS_MS: &[u64] = &[1000, 100];
/// Settling time after `ready`, then the measuring window.
const SETTLE: Duration = Duration::from_secs(3);
const WINDOW: Duration = Duration::from_secs(12);
const METRICS_ADDR: &str = "127.0.0.1:9870";

fn mac(kind: u8, i: usize) -> String {
    format!("02:00:00:{kind:02x}:{:02x}:{:02x}", i >> 8, i & 0xff)
}

/// Group `g`'s /25: (target, first member, second member) as dotted quads.
fn subnet(g: usize) -> [String; 3] {
    let (c, d) = (g / 2, (g % 2) * 128);
    [1, 10, 11].map(|o| format!("169.254.{c}.{}", d + o))
}

/// The host namespace with members m0..mN and the peer namespace with one bridge per group.
struct ScaleLan {
    host: Netns,
    /// Kept for its lifetime: dropping it deletes the peer namespace.
    _peer: Netns,
}

impl ScaleLan {
    fn new(n: usize) -> anyhow::Result<Self> {
        let (host, peer) = (Netns::new("scale"), Netns::new("scalep"));
        for ns in [&host, &peer] {
            // Only IPv4 is probed; no IPv6 link-locals, DAD or MLD on a thousand links.
            ns.sh(
                "sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1",
            );
        }
        let (mut h, mut p) = (String::new(), String::new());
        for g in 0..n / 2 {
            let [target, a, b] = subnet(g);
            writeln!(
                p,
                "link add b{g} address {} type bridge forward_delay 0 stp_state 0\nlink set b{g} up\naddr add {target}/25 dev b{g}",
                mac(2, g)
            )?;
            for (i, addr) in [(2 * g, a), (2 * g + 1, b)] {
                writeln!(
                    h,
                    "link add m{i} address {} type veth peer name p{i} address {} netns {}\n\
                     link set m{i} up\naddr add {addr}/25 dev m{i}\n\
                     neigh add {target} lladdr {} dev m{i} nud permanent",
                    mac(0, i),
                    mac(1, i),
                    peer.name,
                    mac(2, g)
                )?;
                writeln!(
                    p,
                    "link set p{i} master b{g}\nlink set p{i} up\nneigh add {addr} lladdr {} dev b{g} nud permanent",
                    mac(0, i)
                )?;
            }
        }
        let dir = std::env::temp_dir();
        for (ns, batch, file) in [
            (&host, &h, "ipmpd-scale-host"),
            (&peer, &p, "ipmpd-scale-peer"),
        ] {
            let path = dir.join(format!("{file}-{}", std::process::id()));
            std::fs::write(&path, batch)?;
            let ok = std::process::Command::new("ip")
                .args(["-n", &ns.name, "-batch"])
                .arg(&path)
                .status()
                .is_ok_and(|s| s.success());
            let _ = std::fs::remove_file(&path);
            anyhow::ensure!(ok, "building the {n}-interface topology failed (ip -batch)");
        }
        // A veth delivers synchronously: without this the peer's whole work (bridge, ICMP echo,
        // the reply's way back) runs in the sending thread and is billed to ipmpd. RPS moves it
        // to core 1, as if the peer were another machine; ipmpd is pinned to core 0.
        let ok = std::process::Command::new("ip")
            .args(["netns", "exec", &peer.name, "sh", "-c"])
            .arg("for f in /sys/class/net/p*/queues/rx-*/rps_cpus; do echo 2 > $f || exit 1; done")
            .status()
            .is_ok_and(|s| s.success());
        anyhow::ensure!(
            ok,
            "cannot steer the peer's receive processing to core 1 (RPS)"
        );
        wait_forwarding(&peer, n, Duration::from_secs(120))?;
        Ok(Self { host, _peer: peer })
    }
}

fn group_file(n: usize, fdt_ms: u64) -> String {
    let mut s = String::new();
    for g in 0..n / 2 {
        let [target, a, b] = subnet(g);
        // Tables derived from 512 names would collide (ipmpd refuses that): number them.
        let _ = writeln!(
            s,
            "[group.g{g}]\nfdt_ms = {fdt_ms}\ntable = {}\n",
            10_000 + g
        );
        for (i, addr) in [(2 * g, a), (2 * g + 1, b)] {
            let _ = writeln!(
                s,
                "[interface.m{i}]\ngroup = \"g{g}\"\ntest_addresses = [\"{addr}\"]\ntargets = [\"{target}\"]\n"
            );
        }
    }
    s
}

/// The metrics endpoint's text, fetched from inside the host namespace.
fn scrape(ns: &Netns) -> anyhow::Result<String> {
    tests::daemon::scrape_metrics(&ns.path(), METRICS_ADDR)
        .context("cannot scrape ipmpd's metrics endpoint")
}

fn status_kib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(f64::NAN)
}

struct Sample {
    /// CPU per thread name over the window, % of one core (from schedstat, to the nanosecond).
    threads: Vec<(String, f64)>,
    start_s: f64,
    cpu_pct: f64,
    rss_mib: f64,
    hwm_mib: f64,
    probes_per_s: f64,
    /// RTT-only and discovery probes per second (`None` from an ipmpd that does not export them).
    other_per_s: Option<f64>,
    acked_per_s: f64,
    missed: f64,
    /// Of the missed deadlines, those the loop slept through (`None` from an ipmpd that does not
    /// export them).
    woke_late: Option<f64>,
    deadlines: f64,
    failures: usize,
    /// Failure-detection probes given up in the window.
    lost: f64,
    /// Where replies were dropped before ipmpd saw them, in the window: the CPUs' receive
    /// backlogs (host-wide; the peers' work runs there through RPS) and ipmpd's reply ring.
    backlog_drops: u64,
    ring_full: f64,
    /// The window's first scrape's cost: the probing loop's copy of its state and the exporter's
    /// encoding (ms; none from an ipmpd that does not export them, as in an A/B with an older one).
    scrape_ms: Option<(f64, f64)>,
}

fn measure(lan: &ScaleLan, n: usize, fdt_ms: u64) -> anyhow::Result<Sample> {
    let cfg = RunConfig::new(
        &format!("bench-scale-{n}-{fdt_ms}"),
        &group_file(n, fdt_ms),
        None,
    );
    let t0 = Instant::now();
    let mut d = cfg.spawn_without_probe_lines(&lan.host, &["--metrics", METRICS_ADDR]);
    d.wait_for(Duration::from_secs(120), |v: &Value| v["event"] == "ready")
        .with_context(|| format!("ipmpd with {n} interfaces did not report ready in 120 s"))?;
    let start_s = t0.elapsed().as_secs_f64();
    let pid = d.pid();
    let pinned = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", "0", &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    anyhow::ensure!(pinned, "cannot pin ipmpd to core 0 (taskset)");
    std::thread::sleep(SETTLE);
    let before = d.drain().len();
    let (m0, c0, w0) = (
        scrape(&lan.host)?,
        crate::procfs::cpu_seconds(pid),
        Instant::now(),
    );
    let drops0 = crate::procfs::backlog_drops();
    let threads0 = crate::procfs::threads_cpu_ns_by_name(pid);
    record_or_sleep(pid, n, fdt_ms)?;
    let threads1 = crate::procfs::threads_cpu_ns_by_name(pid);
    let drops1 = crate::procfs::backlog_drops();
    let (m1, c1, secs) = (
        scrape(&lan.host)?,
        crate::procfs::cpu_seconds(pid),
        w0.elapsed().as_secs_f64(),
    );
    // How much a counter grew over the window.
    let delta = |name: &str, labels: &[(&str, &str)]| {
        metric_total(&m1, name, labels) - metric_total(&m0, name, labels)
    };
    if let Some(dir) = std::env::var_os("IPMPD_BENCH_PERF") {
        let dir = std::path::Path::new(&dir);
        let events: String = d.drain().iter().map(|v| format!("{v}\n")).collect();
        for (ext, text) in [("metrics", &m1), ("events", &events)] {
            let path = dir.join(format!("scale-{n}-{fdt_ms}.{ext}"));
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    let failures = d.drain()[before..]
        .iter()
        .filter(|v| v["event"] == "ipmultipath.interface.failed")
        .count();
    let window_ns = secs * 1e9;
    let threads = threads1
        .iter()
        .map(|(name, ns)| {
            let spent = ns.saturating_sub(threads0.get(name).copied().unwrap_or(0));
            (name.clone(), 100.0 * spent as f64 / window_ns)
        })
        .collect();
    let sample = Sample {
        threads,
        start_s,
        cpu_pct: 100.0 * (c1 - c0) / secs,
        rss_mib: status_kib(pid, "VmRSS:") / 1024.0,
        hwm_mib: status_kib(pid, "VmHWM:") / 1024.0,
        probes_per_s: delta("ipmpd_probes_sent_total", &[]) / secs,
        other_per_s: m1
            .contains("ipmpd_probes_other_sent_total")
            .then(|| delta("ipmpd_probes_other_sent_total", &[]) / secs),
        acked_per_s: delta("ipmpd_probes_acked_total", &[]) / secs,
        missed: delta("ipmpd_deadlines_missed_total", &[]),
        woke_late: m1
            .contains("ipmpd_deadlines_woke_late_total")
            .then(|| delta("ipmpd_deadlines_woke_late_total", &[])),
        deadlines: delta("ipmpd_deadlines_total", &[]),
        failures,
        lost: delta("ipmpd_probes_lost_total", &[]),
        backlog_drops: drops1.saturating_sub(drops0),
        ring_full: delta(
            "ipmpd_probe_replies_rejected_total",
            &[("reason", "ring_full")],
        ),
        scrape_ms: m1.contains("ipmpd_exposition_copy_seconds").then(|| {
            (
                1e3 * metric_total(&m1, "ipmpd_exposition_copy_seconds", &[]),
                1e3 * metric_total(&m1, "ipmpd_exposition_encode_seconds", &[]),
            )
        }),
    };
    stop_and_detach(lan, d, cfg, &format!("{n} @ {fdt_ms} ms"))?;
    Ok(sample)
}

/// Stops the daemon of `cfg`, detaches its programs as an operator would and waits until the
/// kernel has released them: removing the pins alone leaves the kernel releasing a thousand TCX
/// links in the background, one grace period each under the RTNL, and the next run's start
/// measured ten seconds of that.
fn stop_and_detach(
    lan: &ScaleLan,
    mut d: tests::daemon::Daemon,
    cfg: RunConfig,
    what: &str,
) -> anyhow::Result<()> {
    d.stop();
    let t_detach = Instant::now();
    let (ok, _, err) = tests::daemon::run(&lan.host, &["detach", "--instance", &cfg.instance]);
    anyhow::ensure!(ok, "ipmpd detach --instance {} failed: {err}", cfg.instance);
    println!(
        "bench: scale {what}: ipmpd detach took {:.2} s",
        t_detach.elapsed().as_secs_f64()
    );
    drop(cfg);
    wait_links_released(Duration::from_secs(120));
    Ok(())
}

/// Spawn to `ready` with every thread of ipmpd on one core from the start (`taskset -c 0`), as
/// on a one-CPU virtual machine or a busy host: the link watcher's work at start then delays it.
fn start_on_one_core(lan: &ScaleLan, n: usize) -> anyhow::Result<f64> {
    let cfg = RunConfig::new(
        &format!("bench-scale-{n}-one-core"),
        &group_file(n, 1000),
        None,
    );
    let t0 = Instant::now();
    let mut d = cfg.spawn_wrapped_without_probe_lines(&lan.host, &["taskset", "-c", "0"], &[]);
    d.wait_for(Duration::from_secs(120), |v: &Value| v["event"] == "ready")
        .with_context(|| format!("ipmpd on one core with {n} interfaces did not report ready"))?;
    let start_s = t0.elapsed().as_secs_f64();
    stop_and_detach(lan, d, cfg, &format!("{n} on one core"))?;
    Ok(start_s)
}

/// Waits until every bridge port of the peer forwards. A port forwards only once the kernel's
/// link watcher has passed its carrier on, about a hundred devices a second: measured before, the
/// first run at 1,024 interfaces lost the replies of the ports not yet forwarding (silently, in
/// the bridge) and counted them as the agent's.
fn wait_forwarding(peer: &Netns, n: usize, limit: Duration) -> anyhow::Result<()> {
    let t0 = Instant::now();
    loop {
        let out = std::process::Command::new("bridge")
            .args(["-n", &peer.name, "-j", "link", "show"])
            .output()
            .context("cannot run bridge (iproute2)")?;
        let ports: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let forwarding = ports.iter().filter(|p| p["state"] == "forwarding").count();
        if forwarding >= n {
            return Ok(());
        }
        anyhow::ensure!(
            t0.elapsed() < limit,
            "only {forwarding} of {n} bridge ports forward after {} s",
            limit.as_secs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The rows at 1,024 interfaces: start, CPU at FDT 1 s and 100 ms, missed deadlines;
/// `floor_pct`, the bare sender's CPU at this run's probe rate, goes beside the CPU targets, and
/// the start on one core beside the start.
fn targets_1024(
    s: &Sample,
    fdt_ms: u64,
    (floor_pct, one_core_s): (f64, f64),
    targets: &mut crate::targets::Targets,
) -> String {
    let floor = format!("bare sender (the kernel's floor) at this probe rate: {floor_pct:.2} %");
    let mut said = Vec::new();
    if fdt_ms == 1000 {
        said.push(targets.row_beside(
            "start with 1,024 interfaces",
            format!("{:.2} s", s.start_s),
            "< 2 s",
            s.start_s < 2.0,
            format!("every thread on one core: {one_core_s:.2} s"),
        ));
        said.push(targets.row_beside(
            "1,024 interfaces, FDT 1 s: CPU",
            format!("{:.2} % of a core", s.cpu_pct),
            "< 2 %",
            s.cpu_pct < 2.0,
            floor,
        ));
        said.push(targets.row(
            "1,024 interfaces, FDT 1 s: RSS (peak)",
            format!("{:.1} MiB", s.hwm_mib),
            "< 64 MiB",
            s.hwm_mib < 64.0,
        ));
    } else {
        said.push(targets.row_beside(
            "1,024 interfaces, FDT 100 ms: CPU, missed deadlines",
            format!(
                "{:.2} % of a core, {:.0} of {:.0} missed",
                s.cpu_pct, s.missed, s.deadlines
            ),
            "< 10 %, 0 missed",
            s.cpu_pct < 10.0 && s.missed == 0.0,
            floor,
        ));
    }
    said.join("; ")
}

/// Threads' CPU in words, dearest first; threads under 0.005 % are left out.
fn threads_text(threads: &[(String, f64)]) -> String {
    let mut sorted: Vec<_> = threads.iter().filter(|(_, pct)| *pct >= 0.005).collect();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
    sorted
        .iter()
        .map(|(name, pct)| format!("{name} {pct:.2} %"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The measuring window: a sleep, or with `IPMPD_BENCH_PERF=DIR` a `perf record` of the agent
/// for the same time into `DIR/scale-N-FDT.data` (where the CPU of this section goes; perf's
/// own sampling adds a little to the CPU figure of such a run). Call stacks are unwound from
/// DWARF: the release build keeps its debug info but no frame pointers, so `-g` alone loses every
/// userspace caller.
fn record_or_sleep(pid: u32, n: usize, fdt_ms: u64) -> anyhow::Result<()> {
    let Some(dir) = std::env::var_os("IPMPD_BENCH_PERF") else {
        std::thread::sleep(WINDOW);
        return Ok(());
    };
    let dir = std::path::Path::new(&dir);
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "IPMPD_BENCH_PERF={}: cannot create the directory for the profiles",
            dir.display()
        )
    })?;
    let out = dir.join(format!("scale-{n}-{fdt_ms}.data"));
    let run = std::process::Command::new("perf")
        .args(["record", "-F", "999", "--call-graph", "dwarf,16384"])
        .args(["-p", &pid.to_string(), "-o"])
        .arg(&out)
        .args(["--", "sleep", &WINDOW.as_secs().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .with_context(
            || "IPMPD_BENCH_PERF is set but perf does not run (apt install linux-perf)",
        )?;
    anyhow::ensure!(
        run.status.success(),
        "perf record of ipmpd {pid} into {} failed: {}",
        out.display(),
        String::from_utf8_lossy(&run.stderr).trim()
    );
    eprintln!(
        "bench: profile of {n} interfaces at FDT {fdt_ms} ms in {}",
        out.display()
    );
    Ok(())
}

/// Waits until no TCX or XDP link is left: the kernel detaches a stopped instance's unpinned links in
/// the background, one RCU grace period each under the RTNL, which would hold up the next run's
/// start and be counted as its own.
fn wait_links_released(limit: Duration) {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        let out = std::process::Command::new("bpftool")
            .args(["-j", "link", "show"])
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default();
        let links: Vec<Value> = serde_json::from_slice(&out).unwrap_or_default();
        // XDP links too: detaching XDP from a veth waits for the network's RCU grace period. An
        // older bpftool names a TCX link by its number (11), not "tcx": the wait used to miss
        // them, and the next run's start (FDT 100 ms) waited ten seconds behind their release.
        let attached = links
            .iter()
            .filter(|l| l["type"] == "xdp" || l["type"] == "tcx" || l["type"] == 11)
            .count();
        if attached == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "bench: XDP or TCX links still attached after {} s",
        limit.as_secs()
    );
}

/// The benchmark section; `sizes` are interface counts.
pub fn scale(
    sizes: &[usize],
    plots: &crate::report::Plots,
    targets: &mut crate::targets::Targets,
) -> anyhow::Result<String> {
    let mut md = format!(
        "## Scale: N tracked interfaces, groups of two\n\n\
         `ipmpd run --metrics` in a namespace with N veths (one /25 and one target per group of two,\n\
         static neighbour entries). After `ready` and {} s of settling, a {} s window: CPU time of the\n\
         agent (user + system, all threads) as % of one core, RSS, failure-detection probes sent (in\n\
         brackets the RTT-only probes a raised FDT adds at the configured rate, and discovery probes,\n\
         `ipmpd_probes_other_sent_total`) and\n\
         answered per second (metrics endpoint), missed deadlines (the loop woke more than 1 ms after\n\
         a probe or timeout was due; `ipmpd_deadlines_missed_total`; in brackets those the loop\n\
         slept through, woken late by the kernel because another task had the CPU,\n\
         `ipmpd_deadlines_woke_late_total`; the rest came while the loop was busy), interfaces declared failed\n\
         (none should be), probes given up, and replies dropped before ipmpd read them: by a full\n\
         receive backlog of a CPU (`/proc/net/softnet_stat`, host-wide, where the peers' RPS work\n\
         queues) or by a full reply ring (`ipmpd_probe_replies_rejected_total{{reason=\"ring_full\"}}`). Start = spawn to the `ready` event (every program attached, every member\n\
         known), after the previous run's links are gone; at 1,024 also with every thread on one core from\n\
         the start (`taskset -c 0`, as on a one-CPU VM). The carrier poll spends at most 1 % of a core (`--link-poll-cpu`), so its interval\n\
         grows with N. ipmpd runs without `--json-probes` (no line per probe, as in production).\n\
         A veth hands a packet to its peer synchronously, which would bill the peer's whole work\n\
         (bridge, ICMP echo, the reply's way back) to ipmpd's sending thread; RPS on the peer's ends\n\
         moves it to core 1, as if the peer were another machine, and ipmpd is pinned to core 0.\n\
         The XDP and TC programs' own per-packet cost is in the datapath section. A scrape costs the\n\
         probing loop a copy of its state; the exporter's thread encodes it at low priority (the\n\
         `ipmpd_exposition_*_seconds` gauges of the window's first scrape).\n\n\
         | interfaces | FDT | start | CPU | RSS (peak) | probes/s | answered/s | missed deadlines | false failures | probes lost | replies dropped: CPU backlog / reply ring | scrape: loop copy / encode | target |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        SETTLE.as_secs(),
        WINDOW.as_secs()
    );
    let mut floors = String::from(
        "CPU per probe (agent CPU / probes of every kind sent) against the kernel's floor: a bare sender on the same\n\
         topology, pinned to the same core, with one raw ICMP socket per member (bound to its device\n\
         and test address, as ipmpd's), one `sendto` per probe and one `recv` per reply, nothing else;\n\
         it sends in bursts of 64 (one wake-up per 64 probes, about what ipmpd's loop serves per\n\
         wake-up at 1,024 members and FDT 1 s), so that the peers' backlog does not drop replies.\n\
         The last column is the bare sender's CPU at the probe rates ipmpd ran at above: no design\n\
         that sends each probe through a kernel socket spends less.\n\n\
         | interfaces | ipmpd µs/probe, FDT 1 s | ipmpd µs/probe, FDT 100 ms | bare sender µs/probe | ipmpd / bare (FDT 1 s) | bare sender at ipmpd's rate, FDT 1 s / 100 ms |\n\
         |---|---|---|---|---|---|\n",
    );
    let mut by_thread = String::from(
        "CPU by thread over the same windows (% of one core; schedstat, to the nanosecond): `ipmpd`\n\
         is the probing loop (sends probes, reads the reply ring, runs the engine), `ipmpd-link` the\n\
         carrier poll and counter dump (inside `--link-poll-cpu`, 1 % by default), `ipmpd-metrics`\n\
         the exporter (encodes scrapes), `ipmpd-control` the control socket.\n\n\
         | interfaces | FDT | by thread |\n\
         |---|---|---|\n",
    );
    let mut per_probe = [0.0f64; 2];
    let mut per_iface = Vec::new();
    let mut curves: Vec<(String, Vec<(f64, f64)>)> = FDTS_MS
        .iter()
        .map(|f| (format!("FDT {f} ms"), Vec::new()))
        .collect();
    for &n in sizes {
        let built = Instant::now();
        let lan = ScaleLan::new(n)?;
        println!(
            "bench: scale {n} interfaces built in {:.1} s",
            built.elapsed().as_secs_f64()
        );
        // The floor first: the 1,024 rows' targets are set beside it.
        let members = (0..n)
            .map(|i| {
                let [t, a, b] = subnet(i / 2);
                let test = if i % 2 == 0 { a } else { b };
                Ok((format!("m{i}"), test.parse()?, t.parse()?))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (floor, answered) = crate::floor::per_probe_us(&lan.host.path(), members)?;
        let mut floor_at_rate = [0.0f64; 2];
        let one_core_s = if n == 1024 {
            let s = start_on_one_core(&lan, n)?;
            println!("bench: scale {n}: start on one core {s:.2} s");
            s
        } else {
            f64::NAN
        };
        for &fdt_ms in FDTS_MS {
            let s = measure(&lan, n, fdt_ms)?;
            println!(
                "bench: scale {n} @ {fdt_ms} ms: cpu {:.2} % rss {:.1} MiB probes/s {:.0} \
                 lost {:.0} failures {} backlog drops {} ring full {:.0}",
                s.cpu_pct,
                s.rss_mib,
                s.probes_per_s,
                s.lost,
                s.failures,
                s.backlog_drops,
                s.ring_full
            );
            writeln!(
                by_thread,
                "| {n} | {fdt_ms} ms | {} |",
                threads_text(&s.threads)
            )?;
            // Every probe is a packet the kernel sends and a reply it receives, whatever its kind.
            let all_per_s = s.probes_per_s + s.other_per_s.unwrap_or(0.0);
            let at_rate = floor * all_per_s / 1e4;
            let target = if n == 1024 {
                targets_1024(&s, fdt_ms, (at_rate, one_core_s), targets)
            } else {
                String::new()
            };
            per_probe[usize::from(fdt_ms != 1000)] = 1e4 * s.cpu_pct / all_per_s.max(1.0);
            floor_at_rate[usize::from(fdt_ms != 1000)] = at_rate;
            if fdt_ms == 1000 {
                per_iface.push((n, s.cpu_pct / n as f64));
            }
            if let Some(k) = FDTS_MS.iter().position(|f| *f == fdt_ms) {
                curves[k].1.push((n as f64, s.cpu_pct));
            }
            writeln!(
                md,
                "| {n} | {fdt_ms} ms | {:.2} s | {:.2} % | {:.1} MiB ({:.1}) | {:.0}{} | {:.0} | {:.0} of {:.0}{} | {} | {:.0} | {} / {:.0} | {} | {target} |",
                s.start_s,
                s.cpu_pct,
                s.rss_mib,
                s.hwm_mib,
                s.probes_per_s,
                s.other_per_s
                    .filter(|o| *o >= 0.5)
                    .map_or_else(String::new, |o| format!(" (+{o:.0} RTT-only, discovery)")),
                s.acked_per_s,
                s.missed,
                s.deadlines,
                s.woke_late
                    .map_or_else(String::new, |w| format!(" ({w:.0} woke late)")),
                s.failures,
                s.lost,
                s.backlog_drops,
                s.ring_full,
                s.scrape_ms.map_or_else(
                    || "not exported".to_owned(),
                    |(copy, encode)| format!("{copy:.2} / {encode:.1} ms")
                )
            )?;
        }
        writeln!(
            floors,
            "| {n} | {:.1} | {:.1} | {floor:.1} ({:.0} % answered) | {:.1}x | {:.2} % / {:.2} % |",
            per_probe[0],
            per_probe[1],
            100.0 * answered,
            per_probe[0] / floor,
            floor_at_rate[0],
            floor_at_rate[1]
        )?;
        drop(lan);
    }
    md.push('\n');
    md += &floors;
    md.push('\n');
    md += &by_thread;
    md.push('\n');
    md += &plots.plot(
        "scale-cpu.svg",
        "agent CPU against tracked interfaces",
        &crate::plot::lines(
            "ipmpd CPU against tracked interfaces (log-log; a straight line of slope 1 is linear)",
            "tracked interfaces",
            "% of one core",
            &curves,
        ),
    )?;
    if let (Some(first), Some(last)) = (per_iface.first(), per_iface.last()) {
        writeln!(
            md,
            "\nCPU per interface at FDT 1 s: {:.4} % at {} interfaces, {:.4} % at {} ({:.2}x; linear growth keeps this ratio near 1).\n",
            first.1,
            first.0,
            last.1,
            last.0,
            last.1 / first.1
        )?;
    }
    Ok(md)
}
