//! `ipmpd run`: the daemon. The only place where the engine meets the outside world: it feeds the
//! engine link changes (link watcher), probe replies (XDP ring buffer) and timer ticks, and carries
//! out what the engine decides (send probes, report events, (de)activate interfaces).
//!
//! One thread runs a `ppoll` loop over the ring buffer, a signalfd and the link watcher's eventfd,
//! with a nanosecond timeout at the engine's next deadline (tokio's timer wheel ticks in whole
//! milliseconds, too coarse for a 10 ms FDT). The link watcher runs in its own thread.

mod metrics;
mod notify;
mod report;
mod snapshot;

use std::{
    collections::HashMap,
    net::IpAddr,
    os::fd::AsRawFd as _,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use agent_common::{probe::msg, record::ProbeReplyRecord};
use anyhow::{Context as _, bail};

use self::report::Reporter;
use crate::fds;
use crate::{
    clock::monotonic_ns,
    config::{
        self,
        group_file::{GroupConfig, InterfaceConfig},
    },
    control::{
        Request, Response, default_socket,
        server::{Server, Stream},
    },
    datapath::{Datapath, DatapathOptions, LinkSource},
    engine::{Engine, EngineConfig, Event, MemberSpec, Output},
    failover::{
        announce::announce,
        apply::execute,
        arp_flux::ArpFlux,
        kernel::{Kernel as _, NetlinkKernel},
        outbound::outbound,
        plan::{Placement, plan},
    },
    link::{
        mirror::LinkChange,
        watcher::{LinkWatcher, WatchConfig, WatchReport},
    },
    netlink::{
        NetlinkError, RouteSocket,
        link::{IFF_LOOPBACK, IFF_MULTICAST, IFF_POINTOPOINT, RTM_NEWLINK},
        route::{RTM_DELROUTE, RTM_NEWROUTE},
    },
    probe::{
        addr::{IfAddr, all_addresses, same_subnet},
        auth::ProbeKey,
        packet::echo_request,
        session::{ProbeSession, source_addr},
        socket::ProbeSocket,
    },
};

/// Arguments of `ipmpd run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub paths: crate::cli::check_config::ConfigPaths,
    /// Instance name: pins go under /sys/fs/bpf/ipmpd/INSTANCE/, so several daemons can run side by side.
    #[arg(long)]
    pub instance: Option<String>,
    #[command(flatten)]
    pub poll: crate::link::watcher::LinkPollArgs,
    #[command(flatten)]
    pub kernel: crate::datapath::choice::KernelChoiceArgs,
    /// Print events and decisions as JSON lines on standard output.
    #[arg(long)]
    pub json: bool,
    /// With --json, also print a line for every probe answered or lost (`ipmpd stat -p` streams
    /// them from a running daemon without this).
    #[arg(long, requires = "json")]
    pub json_probes: bool,
    /// Start from scratch: detach the programs and drop the maps a previous ipmpd pinned, instead
    /// of adopting them (which disturbs no packet).
    #[arg(long)]
    pub reset: bool,
    /// Control socket (default /run/ipmpd/ipmpd.sock, or /run/ipmpd/INSTANCE.sock).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Serve Prometheus metrics on ADDR (default 127.0.0.1:9870 when given without a value).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:9870")]
    pub metrics: Option<std::net::SocketAddr>,
}

/// One tracked interface.
struct Tracked {
    ifname: String,
    ifindex: u32,
    /// ICMP identifier of its probes.
    id: u16,
    sockets: Vec<ProbeSocket>,
    hwaddr: Option<[u8; 6]>,
    /// Test addresses in use (their sockets opened).
    test_addrs: Vec<IpAddr>,
    /// Targets come from the group file: the routing table does not change them.
    configured_targets: bool,
}

