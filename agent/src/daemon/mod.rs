//! `ipmpd run`: the daemon, where the engine and the reconciler meet the outside world.
//!
//! One thread runs a `ppoll` loop ([`sources`]) over the XDP ring buffer, a signalfd, the link
//! watcher's eventfd, the rtnetlink notifications and the queues of the control socket's and the
//! configuration reader's threads, with a nanosecond timeout at the next deadline (tokio's timer
//! wheel ticks in whole milliseconds, too coarse for a 10 ms FDT). The link watcher, the control
//! socket's I/O, the metrics [`exporter`] and the configuration [`loader`] run in threads of their
//! own, so no client and no file can delay a probe.
//!
//! What each part may touch:
//! - [`replies`] and [`dispatch`]: the engine, and the probe sockets ([`members`]);
//! - [`execute`]: carries out the reconciler's actions on the datapath, the link watcher, the
//!   probe sockets, the engine and the kernel (through the failover seam);
//! - [`host`]: the observed state, from rtnetlink;
//! - [`state`]: what survives a restart, in `/run/ipmpd/`;
//! - [`reload`]: the configuration, on start and on SIGHUP (read by [`loader`]'s thread);
//! - [`report`], [`metrics`], [`snapshot`], [`control`], [`notify`]: the operator's side.

mod control;
mod dispatch;
mod drop_reports;
mod execute;
mod exporter;
mod exposition;
mod host;
mod loader;
mod members;
mod metrics;
mod notify;
mod openmetrics;
mod reload;
pub use reload::{ConfigRefused, EX_CONFIG};
mod replies;
mod report;
mod snapshot;
mod sources;
mod state;

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{Arc, Mutex},
};

use anyhow::Context as _;

use self::{host::Host, members::Members, report::Reporter, sources::Sources, state::StateFile};
use crate::{
    clock::monotonic_ns,
    control::{default_socket, server::Server},
    datapath::{Datapath, DatapathOptions, Features, LinkSource},
    engine::{Engine, EngineConfig, Prior},
    failover::{arp_flux::ArpFlux, kernel::NetlinkKernel},
    link::watcher::{LinkWatcher, WatchConfig, WatchReport},
    netlink::RouteSocket,
    probe::{
        auth::ProbeKey,
        outbox::{Outbox, SharedSockets},
    },
    reconcile::{Applied, Desired, IF_SCAN_INTERVAL_NS, Memory},
};

/// Arguments of `ipmpd run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub paths: crate::cli::check_config::ConfigPaths,
    /// Instance name: pins go under /sys/fs/bpf/ipmpd/INSTANCE/, so several daemons can run side by side.
    #[arg(long, value_parser = crate::datapath::parse_instance)]
    pub instance: Option<String>,
    #[command(flatten)]
    pub poll: crate::link::watcher::LinkPollArgs,
    #[command(flatten)]
    pub kernel: crate::datapath::choice::KernelChoiceArgs,
    #[command(flatten)]
    pub realtime: crate::sched::RealtimeArgs,
    /// Print events and decisions as JSON lines on standard output.
    #[arg(long)]
    pub json: bool,
    /// With --json, also print a line for every probe answered or lost (`ipmpd stat -p` streams
    /// them from a running daemon without this).
    #[arg(long, requires = "json")]
    pub json_probes: bool,
    /// Start from scratch: detach the programs and drop the maps a previous ipmpd pinned, instead
    /// of adopting them (which disturbs no packet). Only at start: a reload never resets.
    #[arg(long)]
    pub reset: bool,
    /// Control socket (default /run/ipmpd/ipmpd.sock, or /run/ipmpd/INSTANCE.sock).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Serve Prometheus metrics on ADDR (default 127.0.0.1:9870 when given without a value).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:9870")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Members of this group may offline and online interfaces through the control socket, besides
    /// root (judged on the credentials they connected with).
    #[arg(long, value_name = "GROUP")]
    pub admin_group: Option<String>,
}

