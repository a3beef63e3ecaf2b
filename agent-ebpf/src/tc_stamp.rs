//! TC egress: write the kernel transmit time into outgoing ipmpd probes.

use agent_common::probe::{
    CHECKSUM_SIPHASH24, ICMP_ECHO_HEADER_LEN, KERNEL_TX_OFFSET, MAGIC, VERSION,
};
use aya_ebpf::{
    bindings::TC_ACT_UNSPEC, helpers::bpf_ktime_get_ns, macros::classifier, programs::TcContext,
};

use crate::{
    maps::PROBES_STAMPED,
    parse::{self, read},
};

const ICMP_ECHO_REQUEST: u8 = 8;
const ICMPV6_ECHO_REQUEST: u8 = 128;
/// `BPF_F_HDR_FIELD_MASK` size for a 4-byte field in `bpf_l4_csum_replace`.
const CSUM_FIELD_4: u64 = 4;

/// Always continues the chain (`TC_ACT_UNSPEC`, which TCX calls `TCX_NEXT`): stamping is a side
/// effect, never a verdict on the packet.
#[classifier]
pub fn ipmpd_tc_stamp(ctx: TcContext) -> i32 {
    let _ = try_stamp(&ctx);
    TC_ACT_UNSPEC
}

#[inline(always)]
fn try_stamp(ctx: &TcContext) -> Result<(), ()> {
    let start = ctx.data();
    let end = ctx.data_end();
    let l4 = parse::to_icmp(start, end).map_err(|_| ())?;
    // 2-byte read: see the note in xdp_reply.rs on 1-byte reads at variable offsets.
    let [icmp_type, code] = read::<[u8; 2]>(start, end, l4.l4_off).ok_or(())?;
    let request = if l4.family == 4 {
        ICMP_ECHO_REQUEST
    } else {
        ICMPV6_ECHO_REQUEST
    };
    if icmp_type != request || code != 0 {
        return Err(());
    }
    let header_off = l4.l4_off + ICMP_ECHO_HEADER_LEN;
    let magic = read::<u32>(start, end, header_off).ok_or(())?;
    // Version and checksum type: one 2-byte read.
    let [version, checksum_type] = read::<[u8; 2]>(start, end, header_off + 4).ok_or(())?;
    if u32::from_be(magic) != MAGIC || version != VERSION || checksum_type != CHECKSUM_SIPHASH24 {
        return Err(());
    }
    let ts_off = header_off + KERNEL_TX_OFFSET;
    // The stamp and the tag after it in one read: the whole header must be there, or it is no
    // probe of ours (a truncated copy is left alone). One bounds check the verifier can follow.
    let old = read::<[u32; 4]>(start, end, ts_off).ok_or(())?;
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let new_hi = ((now >> 32) as u32).to_be();
    let new_lo = (now as u32).to_be();
    let csum_off = l4.l4_off + 2;
    // The ICMP checksum covers the payload (and, for ICMPv6, a pseudo-header the stamp does not
    // change): an incremental update per 32-bit word keeps it valid.
    ctx.store(ts_off, &[new_hi, new_lo], 0).map_err(|_| ())?;
    ctx.l4_csum_replace(csum_off, u64::from(old[0]), u64::from(new_hi), CSUM_FIELD_4)
        .map_err(|_| ())?;
    ctx.l4_csum_replace(csum_off, u64::from(old[1]), u64::from(new_lo), CSUM_FIELD_4)
        .map_err(|_| ())?;
    if let Some(count) = PROBES_STAMPED.get_ptr_mut(0) {
        // SAFETY: a per-CPU slot is only touched by programs on this CPU, and BPF programs run
        // with migration disabled, so nothing else writes it meanwhile.
        unsafe { *count += 1 };
    }
    Ok(())
}
