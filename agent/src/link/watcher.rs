//! The link watcher thread: polls carrier (ethtool's link state where the kernel offers it, else
//! an RTM_GETLINK dump), dumps RTM_GETLINK for the kernel's carrier counters, listens to
//! rtnetlink notifications in between, folds all of it into the [`LinkMirror`], writes changes to
//! the pinned link-state map and reports them. The ethtool poll dumps every device, or asks for
//! each member alone on a host with many more devices than members (see [`asks_each_member`]).
//!
//! The poll is paced by a CPU budget: each dump costs the kernel about a microsecond per device,
//! so a fixed 1 ms poll that is cheap for a few interfaces would take a whole core for a
//! thousand. The thread measures its own CPU time and stretches the intervals (never below the
//! configured floor) so that it stays inside the budget. What it measures includes the wake-up and
//! the cache misses of a poll after a sleep, which grow with the interval (`carrier_query_cost`:
//! one member's dump and wake-up took 47 µs of CPU at a 1 ms pace, 125 µs at 10 ms, against 7 µs
//! for the dump alone back to back), so on such a host a 1 % budget settles near 15 ms, not 1 ms.
//!
//! The poll reads only devices whose carrier changes linkwatch batches (a NIC: its index equals
//! its `iflink`); those it treats as urgent, it notifies at once, and a poll would find nothing
//! sooner. With no member (nor device below one) of the first kind, the poll is off until one
//! appears ([`LinkMirror::polled`]).
//!
//! Where the kernel lets the carrier hook load, it is the source: its ring buffer wakes this
//! thread as the change happens, the poll is off, and rtnetlink is only the backstop (for what the
//! hook does not see, such as an administrator's `ip link set down` on some drivers). The thread
//! then sleeps until something happens: no timer at all.
//!
//! A plain thread with `ppoll` and absolute deadlines rather than a tokio task: the poll interval
//! can be 1 ms or less, which tokio's millisecond timer wheel cannot keep.

use std::{
    io,
    os::fd::{AsFd as _, BorrowedFd, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use agent_common::{
    link::{LinkState, source},
    record::LinkRecord,
};

use super::{
    ethtool::EthtoolLinkState,
    mirror::{LinkEvent, LinkMirror, Update},
};
use crate::{
    clock::{monotonic_ns, thread_cpu_ns},
    fds,
    netlink::{NetlinkError, RouteSocket},
};

/// Where the mirror's state is written: the pinned BPF map in the daemon, a fake in tests.
pub trait LinkStateStore: Send {
    /// Writes the state of `ifindex`.
    ///
    /// # Errors
    /// When the store refuses the write.
    fn store(&mut self, ifindex: u32, state: &LinkState) -> io::Result<()>;
    /// Drops the entry of `ifindex` (no longer watched); absent is fine.
    fn forget(&mut self, ifindex: u32);
}

/// The carrier hook's records: the datapath's ring buffer in the daemon, a fake in tests.
pub trait HookEvents: Send {
    /// A descriptor that becomes readable when records are waiting.
    fn fd(&self) -> BorrowedFd<'_>;
    /// Calls `each` for every waiting record, oldest first.
    fn drain(&mut self, each: &mut dyn FnMut(LinkRecord));
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
    /// The poll's way changed (and at its first poll): asking ethtool for each member alone,
    /// dumping every device, or off while the kernel notifies every member's changes at once.
    PollWay {
        way: PollWay,
        /// Devices polled (members, or the devices below them); for [`PollWay::Off`], members.
        members: usize,
        devices: usize,
    },
}

/// How the carrier poll reads the devices that need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollWay {
    /// One ethtool dump of every device.
    Dump,
    /// One ethtool request for each device polled.
    EachMember,
    /// No poll: the kernel notifies the carrier changes of every member (and of every device
    /// below one) at once, so a poll would find nothing sooner (see [`LinkMirror::polled`]).
    Off,
}

impl PollWay {
    /// The way's name in `watch --json` lines.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Dump => "dump",
            Self::EachMember => "each member",
            Self::Off => "off",
        }
    }
}

