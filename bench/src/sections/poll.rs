//! The CPU cost of the carrier poll: `ipmpd watch` on 1, 16 and 64 veths at the default budget
//! and at fixed intervals.

use std::{
    fmt::Write as _,
    process::{Command, Stdio},
    time::Duration,
};

use tests::topology::Topology;

use crate::procfs::cpu_seconds;

/// The benchmark section.
pub fn poll_cost() -> anyhow::Result<String> {
    let mut md = String::from(
        "## CPU cost of the carrier poll\n\n\
         Each poll is one ethtool LINKSTATE_GET dump (all devices); an RTM_GETLINK dump for the carrier\n\
         counters runs every 100 ms or slower. By default the watcher thread keeps both inside 1 % of\n\
         a core (`--link-poll-cpu 1`), stretching the interval beyond its floor (`--link-poll-us`) as\n\
         the dumps grow; `--link-poll-cpu 100` polls at the floor whatever it costs.\n\
         `ipmpd watch` on N veths in one namespace for 8 s; CPU time (user + system, all threads) of\n\
         the agent from /proc/PID/stat between second 2 and second 8, as % of one core.\n\n\
         | interfaces | poll | agent CPU | per interface | target |\n|---|---|---|---|---|\n",
    );
    for n in [1usize, 16, 64] {
        let mut topo = Topology::default();
        let a = topo.ns("cpu");
        let b = topo.ns("cpup");
        for i in 0..n {
            topo.veth(a, &format!("c{i}"), b, &format!("p{i}"), None);
        }
        let names: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
        for (label, poll) in [
            ("1 ms floor, 1 % budget (default)", ["1000", "1"]),
            ("fixed 1 ms", ["1000", "100"]),
            ("fixed 10 ms", ["10000", "100"]),
        ] {
            let mut args: Vec<String> = vec!["watch".into()];
            args.extend(names.iter().cloned());
            args.extend([
                "--instance".into(),
                "bench-cpu".into(),
                "--link-poll-us".into(),
                poll[0].into(),
                "--link-poll-cpu".into(),
                poll[1].into(),
                "--duration-ms".into(),
                "9000".into(),
            ]);
            let child = Command::new("nsenter")
                .arg(format!("--net={}", topo.at(a).path()))
                .arg(tests::daemon::binary())
                .args(&args)
                .stdout(Stdio::null())
                .spawn()?;
            let pid = child.id();
            std::thread::sleep(Duration::from_secs(2));
            let c0 = cpu_seconds(pid);
            std::thread::sleep(Duration::from_secs(6));
            let c1 = cpu_seconds(pid);
            let mut child = child;
            let _ = child.wait();
            let core_pct = 100.0 * (c1 - c0) / 6.0;
            let target = if n == 64 && poll[1] == "1" {
                if core_pct < 1.0 {
                    "< 1 %: met"
                } else {
                    "< 1 %: **missed**"
                }
            } else {
                ""
            };
            writeln!(
                md,
                "| {n} | {label} | {core_pct:.2} % | {:.3} % | {target} |",
                core_pct / n as f64
            )?;
        }
    }
    Ok(md + "\n")
}
