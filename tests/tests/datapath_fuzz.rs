//! The kernel programs fed every one-bit mutation of genuine frames and many random and randomly
//! mutated ones through BPF_PROG_TEST_RUN. Properties: the XDP program queues a frame only if it
//! is a genuine probe reply of the identity registered for the interface (as an independent
//! parser below reads it), with a record that says what the frame says; the TC ingress reply
//! program judges every frame as the XDP program does (consumes what XDP drops, queues the same
//! record); the TC egress program changes a frame only if it is a probe request, and then only its
//! kernel transmit time and checksum.

mod programs;

use agent_common::probe::{CHECKSUM_SIPHASH24, MAGIC, ProbeHeader, VERSION};
use programs::{Programs, TC_ACT_SHOT, XDP_DROP};
use tests::frames::{Frame, PROBE_ID, TEST_RUN_IFINDEX, ext8};

/// Where the ICMP header of an ipmpd echo of `icmp_type` (IPv4) or `icmp6_type` starts, as the
/// rules say: Ethernet, at most one 802.1Q/802.1ad tag, IPv4 (IHL >= 5, not a fragment) or IPv6
/// (hop-by-hop and destination options before ICMPv6), the echo of that type with code 0.
fn echo_at(f: &[u8], icmp_type: u8, icmp6_type: u8) -> Option<usize> {
    let be16 = |o: usize| Some(u16::from_be_bytes(f.get(o..o + 2)?.try_into().ok()?));
    let (mut ethertype, mut l3) = (be16(12)?, 14);
    if ethertype == 0x8100 || ethertype == 0x88a8 {
        ethertype = be16(16)?;
        l3 = 18;
    }
    let (at, want) = match ethertype {
        0x0800 => {
            let vihl = *f.get(l3)?;
            let fragment = be16(l3 + 6)? & 0x3fff != 0;
            if vihl >> 4 != 4 || vihl & 0xf < 5 || fragment || *f.get(l3 + 9)? != 1 {
                return None;
            }
            (l3 + usize::from(vihl & 0xf) * 4, icmp_type)
        }
        0x86dd => {
            if f.get(l3)? >> 4 != 6 {
                return None;
            }
            let (mut next, mut at) = (*f.get(l3 + 6)?, l3 + 40);
            for _ in 0..8 {
                match next {
                    58 => break,
                    0 | 60 => {
                        next = *f.get(at)?;
                        at += (usize::from(*f.get(at + 1)?) + 1) * 8;
                    }
                    _ => return None,
                }
            }
            if next != 58 {
                return None;
            }
            (at, icmp6_type)
        }
        _ => return None,
    };
    (*f.get(at)? == want && *f.get(at + 1)? == 0).then_some(at)
}

/// The ipmpd header after the ICMP echo header at `icmp`, if it is one of this version.
fn header_at(f: &[u8], icmp: usize) -> Option<ProbeHeader> {
    let h = ProbeHeader::from_bytes(f.get(icmp + 8..)?)?;
    (h.magic() == MAGIC && h.version == VERSION && h.checksum_type == CHECKSUM_SIPHASH24)
        .then_some(h)
}

/// A genuine reply for the registered identity on the test interface: (id, seq, header).
fn genuine_reply(f: &[u8]) -> Option<(u16, u16, ProbeHeader)> {
    let icmp = echo_at(f, 0, 129)?;
    let h = header_at(f, icmp)?;
    let id = u16::from_be_bytes([*f.get(icmp + 4)?, *f.get(icmp + 5)?]);
    let seq = u16::from_be_bytes([*f.get(icmp + 6)?, *f.get(icmp + 7)?]);
    (id == PROBE_ID && u32::from_be(h.ifindex) == TEST_RUN_IFINDEX).then_some((id, seq, h))
}

/// What a reply program made of one frame: whether it consumed it, and the (id, seq, header) of
/// the record it queued.
type Judgement = (bool, Option<(u16, u16, ProbeHeader)>);

/// The record queued for `frame` since the last look, checked against the property.
fn queued(p: &mut Programs, frame: &[u8]) -> Option<(u16, u16, ProbeHeader)> {
    let records = p.records();
    assert!(records.len() <= 1, "one frame, one record at most");
    let r = records.first()?;
    let Some((id, seq, h)) = genuine_reply(frame) else {
        panic!("queued a frame that is no genuine reply: {frame:02x?}");
    };
    assert_eq!(
        (r.icmp_id, r.icmp_seq, r.header),
        (id, seq, h),
        "the record says what the frame says: {frame:02x?}"
    );
    Some((id, seq, h))
}

/// Runs `frame` through XDP and checks the property; what XDP made of it.
fn check_xdp(p: &mut Programs, frame: &[u8]) -> Judgement {
    let consumed = p.xdp(frame) == XDP_DROP;
    (consumed, queued(p, frame))
}

/// Runs `frame` through the TC ingress reply program, which must judge it as XDP did (`xdp`);
/// false when the kernel would not run the program on it (nothing to judge).
fn check_tc_reply(p: &mut Programs, frame: &[u8], xdp: &Judgement) -> bool {
    let Ok(verdict) = p.try_tc_reply(frame) else {
        return false;
    };
    let judged = (verdict == TC_ACT_SHOT, queued(p, frame));
    assert_eq!(&judged, xdp, "TC ingress judges as XDP: {frame:02x?}");
    true
}