/// Settings of the watcher.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    /// Interfaces to watch.
    pub ifindexes: Vec<u32>,
    /// Carrier poll pacing; `None` when a kernel hook already mirrors carrier.
    pub poll: Option<PollPacing>,
}

/// How the carrier poll is paced.
#[derive(Clone, Copy, Debug)]
pub struct PollPacing {
    /// Shortest interval between two polls.
    pub floor: Duration,
    /// Most of one core the watcher thread may spend (0.01 = 1 %); 1.0 or more: a fixed interval.
    pub cpu_budget: f64,
}

/// Command-line options of the carrier poll, shared by the commands that watch links.
#[derive(Debug, Clone, clap::Args)]
pub struct LinkPollArgs {
    /// Shortest carrier poll interval in microseconds (used when the kernel refuses the carrier
    /// hook). Default: 1 % of the shortest failure detection time, at least 1000.
    #[arg(long, value_parser = clap::value_parser!(u64).range(50..=10_000_000))]
    pub link_poll_us: Option<u64>,
    /// Most of one core, in percent, the carrier poll may use; its interval grows beyond
    /// --link-poll-us to stay inside it (100: a fixed interval whatever it costs).
    #[arg(long, default_value_t = 1.0, value_parser = parse_percent)]
    pub link_poll_cpu: f64,
}

fn parse_percent(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if p > 0.0 && p <= 100.0 => Ok(p),
        _ => Err(format!("{s:?} is not a percentage above 0 and at most 100")),
    }
}

/// The default poll floor: carrier loss is seen within this however long the FDT ...
const DEFAULT_FLOOR_US: u64 = 1000;
/// ... and within 1/this of the shortest FDT, which is all a longer FDT asks for.
const FDT_SHARE: u64 = 100;

impl LinkPollArgs {
    /// The shortest poll interval, in µs: the one asked for, else 1 % of `shortest_fdt` but at
    /// least 1 ms.
    #[must_use]
    pub fn floor_us(&self, shortest_fdt: Option<Duration>) -> u64 {
        self.link_poll_us.unwrap_or_else(|| {
            let share = shortest_fdt.map_or(0, |f| {
                u64::try_from(f.as_micros()).unwrap_or(u64::MAX) / FDT_SHARE
            });
            share.max(DEFAULT_FLOOR_US)
        })
    }

    /// The pacing these options ask for, for groups whose shortest FDT is `shortest_fdt`.
    #[must_use]
    pub fn pacing(&self, shortest_fdt: Option<Duration>) -> PollPacing {
        PollPacing {
            floor: Duration::from_micros(self.floor_us(shortest_fdt)),
            cpu_budget: self.link_poll_cpu / 100.0,
        }
    }
}

/// What the watcher thread and its owner share.
#[derive(Debug)]
struct Shared {
    /// Set by the owner to stop the thread ...
    stop: AtomicBool,
    /// ... and rung, so a thread waiting without a timeout wakes up (also for `changes`).
    wake: OwnedFd,
    /// Interfaces to start (true) or stop (false) watching, for the thread to pick up.
    changes: std::sync::Mutex<Vec<(u32, bool)>>,
    /// The carrier poll's current interval in ns (0: no poll), as the budget has set it.
    poll_interval_ns: Arc<AtomicU64>,
}

