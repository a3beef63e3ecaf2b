//! The probe payload: the fixed header that follows the 8-byte ICMP/ICMPv6 echo header.
//!
//! Standard echo responders return the payload unchanged, so everything ipmpd needs to match and time a
//! reply travels inside it. All multi-byte fields are in network byte order on the wire; the struct
//! stores the raw wire values and the accessors convert, so a `ProbeHeader` can be copied straight
//! out of a packet on either side.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +---------------------------------------------------------------+
//! |                        magic "IPMP"                           |  0
//! +---------------+---------------+-------------------------------+
//! |    version    | checksum type |         message type          |  4
//! +---------------+---------------+-------------------------------+
//! |                 interface index (sender)                      |  8
//! +---------------------------------------------------------------+
//! |                          group id                             | 12
//! +---------------------------------------------------------------+
//! |             userspace send time (CLOCK_MONOTONIC ns)          | 16
//! |                                                               |
//! +---------------------------------------------------------------+
//! |     kernel transmit time (written by TC egress, 0 before)     | 24
//! |                                                               |
//! +---------------------------------------------------------------+
//! |        authentication tag (SipHash-2-4 for checksum type 1)   | 32
//! |                                                               |
//! +---------------------------------------------------------------+
//! ```

/// "IPMP" in ASCII.
pub const MAGIC: u32 = 0x4950_4d50;
/// The only header version this build speaks.
pub const VERSION: u8 = 1;
/// Checksum type 1: a SipHash-2-4 tag keyed with a per-start random key.
pub const CHECKSUM_SIPHASH24: u8 = 1;

/// Message types, with in.mpathd's values (`PROBE_UNI`, `PROBE_MULTI`, `PROBE_RTT`).
pub mod msg {
    /// Failure-detection probe to one unicast target (`PROBE_UNI`).
    pub const FAILURE_DETECTION: u16 = 0x1234;
    /// Target discovery through all-hosts multicast (`PROBE_MULTI`).
    pub const DISCOVERY: u16 = 0x5678;
    /// RTT-only probe sent between failure-detection probes when the group FDT was raised (`PROBE_RTT`).
    pub const RTT_ONLY: u16 = 0x9abc;
}

/// Length of the ICMP / ICMPv6 echo header that precedes the payload.
pub const ICMP_ECHO_HEADER_LEN: usize = 8;
/// Offset of the kernel transmit time inside [`ProbeHeader`].
pub const KERNEL_TX_OFFSET: usize = 24;

/// The probe payload header, as it is on the wire (network byte order).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeHeader {
    pub magic: u32,
    pub version: u8,
    pub checksum_type: u8,
    pub msg_type: u16,
    pub ifindex: u32,
    pub group_id: u32,
    pub send_time_ns: u64,
    pub kernel_tx_ns: u64,
    pub tag: u64,
}

const _: () = assert!(size_of::<ProbeHeader>() == 40);
const _: () = assert!(core::mem::offset_of!(ProbeHeader, kernel_tx_ns) == KERNEL_TX_OFFSET);
const _: () = assert!(core::mem::offset_of!(ProbeHeader, tag) == 32);

/// Length of [`ProbeHeader`] on the wire.
pub const PROBE_HEADER_LEN: usize = size_of::<ProbeHeader>();

impl ProbeHeader {
    /// A header with host-order values converted to the wire; kernel transmit time and tag are 0.
    #[must_use]
    pub const fn new(msg_type: u16, ifindex: u32, group_id: u32, send_time_ns: u64) -> Self {
        Self {
            magic: MAGIC.to_be(),
            version: VERSION,
            checksum_type: CHECKSUM_SIPHASH24,
            msg_type: msg_type.to_be(),
            ifindex: ifindex.to_be(),
            group_id: group_id.to_be(),
            send_time_ns: send_time_ns.to_be(),
            kernel_tx_ns: 0,
            tag: 0,
        }
    }

    /// Magic in host order.
    #[must_use]
    pub const fn magic(&self) -> u32 {
        u32::from_be(self.magic)
    }
    /// Message type in host order.
    #[must_use]
    pub const fn msg_type(&self) -> u16 {
        u16::from_be(self.msg_type)
    }
    /// Sender interface index in host order.
    #[must_use]
    pub const fn ifindex(&self) -> u32 {
        u32::from_be(self.ifindex)
    }
    /// Group id in host order.
    #[must_use]
    pub const fn group_id(&self) -> u32 {
        u32::from_be(self.group_id)
    }
    /// Userspace send time in host order.
    #[must_use]
    pub const fn send_time_ns(&self) -> u64 {
        u64::from_be(self.send_time_ns)
    }
    /// Kernel transmit time in host order (0 when TC egress did not see the probe).
    #[must_use]
    pub const fn kernel_tx_ns(&self) -> u64 {
        u64::from_be(self.kernel_tx_ns)
    }
    /// Authentication tag in host order.
    #[must_use]
    pub const fn tag(&self) -> u64 {
        u64::from_be(self.tag)
    }