/// Runs the daemon until SIGTERM/SIGINT; re-executes itself on SIGHUP when the new configuration
/// is valid, as in.mpathd does.
///
/// # Errors
/// When nothing can be tracked: no usable configuration, no privileges, no interface.
pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let signals = fds::signal_fd().context("cannot set up signal handling")?;
    let mut rep = Reporter::new(args.json, args.json_probes);
    let cfg = config::load(&args.paths.defaults, &args.paths.config);
    for p in &cfg.problems {
        rep.config_problem(p);
    }
    if cfg.groups.interfaces.is_empty() {
        bail!(
            "nothing to track: the group file names no usable interface ({})",
            args.paths.config.display()
        );
    }
    // The carrier poll need not be faster than a small share of the shortest FDT.
    let shortest_fdt = cfg
        .groups
        .groups
        .iter()
        .map(|g| g.fdt_ms.unwrap_or(cfg.defaults.failure_detection_time_ms))
        .min()
        .unwrap_or(cfg.defaults.failure_detection_time_ms);
    let shortest_fdt = Some(std::time::Duration::from_millis(shortest_fdt));
    let mut datapath = Datapath::load(&DatapathOptions {
        instance: args.instance.clone(),
        choice: args.kernel,
        reset: args.reset,
    })
    .context("cannot load ipmpd's kernel programs")?;
    let features = datapath.features();
    rep.catalogue(
        "ipmultipath.datapath.features",
        serde_json::json!({ "kernel": features.kernel, "tc_attach": features.tc.name(), "carrier_source": features.carrier.name() }),
    );
    if let LinkSource::Poll { reason } = datapath.link_source() {
        rep.catalogue(
            "ipmultipath.datapath.hookRefused",
            serde_json::json!({ "reason": reason, "interval_us": args.poll.floor_us(shortest_fdt), "cpu_percent": args.poll.link_poll_cpu }),
        );
    }
    let key = ProbeKey::random().context("no randomness for the probe key")?;
    let own = all_addresses();
    let mut routes = RouteSocket::for_dumps().context("cannot open rtnetlink")?;
    let links = routes
        .dump_link_info()
        .context("cannot list interfaces through rtnetlink")?;
    let mut wanted: Vec<InterfaceConfig> = Vec::new();
    for ic in &cfg.groups.interfaces {
        if ic.group.is_empty() && cfg.defaults.track_interfaces_only_with_groups {
            tracing::warn!(
                ifname = ic.name,
                "not in a group and TRACK_INTERFACES_ONLY_WITH_GROUPS=yes: not tracked"
            );
            continue;
        }
        wanted.push(ic.clone());
    }
    if !cfg.defaults.track_interfaces_only_with_groups {
        // Every other multicast-capable interface joins the anonymous group (link-based detection).
        for l in &links {
            let eligible =
                l.flags & IFF_MULTICAST != 0 && l.flags & (IFF_LOOPBACK | IFF_POINTOPOINT) == 0;
            if eligible && !wanted.iter().any(|w| w.name == l.name) {
                wanted.push(InterfaceConfig {
                    name: l.name.clone(),
                    group: String::new(),
                    standby: false,
                    test_addresses: vec![],
                    targets: vec![],
                });
            }
        }
    }
    report_unlike_plumbing(&wanted, &own, &mut rep);
    let mut tracked: Vec<Tracked> = Vec::new();
    let mut members: Vec<(MemberSpec, u32)> = Vec::new();
    for ic in &wanted {
        let Some(link) = links.iter().find(|l| l.name == ic.name) else {
            rep.catalogue("ipmultipath.setup.connFailed", serde_json::json!({ "what": format!("tracking of {}", ic.name), "reason": "no such interface" }));
            continue;
        };
        let ifindex = link.ifindex;
        // Probed interfaces get the datapath; link-only ones need the link watcher alone.
        if !ic.test_addresses.is_empty()
            && let Err(e) = datapath.track(&ic.name)
        {
            rep.catalogue("ipmultipath.setup.connFailed", serde_json::json!({ "what": format!("the datapath on {}", ic.name), "reason": format!("{:#}", anyhow::Error::from(e)) }));
            continue;
        }
        let (spec, sockets) = member_spec(ic, ifindex, &own, &mut routes, &mut rep);
        let id = ProbeSession::identifier(std::process::id(), ifindex);
        tracked.push(Tracked {
            ifname: ic.name.clone(),
            ifindex,
            id,
            sockets,
            hwaddr: link.hwaddr,
            test_addrs: spec.test_addrs.clone(),
            configured_targets: !ic.targets.is_empty(),
        });
        members.push((spec, ifindex));
    }
    if tracked.is_empty() {
        bail!("none of the configured interfaces could be tracked");
    }
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(|| default_socket(args.instance.as_deref()));
    let control = Server::bind(&socket).context("cannot open the control socket")?;
    let exporter = match args.metrics {
        Some(addr) => Some(
            metrics::Exporter::bind(addr)
                .with_context(|| format!("cannot serve metrics on {addr}"))?,
        ),
        None => None,
    };
    let events = fds::event_fd().context("cannot create an eventfd")?;
    let route_watch = RouteSocket::for_groups(crate::netlink::RTMGRP_EVERYTHING)
        .context("cannot follow routes through rtnetlink")?;
    let queue: Arc<Mutex<Vec<WatchReport>>> = Arc::default();
    let poll = match datapath.link_source() {
        LinkSource::KernelHook => None,
        LinkSource::Poll { .. } => Some(args.poll.pacing(shortest_fdt)),
    };
    let store = datapath.take_link_state_store()?;
    let hook = datapath.take_hook_events()?;
    let (q, efd) = (Arc::clone(&queue), events.as_raw_fd());
    let watcher = LinkWatcher::spawn(
        WatchConfig {
            ifindexes: tracked.iter().map(|t| t.ifindex).collect(),
            poll,
        },
        store,
        hook,
        move |r| {
            if let Ok(mut q) = q.lock() {
                q.push(r);
            }
            fds::ring(efd);
        },
    )
    .context("cannot watch link state through rtnetlink")?;
    // The watcher reported every interface's initial state before returning.
    let mut carrier: HashMap<u32, bool> = HashMap::new();
    for r in queue
        .lock()
        .map(|mut q| std::mem::take(&mut *q))
        .unwrap_or_default()
    {
        if let WatchReport::Link(ev) = r {
            carrier.insert(ev.ifindex, ev.carrier);
        }
    }
    let d = cfg.defaults;
    let mut engine = Engine::new(EngineConfig {
        user_fdt_ns: d.failure_detection_time_ms * 1_000_000,
        failback: d.failback,
        seed: u64::from(std::process::id()) ^ monotonic_ns(),
    });
    for g in &cfg.groups.groups {
        engine.add_group(&g.name, g.fdt_ms.map(|ms| ms * 1_000_000));
    }
    let mut daemon = Daemon {
        engine,
        by_ifindex: tracked
            .iter()
            .enumerate()
            .map(|(k, t)| (t.ifindex, k))
            .collect(),
        by_name: tracked
            .iter()
            .enumerate()
            .map(|(k, t)| (t.ifname.clone(), k))
            .collect(),
        tracked,
        key,
        rep,
        datapath_counters: HashMap::new(),
        kernel: NetlinkKernel(routes),
        route_watch,
        groups: cfg.groups.groups.clone(),
        placement: HashMap::new(),
        announcements: Vec::new(),
        ready: false,
        arp_flux: ArpFlux::default(),
        control,
        notifier: notify::Notifier::from_env(),
        counts: metrics::Counts {
            link_poll_interval_ns: watcher.poll_interval(),
            ..metrics::Counts::default()
        },
        exporter,
        default_fdt_ns: d.failure_detection_time_ms * 1_000_000,
        features,
    };
    for t in &daemon.tracked {
        let named = members
            .iter()
            .any(|(spec, i)| *i == t.ifindex && !spec.group.is_empty());
        if named && let Err(e) = daemon.arp_flux.apply(&t.ifname) {
            tracing::warn!(ifname = t.ifname, error = %e, "cannot set arp_ignore/arp_announce");
        }
    }
    // Data addresses already on a member stay there: a restart moves nothing.
    daemon.adopt_data_addresses(&own);
    for (spec, ifindex) in &members {
        let out = daemon.engine.add_member(
            spec,
            carrier.get(ifindex).copied().unwrap_or(false),
            monotonic_ns(),
        );
        daemon.apply(out);
    }
    let macs: Vec<(String, Option<[u8; 6]>)> = daemon
        .tracked
        .iter()
        .map(|t| (t.ifname.clone(), t.hwaddr))
        .collect();
    for (name, mac) in macs {
        let out = daemon.engine.set_hwaddr(&name, mac, monotonic_ns());
        daemon.apply(out);
    }
    daemon.ready = true;
    daemon.rebalance();
    daemon.rep.ready(&daemon.engine);
    // Ready for systemd only now: the datapath is attached and every member is tracked.
    daemon.notifier.send(&format!(
        "READY=1\nSTATUS=tracking {} interfaces",
        daemon.tracked.len()
    ));
    let ring = datapath.take_reply_ring()?;
    daemon.main_loop(ring, &mut datapath, &signals, &events, &queue, args)
}

