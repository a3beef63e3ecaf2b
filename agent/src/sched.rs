//! Real-time scheduling for the threads that measure (`--rt-priority N`), as keepalived's
//! `vrrp_rt_priority` and corosync do: with every core busy, a normal thread waits behind the
//! load for its turn, and a probe sent late or a reply read late is a detection late.
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

use std::io;

/// The real-time priority asked for on the command line.
#[derive(clap::Args, Clone, Copy, Debug, Default, PartialEq, Eq)]
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

/// Threads the calling (real-time) thread spawns from now on start at normal priority. Needs no
/// privilege: only clearing the flag does.
pub fn stop_inheritance(priority: u8) {
    if let Err(e) = set(libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, priority) {
        tracing::warn!(error = %e, "SCHED_RESET_ON_FORK refused; threads spawned later run at real-time priority");
    }
}

/// Gives up a real-time policy the calling thread inherited (a no-op at normal priority). First
/// thing in every thread that serves clients or reads files.
pub fn normal_here() {
    // Lowering one's own policy needs no privilege; a failure leaves the thread as it was.
    let _ = set(libc::SCHED_OTHER, 0);
}

/// Puts the calling thread in the background, SCHED_IDLE, for work that can wait (encoding the
/// metrics exposition): it runs on what the other threads leave, and a waking probing loop
/// preempts it at once (a SCHED_BATCH or niced thread may first run out its slice, a millisecond
/// or more). Needs no privilege from a normal or real-time policy; a failure leaves the thread
/// as it was.
pub fn background_here() {
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