    /// The bytes the authentication tag covers: everything userspace writes that identifies the
    /// probe (ICMP id and sequence, interface, group, send time, message type). The kernel transmit
    /// time is left out because TC writes it after the tag was computed.
    #[must_use]
    pub fn tagged_bytes(&self, icmp_id: u16, icmp_seq: u16) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[0..2].copy_from_slice(&icmp_id.to_be_bytes());
        out[2..4].copy_from_slice(&icmp_seq.to_be_bytes());
        out[4..8].copy_from_slice(&self.ifindex().to_be_bytes());
        out[8..12].copy_from_slice(&self.group_id().to_be_bytes());
        out[12..20].copy_from_slice(&self.send_time_ns().to_be_bytes());
        out[20..22].copy_from_slice(&self.msg_type().to_be_bytes());
        out[22] = self.version;
        out[23] = self.checksum_type;
        out
    }

    /// The header as wire bytes.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; PROBE_HEADER_LEN] {
        let mut out = [0u8; PROBE_HEADER_LEN];
        out[0..4].copy_from_slice(&self.magic.to_ne_bytes());
        out[4] = self.version;
        out[5] = self.checksum_type;
        out[6..8].copy_from_slice(&self.msg_type.to_ne_bytes());
        out[8..12].copy_from_slice(&self.ifindex.to_ne_bytes());
        out[12..16].copy_from_slice(&self.group_id.to_ne_bytes());
        out[16..24].copy_from_slice(&self.send_time_ns.to_ne_bytes());
        out[24..32].copy_from_slice(&self.kernel_tx_ns.to_ne_bytes());
        out[32..40].copy_from_slice(&self.tag.to_ne_bytes());
        out
    }

    /// Reads a header from wire bytes; `None` when fewer than [`PROBE_HEADER_LEN`] bytes are given.
    #[must_use]
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < PROBE_HEADER_LEN {
            return None;
        }
        let u32_at = |at: usize| {
            u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_ne_bytes(b)
        };
        Some(Self {
            magic: u32_at(0),
            version: bytes[4],
            checksum_type: bytes[5],
            msg_type: u16::from_ne_bytes([bytes[6], bytes[7]]),
            ifindex: u32_at(8),
            group_id: u32_at(12),
            send_time_ns: u64_at(16),
            kernel_tx_ns: u64_at(24),
            tag: u64_at(32),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_bytes() {
        let mut h = ProbeHeader::new(
            msg::FAILURE_DETECTION,
            7,
            0x0102_0304,
            0x1122_3344_5566_7788,
        );
        h.tag = 0xaabb_ccdd_eeff_0011_u64.to_be();
        #[rustfmt::skip]
        let expected: [u8; 40] = [
            0x49, 0x50, 0x4d, 0x50,                         // magic "IPMP"
            0x01,                                           // version 1
            0x01,                                           // checksum type 1 (SipHash-2-4)
            0x12, 0x34,                                     // message type PROBE_UNI
            0x00, 0x00, 0x00, 0x07,                         // ifindex 7
            0x01, 0x02, 0x03, 0x04,                         // group id
            0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, // send time
            0, 0, 0, 0, 0, 0, 0, 0,                         // kernel tx time (TC fills)
            0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11, // tag
        ];
        assert_eq!(h.to_bytes(), expected);
        assert_eq!(ProbeHeader::from_bytes(&expected), Some(h));
        assert_eq!(h.magic(), MAGIC);
        assert_eq!(h.ifindex(), 7);
        assert_eq!(h.send_time_ns(), 0x1122_3344_5566_7788);
        assert_eq!(h.tag(), 0xaabb_ccdd_eeff_0011);
    }

    #[test]
    fn short_input_is_rejected() {
        for len in 0..PROBE_HEADER_LEN {
            assert_eq!(
                ProbeHeader::from_bytes(&[0u8; PROBE_HEADER_LEN][..len]),
                None
            );
        }
    }

    #[test]
    fn tagged_bytes_exclude_kernel_time() {
        let a = ProbeHeader::new(msg::FAILURE_DETECTION, 3, 9, 1000);
        let mut b = a;
        b.kernel_tx_ns = 12345u64.to_be();
        assert_eq!(a.tagged_bytes(1, 2), b.tagged_bytes(1, 2));
        assert_ne!(a.tagged_bytes(1, 2), a.tagged_bytes(1, 3));
    }
}
