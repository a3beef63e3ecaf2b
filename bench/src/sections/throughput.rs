//! veth throughput: one iperf3 TCP flow over one veth pair, measured over short windows while
//! ipmpd is attached (its reply program, at TC ingress or XDP, and TC egress on the path of every
//! data packet) at the default carrier poll and a 10 ms floor, replies taken by XDP, and while it
//! is not.

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use tests::{daemon::Daemon, topology::Topology};

use crate::{
    stats::stats,
    targets::{Targets, verdict},
};

/// Rounds of the rotation; each gives one ratio per "with" setup. With a new iperf3 run of 3 s per
/// setup (slow start, process start-up and attachment in every run), 15 rounds gave ratios from
/// 0.83 to 1.36; windows of one flow a few seconds apart drift less.
const ROUNDS: usize = 20;
/// Setups measured in each round: without ipmpd, and three ways with it.
const SETUPS: usize = 4;
/// How long a window counts the bytes received.
const WINDOW: Duration = Duration::from_secs(2);
/// How long after ipmpd attached (or detached) a window starts: the flow's rate settles after the
/// veth's receive path changed mode.
const SETTLE: Duration = Duration::from_millis(500);
/// The longest a window waits for `ipmpd watch` to say it is attached.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(10);

/// The benchmark section.
///
/// This machine's veth throughput drifts by more than the target's 1 % from one run to the next
/// (9.8 to 13.1 Gbit/s in three runs of one setup), so the ratio is taken within each round,
/// between windows of one flow a few seconds apart, and the row reports the median of the rounds' ratios with
/// their range; the setups' order rotates from round to round, so none always runs first.
pub fn throughput(targets: &mut Targets) -> anyhow::Result<String> {
    let mut topo = Topology::default();
    let a = topo.ns("tput-a");
    let b = topo.ns("tput-b");
    topo.veth(a, "t0", b, "t1", None);
    topo.addr(a, "t0", "192.0.2.10/24");
    topo.addr(b, "t1", "192.0.2.1/24");
    // Without ipmpd / with it at the default carrier poll / with a 10 ms floor: the third setup
    // separates the programs' cost from the poll's (the kernel here refuses the carrier hook, so
    // the poll runs whenever ipmpd does).
    // The fourth takes replies by XDP (`--reply-hook xdp`) rather than at TC ingress, the
    // default on veth where the kernel has TCX: native XDP on a veth moves the peer's
    // transmissions onto a NAPI queue of their own.
    let setups: [(&str, Option<Attach>); SETUPS] = [
        ("without ipmpd", None),
        (
            "with ipmpd, default settings (1 ms poll floor, 1 % budget)",
            Some(Attach {
                poll_us: 1000,
                reply_hook: "auto",
            }),
        ),
        (
            "with ipmpd, 10 ms poll floor",
            Some(Attach {
                poll_us: 10_000,
                reply_hook: "auto",
            }),
        ),
        (
            "with ipmpd, default poll, replies by XDP (--reply-hook xdp)",
            Some(Attach {
                poll_us: 1000,
                reply_hook: "xdp",
            }),
        ),
    ];
    let mut flow = Flow::start(&topo, a, b)?;
    let mut runs: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
    for round in 0..ROUNDS {
        for k in 0..setups.len() {
            let i = (round + k) % setups.len();
            let gbps = flow.window(&topo, a, setups[i].1)?;
            runs[i].push(gbps);
        }
    }
    drop(flow);
    let mut table = String::new();
    for ((name, _), v) in setups.iter().zip(&runs) {
        let list = v.iter().map(|g| format!("{g:.2}")).collect::<Vec<_>>();
        table += &format!(
            "| {name} | {} | {:.2} |\n",
            list.join(", "),
            stats(v.clone()).1
        );
    }
    let ratios = |i: usize| -> Vec<f64> {
        runs[i]
            .iter()
            .zip(&runs[0])
            .map(|(with, without)| with / without)
            .collect()
    };
    let describe = |r: Vec<f64>| {
        let (lo, med, _, hi) = stats(r);
        (med, format!("{med:.3} (rounds {lo:.3} to {hi:.3})"))
    };
    let (r1, text1) = describe(ratios(1));
    let (r10, text10) = describe(ratios(2));
    let (rxdp, textxdp) = describe(ratios(3));
    targets.row(
        "TCP throughput with / without ipmpd, default settings",
        format!("{r1:.3}"),
        "≥ 0.99",
        r1 >= 0.99,
    );
    let verdict = |r: f64| verdict(r >= 0.99);
    Ok(format!(
        "## veth throughput with and without ipmpd attached\n\n\
         One iperf3 TCP flow over one veth pair; {ROUNDS} rounds of the four setups, in an order that\n\
         rotates from round to round, each a window of {} s of the flow (bytes the receiving end\n\
         counted) starting {} ms after `ipmpd watch t0 --link-poll-us N --reply-hook H` said it was\n\
         attached (the reply program at TC ingress, by default on veth here, or XDP, and TC egress on t0:\n\
         every data packet crosses both) or after it detached. The ratio\n\
         is taken within each round (windows seconds apart): the throughput drifts between rounds by\n\
         more than 1 %.\n\n\
         | setup | windows (Gbit/s), round by round | median |\n|---|---|---|\n{table}\n\
         With / without, the median of the rounds' ratios: {text1} at the default poll, {text10}\n\
         at the 10 ms floor, {textxdp} with replies taken by XDP instead of at TC ingress\n\
         (target ≥ 0.99: {}, {}, {}).\n\n",
        WINDOW.as_secs(),
        SETTLE.as_millis(),
        verdict(r1),
        verdict(r10),
        verdict(rxdp)
    ))
}