/// The kernel side: programs, link watcher, probe sockets, addresses and routes.
struct Io {
    datapath: Datapath,
    watcher: LinkWatcher,
    /// Reports of the link watcher thread, collected until the loop reads them.
    link_queue: Arc<Mutex<Vec<WatchReport>>>,
    members: Members,
    /// Probes of this turn, sent together on the shared sockets.
    outbox: Outbox,
    shared_sockets: SharedSockets,
    kernel: NetlinkKernel,
    key: ProbeKey,
    announcements: Vec<dispatch::Announcement>,
    arp_flux: ArpFlux,
    /// Expedited RCU grace periods for batches of TCX attachments.
    expedite: crate::datapath::grace::Expedite,
    /// Last reported kernel reject counters per interface (bad version, bad checksum type, ring
    /// full, another identity).
    datapath_counters: HashMap<u32, [u64; 4]>,
}

/// The operator's side: log and JSON lines, control socket, metrics, systemd.
struct Outside {
    rep: Reporter,
    control: Server,
    exporter: Option<exporter::Exporter>,
    notifier: notify::Notifier,
    counts: metrics::Counts,
}

/// The reconciler's world: what is wanted, what is seen, what was done.
struct Rec {
    desired: Desired,
    host: Host,
    applied: Applied,
    memory: Memory,
    /// What members had before they left (a restart, or the interface went away): given back when
    /// they return.
    priors: BTreeMap<String, Prior>,
    state: StateFile,
    /// When the next pass is due (`Some(0)`: at once).
    due: Option<u64>,
    /// The next full rescan of the host.
    rescan_at: u64,
    /// Something worth saving changed since the state file was last written.
    unsaved: bool,
    /// A pass is being carried out (the engine's answers to it must not start another).
    busy: bool,
    /// The interfaces this instance's pins are on, as last read from bpffs; `None` after an
    /// action that may have pinned or unpinned (and on the rescan), so a pass reads the directory
    /// only when it can have changed.
    pins: Option<Vec<u32>>,
}

/// The daemon.
pub struct Daemon {
    engine: Engine,
    io: Io,
    out: Outside,
    rec: Rec,
    args: RunArgs,
    features: Features,
    loader: loader::Loader,
}

