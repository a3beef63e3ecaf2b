//! Per-interface, per-CPU counters kept by the kernel programs. Userspace sums the CPUs.

/// Counters for one tracked interface on one CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize))]
pub struct IfaceCounters {
    /// Every frame XDP saw on the interface.
    pub rx_packets: u64,
    /// Valid probe replies handed to userspace and consumed (XDP_DROP).
    pub probe_replies: u64,
    /// Echo replies without ipmpd's magic: someone else's ping; passed to the stack.
    pub rejected_magic: u64,
    /// ipmpd magic but a header version this build does not speak; passed.
    pub rejected_version: u64,
    /// ipmpd magic but an unknown checksum (authentication) type; passed.
    pub rejected_checksum_type: u64,
    /// ipmpd magic but the payload is shorter than the header; passed.
    pub rejected_truncated: u64,
    /// IPv6 reply with a routing header (in.mpathd refuses those); passed.
    pub rejected_routing_header: u64,
    /// A valid reply that found the ring buffer full; passed (userspace reports it).
    pub ring_full: u64,
    /// Outgoing probes the TC egress program stamped with the kernel transmit time.
    pub probes_stamped: u64,
    /// `bpf_ktime_get_ns()` of the last frame received (passive evidence of a live link).
    pub last_rx_ns: u64,
    /// A well-formed reply for a probe identity (ICMP id on this interface) ipmpd did not send:
    /// dropped in the kernel, so a flood of them never fills the ring buffer.
    pub rejected_identity: u64,
}

const _: () = assert!(size_of::<IfaceCounters>() == 88);

impl IfaceCounters {
    /// Adds another CPU's counters; `last_rx_ns` takes the latest.
    #[must_use]
    pub fn merged(self, other: &Self) -> Self {
        Self {
            rx_packets: self.rx_packets + other.rx_packets,
            probe_replies: self.probe_replies + other.probe_replies,
            rejected_magic: self.rejected_magic + other.rejected_magic,
            rejected_version: self.rejected_version + other.rejected_version,
            rejected_checksum_type: self.rejected_checksum_type + other.rejected_checksum_type,
            rejected_truncated: self.rejected_truncated + other.rejected_truncated,
            rejected_routing_header: self.rejected_routing_header + other.rejected_routing_header,
            ring_full: self.ring_full + other.ring_full,
            probes_stamped: self.probes_stamped + other.probes_stamped,
            last_rx_ns: self.last_rx_ns.max(other.last_rx_ns),
            rejected_identity: self.rejected_identity + other.rejected_identity,
        }
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C), Copy, all-u64 fields, no padding (size asserted above).
unsafe impl aya::Pod for IfaceCounters {}
