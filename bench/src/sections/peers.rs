//! Detection against the tools operators would pick instead, on one topology and the same faults.
//!
//! Each round runs ipmpd (host namespace, group h0+h1 probing the router) beside FRR's bfdd
//! (a single-hop session h0 <-> router); the fastest round adds keepalived (VRRP master on h0,
//! backup on the router) and a 10 ms ping loop from h0. Every fault hits h0's switch port and is
//! seen by all of them at once: carrier loss (the port goes down; NIC-like links report it late),
//! silent loss both ways, and one-way loss (frames towards h0 dropped, h0's own frames pass).

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use anyhow::Context as _;
use serde_json::Value;
use tests::{daemon::RunConfig, monotonic_ns, topology::Lan};

use crate::faults::{Fault, Flow, MARKER_PPS, Tally};
use crate::ipmpd::{FdtRaises, ipmpd_event};
use crate::peers_tools::{Lines, bfd_down, bfd_pair, bfd_up, keepalived, ping_loop, three_misses};
use crate::procfs::tree_cpu_seconds;
use crate::report::Plots;

/// One round: ipmpd's FDT, bfdd's interval (x 3), whether keepalived and ping join, and how long
/// a fault is held before a tool that has not reported it counts as having missed it.
struct Round {
    fdt_ms: u64,
    bfd_ms: u64,
    extras: bool,
    hold: Duration,
}

const ROUNDS: &[Round] = &[
    Round {
        fdt_ms: 10,
        bfd_ms: 10,
        extras: true,
        hold: Duration::from_millis(1000),
    },
    Round {
        fdt_ms: 100,
        bfd_ms: 50,
        extras: false,
        hold: Duration::from_millis(1500),
    },
    Round {
        fdt_ms: 1000,
        bfd_ms: 300,
        extras: false,
        hold: Duration::from_millis(3000),
    },
];

fn left(from: u64, hold: Duration) -> Duration {
    hold.saturating_sub(Duration::from_nanos(monotonic_ns().saturating_sub(from)))
}

struct Tools {
    bfd: Lines,
    _bfd_peer: Lines,
    vrrp: Option<(Lines, Lines)>,
    ping: Option<Lines>,
}

impl Tools {
    fn start(lan: &Lan, round: &Round) -> anyhow::Result<Self> {
        let (bfd, _bfd_peer) = bfd_pair(lan, round.bfd_ms)?;
        let (vrrp, ping) = if round.extras {
            let master = keepalived(lan.host(), "h", "h0", 200, "192.0.2.200/24")?;
            let mut backup = keepalived(lan.router(), "r", "r0", 100, "192.0.2.200/24")?;
            backup
                .wait(0, Duration::from_secs(10), |l| {
                    l.contains("Entering BACKUP STATE")
                })
                .with_context(|| format!("keepalived did not start:\n{}", backup.text()))?;
            (
                Some((master, backup)),
                Some(ping_loop(lan.host(), "h0", "192.0.2.1")?),
            )
        } else {
            (None, None)
        };
        Ok(Self {
            bfd,
            _bfd_peer,
            vrrp,
            ping,
        })
    }
}

/// Results of the section: (round FDT, tool, fault) → tally, and CPU per tool.
#[derive(Default)]
pub struct Results {
    pub detection: BTreeMap<(u64, String, Fault), Tally>,
    /// (round FDT, tool) → % of one core over the round.
    pub cpu: BTreeMap<(u64, String), f64>,
    /// Round FDT → the bare sender at ipmpd's probe rate, or why it could not run.
    pub floors: BTreeMap<u64, Result<Floor, String>>,
    /// Duration of the fault commands (nft, ioctl), ms.
    pub inject_ms: Vec<f64>,
    /// Round FDT → the raises of ipmpd's FDT over the round.
    pub fdt_raises: BTreeMap<u64, FdtRaises>,
}

/// Seconds the bare sender runs at each round's probe rate.
const FLOOR_SECS: u64 = 5;

/// The bare sender (see [`crate::floor`]) at ipmpd's probe rate in `round`: its two members, one
/// probe each per probe interval (FDT / 7), each at a wake-up of its own; run before ipmpd and
/// the other tools start, on the same links.
fn bare_sender(lan: &Lan, round: &Round) -> anyhow::Result<Floor> {
    let members = [("h0", [192, 0, 2, 10]), ("h1", [192, 0, 2, 11])]
        .map(|(i, a)| (i.to_owned(), a.into(), [192, 0, 2, 1].into()))
        .to_vec();
    let rate = 2 * 7 * 1000 / round.fdt_ms;
    let (pct, answered) = crate::floor::paced_pct(&lan.host().path(), members, rate, FLOOR_SECS)?;
    Ok(Floor {
        rate,
        pct,
        answered,
    })
}

