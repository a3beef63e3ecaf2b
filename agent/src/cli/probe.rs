//! `ipmpd probe IFACE TARGET`: ping through ipmpd's datapath, with kernel-stamped round trips.

use std::{net::IpAddr, time::Duration};

use agent_common::{counters::IfaceCounters, record::ProbeReplyRecord};
use anyhow::{Context as _, bail};
use serde::Serialize;
use tokio::io::unix::AsyncFd;

use super::{
    output::{emit, shutdown_signal},
    tracking::{Tracking, TrackingArgs},
};
use crate::{
    clock::monotonic_ns,
    probe::{
        addr::pick_test_address,
        auth::ProbeKey,
        packet::Family,
        session::{ProbeSession, RejectCounts},
        socket::ProbeSocket,
        stats::{Summary, ms},
    },
};

/// Arguments of `ipmpd probe`.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// Interface to probe from.
    pub interface: String,
    /// Target address (on the interface's subnet; IPv6 targets are reached from a link-local test address).
    pub target: IpAddr,
    /// Number of probes (default: until interrupted).
    #[arg(short, long)]
    pub count: Option<u64>,
    /// Milliseconds between probes.
    #[arg(short, long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub interval: u64,
    /// Milliseconds to wait for a reply before counting a probe lost (default: twice the interval, at least 1000).
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Test address to send from (default: the interface's first IPv4 address, or its IPv6 link-local one).
    #[arg(long)]
    pub source: Option<IpAddr>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub tracking: TrackingArgs,
}

#[derive(Serialize)]
struct ReplyLine<'a> {
    event: &'static str,
    interface: &'a str,
    #[serde(flatten)]
    reply: &'a crate::probe::session::Reply,
}

#[derive(Serialize)]
struct LostLine<'a> {
    event: &'static str,
    interface: &'a str,
    seq: u16,
    target: IpAddr,
}

#[derive(Serialize)]
struct SummaryLine<'a> {
    event: &'static str,
    interface: &'a str,
    target: IpAddr,
    sent: u64,
    received: u64,
    lost: u64,
    net_rtt: Option<Summary>,
    user_rtt: Option<Summary>,
    /// Kernel counters (XDP or TC ingress, and TC egress), summed over CPUs.
    datapath: DatapathCounts,
    /// Replies userspace refused, by reason.
    rejected: RejectCounts,
}

/// What the kernel programs counted during the run.
#[derive(Serialize)]
struct DatapathCounts {
    /// The interface's reply counters.
    #[serde(flatten)]
    replies: IfaceCounters,
    /// Probes the TC egress program stamped: this run's datapath serves the one interface, so
    /// its count, kept for all interfaces together, is the interface's.
    probes_stamped: u64,
}

/// Runs `ipmpd probe`.
///
/// # Errors
/// Bad arguments, missing privileges, an interface or address that does not exist.
pub async fn run(args: ProbeArgs) -> anyhow::Result<()> {
    let ProbeArgs {
        interface,
        target,
        count,
        interval,
        timeout,
        source,
        json,
        tracking: targs,
    } = args;
    let test_addr = match source {
        Some(a) => a,
        None => pick_test_address(&interface, target).with_context(|| {
            format!(
                "{interface} has no {} test address; add one or pass --source",
                if target.is_ipv4() {
                    "IPv4"
                } else {
                    "IPv6 link-local"
                }
            )
        })?,
    };
    if test_addr.is_ipv4() != target.is_ipv4() {
        bail!("test address {test_addr} and target {target} are of different families");
    }
    let mut t = Tracking::start(
        std::slice::from_ref(&interface),
        &targs,
        format!("probe-{interface}"),
    )?;
    let result = probe_loop(
        &mut t, &interface, target, test_addr, count, interval, timeout, json,
    )
    .await;
    let cleanup = t.finish();
    result.and(cleanup)
}

