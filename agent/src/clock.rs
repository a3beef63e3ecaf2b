//! CLOCK_MONOTONIC in nanoseconds: the clock `bpf_ktime_get_ns()` reads, so kernel and userspace
//! timestamps can be subtracted from each other.

use rustix::{
    io::Errno,
    time::{ClockId, Timespec},
};

/// Nanoseconds on CLOCK_MONOTONIC.
#[must_use]
pub fn monotonic_ns() -> u64 {
    ns(rustix::time::clock_gettime(ClockId::Monotonic))
}

/// CPU time the calling thread has used, in ns.
#[must_use]
pub fn thread_cpu_ns() -> u64 {
    ns(rustix::time::clock_gettime(ClockId::ThreadCPUTime))
}

/// `ns` nanoseconds as a timespec (seconds saturate; never reached by a monotonic clock).
#[must_use]
pub fn timespec(ns: u64) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(ns / 1_000_000_000).unwrap_or(i64::MAX),
        tv_nsec: i64::try_from(ns % 1_000_000_000).unwrap_or(0),
    }
}

fn ns(ts: Timespec) -> u64 {
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// Sleeps until `deadline_ns` on CLOCK_MONOTONIC with the kernel's hrtimer precision (tokio's timer
/// wheel only ticks in whole milliseconds).
pub fn sleep_until_ns(deadline_ns: u64) {
    let ts = timespec(deadline_ns);
    while let Err(Errno::INTR) = rustix::thread::clock_nanosleep_absolute(ClockId::Monotonic, &ts) {
    }
}