/// Runs the daemon until SIGTERM/SIGINT; SIGHUP reloads the configuration.
///
/// # Errors
/// When the configuration has problems, or the datapath, the control socket or rtnetlink cannot
/// be set up; the message says what to do.
pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    // Real-time scheduling needs a privilege the drop removes; threads spawned from here on
    // inherit it, and those that serve clients give it up (see `sched`).
    let realtime = args
        .realtime
        .rt_priority
        .map(|p| (p, crate::sched::realtime_inherited(p)));
    // Without real-time scheduling (not asked, or refused), a raised nice value, inherited alike.
    let nice = args.realtime.nice;
    let fair = !realtime.as_ref().is_some_and(|(_, r)| r.is_ok());
    let nice = (nice != 0 && fair).then(|| (nice, crate::sched::nice_inherited(nice)));
    // Then the slice, at whatever nice value the thread has now (it asks for no privilege).
    let slice = args.realtime.slice_us;
    let slice = (slice != 0 && fair).then(|| (slice, crate::sched::slice_inherited(slice)));
    // First, while the daemon is one thread: every thread spawned later inherits the drop.
    let kept = crate::privileges::drop_to_needed().context("cannot drop privileges")?;
    // Before anything that can refuse to start: a switch a crashed ipmpd left set goes back now.
    let expedite = crate::datapath::grace::Expedite::for_instance(args.instance.as_deref());
    if expedite.recover() {
        tracing::warn!(
            "put back /sys/kernel/rcu_expedited, which a previous ipmpd left set when it stopped mid-attachment"
        );
    }
    let signals = crate::fds::signal_fd().context("cannot set up signal handling")?;
    // Writer threads start here: after the privilege drop (they hold no more than the loop) and
    // after the signal mask (a signal meant for the signalfd must not end one of them).
    let lines = crate::lines::capacity_from_env()?;
    crate::lines::queue_stderr(lines)?;
    let mut rep = Reporter::new(args.json, args.json_probes, lines)?;
    rep.catalogue(
        "ipmultipath.daemon.privileges",
        serde_json::json!({ "kept": kept.names.join(" "), "bounding_left": kept.bounding_left }),
    );
    let desired = reload::load(&args.paths, &mut rep)?;
    let shortest = Some(std::time::Duration::from_millis(desired.shortest_fdt_ms()));
    let mut datapath = Datapath::load(&DatapathOptions {
        instance: args.instance.clone(),
        choice: args.kernel,
        reset: args.reset,
    })
    .context("cannot load ipmpd's kernel programs")?;
    let features = datapath.features();
    rep.catalogue(
        "ipmultipath.datapath.features",
        serde_json::json!({ "kernel": features.kernel, "tc_attach": features.tc.name(), "carrier_source": features.carrier.name(), "reply_hook": features.reply_hook.name() }),
    );
    if let LinkSource::Poll { reason } = datapath.link_source() {
        rep.catalogue(
            "ipmultipath.datapath.hookRefused",
            serde_json::json!({ "reason": reason, "interval_us": args.poll.floor_us(shortest), "cpu_percent": args.poll.link_poll_cpu }),
        );
    }
    let host = Host::open().context("cannot follow the host through rtnetlink")?;
    let state = StateFile::new(args.instance.as_deref());
    let saved = state.load();
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(|| default_socket(args.instance.as_deref()));
    let policy = crate::control::peer::Policy {
        admin_gid: match &args.admin_group {
            Some(g) => Some(
                crate::control::peer::group_id(g).with_context(|| format!("--admin-group {g}"))?,
            ),
            None => None,
        },
    };
    let control = Server::bind(&socket, policy).context("cannot open the control socket")?;
    let exporter = match args.metrics {
        Some(addr) => Some(
            exporter::Exporter::bind(addr)
                .inspect(|e| tracing::info!(addr = %e.addr(), "serving metrics"))
                .with_context(|| format!("cannot serve metrics on {addr}"))?,
        ),
        None => None,
    };
    let link_events = Arc::new(crate::fds::event_fd().context("cannot create an eventfd")?);
    let link_queue: Arc<Mutex<Vec<WatchReport>>> = Arc::default();
    let poll = match datapath.link_source() {
        LinkSource::KernelHook => None,
        LinkSource::Poll { .. } => Some(args.poll.pacing(shortest)),
    };
    let watcher = {
        let (q, efd) = (Arc::clone(&link_queue), Arc::clone(&link_events));
        LinkWatcher::spawn(
            WatchConfig {
                ifindexes: Vec::new(),
                poll,
            },
            datapath.take_link_state_store()?,
            datapath.take_hook_events()?,
            move |r| {
                if let Ok(mut q) = q.lock() {
                    q.push(r);
                }
                crate::fds::ring(&efd);
            },
        )
        .context("cannot watch link state through rtnetlink")?
    };
    let ring = datapath.take_reply_ring()?;
    let mut engine = Engine::new(EngineConfig {
        user_fdt_ns: desired.fdt_ms * 1_000_000,
        failback: desired.failback,
        seed: u64::from(std::process::id()) ^ monotonic_ns(),
    });
    for g in &desired.groups {
        engine.add_group(&g.name, g.fdt_ms.map(|ms| ms * 1_000_000));
    }
    let counts = metrics::Counts {
        link_poll_interval_ns: watcher.poll_interval(),
        ..metrics::Counts::default()
    };
    let mut d = Daemon {
        engine,
        io: Io {
            datapath,
            watcher,
            link_queue,
            members: Members::default(),
            outbox: Outbox::default(),
            shared_sockets: SharedSockets::default(),
            kernel: NetlinkKernel(RouteSocket::for_dumps().context("cannot open rtnetlink")?),
            key: ProbeKey::random().context("no randomness for the probe key")?,
            announcements: Vec::new(),
            arp_flux: ArpFlux::with_originals(saved.arp),
            expedite,
            datapath_counters: HashMap::new(),
        },
        out: Outside {
            rep,
            control,
            exporter,
            notifier: notify::Notifier::from_env(),
            counts,
        },
        rec: Rec {
            desired,
            host,
            applied: Applied {
                placed: saved.placed,
                ..Applied::default()
            },
            memory: Memory::default(),
            priors: saved.members,
            state,
            due: Some(0),
            rescan_at: monotonic_ns() + IF_SCAN_INTERVAL_NS,
            unsaved: false,
            busy: false,
            pins: None,
        },
        args: args.clone(),
        features,
        loader: loader::Loader::new().context("cannot create an eventfd")?,
    };
    // The first pass, from nothing: track, adopt, place.
    d.reconcile(monotonic_ns());
    // ARP settings a crashed process changed on interfaces that are no members now go back.
    let stray: Vec<String> =
        d.io.arp_flux
            .interfaces()
            .filter(|i| d.io.members.get(i).is_none())
            .collect();
    for i in stray {
        d.io.arp_flux.restore_one(&i);
    }
    d.rec.unsaved = true;
    d.out.rep.ready(&d.engine);
    // Ready for systemd only now: every member present is tracked and placed.
    d.out.notifier.ready(&format!(
        "tracking {} interfaces",
        d.io.members.iter().count()
    ));
    let sources = Sources::new(ring, signals, link_events);
    use crate::sched::Asked;
    if let Some((priority, applied)) = realtime {
        d.report_priority(Asked::Realtime(priority), applied.map_err(Into::into));
    }
    if let Some((nice, applied)) = nice {
        d.report_priority(Asked::Nice(nice), applied.map_err(Into::into));
    }
    let slice_ns = slice.map_or(0, |(slice, applied)| {
        let (ns, applied) = match applied {
            Ok(ns) => (ns, Ok(())),
            Err(e) => (0, Err(e.into())),
        };
        d.report_priority(Asked::Slice(slice), applied);
        ns
    });
    // Also when nothing was asked: a policy the service manager started the daemon under stays
    // with this thread and is not handed to threads spawned later.
    crate::sched::stop_inheritance(slice_ns);
    d.main_loop(sources)
}

