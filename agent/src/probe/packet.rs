//! Building ICMP / ICMPv6 echo requests that carry ipmpd's payload header.

use agent_common::probe::{ICMP_ECHO_HEADER_LEN, PROBE_HEADER_LEN, ProbeHeader};

/// Length of a probe as handed to a raw socket (ICMP header + payload header).
pub const PROBE_LEN: usize = ICMP_ECHO_HEADER_LEN + PROBE_HEADER_LEN;

const ICMP_ECHO_REQUEST: u8 = 8;
const ICMPV6_ECHO_REQUEST: u8 = 128;

/// Address family of a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Family {
    /// IPv4 / ICMP.
    Inet,
    /// IPv6 / ICMPv6.
    Inet6,
}

/// The bytes of an echo request for `header`.
///
/// IPv4: the ICMP checksum is computed here (raw IPv4 sockets send what they are given). IPv6: the
/// kernel computes the ICMPv6 checksum over its pseudo-header, so the field is left 0.
#[must_use]
pub fn echo_request(family: Family, id: u16, seq: u16, header: &ProbeHeader) -> [u8; PROBE_LEN] {
    let mut out = [0u8; PROBE_LEN];
    out[0] = match family {
        Family::Inet => ICMP_ECHO_REQUEST,
        Family::Inet6 => ICMPV6_ECHO_REQUEST,
    };
    out[4..6].copy_from_slice(&id.to_be_bytes());
    out[6..8].copy_from_slice(&seq.to_be_bytes());
    out[ICMP_ECHO_HEADER_LEN..].copy_from_slice(&header.to_bytes());
    if family == Family::Inet {
        let sum = internet_checksum(&out);
        out[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    out
}

pub use agent_common::checksum::internet_checksum;

#[cfg(test)]
mod tests {
    use agent_common::probe::msg;

    use super::*;

    #[test]
    fn ipv4_golden_and_checksum_valid() {
        let h = ProbeHeader::new(msg::FAILURE_DETECTION, 2, 0, 0x10);
        let p = echo_request(Family::Inet, 0x0102, 0x0003, &h);
        #[rustfmt::skip]
        assert_eq!(&p[..8], &[
            0x08, 0x00,  // echo request, code 0
            p[2], p[3],  // checksum (checked below)
            0x01, 0x02,  // id
            0x00, 0x03,  // sequence
        ]);
        assert_eq!(&p[8..12], b"IPMP");
        assert_eq!(
            internet_checksum(&p),
            0,
            "a packet with its checksum sums to zero"
        );
    }

    #[test]
    fn ipv6_leaves_checksum_to_kernel() {
        let h = ProbeHeader::new(msg::FAILURE_DETECTION, 2, 0, 0x10);
        let p = echo_request(Family::Inet6, 1, 1, &h);
        assert_eq!(p[0], 128);
        assert_eq!(&p[2..4], &[0, 0]);
    }

    #[test]
    fn checksum_known_answer() {
        // RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2, checksum 220d.
        assert_eq!(
            internet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
        assert_eq!(internet_checksum(&[0xff]), !0xff00);
    }
}