/// in.mpathd's check that a group's members are plumbed alike: a member lacking an address family
/// some other member has gets "IP IF in group G is not plumbed for IPvN, affecting IPvN connectivity".
fn report_unlike_plumbing(wanted: &[InterfaceConfig], own: &[IfAddr], rep: &mut Reporter) {
    let has = |ifname: &str, v4: bool| {
        own.iter()
            .any(|a| a.ifname == ifname && a.addr.is_ipv4() == v4)
    };
    for ic in wanted.iter().filter(|i| !i.group.is_empty()) {
        for (v4, version) in [(true, 4), (false, 6)] {
            let others = wanted
                .iter()
                .any(|o| o.group == ic.group && o.name != ic.name && has(&o.name, v4));
            if others && !has(&ic.name, v4) {
                rep.catalogue(
                    "ipmultipath.group.notPlumbed",
                    serde_json::json!({ "ifname": ic.name, "group": ic.group, "version": version }),
                );
            }
        }
    }
}

/// The test addresses that work (socket opened) and the targets of one configured interface.
fn member_spec(
    ic: &InterfaceConfig,
    ifindex: u32,
    own: &[IfAddr],
    routes: &mut RouteSocket,
    rep: &mut Reporter,
) -> (MemberSpec, Vec<ProbeSocket>) {
    let mut sockets = Vec::new();
    let mut test_addrs = Vec::new();
    for &addr in &ic.test_addresses {
        match ProbeSocket::open(&ic.name, ifindex, addr) {
            Ok(s) => {
                sockets.push(s);
                test_addrs.push(addr);
            }
            Err(e) => {
                tracing::warn!(error = %e, "probe socket");
                rep.catalogue(
                    "ipmultipath.setup.bindFailed",
                    serde_json::json!({ "address": addr.to_string(), "ifname": ic.name }),
                );
            }
        }
    }
    if test_addrs.is_empty() && !ic.group.is_empty() {
        rep.catalogue(
            "ipmultipath.testaddr.missing",
            serde_json::json!({ "ifname": ic.name }),
        );
    }
    let targets = if ic.targets.is_empty() {
        router_targets(&test_addrs, own, routes)
    } else {
        ic.targets.clone()
    };
    (
        MemberSpec {
            ifname: ic.name.clone(),
            group: ic.group.clone(),
            standby: ic.standby,
            test_addrs,
            targets,
        },
        sockets,
    )
}

