//! The CPU cost of the carrier poll: `ipmpd watch` on 1, 16 and 64 veths at the default budget
//! and at fixed intervals, and what one poll costs by way of asking the kernel (the `tests`
//! crate's `carrier_query_cost` example, built and run here with cargo).

use std::{
    fmt::Write as _,
    process::{Command, Stdio},
    time::Duration,
};

use tests::topology::Topology;

use crate::procfs::cpu_seconds;

/// The benchmark section; `cargo` runs cargo from the workspace root.
pub fn poll_cost(cargo: fn() -> Command) -> anyhow::Result<String> {
    let mut md = String::from(
        "## CPU cost of the carrier poll\n\n\
         Each poll is one ethtool LINKSTATE_GET dump (all devices; one LINKSTATE_GET per member\n\
         where there are more than six devices per member); an RTM_GETLINK dump for the carrier\n\
         counters runs every 100 ms or slower. By default the watcher thread keeps both inside 1 % of\n\
         a core (`--link-poll-cpu 1`), stretching the interval beyond its floor (`--link-poll-us`) as\n\
         the dumps grow; `--link-poll-cpu 100` polls at the floor whatever it costs.\n\
         `ipmpd watch` on the first M of N veths in one namespace (N devices besides `lo`) for 8 s;\n\
         CPU time (user + system, all threads) of the agent from /proc/PID/stat between second 2 and\n\
         second 8, as % of one core. The last rows are a host with two uplinks among many other\n\
         devices (containers' veths), where the poll asks for each member.\n\n\
         | members | devices | poll | agent CPU | per member | target |\n|---|---|---|---|---|---|\n",
    );
    for (devices, n) in [(1usize, 1usize), (16, 16), (64, 64), (512, 2)] {
        let mut topo = Topology::default();
        let a = topo.ns("cpu");
        let b = topo.ns("cpup");
        for i in 0..devices {
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
                "| {n} | {devices} | {label} | {core_pct:.2} % | {:.3} % | {target} |",
                core_pct / n as f64
            )?;
        }
    }
    md += &query_cost(cargo)?;
    Ok(md + "\n")
}

/// What one poll costs by way of asking, with the cost of a wake-up beside it.
fn query_cost(cargo: fn() -> Command) -> anyhow::Result<String> {
    let out = cargo()
        .args(["run", "-q", "--release", "-p", "tests", "--example"])
        .args(["carrier_query_cost", "1,64,512"])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "carrier_query_cost: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(format!(
        "\nOne poll by way of asking: the polling thread's CPU time per poll, back to back (median of 9\n\
         batches of 200 polls), then per sleep and poll at a 1 ms and a 10 ms pace (median of 5 batches\n\
         of 50), in a namespace of its own with N devices (veth pairs, both ends there), the members\n\
         the first 64 (or fewer) veths; the last row of each size sleeps and asks nothing (the\n\
         wake-up alone). A watcher pays the paced figures: after a sleep the poll finds its code and\n\
         data no longer cached, and the further apart the polls, the dearer each one. Where the paced\n\
         cost of one poll exceeds its share of the default budget (three quarters of 1 % of a core), the\n\
         watcher stretches the interval until it does not. Command: `cargo run --release -p tests --example carrier_query_cost 1,64,512`.\n\n{}",
        String::from_utf8_lossy(&out.stdout)
    ))
}
