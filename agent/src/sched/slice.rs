//! The probing loop's time slice under EEVDF (`--slice-us N`, Linux 6.12 and later): the kernel
//! lets a waking thread preempt the running one sooner when the waker's slice is the shorter, so
//! a probing loop with the shortest slice (0.1 ms) waits less often behind a busy task of normal
//! weight than the nice value alone achieves. Beside 4 busy loops on its core, a thread sleeping
//! 1 ms at nice -10 woke more than 1 ms late 11, 11 and 15 times in 8,000 with a 0.1 ms slice
//! against 18, 21 and 18 with the kernel's 1.4 ms (a C program, Linux 6.18, run by hand); the
//! rest of such late wake-ups are a whole scheduler tick (4 ms at HZ=250), which only real-time
//! scheduling avoids. In the benchmark's FDT 10 ms case with every core busy, six rounds of 100
//! faults each way gave a p99 of 7.6-12.0 ms (median of the rounds 8.1) with this slice and
//! 8.5-11.2 ms (9.4) with the kernel's; in the last three pairs of rounds 5 of 300 faults took
//! over 8 ms against 11.
//!
//! The slice is `sched_attr.sched_runtime` of a SCHED_OTHER thread, set with `sched_setattr`;
//! taking it needs no privilege (only a nice value below the thread's does, and the current one
//! is passed along). Kernels before 6.12 ignore the field without an error: the value is read
//! back with `sched_getattr` to tell.

use std::io;

/// `struct sched_attr` as of Linux 3.14 (`SCHED_ATTR_SIZE_VER0`): every kernel that has
/// `sched_setattr` takes it.
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}
/// The size the kernel is told: the whole struct, no implicit padding.
const ATTR_SIZE: u32 = 48;
const _: () = assert!(size_of::<SchedAttr>() == ATTR_SIZE as usize);

/// `SCHED_FLAG_RESET_ON_FORK` in `sched_attr.sched_flags`.
const RESET_ON_FORK: u64 = 0x01;

/// The shortest and the longest slice the kernel takes; values outside are clamped there.
pub const SLICE_US_RANGE: std::ops::RangeInclusive<u32> = 100..=100_000;

/// A scheduling system call failed.
#[derive(Debug, thiserror::Error)]
#[error("{call} failed")]
pub struct SyscallError {
    call: &'static str,
    #[source]
    source: io::Error,
}

impl SyscallError {
    fn last(call: &'static str) -> Self {
        Self {
            call,
            source: io::Error::last_os_error(),
        }
    }
}

/// The calling thread's scheduling attributes.
fn get() -> Result<SchedAttr, SyscallError> {
    let mut attr = SchedAttr::default();
    // SAFETY: pid 0 is the calling thread; `attr` is a writable sched_attr of the size passed.
    let rc = unsafe { libc::syscall(libc::SYS_sched_getattr, 0, &raw mut attr, ATTR_SIZE, 0) };
    if rc == 0 {
        Ok(attr)
    } else {
        Err(SyscallError::last("sched_getattr"))
    }
}

/// Whether threads under `policy` run by EEVDF's slice: SCHED_OTHER and SCHED_BATCH (not the
/// real-time policies, SCHED_IDLE or sched_ext).
fn has_slice(policy: u32) -> bool {
    [libc::SCHED_OTHER, libc::SCHED_BATCH]
        .iter()
        .any(|p| p.cast_unsigned() == policy)
}

/// Gives the calling thread `runtime_ns` as its slice (0: the kernel's default) and keeps its
/// policy, priority and nice value; keeps its SCHED_RESET_ON_FORK flag unless `reset_on_fork`
/// sets it. A thread whose policy has no slice (real-time, SCHED_IDLE) keeps what it has; the
/// flag is still set when asked, and the answer is `Ok(Err(policy))`.
fn set(runtime_ns: u64, reset_on_fork: bool) -> Result<Result<(), u32>, SyscallError> {
    let now = get()?;
    let sliced = has_slice(now.policy);
    if !sliced && !reset_on_fork {
        return Ok(Err(now.policy));
    }
    let attr = SchedAttr {
        size: ATTR_SIZE,
        flags: if reset_on_fork {
            RESET_ON_FORK
        } else {
            now.flags & RESET_ON_FORK
        },
        // Under a policy without a slice the fields are its own (a deadline reservation's
        // runtime, deadline and period) and go back as read.
        runtime: if sliced { runtime_ns } else { now.runtime },
        ..now
    };
    // SAFETY: pid 0 is the calling thread; `attr` is a valid sched_attr that outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &raw const attr, 0) };
    if rc != 0 {
        Err(SyscallError::last("sched_setattr"))
    } else if sliced {
        Ok(Ok(()))
    } else {
        Ok(Err(now.policy))
    }
}