/// A running watcher; dropping it stops the thread.
#[derive(Debug)]
pub struct LinkWatcher {
    shared: Arc<Shared>,
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
        mut hook: Option<Box<dyn HookEvents>>,
        report: impl Fn(WatchReport) + Send + 'static,
    ) -> Result<Self, NetlinkError> {
        let mut dumps = RouteSocket::for_dumps()?;
        let notifications = RouteSocket::for_notifications()?;
        let mut mirror = LinkMirror::default();
        for &ifindex in &config.ifindexes {
            mirror.track(ifindex);
        }
        // Records a previous agent left in the pinned ring buffer predate the initial dump below,
        // which says how things are now.
        if let Some(h) = hook.as_mut() {
            h.drain(&mut |_| {});
        }
        let now = monotonic_ns();
        let mut devices = 0;
        dumps.dump_links(|obs| {
            devices += 1;
            mirror.observe(&obs, now, source::INITIAL);
        })?;
        publish(&mut mirror, store.as_mut(), &report);
        let wake = fds::event_fd().map_err(|source| NetlinkError::Io {
            call: "eventfd",
            source,
        })?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            wake,
            changes: std::sync::Mutex::default(),
            poll_interval_ns: Arc::default(),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("ipmpd-link".into())
            .spawn(move || {
                run(
                    &config,
                    Sources {
                        mirror,
                        devices,
                        dumps,
                        notifications,
                        hook,
                    },
                    store.as_mut(),
                    &report,
                    &thread_shared,
                );
            })
            .map_err(|e| NetlinkError::Io {
                call: "spawn",
                source: e,
            })?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Starts watching `ifindex`; its initial state is reported as soon as the thread has it.
    pub fn track(&self, ifindex: u32) {
        self.change(ifindex, true);
    }

    /// Stops watching `ifindex`.
    pub fn untrack(&self, ifindex: u32) {
        self.change(ifindex, false);
    }

    fn change(&self, ifindex: u32, watch: bool) {
        if let Ok(mut c) = self.shared.changes.lock() {
            c.push((ifindex, watch));
        }
        fds::ring(&self.shared.wake);
    }

    /// The carrier poll's current interval (shared, updated by the watcher), for the operator:
    /// the CPU budget can stretch it well beyond its floor on a host with many devices.
    #[must_use]
    pub fn poll_interval(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.shared.poll_interval_ns)
    }
}