/// The bare sender's CPU at one round's probe rate.
pub struct Floor {
    /// Probes a second, over both members.
    rate: u64,
    /// % of one core.
    pct: f64,
    /// Share of the probes whose reply it read.
    answered: f64,
}

fn run_round(lan: &Lan, round: &Round, n: usize, res: &mut Results) -> anyhow::Result<()> {
    let floor = bare_sender(lan, round).map_err(|e| format!("{e:#}"));
    res.floors.insert(round.fdt_ms, floor);
    let cfg = RunConfig::new(
        &format!("bench-peers-{}", round.fdt_ms),
        &crate::ipmpd::two_member_group(round.fdt_ms),
        None,
    );
    let mut d = cfg.spawn_without_probe_lines(lan.host(), &[]);
    d.wait_for(Duration::from_secs(10), |v: &Value| v["event"] == "ready")
        .context("ipmpd did not start")?;
    let mut tools = Tools::start(lan, round)?;
    std::thread::sleep(Duration::from_secs(2));
    let fdt = round.fdt_ms;
    let bfd_name = format!("bfdd {} ms x 3", round.bfd_ms);
    let ipmpd_name = format!("ipmpd FDT {fdt} ms");
    let mut pids = vec![
        (ipmpd_name.clone(), d.pid()),
        (bfd_name.clone(), tools.bfd.pid()),
    ];
    if let Some((m, _)) = &tools.vrrp {
        pids.push(("keepalived 10 ms adverts".into(), m.pid()));
    }
    if let Some(p) = &tools.ping {
        pids.push(("ping -i 0.01, 3 misses".into(), p.pid()));
    }
    let flow = Flow::start_to(lan, "192.0.2.10", MARKER_PPS)?;
    std::thread::sleep(Duration::from_millis(500));
    let cpu0: Vec<f64> = pids.iter().map(|(_, p)| tree_cpu_seconds(*p)).collect();
    let t_start = monotonic_ns();
    let mut raises = FdtRaises::default();
    for fault in Fault::ALL {
        for _ in 0..n {
            raises.add(d.drain());
            d.seen.clear();
            let (t, took) = fault.inject(lan, &flow);
            let t0 = t.min(monotonic_ns() - took);
            if fault != Fault::Carrier {
                res.inject_ms.push(took as f64 / 1e6);
            }
            let at = ipmpd_event(&mut d, "ipmultipath.interface.failed", t0, round.hold);
            res.detection
                .entry((fdt, ipmpd_name.clone(), fault))
                .or_default()
                .add(t, at);
            let at = tools.bfd.wait(t0, left(t, round.hold), bfd_down);
            res.detection
                .entry((fdt, bfd_name.clone(), fault))
                .or_default()
                .add(t, at);
            let mut vrrp_took_over = false;
            if let Some((_, backup)) = &mut tools.vrrp {
                let at = backup.wait(t0, left(t, round.hold), |l| {
                    l.contains("Entering MASTER STATE")
                });
                vrrp_took_over = at.is_some();
                res.detection
                    .entry((fdt, "keepalived 10 ms adverts".into(), fault))
                    .or_default()
                    .add(t, at);
            }
            if let Some(p) = &mut tools.ping {
                let at = p.wait(t0, left(t, round.hold), three_misses());
                res.detection
                    .entry((fdt, "ping -i 0.01, 3 misses".into(), fault))
                    .or_default()
                    .add(t, at);
            }
            let r = fault.clear(lan);
            // Everyone back to normal before the next fault.
            let _ = ipmpd_event(
                &mut d,
                "ipmultipath.interface.repaired",
                r,
                Duration::from_millis(3 * fdt + 3000),
            );
            let _ = tools.bfd.wait(r, Duration::from_secs(8), bfd_up);
            if vrrp_took_over && let Some((_, backup)) = &mut tools.vrrp {
                let _ = backup.wait(r, Duration::from_secs(3), |l| {
                    l.contains("Entering BACKUP STATE")
                });
            }
            std::thread::sleep(Duration::from_millis(150));
            tools.bfd.forget(r);
            if let Some((_, b)) = &mut tools.vrrp {
                b.forget(r);
            }
            if let Some(p) = &mut tools.ping {
                p.forget(r);
            }
        }
    }
    let secs = (monotonic_ns() - t_start) as f64 / 1e9;
    raises.add(d.drain());
    res.fdt_raises.insert(fdt, raises);
    flow.stop();
    for ((name, pid), c0) in pids.iter().zip(cpu0) {
        res.cpu.insert(
            (fdt, name.clone()),
            100.0 * (tree_cpu_seconds(*pid) - c0) / secs,
        );
    }
    d.stop();
    Ok(())
}

