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

const _: () = assert!(size_of::<ProbeReplyRecord>() == 80);

/// Bytes one [`ProbeReplyRecord`] takes in the ring buffer: the record and the kernel's 8-byte
/// header before it.
pub const PROBE_REPLY_SLOT_BYTES: usize = size_of::<ProbeReplyRecord>() + 8;

/// Queued bytes of replies from which XDP forces a wake-up of the reader: a quarter of the ring.
/// Tests and the datapath benchmark size their bursts from it (see [`WAKE_BACKLOG_RECORDS`]).
pub const WAKE_BACKLOG_BYTES: usize = crate::PROBE_REPLIES_BYTES / 4;

/// [`WAKE_BACKLOG_BYTES`] in whole reply records.
pub const WAKE_BACKLOG_RECORDS: usize = WAKE_BACKLOG_BYTES / PROBE_REPLY_SLOT_BYTES;

#[cfg(feature = "user")]
// SAFETY: repr(C), Copy, every bit pattern valid, no implicit padding (size asserted above).
unsafe impl aya::Pod for ProbeReplyRecord {}

/// One carrier change seen by the kernel hook (fentry on `netif_carrier_on/off`), handed to
/// userspace through its own ring buffer so the daemon learns of it at once rather than from
/// rtnetlink, which linkwatch delays by up to a second on real NICs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkRecord {
    /// `bpf_ktime_get_ns()` at the change (CLOCK_MONOTONIC).
    pub at_ns: u64,
    /// Interface whose carrier changed.
    pub ifindex: u32,
    /// 1 when carrier came up, 0 when it went away.
    pub carrier: u32,
    /// The hook's transition count for the interface after this change.
    pub flaps: u32,
    pub _pad: u32,
}

const _: () = assert!(size_of::<LinkRecord>() == 24);

#[cfg(feature = "user")]
// SAFETY: repr(C), Copy, integer fields only, no implicit padding (size asserted above).
unsafe impl aya::Pod for LinkRecord {}