/// Router targets for `test_addrs`: next hops of routes that lie on a test address's subnet (IPv6:
/// link-local next hops only), most specific routes first, at most five.
fn router_targets(test_addrs: &[IpAddr], own: &[IfAddr], routes: &mut RouteSocket) -> Vec<IpAddr> {
    let mut targets = Vec::new();
    for &ta in test_addrs {
        let prefix = own
            .iter()
            .find(|a| a.addr == ta)
            .map_or(if ta.is_ipv4() { 24 } else { 64 }, |a| a.prefix_len);
        let family = if ta.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        } as u8;
        let mut found = routes.dump_routes(family).unwrap_or_default();
        found.sort_by_key(|r| std::cmp::Reverse(r.dst.len));
        for gw in found
            .iter()
            .flat_map(crate::netlink::route::Route::gateways)
        {
            let on_link =
                same_subnet(gw, ta, prefix) && (ta.is_ipv4() || crate::ip::is_link_local(gw));
            if on_link
                && !targets.contains(&gw)
                && targets.len() < crate::engine::constants::MAX_PROBE_TARGETS
            {
                targets.push(gw);
            }
        }
    }
    targets
}

struct Daemon {
    engine: Engine,
    tracked: Vec<Tracked>,
    /// Index into `tracked` by ifindex and by name: a reply or a probe costs the same with 2 or
    /// 2,000 members.
    by_ifindex: HashMap<u32, usize>,
    by_name: HashMap<String, usize>,
    key: ProbeKey,
    rep: Reporter,
    /// Last reported kernel reject counters per interface (bad version, bad checksum type, ring full).
    datapath_counters: HashMap<u32, [u64; 3]>,
    /// Addresses, routes and rules; its socket also serves route dumps (router targets).
    kernel: NetlinkKernel,
    /// Address and route notifications.
    route_watch: RouteSocket,
    /// The groups as configured (data addresses, announcements).
    groups: Vec<GroupConfig>,
    /// Where each group's data addresses are.
    placement: HashMap<String, Placement>,
    /// Announcements still to send.
    announcements: Vec<Announcement>,
    /// Setup is complete: every member is known.
    ready: bool,
    /// ARP sysctls changed on group members, restored on a clean stop.
    arp_flux: ArpFlux,
    /// The control socket.
    control: Server,
    /// systemd notifications.
    notifier: notify::Notifier,
    /// Counters for the metrics endpoint.
    counts: metrics::Counts,
    /// The metrics endpoint, when asked for.
    exporter: Option<metrics::Exporter>,
    /// FAILURE_DETECTION_TIME (ns), for groups without their own.
    default_fdt_ns: u64,
    /// What the kernel let the datapath use.
    features: crate::datapath::Features,
}

/// One gratuitous ARP / unsolicited NA to send at `due_ns`.
struct Announcement {
    due_ns: u64,
    ifindex: u32,
    ifname: String,
    mac: [u8; 6],
    addr: IpAddr,
}