/// Runs `frame` through both reply programs and the TC egress program, checking each property:
/// (whether XDP queued it, how many of the two TC programs the kernel would not run on it).
fn check_all(p: &mut Programs, frame: &[u8]) -> (bool, usize) {
    let xdp = check_xdp(p, frame);
    let refused = usize::from(!check_tc_reply(p, frame, &xdp)) + usize::from(!check_tc(p, frame));
    (xdp.1.is_some(), refused)
}

/// Runs `frame` through TC and checks the property; false when the kernel would not run the
/// program on it at all (BPF_PROG_TEST_RUN refuses some malformed skbs: nothing to judge).
fn check_tc(p: &mut Programs, frame: &[u8]) -> bool {
    let Ok((_, out)) = p.try_tc(frame) else {
        return false;
    };
    if out == frame {
        return true;
    }
    let icmp = echo_at(frame, 8, 128)
        .filter(|&at| header_at(frame, at).is_some())
        .unwrap_or_else(|| panic!("TC changed a frame that is no probe: {frame:02x?}"));
    assert_eq!(out.len(), frame.len(), "TC never resizes");
    let stamp = icmp + 8 + 24..icmp + 8 + 32;
    let checksum = icmp + 2..icmp + 4;
    for (i, (a, b)) in frame.iter().zip(&out).enumerate() {
        assert!(
            a == b || stamp.contains(&i) || checksum.contains(&i),
            "TC changed byte {i} of a probe: {frame:02x?}"
        );
    }
    true
}

/// The frames every mutation starts from.
fn bases() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for v6 in [false, true] {
        for vlan in [None, Some(9)] {
            out.push(
                Frame {
                    vlan,
                    ..Frame::reply(v6)
                }
                .bytes(),
            );
            out.push(
                Frame {
                    vlan,
                    ..Frame::request(v6)
                }
                .bytes(),
            );
        }
    }
    out.push(
        Frame {
            ipv4_options: vec![1, 1, 1, 0],
            ..Frame::reply(false)
        }
        .bytes(),
    );
    out.push(
        Frame {
            ipv6_ext: vec![(0, ext8(60)), (60, ext8(58))],
            ..Frame::reply(true)
        }
        .bytes(),
    );
    out
}

/// xorshift64: the same "random" frames on every run, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn every_bit_flipped_in_genuine_frames_is_judged_right() {
    if !tests::privileged() {
        return;
    }
    let mut p = Programs::load();
    let (mut runs, mut queued, mut refused) = (0, 0, 0);
    for base in bases() {
        assert_eq!(
            check_all(&mut p, &base),
            (genuine_reply(&base).is_some(), 0),
            "the unmutated frame"
        );
        for byte in 0..base.len() {
            for bit in 0..8 {
                let mut f = base.clone();
                f[byte] ^= 1 << bit;
                let (q, r) = check_all(&mut p, &f);
                queued += usize::from(q);
                refused += r;
                runs += 1;
            }
        }
    }
    println!(
        "{runs} one-bit mutations, {queued} still genuine replies and queued; the kernel ran both TC programs on all but {refused} runs of {}",
        2 * runs
    );
    assert!(
        queued > 0,
        "flips of bytes that do not matter keep a reply genuine"
    );
}

#[test]
fn random_and_randomly_mutated_frames_never_queue_anything_but_genuine_replies() {
    if !tests::privileged() {
        return;
    }
    let mut p = Programs::load();
    let bases = bases();
    let mut rng = Rng(0x1d0d_2026_1129);
    let rounds = 20_000;
    let (mut queued, mut refused) = (0, 0);
    for i in 0..rounds {
        let frame = if i % 4 == 0 {
            // Random bytes of a random length, with an IP or 802.1Q ethertype most of the time.
            let len = 14 + rng.below(200);
            let mut f: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let ethertypes: [[u8; 2]; 4] = [[8, 0], [0x86, 0xdd], [0x81, 0], [0x88, 0xa8]];
            f[12..14].copy_from_slice(&ethertypes[rng.below(4)]);
            f
        } else {
            // A genuine frame with 1 to 4 bytes set to random values, maybe cut short.
            let mut f = bases[rng.below(bases.len())].clone();
            for _ in 0..=rng.below(4) {
                let at = rng.below(f.len());
                f[at] = rng.next() as u8;
            }
            if rng.below(8) == 0 {
                f.truncate(14 + rng.below(f.len() - 14));
            }
            f
        };
        let (q, r) = check_all(&mut p, &frame);
        queued += usize::from(q);
        refused += r;
    }
    println!(
        "{rounds} random frames, {queued} genuine replies among them, all others refused; the kernel ran both TC programs on all but {refused} runs of {}",
        2 * rounds
    );
    assert!(refused < 2 * rounds / 10, "TC judged on most frames");
    // Changes to bytes no check reads leave genuine replies, so some frames must be queued: a
    // program that queued nothing would pass the property above trivially.
    assert!(
        queued > 0,
        "no genuine reply among {rounds} frames was queued"
    );
}