/// The kernel refused the slice, or has none to set.
#[derive(Debug, thiserror::Error)]
pub enum SliceError {
    #[error(
        "a {slice_us} µs slice was refused (a seccomp filter or a security module forbidding sched_setattr?)"
    )]
    Refused {
        slice_us: u32,
        #[source]
        source: SyscallError,
    },
    #[error(
        "this kernel has no per-thread time slice (EEVDF's, Linux 6.12 and later); it read back {read_ns} ns"
    )]
    Unsupported { read_ns: u64 },
    #[error(
        "the daemon was started under scheduling policy {} ({policy}), which has no time slice; it is left as it is",
        policy_name(*policy)
    )]
    NoSlicePolicy { policy: u32 },
}

/// The name sched(7) gives `policy`.
fn policy_name(policy: u32) -> &'static str {
    match policy.cast_signed() {
        libc::SCHED_OTHER => "SCHED_OTHER",
        libc::SCHED_FIFO => "SCHED_FIFO",
        libc::SCHED_RR => "SCHED_RR",
        libc::SCHED_BATCH => "SCHED_BATCH",
        libc::SCHED_IDLE => "SCHED_IDLE",
        libc::SCHED_DEADLINE => "SCHED_DEADLINE",
        // Not in the libc crate.
        7 => "SCHED_EXT",
        _ => "unknown",
    }
}

/// Gives the calling thread a time slice of `slice_us` (within [`SLICE_US_RANGE`]) at its present
/// policy and nice value; threads it spawns inherit it. Call it after the nice value is set and
/// before any thread exists. Returns the slice set, in nanoseconds.
///
/// # Errors
/// When the kernel refuses, takes the call without having a slice to set (before 6.12), or the
/// thread runs under a policy with no slice (a real-time one it was started with, SCHED_IDLE).
pub fn slice_inherited(slice_us: u32) -> Result<u64, SliceError> {
    let ns = u64::from(slice_us) * 1_000;
    let refused = |source| SliceError::Refused { slice_us, source };
    set(ns, false)
        .map_err(refused)?
        .map_err(|policy| SliceError::NoSlicePolicy { policy })?;
    let read_ns = get().map_err(refused)?.runtime;
    if read_ns == ns {
        Ok(ns)
    } else {
        Err(SliceError::Unsupported { read_ns })
    }
}

/// Threads the calling thread spawns from now on start at normal priority (SCHED_RESET_ON_FORK:
/// SCHED_OTHER where it runs real-time, nice 0 where it is below, the kernel's slice), while it
/// keeps its own policy, priority, nice value and `slice_ns` (0: the kernel's default; ignored
/// under a policy with no slice). Done with `sched_setattr`, where the flag is a field: systemd's
/// `RestrictRealtime=` filter inspects `sched_setscheduler`'s policy argument, which the flag
/// makes look real-time. Needs no privilege: only clearing the flag does.
///
/// # Errors
/// When the kernel refuses.
pub fn stop_inheritance(slice_ns: u64) -> Result<(), SyscallError> {
    set(slice_ns, true).map(|_| ())
}

/// Gives the calling thread the kernel's default slice back (a no-op before 6.12, with none set,
/// or under a policy with no slice). Needs no privilege; a failure leaves the thread as it was.
pub fn default_slice_here() {
    let _ = set(0, false);
}

/// The calling thread's slice in nanoseconds as the kernel reports it (0 before 6.12).
#[cfg(test)]
pub fn slice_here_ns() -> u64 {
    get().map_or(0, |a| a.runtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the running kernel has EEVDF's per-thread slice (6.12 and later): its
    /// `/proc/.../sched` shows `se.slice` since the same change.
    fn kernel_has_slices() -> bool {
        std::fs::read_to_string("/proc/thread-self/sched").is_ok_and(|s| s.contains("se.slice"))
    }

    #[test]
    fn a_slice_is_taken_inherited_and_given_back_or_reported_missing() {
        let (taken, inherited, given_back) = std::thread::spawn(|| {
            let taken = slice_inherited(100);
            let inherited = std::thread::spawn(slice_here_ns).join().unwrap();
            default_slice_here();
            (taken, inherited, slice_here_ns())
        })
        .join()
        .unwrap();
        if kernel_has_slices() {
            assert!(taken.is_ok(), "{taken:?}");
            assert_eq!(inherited, 100_000, "a spawned thread inherits the slice");
            assert_ne!(given_back, 100_000, "and the default comes back");
        } else {
            assert!(
                matches!(taken, Err(SliceError::Unsupported { .. })),
                "{taken:?}"
            );
        }
    }
}