impl Daemon {
    /// Says whether the probing loop (this thread) and the link watcher took the priority asked
    /// for (`ipmultipath.daemon.realtime` / `nice` / `slice`, or the same name with `Refused` and
    /// the reason).
    fn report_priority(&mut self, asked: crate::sched::Asked, applied: anyhow::Result<()>) {
        use crate::sched::Asked;
        let (event, mut params) = match asked {
            Asked::Realtime(priority) => (
                "ipmultipath.daemon.realtime",
                serde_json::json!({ "priority": priority }),
            ),
            Asked::Nice(nice) => (
                "ipmultipath.daemon.nice",
                serde_json::json!({ "nice": nice }),
            ),
            Asked::Slice(slice_us) => (
                "ipmultipath.daemon.slice",
                serde_json::json!({ "slice_us": slice_us }),
            ),
        };
        match applied {
            Ok(()) => {
                self.out.rep.catalogue(event, params);
            }
            Err(e) => {
                params["reason"] = format!("{e:#}").into();
                self.out.rep.catalogue(&format!("{event}Refused"), params);
            }
        }
    }

    fn main_loop(&mut self, mut sources: Sources) -> anyhow::Result<()> {
        let mut next_counter_check = monotonic_ns();
        let mut next_watchdog = self.out.notifier.watchdog_ns.map(|p| monotonic_ns() + p);
        loop {
            let now = monotonic_ns();
            let next_announcement = self.send_due_announcements(now).unwrap_or(u64::MAX);
            let deadline = [
                self.engine.next_deadline(),
                Some(next_counter_check),
                next_watchdog,
                Some(next_announcement),
                self.rec.due,
                Some(self.rec.rescan_at),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + 1_000_000_000);
            let wait_start = monotonic_ns();
            let ready = sources.wait(
                [self.rec.host.fd(), self.out.control.fd(), self.loader.fd()],
                deadline.saturating_sub(now),
            );
            let woke = monotonic_ns();
            // Every turn, woken for them or not (most replies are queued without a wake-up), so
            // that queries and the rest of the turn see them.
            self.read_replies(&mut sources, 1);
            if ready.control {
                self.serve_control();
            }
            if ready.signals {
                for sig in sources.signals() {
                    if sig == libc::SIGHUP {
                        self.loader.request(&self.args.paths);
                    } else {
                        self.stop(sig);
                        return Ok(());
                    }
                }
            }
            if ready.config
                && let Some(loaded) = self.loader.take(&self.args.paths)
            {
                self.reload(loaded);
            }
            if ready.links {
                sources.clear_link_events();
                let reports = self
                    .io
                    .link_queue
                    .lock()
                    .map(|mut q| std::mem::take(&mut *q))
                    .unwrap_or_default();
                for r in reports {
                    self.on_watch(r);
                }
            }
            if ready.host {
                self.observe_host();
            }
            // Everything queued is read right before the timer, which may declare probes lost:
            // a reply that came in while this turn ran is no loss.
            let now = monotonic_ns();
            if let Some(due) = self.engine.next_deadline()
                && due <= now
            {
                self.read_replies(&mut sources, replies::ROUNDS_TO_EMPTY);
                let now = monotonic_ns();
                self.out.counts.deadlines += 1;
                if now - due > metrics::LATE_NS {
                    self.out.counts.deadlines_missed += 1;
                    if metrics::woke_late(due, wait_start, woke) {
                        self.out.counts.deadlines_woke_late += 1;
                    }
                }
                let out = self.engine.tick(now);
                self.dispatch(out);
            }
            if now >= self.rec.rescan_at {
                self.rescan(now);
            }
            if self.rec.due.is_some_and(|d| d <= now) {
                self.reconcile(now);
            }
            self.save_state(now);
            self.publish_events();
            if let (Some(due), Some(period)) = (next_watchdog, self.out.notifier.watchdog_ns)
                && now >= due
            {
                self.out.notifier.watchdog();
                next_watchdog = Some(now + period);
            }
            if now >= next_counter_check {
                next_counter_check = now + 1_000_000_000;
                self.check_counters();
            }
            // Copied only for a scrape waiting, and encoded on the exporter's thread: at 1,024
            // members the exposition is 1.5 MB.
            if let Some(e) = &self.out.exporter
                && e.wanted()
            {
                let started = monotonic_ns();
                let state = self.metrics_state(e.last_encode_ns());
                self.out.counts.exposition_copy_ns = monotonic_ns() - started;
                e.update(Box::new(state));
            }
        }
    }