impl Drop for LinkWatcher {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        fds::ring(&self.shared.wake);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn apply(
    mirror: &LinkMirror,
    store: &mut dyn LinkStateStore,
    report: &impl Fn(WatchReport),
    mut ev: LinkEvent,
) {
    ev.seen_ns = monotonic_ns();
    store_state(mirror, store, report, ev.ifindex);
    report(WatchReport::Link(ev));
}

/// Stores the mirror's state of `ifindex`, reporting a failure.
fn store_state(
    mirror: &LinkMirror,
    store: &mut dyn LinkStateStore,
    report: &impl Fn(WatchReport),
    ifindex: u32,
) {
    if let Some(state) = mirror.state(ifindex)
        && let Err(e) = store.store(ifindex, &state)
    {
        report(WatchReport::Error(format!(
            "cannot write link state of ifindex {ifindex}: {e}"
        )));
    }
}

/// Shortest pace of the full RTM_GETLINK dump (carrier counters) when ethtool does the fast poll.
const COUNTER_DUMP_NS: u64 = 100_000_000;
/// Longest: the dump only hastens news of a flap shorter than the poll, which the link's own
/// notification (it carries the same counters) brings within about a second anyway. The budget
/// sets the pace; this bound only keeps a backstop for a lost notification. A ceiling of a second
/// broke the budget: the dump fills every device's statistics (the kernel ignores
/// `RTEXT_FILTER_SKIP_STATS` there; `veth_get_stats64` shows in a profile of this thread), and at
/// 1,025 veths the thread took 1.3 % of a core, about 0.5 % of it the dump at one a second,
/// against the quarter of 1 % the dump may use.
const COUNTER_DUMP_MAX_NS: u64 = 60_000_000_000;
/// Longest poll interval the budget may stretch to; rtnetlink notifications arrive within about
/// a second even from NICs that report late.
const MAX_POLL_NS: u64 = 1_000_000_000;
/// Share of the budget for the carrier-counter dump; the rest is the poll's.
const COUNTER_SHARE: f64 = 0.25;

/// `part` of a watcher's `budget` of one core; all of it at 100 %, which asks for fixed intervals
/// whatever they cost.
fn share(budget: f64, part: f64) -> f64 {
    if budget >= 1.0 { 1.0 } else { budget * part }
}

/// The pacer of the carrier-counter dump, for a watcher that may use `budget` of one core (at
/// 100 %, every 100 ms whatever it costs).
fn counter_pacer(budget: f64) -> Pacer {
    Pacer::new(
        COUNTER_DUMP_NS,
        COUNTER_DUMP_MAX_NS,
        share(budget, COUNTER_SHARE),
    )
}

/// Devices per member above which the ethtool poll asks for each member instead of dumping, and
/// below which it dumps again: between the two it keeps its way, so that containers coming and
/// going near one threshold do not switch it (and log the switch) at every dump.
const ASK_ABOVE_DEVICES_PER_MEMBER: usize = 6;
const DUMP_BELOW_DEVICES_PER_MEMBER: usize = 4;

/// Whether the ethtool poll asks for each of `members` alone rather than dumping all `devices`,
/// given how it asked last (`None`: it has not polled yet). The kernel's dump costs about 0.4 µs
/// per device, a request for one device 2 to 2.6 µs (`carrier_query_cost`, thread CPU per poll:
/// 47 µs to dump 128 devices against 120 µs for 64 requests; 427 µs to dump 1,024 against
/// 165 µs): requests win from about six devices per member, as on a container host with a few
/// uplinks among hundreds of veths.
#[must_use]
pub fn asks_each_member(devices: usize, members: usize, last: Option<bool>) -> bool {
    if devices > ASK_ABOVE_DEVICES_PER_MEMBER * members {
        true
    } else if devices < DUMP_BELOW_DEVICES_PER_MEMBER * members {
        false
    } else {
        last.unwrap_or(false)
    }
}

/// The poll's way in words, for logs.
#[must_use]
pub fn poll_way_text(way: PollWay, members: usize, devices: usize) -> String {
    match way {
        PollWay::EachMember => format!(
            "carrier poll asks ethtool for each of {members} members alone ({devices} devices)"
        ),
        PollWay::Dump => format!(
            "carrier poll dumps ethtool's link state of all {devices} devices ({members} members)"
        ),
        PollWay::Off => format!(
            "carrier poll off: the kernel notifies the carrier changes of all {members} members at once (none, nor any device below one, is a device whose changes linkwatch batches)"
        ),
    }
}

/// Paces one recurring job: the next interval is what keeps the job's measured cost inside its
/// share of a core, never below `floor` nor above `ceiling`.
#[derive(Debug)]
pub struct Pacer {
    floor_ns: u64,
    ceiling_ns: u64,
    budget: f64,
    /// Smoothed CPU cost of one round, ns.
    cost_ns: Option<f64>,
}

impl Pacer {
    /// A pacer for a job that may use `budget` of one core (1.0 or more: always `floor_ns`).
    #[must_use]
    pub fn new(floor_ns: u64, ceiling_ns: u64, budget: f64) -> Self {
        Self {
            floor_ns,
            ceiling_ns: ceiling_ns.max(floor_ns),
            budget,
            cost_ns: None,
        }
    }

    /// Records the CPU cost of one round and returns the interval until the next.
    pub fn record(&mut self, cost_ns: u64) -> u64 {
        let cost = cost_ns as f64;
        // Smoothed over about eight rounds: one dear round (a burst of notifications) moves the
        // interval by an eighth of the difference; a lasting change (more devices) shows within a
        // few rounds.
        let smoothed = self.cost_ns.map_or(cost, |c| c + (cost - c) / 8.0);
        self.cost_ns = Some(smoothed);
        self.interval_ns()
    }

