//! Per-interface, per-CPU counters kept by the kernel programs. Userspace sums the CPUs.

/// Counters for one tracked interface on one CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize))]
pub struct IfaceCounters {
    /// ICMP and ICMPv6 frames XDP examined (every other frame passes before the counters are
    /// touched; the kernel's own statistics count it).
    pub icmp_packets: u64,
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
    /// `bpf_ktime_get_coarse_ns()` of the last ICMP frame received.
    pub last_icmp_ns: u64,
    /// A well-formed reply for a probe identity (ICMP id on this interface) ipmpd did not send:
    /// dropped in the kernel, so a flood of them never fills the ring buffer.
    pub rejected_identity: u64,
}

const _: () = assert!(size_of::<IfaceCounters>() == 80);

impl IfaceCounters {
    /// Adds another CPU's counters; `last_icmp_ns` takes the latest.
    #[must_use]
    pub fn merged(self, other: &Self) -> Self {
        Self {
            icmp_packets: self.icmp_packets + other.icmp_packets,
            probe_replies: self.probe_replies + other.probe_replies,
            rejected_magic: self.rejected_magic + other.rejected_magic,
            rejected_version: self.rejected_version + other.rejected_version,
            rejected_checksum_type: self.rejected_checksum_type + other.rejected_checksum_type,
            rejected_truncated: self.rejected_truncated + other.rejected_truncated,
            rejected_routing_header: self.rejected_routing_header + other.rejected_routing_header,
            ring_full: self.ring_full + other.ring_full,
            last_icmp_ns: self.last_icmp_ns.max(other.last_icmp_ns),
            rejected_identity: self.rejected_identity + other.rejected_identity,
        }
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C), Copy, all-u64 fields, no padding (size asserted above).
unsafe impl aya::Pod for IfaceCounters {}