impl Daemon {
    fn main_loop(
        &mut self,
        mut ring: aya::maps::RingBuf<aya::maps::MapData>,
        datapath: &mut Datapath,
        signals: &std::os::fd::OwnedFd,
        events: &std::os::fd::OwnedFd,
        queue: &Mutex<Vec<WatchReport>>,
        args: &RunArgs,
    ) -> anyhow::Result<()> {
        let fixed = [
            ring.as_raw_fd(),
            signals.as_raw_fd(),
            events.as_raw_fd(),
            self.route_watch.raw_fd(),
        ];
        let mut next_counter_check = monotonic_ns();
        let mut next_watchdog = self.notifier.watchdog_ns.map(|p| monotonic_ns() + p);
        loop {
            let now = monotonic_ns();
            let next_announcement = self.send_due_announcements(now).unwrap_or(u64::MAX);
            let deadline = self
                .engine
                .next_deadline()
                .unwrap_or(now + 1_000_000_000)
                .min(next_counter_check)
                .min(next_watchdog.unwrap_or(u64::MAX))
                .min(next_announcement);
            let metrics_fd = self.exporter.as_ref().map(metrics::Exporter::fd);
            let all: Vec<_> = fixed
                .iter()
                .copied()
                .chain(metrics_fd)
                .chain(self.control.fds())
                .collect();
            let ready = fds::wait(&all, Some(deadline.saturating_sub(now)));
            let control_from = fixed.len() + usize::from(metrics_fd.is_some());
            if metrics_fd.is_some()
                && ready[fixed.len()]
                && let Some(exporter) = &self.exporter
            {
                exporter.serve(|| self.metrics_text());
            }
            if ready[control_from..].iter().any(|r| *r) {
                self.serve_control();
            }
            if ready[0] {
                while let Some(item) = ring.next() {
                    if item.len() >= size_of::<ProbeReplyRecord>() {
                        // SAFETY: length checked; the record type is plain old data.
                        let rec = unsafe {
                            std::ptr::read_unaligned(item.as_ptr().cast::<ProbeReplyRecord>())
                        };
                        drop(item);
                        self.on_record(&rec);
                    }
                }
            }
            if ready[1] {
                for sig in fds::read_signals(signals.as_raw_fd()) {
                    if sig == libc::SIGHUP {
                        self.reload(args);
                    } else {
                        self.rep.stopping(sig);
                        self.notifier.send("STOPPING=1");
                        // Addresses and routes stay as they are for the next start to adopt;
                        // the ARP settings go back to what they were.
                        self.arp_flux.restore();
                        return Ok(());
                    }
                }
            }
            if ready[2] {
                fds::drain(events.as_raw_fd());
                let reports = queue
                    .lock()
                    .map(|mut q| std::mem::take(&mut *q))
                    .unwrap_or_default();
                for r in reports {
                    self.on_watch(r);
                }
            }
            if ready[3] {
                let (mut routes_changed, mut links_changed) = (false, false);
                let result = self.route_watch.drain_kinds(|kind| {
                    routes_changed |= matches!(kind, RTM_NEWROUTE | RTM_DELROUTE);
                    links_changed |= kind == RTM_NEWLINK;
                });
                // After lost notifications nothing is known: resynchronise with full dumps.
                let overrun = matches!(result, Err(NetlinkError::Overrun));
                if routes_changed || overrun {
                    self.refresh_router_targets();
                }
                if links_changed || overrun {
                    self.refresh_hwaddrs();
                }
            }
            let now = monotonic_ns();
            if let Some(due) = self.engine.next_deadline()
                && due <= now
            {
                self.counts.deadlines += 1;
                if now - due > metrics::LATE_NS {
                    self.counts.deadlines_missed += 1;
                }
                let out = self.engine.tick(now);
                self.apply(out);
            }
            for record in self.rep.take_published() {
                if let Some(name) = record["event"].as_str() {
                    metrics::bump(&mut self.counts.events, name.to_owned());
                }
                self.control.publish(Stream::Events, &record);
            }
            if let (Some(due), Some(period)) = (next_watchdog, self.notifier.watchdog_ns)
                && now >= due
            {
                self.notifier.send("WATCHDOG=1");
                next_watchdog = Some(now + period);
            }
            if now >= next_counter_check {
                next_counter_check = now + 1_000_000_000;
                self.check_counters(datapath);
            }
        }
    }

    /// Re-reads the routing table and gives every interface without configured targets its
    /// current router targets.
    fn refresh_router_targets(&mut self) {
        let own = all_addresses();
        let now = monotonic_ns();
        let work: Vec<(String, bool, Vec<IpAddr>)> = self
            .tracked
            .iter()
            .filter(|t| !t.configured_targets)
            .flat_map(|t| {
                [true, false].into_iter().filter_map(|v4| {
                    let addrs: Vec<IpAddr> = t
                        .test_addrs
                        .iter()
                        .copied()
                        .filter(|a| a.is_ipv4() == v4)
                        .collect();
                    (!addrs.is_empty()).then(|| (t.ifname.clone(), v4, addrs))
                })
            })
            .collect();
        for (ifname, v4, addrs) in work {
            let targets = router_targets(&addrs, &own, &mut self.kernel.0);
            let out = self.engine.set_router_targets(&ifname, v4, &targets, now);
            self.apply(out);
        }
    }

    /// Data addresses already configured on a member stay where they are (a restart moves nothing).
    fn adopt_data_addresses(&mut self, own: &[IfAddr]) {
        for g in &self.groups {
            let placement = self.placement.entry(g.name.clone()).or_default();
            for (i, d) in g.data_addresses.iter().enumerate() {
                if let Some(a) = own
                    .iter()
                    .find(|a| a.addr == d.addr && self.tracked.iter().any(|t| t.ifname == a.ifname))
                {
                    placement.at.insert(i, a.ifname.clone());
                }
            }
        }
    }

