//! Real-time scheduling for the threads that measure (`--rt-priority N`), as keepalived's
//! `vrrp_rt_priority` and corosync do: with every core busy, a normal thread waits behind the
//! load for its turn, and a probe sent late or a reply read late is a detection late. Without it
//! the same threads run at a raised nice value (`--nice N`, -10 by default): a sleeper pinned
//! beside a busy loop on this kind of machine woke more than 1 ms late in 27 of 889 sleeps at
//! nice 0 (up to 4 ms: the loop ran out its slice first), in 1 of 854 at -10. On Linux 6.12 and
//! later they also take EEVDF's shortest time slice (`--slice-us N`, 100 µs by default; see
//! [`slice`]), which lets their wake-ups preempt a busy task sooner.
//!
//! Only the probing loop (it sends the probes and reads the ring buffer) and the link watcher (the
//! carrier poll) run SCHED_FIFO. The daemon keeps no CAP_SYS_NICE, so the policy is taken at the
//! very start, while it still may ([`realtime_inherited`]); the start-up (configuration, program
//! loads, the first pass) therefore runs at that priority too. Threads spawned from then on
//! inherit it, and those that must not have it (the control socket's and the metrics exporter's
//! I/O, reloads' configuration reads) give it up first thing ([`normal_here`]; the exporter, which
//! encodes the exposition, goes into the background, SCHED_IDLE: [`background_here`]), which needs no
//! privilege. Before the loop starts, [`stop_inheritance`] makes threads spawned later start at
//! normal priority (SCHED_RESET_ON_FORK).
//!
//! The loop itself answers the control socket's queries (they read its state): a client's query
//! runs at the loop's priority, bounded as without it (32 requests a turn, each answer built once
//! a turn, the rest waiting for the next).

pub mod slice;

use std::io;

pub use slice::{SLICE_US_RANGE, SliceError, default_slice_here, slice_inherited};

/// The scheduling asked for on the command line: a real-time priority, or else a nice value and
/// a time slice.
#[derive(clap::Args, Clone, Copy, Debug, PartialEq, Eq)]
pub struct RealtimeArgs {
    /// Run the probing loop and the link watcher SCHED_FIFO at priority N (1-99): detection keeps
    /// its pace with every core busy. Needs CAP_SYS_NICE at start (root has it) or an
    /// RLIMIT_RTPRIO of at least N; a refusal is reported and the daemon probes at normal
    /// priority.
    #[arg(
        long,
        value_name = "N",
        value_hint = clap::ValueHint::Other,
        value_parser = clap::value_parser!(u8).range(1..=99)
    )]
    pub rt_priority: Option<u8>,
    /// Nice value of the probing loop and the link watcher when they do not run real-time (-20
    /// to 19; 0 leaves them as started): ahead of the machine's normal work, which at equal
    /// weight can hold a waking loop a few milliseconds past its deadline. Needs CAP_SYS_NICE at
    /// start (root has it) or a matching RLIMIT_NICE; a refusal is reported and probing goes on.
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_NICE,
        allow_negative_numbers = true,
        value_hint = clap::ValueHint::Other,
        value_parser = clap::value_parser!(i8).range(-20..=19)
    )]
    pub nice: i8,
    /// Time slice of the probing loop and the link watcher when they do not run real-time, in
    /// microseconds (100 to 100000; 0 leaves the kernel's): under EEVDF (Linux 6.12 and later) a
    /// waking thread with a shorter slice than the running one preempts it sooner. Needs no
    /// privilege; older kernels have no such setting, which is reported.
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_SLICE_US,
        value_hint = clap::ValueHint::Other,
        value_parser = parse_slice_us
    )]
    pub slice_us: u32,
}

/// The probing loop's and the link watcher's slice unless told otherwise: the shortest the
/// kernel takes.
pub const DEFAULT_SLICE_US: u32 = *SLICE_US_RANGE.start();