    /// SIGTERM / SIGINT: addresses, routes and the pinned datapath stay for the next start to
    /// adopt; the ARP settings go back to what they were; the state is saved.
    fn stop(&mut self, sig: i32) {
        self.out.rep.stopping(sig);
        self.out.notifier.stopping();
        self.rec.unsaved = true;
        self.save_state(monotonic_ns());
        self.io.arp_flux.restore();
    }

    /// Folds in what rtnetlink reported; the next pass answers it.
    fn observe_host(&mut self) {
        match self.rec.host.drain() {
            Ok(d) => {
                if d.links {
                    // IPv4 routes through a device that went down vanish without a word.
                    let _ = self.rec.host.resync_routes();
                }
                if d.changed || d.links {
                    self.rec.due = Some(0);
                }
            }
            Err(e) => tracing::warn!(error = %e, "rtnetlink"),
        }
    }

    /// in.mpathd's periodic rescan: the whole host from dumps, and every check again.
    fn rescan(&mut self, now: u64) {
        self.rec.rescan_at = now + IF_SCAN_INTERVAL_NS;
        // Someone may have removed a pin (`ipmpd detach`, a cleanup script): read them again.
        self.rec.pins = None;
        if let Err(e) = self.rec.host.resync() {
            tracing::warn!(error = %e, "rescan");
        }
        self.rec.due = Some(0);
    }

    fn publish_events(&mut self) {
        for record in self.out.rep.take_published() {
            if let Some(name) = record["event"].as_str() {
                metrics::bump(&mut self.out.counts.events, name.to_owned());
            }
            self.out
                .control
                .publish(crate::control::server::Stream::Events, &record);
        }
    }