/// One iperf3 flow from `a` to `b`'s 192.0.2.1 for the whole section; both ends are killed
/// when it is dropped, also when a window fails.
struct Flow {
    server: Daemon,
    client: Daemon,
}

impl Flow {
    fn start(topo: &Topology, a: usize, b: usize) -> anyhow::Result<Self> {
        let server = Daemon::spawn_command(topo.at(b), &["iperf3", "-s", "--one-off"]);
        std::thread::sleep(Duration::from_millis(300));
        // Longer than the rounds can take (one window per setup of at most the attachment's timeout,
        // the settling and the window each): it is stopped when they are done.
        let secs = (ROUNDS * SETUPS) as u64 * (ATTACH_TIMEOUT + SETTLE + WINDOW).as_secs();
        let client = Daemon::spawn_command(
            topo.at(a),
            &["iperf3", "-c", "192.0.2.1", "-t", &secs.to_string()],
        );
        std::thread::sleep(Duration::from_secs(1));
        Ok(Self { server, client })
    }

    /// Bytes the receiving end (t1, in the server's namespace) has counted.
    fn received(&self) -> anyhow::Result<u64> {
        // nsenter execs iperf3 in place: its /proc/PID/net is the server's namespace.
        let dev = std::fs::read_to_string(format!("/proc/{}/net/dev", self.server.pid()))
            .context("the iperf3 server's /proc/PID/net/dev")?;
        dev.lines()
            .find_map(|l| l.trim_start().strip_prefix("t1:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .context("no t1 in the server's /proc/PID/net/dev")
    }

    /// One window of the flow, with `ipmpd watch t0` attached as `attach` says when given; Gbit/s.
    fn window(&mut self, topo: &Topology, a: usize, attach: Option<Attach>) -> anyhow::Result<f64> {
        anyhow::ensure!(
            self.client.running() && self.server.running(),
            "the iperf3 flow ended before the rounds did"
        );
        let watch = attach.map(|at| Watch::attach(topo, a, at)).transpose()?;
        std::thread::sleep(SETTLE);
        let (b0, t0) = (self.received()?, Instant::now());
        std::thread::sleep(WINDOW);
        let (b1, t1) = (self.received()?, Instant::now());
        if let Some(w) = watch {
            w.detach()?;
        }
        Ok(b1.saturating_sub(b0) as f64 * 8.0 / (t1 - t0).as_secs_f64() / 1e9)
    }
}

/// How `ipmpd watch` is started for a window.
#[derive(Clone, Copy)]
struct Attach {
    /// `--link-poll-us`.
    poll_us: u64,
    /// `--reply-hook`.
    reply_hook: &'static str,
}

/// `ipmpd watch t0` attached for one window.
struct Watch(Child);

impl Watch {
    /// Starts it and waits until it says it is attached.
    fn attach(topo: &Topology, a: usize, at: Attach) -> anyhow::Result<Self> {
        let bound = ATTACH_TIMEOUT + SETTLE + WINDOW + Duration::from_secs(5);
        let mut child = Command::new("nsenter")
            .arg(format!("--net={}", topo.at(a).path()))
            .arg(tests::daemon::binary())
            .args(["watch", "t0", "--instance", "bench-tput"])
            .args(["--duration-ms", &bound.as_millis().to_string()])
            .args(["--link-poll-us", &at.poll_us.to_string()])
            .args(["--reply-hook", at.reply_hook])
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start ipmpd watch")?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Its reports after that are read to the end: a closed pipe would stop it.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let watch = Self(child);
        match rx.recv_timeout(ATTACH_TIMEOUT) {
            Ok(line) if line.starts_with("watching ") => Ok(watch),
            Ok(line) => anyhow::bail!("ipmpd watch did not attach: {line:?}"),
            Err(_) => anyhow::bail!("ipmpd watch did not attach within {ATTACH_TIMEOUT:?}"),
        }
    }

    /// Stops it (SIGTERM: it detaches and removes its pins) and waits until it has.
    fn detach(mut self) -> anyhow::Result<()> {
        // A watcher that ended on its own measured nothing of ipmpd: an error, not a row.
        if let Some(status) = self.0.try_wait()? {
            anyhow::bail!("ipmpd watch ended before its window did ({status})");
        }
        let pid = libc::pid_t::try_from(self.0.id()).context("pid")?;
        // SAFETY: no pointers; `pid` is our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let status = self.0.wait()?;
        anyhow::ensure!(status.success(), "ipmpd watch stopped with {status}");
        Ok(())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all("/sys/fs/bpf/ipmpd/bench-tput");
    }
}