/// Runs every round.
pub fn measure(n: usize) -> anyhow::Result<Results> {
    let mut res = Results::default();
    for round in ROUNDS {
        println!(
            "bench: peers round: ipmpd FDT {} ms, bfdd {} ms x 3{}",
            round.fdt_ms,
            round.bfd_ms,
            if round.extras {
                ", keepalived, ping"
            } else {
                ""
            }
        );
        let lan = Lan::new(true, true);
        run_round(&lan, round, n, &mut res)?;
    }
    Ok(res)
}

fn stats_line(t: &Tally) -> String {
    if t.ms.is_empty() {
        return "| – | – | – | – ".into();
    }
    let (min, median, p99, max) = crate::stats::stats(t.ms.clone());
    format!("| {min:.1} | {median:.1} | {p99:.1} | {max:.1} ")
}

/// The benchmark section.
pub fn peers(
    n: usize,
    plots: &Plots,
    targets: &mut crate::targets::Targets,
) -> anyhow::Result<String> {
    let res = measure(n)?;
    let mut inject = res.inject_ms.clone();
    inject.sort_by(f64::total_cmp);
    let mut md = format!(
        "## Detection against peers: same topology, same faults, {n} of each\n\n\
         Host namespace with h0 and h1 (NIC-like veths: equal ifindex on both ends, so carrier\n\
         notifications are late as on real NICs) on a bridge with the router. All tools run at once\n\
         and every fault on h0's switch port is seen by each: **carrier loss** (port down),\n\
         **silent, both ways** (nftables drops everything on the port), **silent, one way**\n\
         (frames towards h0 dropped; h0's own frames pass). ipmpd: `ipmpd run --json` (no line per\n\
         probe, as in production), group h0+h1, probing the router, time of\n\
         `ipmultipath.interface.failed` for h0. bfdd: FRR {frr}, single-hop\n\
         session h0 <-> router (bfdd on both ends, no zebra, so it learns of carrier loss from missing\n\
         packets only), time the `-> down` line arrives. keepalived {ka}: VRRPv3, master on h0,\n\
         backup on the router, `advert_int 0.01` (its fastest); time the backup prints `Entering\n\
         MASTER STATE`. ping: iputils `ping -O -i 0.01 -I h0`, time of the third `no answer yet` in\n\
         a row. Latency from just before the carrier ioctl; a silent fault starts at the last packet\n\
         of a steady 2,000 packets/s UDP stream from the router to h0 that got through (`nft` itself\n\
         ran for a median {:.1} ms, max {:.1} ms, before its rule was in force). A tool\n\
         that has not reported a fault within the hold time (1 s / 1.5 s / 3 s per round) missed it.\n\
         Ratio: ipmpd's p99 over the best peer's p99 in the same round and fault (below 1: ipmpd ahead;\n\
         a peer that missed any fault does not count as best).\n\n\
         | round | tool | fault | detected | missed | min | median | p99 | max (ms) | ratio to best peer |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
        crate::stats::pct(&inject, 50.0),
        inject.last().copied().unwrap_or(f64::NAN),
        frr = crate::host::package_version("frr"),
        ka = crate::host::package_version("keepalived"),
    );
    let mut verdicts = String::new();
    for round in ROUNDS {
        let fdt = round.fdt_ms;
        for fault in Fault::ALL {
            let rows: Vec<(&String, &Tally)> = res
                .detection
                .iter()
                .filter(|((f, _, k), _)| *f == fdt && *k == fault)
                .map(|((_, name, _), t)| (name, t))
                .collect();
            let best_peer = rows
                .iter()
                .filter(|(name, _)| !name.starts_with("ipmpd"))
                .map(|(_, t)| t.p99_or_inf())
                .fold(f64::INFINITY, f64::min);
            for (name, t) in &rows {
                let ratio = if name.starts_with("ipmpd") && best_peer.is_finite() {
                    format!("{:.2}", t.p99_or_inf() / best_peer)
                } else if name.starts_with("ipmpd") {
                    "no peer saw every fault".into()
                } else {
                    String::new()
                };
                writeln!(
                    md,
                    "| FDT {fdt} ms | {name} | {} | {} | {} {}| {ratio} |",
                    fault.name(),
                    t.ms.len(),
                    t.missed,
                    stats_line(t)
                )?;
                if name.starts_with("ipmpd") {
                    let p = t.p99_or_inf();
                    writeln!(
                        verdicts,
                        "- ipmpd FDT {fdt} ms, {}: p99 {p:.1} ms ≤ FDT: {}",
                        fault.name(),
                        if p <= fdt as f64 { "met" } else { "**missed**" }
                    )?;
                }
            }
        }
    }
    md.push('\n');
    for round in ROUNDS {
        let fdt = round.fdt_ms;
        let rows: Vec<(String, Vec<f64>)> = Fault::ALL
            .iter()
            .flat_map(|&fault| {
                res.detection
                    .iter()
                    .filter(move |((f, _, k), _)| *f == fdt && *k == fault)
                    .map(move |((_, name, _), t)| {
                        (format!("{name}, {}", fault.name()), t.ms.clone())
                    })
            })
            .collect();
        md += &plots.plot(
            &format!("peers-fdt{fdt}.svg"),
            &format!("detection latencies, round FDT {fdt} ms"),
            &crate::plot::strip(
                &format!(
                    "Detection latency, round FDT {fdt} ms (dots: faults; ticks: median, p99)"
                ),
                "ms (log scale)",
                &rows,
            ),
        )?;
    }
    md += "\nCPU of each tool over its round (host side; bfdd and keepalived run the same on the peer),\n\
           % of one core and seconds per minute:\n\n| round | tool | CPU | CPU s/min |\n|---|---|---|---|\n";
    for ((fdt, name), pct) in &res.cpu {
        writeln!(
            md,
            "| FDT {fdt} ms | {name} | {pct:.2} % | {:.2} |",
            pct * 0.6
        )?;
    }
    writeln!(
        md,
        "\nThe kernel's share of that: a bare sender (one raw socket per member, no engine, no \
         programs) at ipmpd's probe rate, two members each probing every FDT / 7, one wake-up per \
         probe, for {FLOOR_SECS} s on the same links before the round's tools start (on veths the \
         peer's reply is processed in the sender's thread too):\n\n\
         | round | probes/s | bare sender CPU | replies read |\n|---|---|---|---|"
    )?;
    for (fdt, floor) in &res.floors {
        match floor {
            Ok(f) => writeln!(
                md,
                "| FDT {fdt} ms | {} | {:.2} % | {:.0} % |",
                f.rate,
                f.pct,
                100.0 * f.answered
            )?,
            Err(e) => writeln!(md, "| FDT {fdt} ms | – | failed: {e} | – |")?,
        }
    }
    md += "\nipmpd's FDT over each round (`ipmultipath.fdt.raised`: when the probes' round trips do not\n\
           fit the FDT asked for, in.mpathd's rule lengthens it, and detection follows):\n\n";
    for (fdt, raises) in &res.fdt_raises {
        writeln!(md, "- FDT {fdt} ms: {}", raises.describe())?;
    }
    let tally = |fdt: u64, tool: &str, f: Fault| {
        res.detection
            .get(&(fdt, tool.to_owned(), f))
            .map_or(f64::INFINITY, Tally::p99_or_inf)
    };
    let (ip10, bfd10) = (
        tally(10, "ipmpd FDT 10 ms", Fault::Silent),
        tally(10, "bfdd 10 ms x 3", Fault::Silent),
    );
    let cpu = |tool: &str| {
        res.cpu
            .get(&(10, tool.to_owned()))
            .copied()
            .unwrap_or(f64::NAN)
    };
    // ipmpd's figure covers the group's two members and the carrier poll; bfdd's one session.
    let (cpu_member, cpu_bfd) = (cpu("ipmpd FDT 10 ms") / 2.0, cpu("bfdd 10 ms x 3"));
    targets.row_beside(
        "CPU per member at FDT 10 ms (idle host; ipmpd's group of two / 2)",
        format!("{cpu_member:.2} % of a core"),
        "≤ 1 %",
        cpu_member <= 1.0,
        match res.floors.get(&10) {
            Some(Ok(f)) => format!(
                "bfdd 10 ms x 3: {cpu_bfd:.2} % per session; bare sender at ipmpd's probe rate: {:.2} % per member",
                f.pct / 2.0
            ),
            _ => format!("bfdd 10 ms x 3: {cpu_bfd:.2} % per session"),
        },
    );
    targets.row_beside(
        "FDT 10 ms, silent fault both ways, p99 (idle host)",
        format!("{ip10:.1} ms"),
        "≤ 10 ms",
        ip10 <= 10.0,
        format!("bfdd 10 ms x 3: {bfd10:.1} ms"),
    );
    writeln!(
        md,
        "\nTargets:\n{verdicts}- FDT 10 ms vs bfdd's best (10 ms x 3), silent both ways: p99 {ip10:.1} vs {bfd10:.1} ms = {:.2}x (target ≤ 0.33x, \"3x better\"): {}\n",
        ip10 / bfd10,
        if ip10 * 3.0 <= bfd10 {
            "met"
        } else {
            "**missed**"
        }
    )?;
    Ok(md)
}