    /// Lines dropped so far, by stream and kind (the journal's: log records and catalogue events
    /// journald did not take).
    fn output_dropped(&self) -> [(drop_reports::StreamKind, u64); 6] {
        use crate::{
            journal_log::journal_dropped,
            lines::{Kind, stderr_dropped},
        };
        let stdout = |k: Kind| (("stdout", k.name()), self.out.rep.stdout_dropped(k));
        let stderr = |k: Kind| (("stderr", k.name()), stderr_dropped(k));
        let journal = |k: Kind| (("journal", k.name()), journal_dropped(k));
        [
            stdout(Kind::Probe),
            stdout(Kind::Event),
            stderr(Kind::Probe),
            stderr(Kind::Event),
            journal(Kind::Probe),
            journal(Kind::Event),
        ]
    }

    /// One event per stream and kind whose reader lost lines since the last report, unless the
    /// last report still waits for a stalled reader (see [`drop_reports`]).
    fn report_output_drops(&mut self) {
        let last_left = self.out.counts.drop_reports.last_marks().is_none_or(|m| {
            self.out.rep.stdout_left(m.stdout) && crate::lines::stderr_left(m.stderr)
        });
        let dropped = self.output_dropped();
        let due = self.out.counts.drop_reports.due(&dropped, last_left);
        if due.is_empty() {
            return;
        }
        for ((stream, kind), count) in due {
            self.out.rep.catalogue(
                "ipmultipath.daemon.outputDropped",
                serde_json::json!({ "stream": stream, "kind": kind, "count": count }),
            );
        }
        let marks = drop_reports::Marks {
            stdout: self.out.rep.stdout_mark(),
            stderr: crate::lines::stderr_mark(),
        };
        self.out.counts.drop_reports.queued(marks);
    }

    fn check_counters(&mut self) {
        // One read of the whole map: at 1,024 members a read per member held the loop 2.8 ms.
        let all = self.io.datapath.all_counters().unwrap_or_else(|e| {
            tracing::debug!(error = %anyhow::Error::new(e), "datapath counters not read");
            Vec::new()
        });
        let members = &self.io.members;
        let kernel = &mut self.out.counts.kernel;
        for (ifindex, c) in all {
            // Entries of interfaces that are no longer members are left out.
            let Some(ifname) = members.by_ifindex(ifindex).map(|m| m.ifname.as_str()) else {
                continue;
            };
            match kernel.get_mut(ifname) {
                Some(slot) => *slot = c,
                None => {
                    kernel.insert(ifname.to_owned(), c);
                }
            }
            let now = [
                c.rejected_version,
                c.rejected_checksum_type,
                c.ring_full,
                c.rejected_identity,
            ];
            let before = self
                .io
                .datapath_counters
                .insert(ifindex, now)
                .unwrap_or([0; 4]);
            // Replies of another identity the XDP program dropped: like those refused here.
            if now[3] > before[3] {
                self.out.rep.catalogue(
                    "ipmultipath.probe.rejected",
                    serde_json::json!({ "count": now[3] - before[3], "ifname": ifname, "reason": "identity" }),
                );
            }
            for (k, name) in [
                "ipmultipath.init.badVersion",
                "ipmultipath.init.badChksumType",
                "ipmultipath.session.noMemory",
            ]
            .iter()
            .enumerate()
            {
                if now[k] > before[k] {
                    self.out.rep.catalogue(
                        name,
                        serde_json::json!({ "count": now[k] - before[k], "ifname": ifname }),
                    );
                }
            }
        }
        self.report_output_drops();
        // Skipped probes: one event per interface per second at most, with the count.
        let mut missed: Vec<(Arc<str>, u64)> = self.out.counts.missed_unreported.drain().collect();
        missed.sort();
        for (ifname, count) in missed {
            let e = crate::engine::Event::ProbesMissed { ifname, count };
            self.out.rep.engine_event(&e);
        }
        // Replies refused in userspace: one event per interface and reason per second at most,
        // with the count, however many arrive.
        let counts = &mut self.out.counts;
        let mut news = Vec::new();
        for (key, n) in &counts.rejected {
            let before = counts
                .rejected_reported
                .insert(key.clone(), *n)
                .unwrap_or(0);
            if *n > before {
                news.push((key.clone(), n - before));
            }
        }
        news.sort();
        for ((ifname, reason), count) in news {
            self.out.rep.catalogue(
                "ipmultipath.probe.rejected",
                serde_json::json!({ "count": count, "ifname": ifname, "reason": reason }),
            );
        }
    }
}