    /// Answers what the control socket received.
    fn serve_control(&mut self) {
        let now = monotonic_ns();
        for p in self.control.poll(now) {
            let response = match p.request.clone() {
                Request::Ping => Response::Ok(serde_json::json!({ "pong": true })),
                Request::Interfaces => {
                    Response::Ok(serde_json::to_value(self.engine.interfaces()).unwrap_or_default())
                }
                Request::Snapshot => {
                    Response::Ok(serde_json::to_value(self.snapshot()).unwrap_or_default())
                }
                Request::FollowEvents | Request::FollowProbes => {
                    let stream = if p.request == Request::FollowEvents {
                        Stream::Events
                    } else {
                        Stream::Probes
                    };
                    self.control.subscribe(
                        p.conn,
                        stream,
                        &Response::Ok(serde_json::json!({ "following": true })),
                    );
                    continue;
                }
                Request::Offline { ifname } => match self.engine.offline(&ifname, now) {
                    Ok(out) => {
                        tracing::info!(ifname, "offlined on request");
                        self.apply(out);
                        Response::Ok(serde_json::json!({}))
                    }
                    Err(e) => Response::Err(e.into()),
                },
                Request::Online { ifname } => match self.engine.online(&ifname, now) {
                    Ok(out) => {
                        tracing::info!(ifname, "onlined on request");
                        self.apply(out);
                        Response::Ok(serde_json::json!({}))
                    }
                    Err(e) => Response::Err(e.into()),
                },
            };
            self.control.respond(p.conn, &response);
        }
    }

    /// Re-reads hardware addresses; a change can create or clear a duplicate in a group.
    fn refresh_hwaddrs(&mut self) {
        let Ok(links) = self.kernel.0.dump_link_info() else {
            return;
        };
        let now = monotonic_ns();
        for i in 0..self.tracked.len() {
            let Some(l) = links.iter().find(|l| l.ifindex == self.tracked[i].ifindex) else {
                continue;
            };
            if l.hwaddr != self.tracked[i].hwaddr {
                self.tracked[i].hwaddr = l.hwaddr;
                let name = self.tracked[i].ifname.clone();
                let out = self.engine.set_hwaddr(&name, l.hwaddr, now);
                self.apply(out);
            }
        }
    }

    fn name_of(&self, ifindex: u32) -> Option<&Tracked> {
        self.by_ifindex.get(&ifindex).map(|&k| &self.tracked[k])
    }

    fn on_record(&mut self, rec: &ProbeReplyRecord) {
        let now = monotonic_ns();
        let sender = rec.header.ifindex();
        let Some(t) = self.name_of(sender) else {
            return;
        };
        if rec.icmp_id != t.id || rec.rx_ifindex != sender {
            tracing::debug!(ifname = %t.ifname, "reply for another session or on another interface");
            return;
        }
        if !self.key.verify(&rec.header, rec.icmp_id, rec.icmp_seq) {
            let ifname = t.ifname.clone();
            metrics::bump(&mut self.counts.bad_tag, ifname.clone());
            self.rep.rejected(&ifname, "bad_tag");
            return;
        }
        let ifname = t.ifname.clone();
        let from = source_addr(rec);
        let tx = rec.header.kernel_tx_ns();
        // The kernel-stamped round trip where TC stamped the probe, else the userspace one.
        let rtt = if tx != 0 && rec.rx_ns >= tx {
            rec.rx_ns - tx
        } else {
            now.saturating_sub(rec.header.send_time_ns())
        };
        match rec.header.msg_type() {
            msg::RTT_ONLY => {
                let out = self.engine.rtt_reply(&ifname, from, rtt, now);
                self.apply(out);
            }
            msg::DISCOVERY => {
                let own = all_addresses();
                let mine = own.iter().any(|a| a.addr == from);
                let on_subnet = own
                    .iter()
                    .filter(|a| a.ifname == ifname)
                    .any(|a| same_subnet(a.addr, from, a.prefix_len));
                if !mine && !from.is_unspecified() && on_subnet {
                    let out = self.engine.discovered(&ifname, from, now);
                    self.apply(out);
                }
            }
            _ => match self
                .engine
                .probe_reply(&ifname, rec.icmp_seq, from, rtt, now)
            {
                Ok(out) => {
                    self.apply(out);
                    if !self.control.followed(Stream::Probes) {
                        return;
                    }
                    let (avg, dev) = self.engine.target_rtt(&ifname, from).unwrap_or((0, 0));
                    let user_rtt = now.saturating_sub(rec.header.send_time_ns());
                    self.control.publish(
                        Stream::Probes,
                        &serde_json::json!({ "at_ns": now, "ifname": ifname, "seq": rec.icmp_seq, "target": from, "acked": true,
                            "netrtt_ns": rtt, "rtt_ns": user_rtt, "rttavg_ns": avg, "rttdev_ns": dev }),
                    );
                }
                Err(why) => {
                    tracing::debug!(ifname, seq = rec.icmp_seq, ?why, "reply matches no probe")
                }
            },
        }
    }