    /// The current interval.
    #[must_use]
    pub fn interval_ns(&self) -> u64 {
        if self.budget >= 1.0 {
            return self.floor_ns;
        }
        let wanted = self.cost_ns.unwrap_or(0.0) / self.budget;
        (wanted as u64).clamp(self.floor_ns, self.ceiling_ns)
    }
}

/// What the thread reads from and folds into.
struct Sources {
    mirror: LinkMirror,
    /// Devices the last RTM_GETLINK dump listed.
    devices: usize,
    dumps: RouteSocket,
    notifications: RouteSocket,
    hook: Option<Box<dyn HookEvents>>,
}

fn run(
    config: &WatchConfig,
    sources: Sources,
    store: &mut dyn LinkStateStore,
    report: &impl Fn(WatchReport),
    shared: &Shared,
) {
    let Sources {
        mut mirror,
        mut devices,
        mut dumps,
        mut notifications,
        mut hook,
    } = sources;
    let mut pacer = config.poll.map(|p| {
        let floor = u64::try_from(p.floor.as_nanos()).unwrap_or(u64::MAX).max(1);
        Pacer::new(
            floor,
            MAX_POLL_NS.max(floor),
            share(p.cpu_budget, 1.0 - COUNTER_SHARE),
        )
    });
    let mut counter_pacer = counter_pacer(config.poll.map_or(1.0, |p| p.cpu_budget));
    // The first poll's deadline (set again whenever the poll turns on).
    let mut next_poll = pacer
        .as_ref()
        .map_or(u64::MAX, |p| monotonic_ns() + p.interval_ns());
    let mut next_counter_dump = next_poll;
    // The fast poll uses ethtool's link state where the kernel has it (CONFIG_ETHTOOL_NETLINK).
    let mut ethtool = pacer.as_ref().and_then(|_| EthtoolLinkState::open().ok());
    // The thread's CPU time at the last poll, and what counter dumps took since.
    let (mut cpu_at_poll, mut counter_cpu) = (thread_cpu_ns(), 0u64);
    // `fresh`: the members tracked since the last turn, whose state is yet to be asked for.
    let (mut members, mut fresh) = (Vec::new(), Vec::new());
    // How the ethtool poll asked last (none before its first poll, or since it was off).
    let mut way = None;
    // Whether some device needs the poll, as of the last turn (none before the first), and the
    // way last reported (a member tracked while the poll is off turns it on until it is seen: the
    // report waits for the poll to run).
    let (mut needed, mut shown) = (None, None);
    while !shared.stop.load(Ordering::Relaxed) {
        let now = monotonic_ns();
        if let Some(p) = pacer.as_ref() {
            let now_needed = mirror.polled().next().is_some();
            if needed != Some(now_needed) {
                needed = Some(now_needed);
                way = None;
                if now_needed {
                    // Paced from now on: what the thread spent while the poll was off is not the
                    // poll's cost.
                    next_poll = now + p.interval_ns();
                    (cpu_at_poll, counter_cpu) = (thread_cpu_ns(), 0);
                    shared
                        .poll_interval_ns
                        .store(p.interval_ns(), Ordering::Relaxed);
                } else {
                    shared.poll_interval_ns.store(0, Ordering::Relaxed);
                    if shown.replace(PollWay::Off) != Some(PollWay::Off) {
                        report(WatchReport::PollWay {
                            way: PollWay::Off,
                            members: mirror.tracked_count(),
                            devices,
                        });
                    }
                }
            }
        }
        let polling = needed == Some(true);
        // Without a poll there is no deadline: the thread sleeps until a descriptor wakes it.
        let wait = polling.then(|| next_poll.saturating_sub(now));
        // Borrowed anew each turn: the loop below reads from the same objects.
        let ready = {
            let (netlink, wake) = (notifications.as_fd(), shared.wake.as_fd());
            match hook.as_ref().map(|h| h.fd()) {
                Some(hook) => fds::wait([netlink, wake, hook], wait),
                None => {
                    let [netlink, wake] = fds::wait([netlink, wake], wait);
                    [netlink, wake, false]
                }
            }
        };
        let mut resync = false;
        if ready[1] {
            fds::drain(&shared.wake);
            let changes = shared
                .changes
                .lock()
                .map(|mut c| std::mem::take(&mut *c))
                .unwrap_or_default();
            for (ifindex, watch) in changes {
                if watch {
                    mirror.track(ifindex);
                    fresh.push(ifindex);
                } else {
                    mirror.untrack(ifindex);
                }
            }
        }
        // The hook's records first: a notification about the same change comes later and must
        // find the mirror already knowing it.
        if let Some(h) = hook.as_mut()
            && ready.get(2).copied().unwrap_or(false)
        {
            h.drain(&mut |r| {
                mirror.observe_carrier(r.ifindex, r.carrier != 0, r.at_ns, source::KERNEL_HOOK);
            });
        }
        if ready[0] {
            let now = monotonic_ns();
            match notifications.drain_notifications(|obs| {
                mirror.observe(&obs, now, source::NOTIFICATION);
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
        let poll_due = polling && now >= next_poll;
        if poll_due && let Some(et) = ethtool.as_mut() {
            // The devices polled (members, or the devices below them), copied out to be asked
            // one by one (the closure below holds the mirror) and counted; the buffer keeps its
            // memory from poll to poll.
            members.clear();
            members.extend(mirror.polled());
            let polled = members.len();
            let each_member = asks_each_member(devices, polled, way);
            way = Some(each_member);
            let now_way = if each_member {
                PollWay::EachMember
            } else {
                PollWay::Dump
            };
            if shown.replace(now_way) != Some(now_way) {
                report(WatchReport::PollWay {
                    way: now_way,
                    members: polled,
                    devices,
                });
            }
            let mut observe = |ifindex, link| {
                mirror.observe_carrier(ifindex, link, now, source::POLL);
            };
            let result = if each_member {
                // A member gone since (ENODEV) is the notifications' to report.
                members
                    .iter()
                    .try_for_each(|&i| match et.get(i, &mut observe) {
                        Err(e) if e.device_gone() => Ok(()),
                        r => r,
                    })
            } else {
                et.dump(observe)
            };
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
            polling && now >= next_counter_dump
        } else {
            poll_due
        };
        // A new member's state: asked for alone, as the poll asks on a host with many more devices
        // than members; by one dump when there are about as many new members as devices (a
        // daemon starting), or when a dump runs anyway.
        let mut fresh_by_dump = !fresh.is_empty()
            && (counters_due || resync || !asks_each_member(devices, fresh.len(), Some(true)));
        if !fresh_by_dump {
            for &ifindex in &fresh {
                match dumps.get_link(ifindex, |obs| {
                    mirror.observe(&obs, now, source::POLL);
                }) {
                    Err(e) if !e.device_gone() => {
                        report(WatchReport::Error(format!(
                            "cannot ask for interface {ifindex}'s link state ({e}); dumping instead"
                        )));
                        fresh_by_dump = true;
                        break;
                    }
                    // Answered, or gone again (the notifications say so).
                    _ => {}
                }
            }
        }
        fresh.clear();
        if counters_due || resync || fresh_by_dump {
            let before = thread_cpu_ns();
            let mut listed = 0;
            match dumps.dump_links(|obs| {
                listed += 1;
                mirror.observe(&obs, now, source::POLL);
            }) {
                Ok(()) => devices = listed,
                Err(e) => report(WatchReport::Error(e.to_string())),
            }
            let spent = thread_cpu_ns().saturating_sub(before);
            counter_cpu += spent;
            if pacer.is_some() {
                next_counter_dump = now + counter_pacer.record(spent);
            }
        }
        if poll_due && let Some(p) = pacer.as_mut() {
            // Everything the thread did since the last poll except the counter dumps (paced on
            // their own): the dump, the wake-ups, the notifications in between. Without ethtool
            // the counter dump is the poll, and counts.
            let cpu = thread_cpu_ns();
            let own = if ethtool.is_some() { counter_cpu } else { 0 };
            p.record(cpu.saturating_sub(cpu_at_poll).saturating_sub(own));
            (cpu_at_poll, counter_cpu) = (cpu, 0);
        }
        if let Some(p) = pacer.as_ref()
            && polling
            && now >= next_poll
        {
            let step = p.interval_ns();
            shared.poll_interval_ns.store(step, Ordering::Relaxed);
            // Skip whole intervals missed while descheduled rather than polling in a burst.
            next_poll += step * ((now - next_poll) / step + 1);
        }
        publish(&mut mirror, store, report);
    }
}

/// Applies what the mirror queued, in order: changes stored and reported, states stored again
/// without an event, entries no longer watched forgotten.
fn publish(mirror: &mut LinkMirror, store: &mut dyn LinkStateStore, report: &impl Fn(WatchReport)) {
    while let Some(update) = mirror.pop_update() {
        match update {
            Update::Event(ev) => apply(mirror, store, report, ev),
            Update::Store(ifindex) => store_state(mirror, store, report, ifindex),
            Update::Forget(ifindex) => store.forget(ifindex),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_stretches_the_interval_to_stay_inside_its_budget() {
        // 1 % of a core: a 5 µs round may run every 500 µs, but never faster than the 1 ms floor.
        let mut p = Pacer::new(1_000_000, 1_000_000_000, 0.01);
        assert_eq!(p.record(5_000), 1_000_000);
        // A round that costs 1 ms (a thousand devices) runs every 100 ms once the average knows.
        let mut last = 0;
        for _ in 0..64 {
            last = p.record(1_000_000);
        }
        assert!((95_000_000..=100_000_000).contains(&last), "{last}");
        // Never beyond the ceiling.
        for _ in 0..64 {
            last = p.record(1_000_000_000);
        }
        assert_eq!(last, 1_000_000_000);
    }

    #[test]
    fn a_dear_counter_dump_runs_as_seldom_as_its_share_of_the_budget_asks() {
        // 1 % of a core, a quarter of it for the counter dump: a 5 ms dump (1,025 veths, their
        // statistics filled) runs every 2 s, not every second as a ceiling of a second made it.
        let mut p = counter_pacer(0.01);
        assert_eq!(p.record(5_000_000), 2_000_000_000);
        // A cheap dump never runs faster than every 100 ms ...
        let mut p = counter_pacer(0.01);
        assert_eq!(p.record(10_000), COUNTER_DUMP_NS);
        // ... and a fixed-interval watcher (100 % of a core) dumps at that pace whatever it costs.
        let mut p = counter_pacer(1.0);
        assert_eq!(p.record(50_000_000), COUNTER_DUMP_NS);
        assert_eq!(
            share(1.0, 1.0 - COUNTER_SHARE),
            1.0,
            "nor does the poll stretch then"
        );
        assert_eq!(share(0.01, COUNTER_SHARE), 0.0025);
    }

    #[test]
    fn one_slow_round_moves_the_interval_by_an_eighth_of_the_difference() {
        let mut p = Pacer::new(1_000, 1_000_000_000, 0.01);
        for _ in 0..32 {
            p.record(10_000);
        }
        let steady = p.interval_ns();
        // A round ten times dearer (a burst of notifications): 1 + 9/8 times the interval.
        let after = p.record(100_000);
        assert_eq!(after, steady + steady * 9 / 8);
    }

    #[test]
    fn a_full_budget_keeps_the_floor() {
        let mut p = Pacer::new(1_000_000, 1_000_000_000, 1.0);
        assert_eq!(p.record(50_000_000), 1_000_000);
    }

    #[test]
    fn the_poll_asks_each_member_only_among_many_more_devices() {
        // Two uplinks on a container host with 300 veths; 64 members among 128 devices.
        assert!(asks_each_member(300, 2, None));
        assert!(asks_each_member(1024, 64, Some(false)));
        assert!(!asks_each_member(128, 64, None));
        assert!(!asks_each_member(12, 2, None));
        assert!(!asks_each_member(0, 1, None), "before the first dump: dump");
        // Between four and six devices per member the way stays as it was.
        assert!(asks_each_member(10, 2, Some(true)));
        assert!(!asks_each_member(10, 2, Some(false)));
        assert!(!asks_each_member(10, 2, None));
        assert!(!asks_each_member(7, 2, Some(true)));
        assert!(asks_each_member(13, 2, Some(false)));
    }

    #[test]
    fn the_default_floor_follows_the_shortest_fdt() {
        let args = |us: Option<u64>| LinkPollArgs {
            link_poll_us: us,
            link_poll_cpu: 1.0,
        };
        let fdt = |ms| Some(Duration::from_millis(ms));
        assert_eq!(args(None).floor_us(fdt(10_000)), 100_000);
        assert_eq!(args(None).floor_us(fdt(1_000)), 10_000);
        assert_eq!(args(None).floor_us(fdt(100)), 1_000);
        assert_eq!(args(None).floor_us(fdt(10)), 1_000);
        assert_eq!(args(None).floor_us(None), 1_000);
        assert_eq!(args(Some(200)).floor_us(fdt(10_000)), 200);
    }
}