/// `--slice-us`: 0, or a value within [`SLICE_US_RANGE`].
fn parse_slice_us(s: &str) -> Result<u32, String> {
    let v: u32 = s
        .parse()
        .map_err(|e| format!("{s:?} is not a number of microseconds: {e}"))?;
    if v == 0 || SLICE_US_RANGE.contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "{v} µs is outside the kernel's {}-{} µs (0 leaves its default)",
            SLICE_US_RANGE.start(),
            SLICE_US_RANGE.end()
        ))
    }
}

/// The priority the probing loop and the link watcher were to take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asked {
    /// SCHED_FIFO at this priority.
    Realtime(u8),
    /// This nice value.
    Nice(i8),
    /// This time slice, in microseconds.
    Slice(u32),
}

/// The probing loop's and the link watcher's nice value unless told otherwise.
pub const DEFAULT_NICE: i8 = -10;

impl Default for RealtimeArgs {
    fn default() -> Self {
        Self {
            rt_priority: None,
            nice: DEFAULT_NICE,
            slice_us: DEFAULT_SLICE_US,
        }
    }
}

/// The kernel refused real-time scheduling.
#[derive(Debug, thiserror::Error)]
#[error(
    "SCHED_FIFO at priority {priority} was refused (it needs CAP_SYS_NICE or an RLIMIT_RTPRIO of {priority} or more, and no seccomp filter or cgroup forbidding real-time scheduling)"
)]
pub struct SchedError {
    priority: u8,
    #[source]
    source: io::Error,
}

/// The kernel refused the nice value.
#[derive(Debug, thiserror::Error)]
#[error(
    "nice {nice} was refused (it needs CAP_SYS_NICE at start, or an RLIMIT_NICE of {} or more)",
    20 - i32::from(*nice)
)]
pub struct NiceError {
    nice: i8,
    #[source]
    source: io::Error,
}

