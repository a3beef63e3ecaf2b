//! XDP: recognise replies to ipmpd's probes, time-stamp them and hand them to userspace. The
//! recognising and handing over ([`take`]) is shared with the TC ingress program
//! (`tc_reply.rs`), which does the same where XDP would cost the device more than it saves.

use agent_common::{
    PROBE_ID_WAKE,
    counters::IfaceCounters,
    probe::{CHECKSUM_SIPHASH24, ICMP_ECHO_HEADER_LEN, MAGIC, ProbeHeader, VERSION},
    record::{FAMILY_INET, FAMILY_INET6, PROBE_REPLY_SLOT_BYTES, ProbeReplyRecord},
};
use aya_ebpf::{
    bindings::{
        BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP,
        xdp_action::{XDP_DROP, XDP_PASS},
    },
    helpers::{bpf_ktime_get_coarse_ns, bpf_ktime_get_ns, bpf_ringbuf_query},
    macros::xdp,
    programs::XdpContext,
};

use crate::{
    maps::{PROBE_IDS, PROBE_REPLIES, counters},
    parse::{self, Skip, read},
};

const ICMP_ECHO_REPLY: u8 = 0;
const ICMPV6_ECHO_REPLY: u8 = 129;

#[xdp]
pub fn ipmpd_xdp_reply(ctx: XdpContext) -> u32 {
    match take(
        ctx.data(),
        ctx.data_end(),
        ctx.ingress_ifindex() as u32,
        None,
    ) {
        Taken::Consumed => XDP_DROP,
        Taken::Pass => XDP_PASS,
    }
}

/// What becomes of a frame after [`take`] looked at it.
pub enum Taken {
    /// A reply to one of ipmpd's probes, queued for userspace, or a forged one: the stack never
    /// sees it.
    Consumed,
    /// Everything else, and replies the ring had no room for (fail open).
    Pass,
}

/// Looks at the frame `[start, end)` that arrived on `ifindex`; queues replies to ipmpd's probes
/// and counts what it refuses. `vlan` is a tag the device already took off the frame (TC sees
/// frames after the stack untagged them; XDP sees the tag in the frame).
#[inline(always)]
pub fn take(start: usize, end: usize, ifindex: u32, vlan: Option<u16>) -> Taken {
    let verdict = classify(start, end);
    // Almost every frame is not ICMP: it passes before any map access or clock read (the kernel
    // counts it among the interface's own receive statistics).
    if let Verdict::NotIcmp = verdict {
        return Taken::Pass;
    }
    // One map lookup per ICMP frame: the entry is reused for the reject and reply counters below.
    let mut stats = counters(ifindex);
    if let Some(stats) = stats.as_deref_mut() {
        stats.icmp_packets += 1;
        // The coarse clock (one tick of resolution) is enough for "ICMP arrived recently".
        // SAFETY: helper without preconditions.
        stats.last_icmp_ns = unsafe { bpf_ktime_get_coarse_ns() };
    }
    match verdict {
        Verdict::NotIcmp | Verdict::Pass => Taken::Pass,
        Verdict::Reject(reason) => {
            if let Some(stats) = stats {
                reason.count(stats);
            }
            Taken::Pass
        }
        Verdict::Reply {
            mut l4,
            icmp,
            header,
        } => {
            if l4.vlan.is_none() {
                l4.vlan = vlan;
            }
            deliver(start, end, ifindex, &l4, icmp, header, stats)
        }
    }
}

/// Why a frame that looked like a probe reply was not accepted. (A plain enum, not function
/// pointers: BPF has no indirect calls.)
#[derive(Clone, Copy)]
enum Reason {
    Magic,
    Truncated,
    Version,
    ChecksumType,
    RoutingHeader,
}

impl Reason {
    #[inline(always)]
    fn count(self, c: &mut IfaceCounters) {
        match self {
            Self::Magic => c.rejected_magic += 1,
            Self::Truncated => c.rejected_truncated += 1,
            Self::Version => c.rejected_version += 1,
            Self::ChecksumType => c.rejected_checksum_type += 1,
            Self::RoutingHeader => c.rejected_routing_header += 1,
        }
    }
}

enum Verdict {
    /// Not IP, not ICMP/ICMPv6, or a fragment.
    NotIcmp,
    /// ICMP, but not an echo reply ipmpd could have asked for.
    Pass,
    Reject(Reason),
    Reply {
        l4: parse::L4,
        icmp: [u8; ICMP_ECHO_HEADER_LEN],
        header: ProbeHeader,
    },
}

#[inline(always)]
fn classify(start: usize, end: usize) -> Verdict {
    let l4 = match parse::to_icmp(start, end) {
        Ok(l4) => l4,
        Err(Skip::NotIcmp) => return Verdict::NotIcmp,
        Err(Skip::RoutingHeader) => return Verdict::Reject(Reason::RoutingHeader),
    };
    // Whole headers in single reads: several small reads at offsets derived from one variable
    // offset let LLVM rebuild the pointer from another base, which the verifier then rejects.
    let Some(icmp) = read::<[u8; ICMP_ECHO_HEADER_LEN]>(start, end, l4.l4_off) else {
        return Verdict::Pass;
    };
    let reply_type = if l4.family == 4 {
        ICMP_ECHO_REPLY
    } else {
        ICMPV6_ECHO_REPLY
    };
    if icmp[0] != reply_type || icmp[1] != 0 {
        return Verdict::Pass;
    }
    let header_off = l4.l4_off + ICMP_ECHO_HEADER_LEN;
    let Some(magic) = read::<u32>(start, end, header_off) else {
        // An echo reply too short to carry any payload header: somebody else's.
        return Verdict::Reject(Reason::Magic);
    };
    if u32::from_be(magic) != MAGIC {
        return Verdict::Reject(Reason::Magic);
    }
    let Some(header) = read::<ProbeHeader>(start, end, header_off) else {
        return Verdict::Reject(Reason::Truncated);
    };
    if header.version != VERSION {
        return Verdict::Reject(Reason::Version);
    }
    if header.checksum_type != CHECKSUM_SIPHASH24 {
        return Verdict::Reject(Reason::ChecksumType);
    }
    Verdict::Reply { l4, icmp, header }
}

