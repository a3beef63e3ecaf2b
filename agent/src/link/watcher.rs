//! The link watcher thread: polls carrier at a fixed interval (ethtool's link-state dump where the
//! kernel offers it, else an RTM_GETLINK dump), dumps RTM_GETLINK for the kernel's carrier counters
//! every 100 ms, listens to rtnetlink notifications in between, folds both into the [`LinkMirror`], writes changes to the
//! pinned link-state map and reports them.
//!
//! A plain thread with `ppoll` and absolute deadlines rather than a tokio task: the poll interval
//! can be 1 ms or less, which tokio's millisecond timer wheel cannot keep.

use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use agent_common::link::{LinkState, source};

use super::{
    ethtool::EthtoolLinkState,
    mirror::{LinkEvent, LinkMirror},
    netlink::{NetlinkError, RouteSocket},
};
use crate::clock::monotonic_ns;

/// Where the mirror's state is written: the pinned BPF map in the daemon, a fake in tests.
pub trait LinkStateStore: Send {
    /// Writes the state of `ifindex`.
    ///
    /// # Errors
    /// When the store refuses the write.
    fn store(&mut self, ifindex: u32, state: &LinkState) -> io::Result<()>;
}

/// What the watcher reports.
#[derive(Debug)]
pub enum WatchReport {
    /// A link change.
    Link(LinkEvent),
    /// Notifications were lost; the watcher resynchronised with a dump.
    Overrun,
    /// A store or socket error; the watcher keeps going.
    Error(String),
}

/// Settings of the watcher.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    /// Interfaces to watch.
    pub ifindexes: Vec<u32>,
    /// Carrier poll interval; `None` when a kernel hook already mirrors carrier.
    pub poll_interval: Option<Duration>,
}

/// A running watcher; dropping it stops the thread.
#[derive(Debug)]
pub struct LinkWatcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LinkWatcher {
    /// Starts watching. The initial state of every interface is reported before this returns.
    ///
    /// # Errors
    /// When the netlink sockets cannot be opened or the first dump fails.
    pub fn spawn(
        config: WatchConfig,
        mut store: Box<dyn LinkStateStore>,
        report: impl Fn(WatchReport) + Send + 'static,
    ) -> Result<Self, NetlinkError> {
        let mut dumps = RouteSocket::for_dumps()?;
        let notifications = RouteSocket::for_notifications()?;
        let mut mirror = LinkMirror::default();
        for &ifindex in &config.ifindexes {
            mirror.track(ifindex);
        }
        let now = monotonic_ns();
        let mut initial = Vec::new();
        dumps.dump_links(|obs| initial.extend(mirror.observe(&obs, now, source::INITIAL)))?;
        for ev in initial {
            apply(&mirror, store.as_mut(), &report, ev);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("ipmpd-link".into())
            .spawn(move || {
                run(
                    &config,
                    mirror,
                    dumps,
                    notifications,
                    store.as_mut(),
                    &report,
                    &thread_stop,
                )
            })
            .map_err(|e| NetlinkError::Io {
                call: "spawn",
                source: e,
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for LinkWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn apply(
    mirror: &LinkMirror,
    store: &mut dyn LinkStateStore,
    report: &impl Fn(WatchReport),
    ev: LinkEvent,
) {
    if let Some(state) = mirror.state(ev.ifindex)
        && let Err(e) = store.store(ev.ifindex, &state)
    {
        report(WatchReport::Error(format!(
            "cannot write link state of ifindex {}: {e}",
            ev.ifindex
        )));
    }
    report(WatchReport::Link(ev));
}

/// Longest wait when nothing is polled, so a stop request is noticed.
const IDLE_WAIT_NS: u64 = 100_000_000;
/// Pace of the full RTM_GETLINK dump (carrier counters) when ethtool does the fast poll.
const COUNTER_DUMP_NS: u64 = 100_000_000;

fn run(
    config: &WatchConfig,
    mut mirror: LinkMirror,
    mut dumps: RouteSocket,
    mut notifications: RouteSocket,
    store: &mut dyn LinkStateStore,
    report: &impl Fn(WatchReport),
    stop: &AtomicBool,
) {
    let interval = config
        .poll_interval
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1));
    let mut next_poll = monotonic_ns() + interval.unwrap_or(IDLE_WAIT_NS);
    let mut next_counter_dump = next_poll;
    // The fast poll uses ethtool's link state where the kernel has it (CONFIG_ETHTOOL_NETLINK).
    let mut ethtool = interval.and_then(|_| EthtoolLinkState::open().ok());
    let mut events = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let now = monotonic_ns();
        let wait = next_poll.saturating_sub(now).min(IDLE_WAIT_NS);
        let mut pfd = libc::pollfd {
            fd: notifications.raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = libc::timespec {
            tv_sec: (wait / 1_000_000_000) as i64,
            tv_nsec: (wait % 1_000_000_000) as i64,
        };
        // SAFETY: one valid pollfd, a valid timespec, no signal mask.
        let rc = unsafe { libc::ppoll(&raw mut pfd, 1, &raw const ts, std::ptr::null()) };
        let mut resync = false;
        if rc > 0 {
            let now = monotonic_ns();
            match notifications.drain_notifications(|obs| {
                events.extend(mirror.observe(&obs, now, source::NOTIFICATION))
            }) {
                Ok(()) => {}
                Err(NetlinkError::Overrun) => {
                    report(WatchReport::Overrun);
                    resync = true;
                }
                Err(e) => report(WatchReport::Error(e.to_string())),
            }
        }
        let now = monotonic_ns();
        let poll_due = interval.is_some() && now >= next_poll;
        if poll_due && let Some(et) = ethtool.as_mut() {
            let result = et.dump(|ifindex, link| {
                events.extend(mirror.observe_carrier(ifindex, link, now, source::POLL))
            });
            if let Err(e) = result {
                report(WatchReport::Error(format!(
                    "ethtool link state failed ({e}); polling with RTM_GETLINK instead"
                )));
                ethtool = None;
            }
        }
        // With the cheap ethtool poll, the full dump (carrier counters: flaps between two polls)
        // runs at a slower pace; without it, the full dump is the poll.
        let counters_due = if ethtool.is_some() {
            now >= next_counter_dump
        } else {
            poll_due
        };
        if counters_due || resync {
            next_counter_dump = now + COUNTER_DUMP_NS;
            if let Err(e) =
                dumps.dump_links(|obs| events.extend(mirror.observe(&obs, now, source::POLL)))
            {
                report(WatchReport::Error(e.to_string()));
            }
        }
        if now >= next_poll {
            let step = interval.unwrap_or(IDLE_WAIT_NS);
            // Skip whole intervals missed while descheduled rather than polling in a burst.
            next_poll += step * ((now - next_poll) / step + 1);
        }
        for ev in events.drain(..) {
            apply(&mirror, store, report, ev);
        }
    }
}
