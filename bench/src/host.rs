//! The machine the benchmarks run on: what it is (CPU, cores, kernel, package versions), as the
//! head of BENCHMARKS.md and the sections name it, and the load that keeps every core busy.

use std::process::{Command, Stdio};

use anyhow::Context as _;

/// The installed version of Debian package `name`.
pub fn package_version(name: &str) -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", name])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "(version unknown)".into())
}

/// The CPU's model name.
pub fn host_line() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The cores this process may run on.
pub fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// The running kernel's release.
pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "?".into(), |s| s.trim().to_owned())
}

/// `stress-ng` keeping `cores` cores busy for `secs` seconds (killed sooner by its caller).
pub fn stress(cores: usize, secs: u64) -> anyhow::Result<std::process::Child> {
    Command::new("stress-ng")
        .args([
            "--cpu",
            &cores.to_string(),
            "--timeout",
            &format!("{secs}s"),
            "--quiet",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start stress-ng")
}

/// Puts the calling thread under SCHED_FIFO at `priority`, if given (the bench runs as root), for
/// the threads that time things while every core is busy.
///
/// # Errors
/// What the kernel said when it refused.
pub fn realtime(priority: Option<i32>) -> Result<(), String> {
    let Some(sched_priority) = priority else {
        return Ok(());
    };
    let p = libc::sched_param { sched_priority };
    // SAFETY: pid 0 is the calling thread; `p` outlives the call.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "SCHED_FIFO {sched_priority}: {}",
            std::io::Error::last_os_error()
        ))
    }
}