/// Queued bytes of replies from which replies wake the reader (a quarter of the ring).
const WAKE_BACKLOG_BYTES: u64 = agent_common::record::WAKE_BACKLOG_BYTES as u64;

/// How far past [`WAKE_BACKLOG_BYTES`] replies still wake the reader: 32 records. Past it the
/// reader is awake or about to be, and its poll on the ring is level-triggered (it returns at
/// once while anything is queued); each further wake-up would only cost a self-interrupt,
/// microseconds in a virtual machine, when the reader is already behind. A band rather than the
/// one record that crosses: producers on several CPUs reading the same backlog cannot all step
/// over it.
const WAKE_BAND_BYTES: u64 = 32 * PROBE_REPLY_SLOT_BYTES as u64;

#[inline(always)]
fn deliver(
    start: usize,
    end: usize,
    ifindex: u32,
    l4: &parse::L4,
    icmp: [u8; ICMP_ECHO_HEADER_LEN],
    header: ProbeHeader,
    stats: Option<&mut IfaceCounters>,
) -> Taken {
    let icmp_id = u16::from_be_bytes([icmp[4], icmp[5]]);
    // Only replies to a probe of ours, on the interface that sent it: anything else (another
    // process's identity, or a flood of forged replies) is dropped here, cheaply, and never
    // competes with real replies for the ring buffer.
    // SAFETY: a plain lookup of a u32 value; the reference does not outlive this statement.
    let entry = unsafe { PROBE_IDS.get(ifindex) }.copied();
    let ours = entry.is_some_and(|v| v & 0xffff == u32::from(icmp_id))
        && u32::from_be(header.ifindex) == ifindex;
    let entry = entry.unwrap_or(0);
    if !ours {
        if let Some(stats) = stats {
            stats.rejected_identity += 1;
        }
        return Taken::Consumed;
    }
    // SAFETY: helper without preconditions.
    let rx_ns = unsafe { bpf_ktime_get_ns() };
    let mut src_addr = [0u8; 16];
    if l4.family == 4 {
        let Some(src) = read::<[u8; 4]>(start, end, l4.l3_off + 12) else {
            return Taken::Pass;
        };
        src_addr[..4].copy_from_slice(&src);
    } else {
        let Some(src) = read::<[u8; 16]>(start, end, l4.l3_off + 8) else {
            return Taken::Pass;
        };
        src_addr = src;
    }
    let record = ProbeReplyRecord {
        rx_ns,
        header,
        rx_ifindex: ifindex,
        icmp_id,
        icmp_seq: u16::from_be_bytes([icmp[6], icmp[7]]),
        src_addr,
        family: if l4.family == 4 {
            FAMILY_INET
        } else {
            FAMILY_INET6
        },
        vlan_tagged: u8::from(l4.vlan.is_some()),
        vlan_id: l4.vlan.unwrap_or(0),
        hop_limit: l4.hop_limit,
        _pad: [0; 3],
    };
    // SAFETY: the helper only reads the ring's positions; the pointer is the map's own (as
    // aya's `RingBuf::as_ptr` makes it), relocated by the loader.
    let queued = unsafe {
        bpf_ringbuf_query(
            core::ptr::from_ref(&PROBE_REPLIES).cast_mut().cast(),
            u64::from(BPF_RB_AVAIL_DATA),
        )
    };
    // Forced when asked, or when the silent backlog reaches a quarter of the ring (the reader
    // sleeps until its own deadline, and thousands of members' replies must not fill the ring
    // meanwhile). Forced, because an earlier silent record still unread would stop the kernel's
    // own "wake only an idle reader" rule from waking for this one.
    let backlog_wake = (WAKE_BACKLOG_BYTES..WAKE_BACKLOG_BYTES + WAKE_BAND_BYTES).contains(&queued);
    let wake = if entry & PROBE_ID_WAKE != 0 || backlog_wake {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    match PROBE_REPLIES.output(record, u64::from(wake)) {
        Ok(()) => {
            if let Some(stats) = stats {
                stats.probe_replies += 1;
            }
            Taken::Consumed
        }
        Err(_) => {
            // Fail open: the stack gets the reply, userspace learns of the loss from the counter
            // (ipmultipath.session.noMemory).
            if let Some(stats) = stats {
                stats.ring_full += 1;
            }
            Taken::Pass
        }
    }
}

/// Returns `XDP_PASS` and nothing else. Never attached: `cargo xtask bench` runs it through
/// BPF_PROG_TEST_RUN to measure the harness's own per-packet overhead, which it subtracts.
#[xdp]
pub fn ipmpd_xdp_calibrate(_ctx: XdpContext) -> u32 {
    XDP_PASS
}
