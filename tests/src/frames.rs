//! Synthetic Ethernet frames for `BPF_PROG_TEST_RUN` and for forging replies on the wire.

use agent_common::checksum::internet_checksum;
use agent_common::probe::{ProbeHeader, msg};

/// What goes after the ICMP echo header.
#[derive(Clone, Debug)]
pub enum Payload {
    /// An ipmpd header (possibly altered).
    Probe(ProbeHeader),
    /// Raw bytes (someone else's ping, or a truncated header).
    Raw(Vec<u8>),
}

/// The interface `BPF_PROG_TEST_RUN` delivers XDP frames on (loopback): replies "arrive" there,
/// so the headers of valid ones name it.
pub const TEST_RUN_IFINDEX: u32 = 1;
/// The ICMP identifier of the frames built here; registered as the probe identity of
/// [`TEST_RUN_IFINDEX`] for a reply to count as ours.
pub const PROBE_ID: u16 = 0x4202;

/// A valid ipmpd header as a reply would carry it.
#[must_use]
pub fn probe_header() -> ProbeHeader {
    let mut h = ProbeHeader::new(msg::FAILURE_DETECTION, TEST_RUN_IFINDEX, 0, 1_000);
    h.kernel_tx_ns = 2_000u64.to_be();
    h.tag = 0x1234u64.to_be();
    h
}

/// How to build a frame.
#[derive(Clone, Debug)]
pub struct Frame {
    pub v6: bool,
    pub vlan: Option<u16>,
    /// IPv4 options (a multiple of 4 bytes).
    pub ipv4_options: Vec<u8>,
    /// IPv6 extension headers before ICMPv6: (next-header value of this header, its bytes).
    pub ipv6_ext: Vec<(u8, Vec<u8>)>,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub id: u16,
    pub seq: u16,
    pub payload: Payload,
}

impl Default for Frame {
    fn default() -> Self {
        Self {
            v6: false,
            vlan: None,
            ipv4_options: Vec::new(),
            ipv6_ext: Vec::new(),
            icmp_type: 0,
            icmp_code: 0,
            id: PROBE_ID,
            seq: 7,
            payload: Payload::Probe(probe_header()),
        }
    }
}

impl Frame {
    /// An echo reply carrying a valid ipmpd header.
    #[must_use]
    pub fn reply(v6: bool) -> Self {
        Self {
            v6,
            icmp_type: if v6 { 129 } else { 0 },
            ..Self::default()
        }
    }

    /// An echo request carrying a valid ipmpd header with a zero kernel time (what TC sees).
    #[must_use]
    pub fn request(v6: bool) -> Self {
        let mut h = probe_header();
        h.kernel_tx_ns = 0;
        Self {
            v6,
            icmp_type: if v6 { 128 } else { 8 },
            payload: Payload::Probe(h),
            ..Self::default()
        }
    }

    /// The ICMP message (header + payload) with a valid checksum.
    #[must_use]
    pub fn icmp(&self) -> Vec<u8> {
        let mut icmp = vec![self.icmp_type, self.icmp_code, 0, 0];
        icmp.extend(self.id.to_be_bytes());
        icmp.extend(self.seq.to_be_bytes());
        match &self.payload {
            Payload::Probe(h) => icmp.extend(h.to_bytes()),
            Payload::Raw(b) => icmp.extend(b),
        }
        let sum = if self.v6 {
            let mut pseudo = Vec::new();
            pseudo.extend(SRC6);
            pseudo.extend(DST6);
            pseudo.extend((icmp.len() as u32).to_be_bytes());
            pseudo.extend([0, 0, 0, 58]);
            pseudo.extend(&icmp);
            internet_checksum(&pseudo)
        } else {
            internet_checksum(&icmp)
        };
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        icmp
    }

    /// The whole Ethernet frame.
    #[must_use]
    pub fn bytes(&self) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];
        if let Some(v) = self.vlan {
            f.extend([0x81, 0x00]);
            f.extend(v.to_be_bytes());
        }
        let icmp = self.icmp();
        if self.v6 {
            f.extend([0x86, 0xdd]);
            let ext_len: usize = self.ipv6_ext.iter().map(|(_, b)| b.len()).sum();
            let first = self.ipv6_ext.first().map_or(58, |(n, _)| *n);
            f.extend([0x60, 0, 0, 0]);
            f.extend(((icmp.len() + ext_len) as u16).to_be_bytes());
            f.extend([first, 64]);
            f.extend(SRC6);
            f.extend(DST6);
            for (_, b) in &self.ipv6_ext {
                f.extend(b);
            }
        } else {
            f.extend([0x08, 0x00]);
            let ihl = 5 + self.ipv4_options.len() / 4;
            let total = (ihl * 4 + icmp.len()) as u16;
            let mut ip = vec![0x40 | ihl as u8, 0];
            ip.extend(total.to_be_bytes());
            ip.extend([0, 1, 0, 0, 64, 1, 0, 0]);
            ip.extend([192, 0, 2, 1]);
            ip.extend([192, 0, 2, 10]);
            ip.extend(&self.ipv4_options);
            let sum = internet_checksum(&ip);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            f.extend(ip);
        }
        f.extend(icmp);
        f
    }
}

/// Source of IPv6 test frames (fe80::1).
pub const SRC6: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// Destination of IPv6 test frames (fe80::2).
pub const DST6: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// An IPv6 extension header of 8 bytes whose next header is `next` (hop-by-hop / destination
/// options with PadN, or a routing header of type 0 with no segments left).
#[must_use]
pub fn ext8(next: u8) -> Vec<u8> {
    vec![next, 0, 1, 4, 0, 0, 0, 0]
}