#[expect(
    clippy::too_many_arguments,
    reason = "the destructured command arguments, used once"
)]
async fn probe_loop(
    t: &mut Tracking,
    interface: &str,
    target: IpAddr,
    test_addr: IpAddr,
    count: Option<u64>,
    interval_ms: u64,
    timeout_ms: Option<u64>,
    json: bool,
) -> anyhow::Result<()> {
    let ifindex = *t
        .names
        .iter()
        .find(|(_, n)| n.as_str() == interface)
        .map(|(i, _)| i)
        .context("interface not tracked")?;
    let socket = ProbeSocket::open(interface, ifindex, test_addr)?;
    let family = socket.family();
    let key = ProbeKey::random().context("no randomness for the probe key")?;
    let id = ProbeSession::identifier(std::process::id(), ifindex);
    t.datapath
        .set_probe_id(ifindex, id, true)
        .context("cannot tell the datapath this session's identity")?;
    let mut session = ProbeSession::new(key, family, id, ifindex, 0);
    let ring = t.datapath.take_reply_ring()?;
    // SAFETY: the RingBuf owns its map descriptor and returns the same one for as long as it lives,
    // which is as long as the AsyncFd that owns it.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(std::io::Error::from)
        .context("cannot poll the ring buffer")?;
    let timeout_ns = timeout_ms.unwrap_or((interval_ms * 2).max(1000)) * 1_000_000;
    if !json {
        println!(
            "PROBE {target} from {test_addr} via {interface}: {} bytes of ipmpd payload, every {interval_ms} ms",
            agent_common::probe::PROBE_HEADER_LEN
        );
        println!("{}", t.link_source_line());
    }
    let mut ticker = tokio::time::interval(Duration::from_millis(interval_ms));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut expiry = tokio::time::interval(Duration::from_millis(5));
    let stop = shutdown_signal().context("installing signal handlers")?;
    tokio::pin!(stop);
    let (mut sent, mut received, mut lost) = (0u64, 0u64, 0u64);
    let (mut net, mut user) = (Vec::new(), Vec::new());
    loop {
        let done_sending = count.is_some_and(|c| sent >= c);
        if done_sending && session.outstanding() == 0 {
            break;
        }
        tokio::select! {
            () = &mut stop => break,
            _ = ticker.tick(), if !done_sending => {
                let now = monotonic_ns();
                let (seq, packet) = session.next_probe(target, now);
                if let Err(e) = socket.send(target, &packet) {
                    eprintln!("ipmpd: probe {seq} to {target} not sent: {e}");
                }
                sent += 1;
            }
            guard = ring.readable_mut() => {
                let mut guard = guard.context("ring buffer poll")?;
                while let Some(item) = guard.get_inner_mut().next() {
                    let now = monotonic_ns();
                    let Some(record) = read_record(&item) else { continue };
                    match session.on_reply(&record, now) {
                        Ok(reply) => {
                            received += 1;
                            user.push(reply.user_rtt_ns);
                            net.extend(reply.net_rtt_ns);
                            emit(json, &ReplyLine { event: "reply", interface, reply: &reply }, || format!(
                                "seq={} from {}: net_rtt={} ms (kernel) rtt={} ms (user) hop_limit={}{}",
                                reply.seq,
                                reply.target,
                                reply.net_rtt_ns.map_or_else(|| "?".into(), ms),
                                ms(reply.user_rtt_ns),
                                reply.hop_limit,
                                reply.vlan_id.map_or_else(String::new, |v| format!(" vlan={v}")),
                            ));
                        }
                        Err(reason) => {
                            if !json {
                                eprintln!("ipmpd: reply seq={} rejected: {reason}", record.icmp_seq);
                            }
                        }
                    }
                }
                guard.clear_ready();
            }
            _ = expiry.tick() => {
                for l in session.expire(monotonic_ns(), timeout_ns) {
                    lost += 1;
                    emit(json, &LostLine { event: "lost", interface, seq: l.seq, target: l.target }, || format!("seq={} lost", l.seq));
                }
            }
            report = t.reports.recv() => {
                if let Some(r) = report {
                    t.print_report(json, &r);
                }
            }
        }
    }
    while let Ok(r) = t.reports.try_recv() {
        t.print_report(json, &r);
    }
    let datapath = DatapathCounts {
        replies: t.datapath.counters(ifindex)?,
        probes_stamped: t.datapath.probes_stamped()?,
    };
    let summary = SummaryLine {
        event: "summary",
        interface,
        target,
        sent,
        received,
        lost,
        net_rtt: Summary::of(&net),
        user_rtt: Summary::of(&user),
        datapath,
        rejected: session.rejects(),
    };
    emit(json, &summary, || human_summary(&summary, family));
    Ok(())
}

fn read_record(bytes: &[u8]) -> Option<ProbeReplyRecord> {
    if bytes.len() < size_of::<ProbeReplyRecord>() {
        return None;
    }
    // SAFETY: length checked; ProbeReplyRecord is Pod (any bit pattern valid); read_unaligned copes
    // with the ring buffer's 8-byte alignment.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<ProbeReplyRecord>()) })
}

fn human_summary(s: &SummaryLine<'_>, family: Family) -> String {
    let loss = if s.sent == 0 {
        0.0
    } else {
        100.0 * (s.sent - s.received) as f64 / s.sent as f64
    };
    let line = |name: &str, x: Option<Summary>| match x {
        Some(x) => format!(
            "{name} min/median/p99/max = {}/{}/{}/{} ms",
            ms(x.min_ns),
            ms(x.median_ns),
            ms(x.p99_ns),
            ms(x.max_ns)
        ),
        None => format!("{name} no samples"),
    };
    let d = &s.datapath;
    let r = &s.rejected;
    format!(
        "--- {} probe statistics via {} ({family:?}) ---\n{} sent, {} received, {} lost, {loss:.1}% loss\n{}\n{}\n\
         datapath: {} ICMP frames seen, {} probe replies, {} probes stamped; not accepted: magic {}, version {}, checksum type {}, truncated {}, routing header {}, identity {}, ring full {}\n\
         userspace: not accepted: bad tag {}, other session {}, unknown sequence {}, wrong source {}",
        s.target,
        s.interface,
        s.sent,
        s.received,
        s.lost,
        line("net_rtt (kernel)", s.net_rtt),
        line("rtt (user)      ", s.user_rtt),
        d.replies.icmp_packets,
        d.replies.probe_replies,
        d.probes_stamped,
        d.replies.rejected_magic,
        d.replies.rejected_version,
        d.replies.rejected_checksum_type,
        d.replies.rejected_truncated,
        d.replies.rejected_routing_header,
        d.replies.rejected_identity,
        d.replies.ring_full,
        r.bad_tag,
        r.other_session,
        r.unknown_sequence,
        r.wrong_source,
    )
}