/// Sets the calling thread's nice value (on Linux each thread has its own); threads it spawns
/// inherit it.
fn set_nice(nice: i8) -> io::Result<()> {
    // SAFETY: no pointers; PRIO_PROCESS with 0 is the calling thread on Linux.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, i32::from(nice)) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Gives the calling thread nice value `nice`; threads it spawns inherit it. Call it before the
/// capabilities are dropped and before any thread exists.
///
/// # Errors
/// When the kernel refuses (a negative value without CAP_SYS_NICE or a matching RLIMIT_NICE).
pub fn nice_inherited(nice: i8) -> Result<(), NiceError> {
    set_nice(nice).map_err(|source| NiceError { nice, source })
}

fn set(policy: i32, priority: u8) -> io::Result<()> {
    let p = libc::sched_param {
        sched_priority: i32::from(priority),
    };
    // SAFETY: pid 0 is the calling thread; `p` is a valid sched_param that outlives the call.
    let rc = unsafe { libc::sched_setscheduler(0, policy, &p) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Puts the calling thread under SCHED_FIFO at `priority`; threads it spawns inherit it. Call it
/// before the capabilities are dropped and before any thread exists.
///
/// # Errors
/// When the kernel refuses (no CAP_SYS_NICE and RLIMIT_RTPRIO below `priority`, or a cgroup with
/// no real-time budget).
pub fn realtime_inherited(priority: u8) -> Result<(), SchedError> {
    set(libc::SCHED_FIFO, priority).map_err(|source| SchedError { priority, source })
}

/// Threads the calling thread spawns from now on start at normal priority: SCHED_OTHER, nice 0
/// where it was below, and the kernel's slice. The calling thread keeps its policy (whichever it
/// has: the one asked for, or the one its service manager started it under), its nice value and
/// `slice_ns`, the slice it took (0: none). Call it once, when every priority is taken.
pub fn stop_inheritance(slice_ns: u64) {
    if let Err(e) = slice::stop_inheritance(slice_ns) {
        tracing::warn!(
            error = format!("{:#}", anyhow::Error::new(e)),
            "SCHED_RESET_ON_FORK refused; threads spawned later keep the probing loop's priority"
        );
    }
}

/// Gives up a real-time policy or a raised nice value the calling thread inherited (a no-op at
/// normal priority). First thing in every thread that serves clients or reads files.
pub fn normal_here() {
    // Lowering one's own priority needs no privilege; a failure leaves the thread as it was.
    let _ = set(libc::SCHED_OTHER, 0);
    give_up_raised_nice();
    default_slice_here();
}

/// Nice 0 for the calling thread if it inherited a value below (a positive one is left alone).
fn give_up_raised_nice() {
    // SAFETY: no pointers; PRIO_PROCESS with 0 is the calling thread on Linux. -1 is also a
    // valid answer, so errno is not consulted: an error reads as "below 0" and the raise to 0
    // is harmless.
    if unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) } < 0 {
        let _ = set_nice(0);
    }
}

/// Puts the calling thread in the background, SCHED_IDLE, for work that can wait (encoding the
/// metrics exposition): it runs on what the other threads leave, and a waking probing loop
/// preempts it at once (a SCHED_BATCH or niced thread may first run out its slice, a millisecond
/// or more). Needs no privilege from a normal or real-time policy; a failure leaves the thread
/// as it was.
pub fn background_here() {
    // SCHED_IDLE ignores the nice value, but a thread list should not show one it has no use for.
    give_up_raised_nice();
    default_slice_here();
    let _ = set(libc::SCHED_IDLE, 0);
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        rt: RealtimeArgs,
    }

    #[test]
    fn a_background_thread_is_sched_idle_and_the_others_are_not() {
        let policy = std::thread::spawn(|| {
            background_here();
            // SAFETY: pid 0 is the calling thread; no pointers.
            unsafe { libc::sched_getscheduler(0) }
        })
        .join()
        .unwrap();
        assert_eq!(policy, libc::SCHED_IDLE);
        // SAFETY: as above, for this (untouched) thread.
        let here = unsafe { libc::sched_getscheduler(0) };
        assert_ne!(here, libc::SCHED_IDLE);
    }

    /// The calling thread's nice value.
    fn nice_here() -> i32 {
        // SAFETY: no pointers; PRIO_PROCESS with 0 is the calling thread on Linux.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
    }

    #[test]
    fn a_thread_that_serves_clients_gives_up_a_raised_priority_it_inherited() {
        let (inherited, after) = std::thread::spawn(|| {
            if let Err(e) = nice_inherited(-3) {
                // Lowering the nice value needs CAP_SYS_NICE: CI runs as root and must have it.
                assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "{e}");
                eprintln!("skipped without CAP_SYS_NICE: {e}");
                return (-3, 0);
            }
            let inherited = std::thread::spawn(nice_here).join().unwrap();
            normal_here();
            (inherited, nice_here())
        })
        .join()
        .unwrap();
        assert_eq!(inherited, -3, "a spawned thread inherits the nice value");
        assert_eq!(after, 0, "and gives it up");
    }

    /// The calling thread's policy.
    fn policy_here() -> i32 {
        policy_and_flag_here().0
    }

    /// The calling thread's policy, and whether threads it spawns start at normal priority
    /// (SCHED_RESET_ON_FORK, which the kernel reports beside the policy).
    fn policy_and_flag_here() -> (i32, bool) {
        // SAFETY: pid 0 is the calling thread; no pointers.
        let p = unsafe { libc::sched_getscheduler(0) };
        (
            p & !libc::SCHED_RESET_ON_FORK,
            p & libc::SCHED_RESET_ON_FORK != 0,
        )
    }

    /// Skips a test that needs CAP_SYS_NICE where it is missing: CI runs as root and must have it.
    fn privileged(taken: Result<(), impl std::fmt::Display>) -> bool {
        match taken {
            Ok(()) => true,
            Err(e) => {
                assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "{e}");
                eprintln!("skipped without CAP_SYS_NICE: {e}");
                false
            }
        }
    }

    #[test]
    fn after_stop_inheritance_a_real_time_thread_stays_real_time_and_its_children_do_not() {
        let seen = std::thread::spawn(|| {
            if !privileged(realtime_inherited(1)) {
                return None;
            }
            // As the daemon does when it runs real-time: no slice was taken.
            stop_inheritance(0);
            let child = std::thread::spawn(policy_here).join().unwrap();
            let (own, flag) = policy_and_flag_here();
            Some((own, flag, child))
        })
        .join()
        .unwrap();
        if let Some((own, flag, child)) = seen {
            assert_eq!(own, libc::SCHED_FIFO, "the thread keeps its policy");
            assert!(flag, "and the flag is set");
            assert_eq!(child, libc::SCHED_OTHER, "a thread it spawns starts normal");
        }
    }

    #[test]
    fn after_stop_inheritance_a_thread_keeps_its_nice_value_and_slice_and_its_children_do_not() {
        let seen = std::thread::spawn(|| {
            if !privileged(nice_inherited(-3)) {
                return None;
            }
            // Before 6.12 there is no slice to take: the daemon goes on with 0.
            let slice_ns = slice_inherited(100).unwrap_or(0);
            stop_inheritance(slice_ns);
            let child = std::thread::spawn(|| (nice_here(), slice::slice_here_ns()))
                .join()
                .unwrap();
            let (policy, flag) = policy_and_flag_here();
            let own = (nice_here(), slice::slice_here_ns(), policy);
            Some((slice_ns, own, flag, child))
        })
        .join()
        .unwrap();
        if let Some((slice_ns, (nice, slice, policy), flag, (child_nice, child_slice))) = seen {
            assert_eq!(
                (nice, policy),
                (-3, libc::SCHED_OTHER),
                "the thread keeps both"
            );
            assert!(flag, "and the flag is set");
            assert_eq!(child_nice, 0, "a thread it spawns starts at nice 0");
            if slice_ns != 0 {
                assert_eq!(slice, slice_ns, "the thread keeps its slice");
                assert_ne!(child_slice, slice_ns, "a thread it spawns has the kernel's");
            }
        }
    }

    #[test]
    fn stop_inheritance_under_sched_idle_sets_the_flag_and_keeps_the_policy() {
        let (policy, flag) = std::thread::spawn(|| {
            background_here();
            stop_inheritance(0);
            policy_and_flag_here()
        })
        .join()
        .unwrap();
        assert_eq!(policy, libc::SCHED_IDLE);
        assert!(flag, "the flag is set under a policy with no slice too");
    }

    #[test]
    fn a_lowered_priority_is_left_as_it_is() {
        let after = std::thread::spawn(|| {
            set_nice(5).unwrap();
            normal_here();
            nice_here()
        })
        .join()
        .unwrap();
        assert_eq!(
            after, 5,
            "only a raised priority (nice below 0) is given up"
        );
    }

    #[test]
    fn nice_values_outside_minus_twenty_to_nineteen_are_refused_by_the_parser() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied())).map(|c| c.rt.nice)
        };
        assert_eq!(parse(&[]).ok(), Some(DEFAULT_NICE));
        assert_eq!(parse(&["--nice", "-20"]).ok(), Some(-20));
        assert_eq!(parse(&["--nice", "0"]).ok(), Some(0));
        assert_eq!(parse(&["--nice", "19"]).ok(), Some(19));
        for bad in ["-21", "20", "high", ""] {
            assert!(parse(&["--nice", bad]).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn slices_outside_the_kernels_range_are_refused_by_the_parser() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
                .map(|c| c.rt.slice_us)
        };
        assert_eq!(parse(&[]).ok(), Some(DEFAULT_SLICE_US));
        for good in [0, 100, 3000, 100_000] {
            assert_eq!(parse(&["--slice-us", &good.to_string()]).ok(), Some(good));
        }
        for bad in ["1", "99", "100001", "-100", "short", ""] {
            assert!(parse(&["--slice-us", bad]).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn priorities_outside_one_to_ninety_nine_are_refused_by_the_parser() {
        assert_eq!(
            Cli::try_parse_from(["x", "--rt-priority", "50"])
                .map(|c| c.rt.rt_priority)
                .ok(),
            Some(Some(50))
        );
        assert_eq!(
            Cli::try_parse_from(["x"]).map(|c| c.rt.rt_priority).ok(),
            Some(None)
        );
        for bad in ["0", "100", "-1", "fifo", ""] {
            assert!(
                Cli::try_parse_from(["x", "--rt-priority", bad]).is_err(),
                "{bad:?} accepted"
            );
        }
    }
}