    fn on_watch(&mut self, r: WatchReport) {
        let now = monotonic_ns();
        match r {
            WatchReport::Link(ev) => {
                let Some(name) = self.name_of(ev.ifindex).map(|t| t.ifname.clone()) else {
                    return;
                };
                self.rep.link(&name, &ev);
                let changes: &[bool] = match ev.change {
                    LinkChange::Initial => &[],
                    LinkChange::Down | LinkChange::Removed => &[false],
                    LinkChange::Up => &[true],
                    // A flap between two looks: the engine sees it go down and come back.
                    LinkChange::Flapped { .. } if ev.carrier => &[false, true],
                    LinkChange::Flapped { .. } => &[true, false],
                };
                for &up in changes {
                    let out = self.engine.link_changed(&name, up, now);
                    self.apply(out);
                }
            }
            WatchReport::Overrun => {
                tracing::warn!("rtnetlink notifications overran; resynchronised")
            }
            WatchReport::Error(e) => tracing::warn!(error = e, "link watcher"),
        }
    }

    fn apply(&mut self, out: Vec<Output>) {
        let mut rebalance = false;
        for o in out {
            match o {
                Output::SendProbe {
                    ifname,
                    test_addr,
                    target,
                    seq,
                } => self.send(&ifname, test_addr, target, seq, msg::FAILURE_DETECTION),
                Output::SendDiscovery { ifname, test_addr } => {
                    let all_hosts: IpAddr = if test_addr.is_ipv4() {
                        [224, 0, 0, 1].into()
                    } else {
                        "ff02::1".parse().unwrap_or(test_addr)
                    };
                    self.send(&ifname, test_addr, all_hosts, 0, msg::DISCOVERY);
                }
                Output::SendRttProbe {
                    ifname,
                    test_addr,
                    target,
                } => self.send(&ifname, test_addr, target, 0, msg::RTT_ONLY),
                Output::SetActive { ifname, active } => {
                    self.rep.active(&ifname, active);
                    rebalance = true;
                }
                Output::Event(e) => {
                    if let Event::ProbeLost {
                        ifname,
                        seq,
                        target,
                    } = &e
                    {
                        self.control.publish(
                            Stream::Probes,
                            &serde_json::json!({ "at_ns": monotonic_ns(), "ifname": ifname, "seq": seq, "target": target, "acked": false }),
                        );
                    }
                    match &e {
                        Event::ProbeAcked { ifname, .. } => {
                            metrics::bump(&mut self.counts.probes_acked, ifname.clone())
                        }
                        Event::ProbeLost { ifname, .. } => {
                            metrics::bump(&mut self.counts.probes_lost, ifname.clone())
                        }
                        _ => {}
                    }
                    self.rep.engine_event(&e);
                }
            }
        }
        // During setup members join one by one: placing addresses before all of them are known
        // would move addresses that are already where they belong.
        if rebalance && self.ready {
            self.rebalance();
        }
    }

    /// The active members of `group`, in the group file's order, so that placement is
    /// deterministic.
    fn active_members(&self, views: &[crate::engine::InterfaceView], group: &str) -> Vec<String> {
        self.tracked
            .iter()
            .filter(|t| {
                views
                    .iter()
                    .any(|v| v.ifname == t.ifname && v.group == group && v.active)
            })
            .map(|t| t.ifname.clone())
            .collect()
    }

    /// Puts every group's data addresses on active members (add first, then delete), and
    /// schedules the announcements from their new homes.
    fn rebalance(&mut self) {
        let views = self.engine.interfaces();
        let now = monotonic_ns();
        for g in &self.groups {
            if g.data_addresses.is_empty() && g.routes.is_empty() {
                continue;
            }
            let active = self.active_members(&views, &g.name);
            let active_idx: Vec<u32> = active
                .iter()
                .filter_map(|name| self.by_name.get(name).map(|&k| self.tracked[k].ifindex))
                .collect();
            let placement = self.placement.entry(g.name.clone()).or_default();
            let moves = plan(&g.data_addresses, &active, placement);
            let (tracked, by_name) = (&self.tracked, &self.by_name);
            let done = execute(&mut self.kernel, &moves, |name| {
                by_name.get(name).map(|&k| tracked[k].ifindex)
            });
            // Routes name a data address as their preferred source: they follow the moves.
            if let Some(o) = outbound(g, &active_idx) {
                let kernel = &mut self.kernel;
                let result = o
                    .rules
                    .iter()
                    .try_for_each(|r| kernel.add_rule(r))
                    .and_then(|()| o.routes.iter().try_for_each(|r| kernel.set_route(r)));
                if let Err(e) = result {
                    self.rep.catalogue(
                        "ipmultipath.route.failed",
                        serde_json::json!({ "group": g.name, "reason": e.to_string() }),
                    );
                }
            }
            for a in done {
                let address = format!("{}/{}", a.mv.addr.addr, a.mv.addr.len);
                match a.result {
                    Ok(()) => {
                        if let Some(i) = g.data_addresses.iter().position(|x| *x == a.mv.addr) {
                            placement.at.insert(i, a.mv.to.clone());
                        }
                        let cause = match a.mv.from.as_deref().and_then(|f| views.iter().find(|v| v.ifname == f)) {
                            None => "placement",
                            Some(v) if v.state == crate::engine::IfState::Failed => "failure",
                            Some(v) if v.state == crate::engine::IfState::Offline => "offline",
                            Some(_) => "rebalance",
                        };
                        metrics::bump(&mut self.counts.failovers, (g.name.clone(), cause.to_owned()));
                        self.rep.catalogue(
                            "ipmultipath.address.moved",
                            serde_json::json!({ "address": address, "group": g.name, "from": a.mv.from.clone().unwrap_or_else(|| "-".into()), "to": a.mv.to }),
                        );
                        if let Some(t) = self.by_ifindex.get(&a.to_ifindex).map(|&k| &self.tracked[k])
                            && let Some(mac) = t.hwaddr
                        {
                            for k in 0..g.announcements {
                                self.announcements.push(Announcement {
                                    due_ns: now + u64::from(k) * g.announce_interval_ms * 1_000_000,
                                    ifindex: t.ifindex,
                                    ifname: t.ifname.clone(),
                                    mac,
                                    addr: a.mv.addr.addr,
                                });
                            }
                        }
                    }
                    Err(e) => self.rep.catalogue(
                        "ipmultipath.address.moveFailed",
                        serde_json::json!({ "address": address, "group": g.name, "to": a.mv.to, "reason": e.to_string() }),
                    ),
                }
            }
        }
        self.send_due_announcements(now);
    }

