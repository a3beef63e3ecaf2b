//! The record XDP hands to userspace through the ring buffer for each accepted probe reply.

use crate::probe::ProbeHeader;

/// Address family of a reply: IPv4.
pub const FAMILY_INET: u8 = 4;
/// Address family of a reply: IPv6.
pub const FAMILY_INET6: u8 = 6;

/// One probe reply, as seen by XDP on the receiving interface.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeReplyRecord {
    /// `bpf_ktime_get_ns()` when XDP saw the reply (CLOCK_MONOTONIC).
    pub rx_ns: u64,
    /// The payload header exactly as it came back (wire byte order).
    pub header: ProbeHeader,
    /// Interface the reply arrived on.
    pub rx_ifindex: u32,
    /// ICMP identifier, host order.
    pub icmp_id: u16,
    /// ICMP sequence number, host order.
    pub icmp_seq: u16,
    /// Source address of the reply; IPv4 in the first 4 bytes.
    pub src_addr: [u8; 16],
    /// [`FAMILY_INET`] or [`FAMILY_INET6`].
    pub family: u8,
    /// 1 when the reply carried an 802.1Q/802.1ad tag.
    pub vlan_tagged: u8,
    /// VLAN id when tagged, host order.
    pub vlan_id: u16,
    /// IPv4 TTL or IPv6 hop limit of the reply.
    pub hop_limit: u8,
    pub _pad: [u8; 3],
}

const _: () = assert!(core::mem::size_of::<ProbeReplyRecord>() == 80);

#[cfg(feature = "user")]
// SAFETY: repr(C), Copy, every bit pattern valid, no implicit padding (size asserted above).
unsafe impl aya::Pod for ProbeReplyRecord {}
