//! veth throughput: iperf3 TCP over one veth pair without ipmpd and with it attached (XDP and TC
//! egress on the path of every data packet), at the default carrier poll and a 10 ms floor.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::Context as _;
use serde_json::Value;
use tests::topology::Topology;

use crate::targets::{Targets, verdict};

/// One iperf3 TCP run from `a` to `b`'s 192.0.2.1 for `secs`; Gbit/s.
fn iperf(a: &tests::Netns, secs: u32) -> anyhow::Result<f64> {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", a.path()))
        .args(["iperf3", "-c", "192.0.2.1", "-t", &secs.to_string(), "-J"])
        .output()
        .context("iperf3")?;
    let v: Value = serde_json::from_slice(&out.stdout).context("iperf3 -J output")?;
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|b| b / 1e9)
        .context("no throughput in iperf3's report")
}

/// The benchmark section.
pub fn throughput(targets: &mut Targets) -> anyhow::Result<String> {
    let mut topo = Topology::default();
    let a = topo.ns("tput-a");
    let b = topo.ns("tput-b");
    topo.veth(a, "t0", b, "t1", None);
    topo.addr(a, "t0", "192.0.2.10/24");
    topo.addr(b, "t1", "192.0.2.1/24");
    // Rotate without / with ipmpd at the default carrier poll / with a 10 ms floor, 5 s each:
    // the third setup separates the programs' cost from the poll's (the kernel here refuses the
    // carrier hook, so the poll runs whenever ipmpd does).
    let setups: [(&str, Option<u64>); 3] = [
        ("without ipmpd", None),
        (
            "with ipmpd, default poll (1 ms floor, 1 % budget)",
            Some(1000),
        ),
        ("with ipmpd, 10 ms poll floor", Some(10_000)),
    ];
    let mut runs: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
    for _ in 0..3 {
        for (i, (_, poll_us)) in setups.iter().enumerate() {
            let mut server = Command::new("nsenter")
                .arg(format!("--net={}", topo.at(b).path()))
                .args(["iperf3", "-s", "--one-off"])
                .stdout(Stdio::null())
                .spawn()
                .context("iperf3 server")?;
            std::thread::sleep(Duration::from_millis(300));
            let watch = poll_us.map(|us| {
                Command::new("nsenter")
                    .arg(format!("--net={}", topo.at(a).path()))
                    .arg(tests::daemon::binary())
                    .args([
                        "watch",
                        "t0",
                        "--instance",
                        "bench-tput",
                        "--duration-ms",
                        "8000",
                    ])
                    .args(["--link-poll-us", &us.to_string()])
                    .stdout(Stdio::null())
                    .spawn()
            });
            std::thread::sleep(Duration::from_millis(500));
            let gbps = iperf(topo.at(a), 5);
            if let Some(Ok(mut w)) = watch {
                let _ = w.kill();
                let _ = w.wait();
                let _ = std::fs::remove_dir_all("/sys/fs/bpf/ipmpd/bench-tput");
            }
            let _ = server.kill();
            let _ = server.wait();
            runs[i].push(gbps?);
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let base = median(&runs[0]);
    let mut table = String::new();
    for ((name, _), v) in setups.iter().zip(&runs) {
        let list = v.iter().map(|g| format!("{g:.2}")).collect::<Vec<_>>();
        table += &format!("| {name} | {} | {:.2} |\n", list.join(", "), median(v));
    }
    let (r1, r10) = (median(&runs[1]) / base, median(&runs[2]) / base);
    targets.row(
        "TCP throughput with / without ipmpd, default settings",
        format!("{r1:.3}"),
        "≥ 0.99",
        r1 >= 0.99,
    );
    let verdict = |r: f64| verdict(r >= 0.99);
    Ok(format!(
        "## veth throughput with and without ipmpd attached\n\n\
         iperf3 TCP over one veth pair for 5 s, 3 runs each, rotating; \"with\" = `ipmpd watch t0 --link-poll-us N`\n\
         attached (XDP on t0, TC egress on t0: every data packet crosses both programs).\n\n\
         | setup | runs (Gbit/s) | median |\n|---|---|---|\n{table}\n\
         With / without: {r1:.3} at the default poll, {r10:.3} at the 10 ms floor (target ≥ 0.99: {}, {}).\n\n",
        verdict(r1),
        verdict(r10)
    ))
}
