//! The maps shared with userspace. BTF-defined so `bpftool map dump` prints named fields.

use agent_common::{
    counters::IfaceCounters,
    link::LinkState,
    record::{LinkRecord, ProbeReplyRecord},
};
use aya_ebpf::{
    btf_maps::{HashMap, PerCpuArray, PerCpuHashMap, RingBuf},
    macros::btf_map,
};

use agent_common::{MAX_TRACKED, PROBE_REPLIES_BYTES};

/// Probe replies for userspace ([`PROBE_REPLIES_BYTES`]).
#[btf_map]
pub static PROBE_REPLIES: RingBuf<ProbeReplyRecord, PROBE_REPLIES_BYTES> = RingBuf::new();

/// Interface index → the ICMP identifier of ipmpd's probes there (userspace sets it when it starts
/// probing): only replies carrying it are queued.
#[btf_map]
pub static PROBE_IDS: HashMap<u32, u32, MAX_TRACKED> = HashMap::new();

/// Per-CPU counters per tracked interface; userspace creates the entry when it starts tracking.
#[btf_map]
pub static IFACE_COUNTERS: PerCpuHashMap<u32, IfaceCounters, MAX_TRACKED> = PerCpuHashMap::new();

/// Probes the TC egress program stamped, on all interfaces together, per CPU (one slot). Kept
/// apart from [`IFACE_COUNTERS`] because a per-interface count would cost a hash lookup by
/// ifindex for every probe sent (5-7 % of the probing thread's samples at 1,024 members, by perf);
/// this array's one slot is a fixed offset from the current CPU's area.
#[btf_map]
pub static PROBES_STAMPED: PerCpuArray<u64, 1> = PerCpuArray::new();

/// Link-state mirror per tracked interface.
#[btf_map]
pub static LINK_STATE: HashMap<u32, LinkState, MAX_TRACKED> = HashMap::new();

/// Carrier changes seen by the hook, for userspace to wake on: 64 KiB holds over 2,000 records,
/// more than any burst of flaps between two reads.
#[btf_map]
pub static LINK_EVENTS: RingBuf<LinkRecord, { 64 * 1024 }> = RingBuf::new();

/// The counters of `ifindex` on this CPU, when the interface is tracked.
#[inline(always)]
pub fn counters(ifindex: u32) -> Option<&'static mut IfaceCounters> {
    // SAFETY: per-CPU values are only touched by programs on this CPU, and BPF programs run with
    // preemption (migration) disabled, so nothing else aliases this value while we hold it.
    IFACE_COUNTERS
        .get_ptr_mut(ifindex)
        .map(|p| unsafe { &mut *p })
}
