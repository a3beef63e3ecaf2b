//! The CPU time processes spend, from /proc: one process's, and a process tree's (bfdd and
//! keepalived run their work in children), and a process's threads' to the nanosecond (in all and
//! by thread name); and the packets the kernel's per-CPU receive backlogs dropped.

use tests::procstat::{Stat, ticks_per_second};
pub use tests::procstat::{threads_cpu_ns, threads_cpu_ns_by_name};

/// CPU time (s) of process `pid` so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let ticks = Stat::read(format!("/proc/{pid}/stat")).map_or(0, |s| s.cpu_ticks());
    ticks as f64 / ticks_per_second() as f64
}

/// CPU time (s) of `pid` and all its descendants.
pub fn tree_cpu_seconds(pid: u32) -> f64 {
    let mut total = cpu_seconds(pid);
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten();
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
            total += tree_cpu_seconds(c);
        }
    }
    total
}

/// Packets dropped so far because a CPU's receive backlog (`net.core.netdev_max_backlog`) was
/// full, summed over CPUs: the second column of /proc/net/softnet_stat, in hex. Host-wide, not
/// per namespace.
pub fn backlog_drops() -> u64 {
    std::fs::read_to_string("/proc/net/softnet_stat")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
        .sum()
}