    /// Sends the announcements that are due; returns when the next one is.
    fn send_due_announcements(&mut self, now: u64) -> Option<u64> {
        let (due, later): (Vec<Announcement>, Vec<Announcement>) =
            std::mem::take(&mut self.announcements)
                .into_iter()
                .partition(|a| a.due_ns <= now);
        self.announcements = later;
        for a in due {
            if let Err(e) = announce(a.ifindex, &a.ifname, a.mac, a.addr) {
                tracing::warn!(ifname = a.ifname, address = %a.addr, error = %e, "announcement not sent");
            }
        }
        self.announcements.iter().map(|a| a.due_ns).min()
    }

    fn send(&mut self, ifname: &str, test_addr: IpAddr, target: IpAddr, seq: u16, kind: u16) {
        if kind == msg::FAILURE_DETECTION {
            metrics::bump(&mut self.counts.probes_sent, ifname.to_owned());
        }
        let Some(t) = self.by_name.get(ifname).map(|&k| &self.tracked[k]) else {
            return;
        };
        let Some(sock) = t
            .sockets
            .iter()
            .find(|s| (s.family() == crate::probe::packet::Family::Inet) == test_addr.is_ipv4())
        else {
            return;
        };
        let mut header = agent_common::probe::ProbeHeader::new(kind, t.ifindex, 0, monotonic_ns());
        self.key.sign(&mut header, t.id, seq);
        let packet = echo_request(sock.family(), t.id, seq, &header);
        if let Err(e) = sock.send(target, &packet) {
            tracing::debug!(ifname, %target, error = %e, "probe not sent");
        }
    }

    fn check_counters(&mut self, datapath: &mut Datapath) {
        for t in &self.tracked {
            let Ok(c) = datapath.counters(t.ifindex) else {
                continue;
            };
            self.counts.kernel.insert(t.ifname.clone(), c);
            let now = [c.rejected_version, c.rejected_checksum_type, c.ring_full];
            let before = self
                .datapath_counters
                .insert(t.ifindex, now)
                .unwrap_or([0; 3]);
            for (k, name) in [
                "ipmultipath.init.badVersion",
                "ipmultipath.init.badChksumType",
                "ipmultipath.session.noMemory",
            ]
            .iter()
            .enumerate()
            {
                if now[k] > before[k] {
                    self.rep.catalogue(
                        name,
                        serde_json::json!({ "count": now[k] - before[k], "ifname": t.ifname }),
                    );
                }
            }
        }
    }

    /// SIGHUP: a valid new configuration re-executes the daemon (in.mpathd's way); a bad one is
    /// reported and the running configuration kept.
    fn reload(&mut self, args: &RunArgs) {
        let cfg = config::load(&args.paths.defaults, &args.paths.config);
        let group_file_problems: Vec<_> = cfg
            .problems
            .iter()
            .filter(|p| p.path == args.paths.config)
            .collect();
        if !group_file_problems.is_empty() || cfg.groups.interfaces.is_empty() {
            for p in &cfg.problems {
                self.rep.config_problem(p);
            }
            self.rep.reload_refused();
            return;
        }
        self.rep.reloading();
        self.notifier.send("RELOADING=1");
        // The new process sets them again and must find the administrator's values.
        self.arp_flux.restore();
        let exe = std::fs::read_link("/proc/self/exe")
            .unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
        let args: Vec<String> = std::env::args().skip(1).collect();
        use std::os::unix::process::CommandExt as _;
        let err = std::process::Command::new(exe).args(args).exec();
        tracing::error!(error = %err, "cannot re-execute for the new configuration; keeping the old one");
    }
}
