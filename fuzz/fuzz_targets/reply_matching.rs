//! The engine's reply matching against an on-link host that may answer anything: probes are sent
//! as time passes, and replies arrive that are genuine, altered (sequence, send time, source) or
//! made up. Property: a reply is accepted only for a probe the engine sent, from the address it
//! was sent to, carrying the send time it was sent with, and at most once; an RTT or discovery
//! reply only for such a probe in flight. Nothing forged counts as an answer.
#![no_main]

use std::{collections::HashSet, net::IpAddr};

use ipmpd::engine::{Engine, EngineConfig, MemberSpec, Output};
use libfuzzer_sys::fuzz_target;

const MS: u64 = 1_000_000;

#[derive(Default)]
struct Sent {
    /// (interface, seq, target, send time) of every failure-detection probe.
    probes: Vec<(String, u16, IpAddr, u64)>,
    acked: HashSet<(String, u16, u64)>,
    rtt: HashSet<(String, u64)>,
    discovery: HashSet<(String, u64)>,
}

impl Sent {
    fn record(&mut self, out: Vec<Output>) {
        for o in out {
            match o {
                Output::SendProbe { ifname, target, seq, sent_ns, .. } => {
                    self.probes.push((ifname.to_string(), seq, target, sent_ns));
                }
                Output::SendRttProbe { ifname, sent_ns, .. } => {
                    self.rtt.insert((ifname.to_string(), sent_ns));
                }
                Output::SendDiscovery { ifname, sent_ns, .. } => {
                    self.discovery.insert((ifname.to_string(), sent_ns));
                }
                _ => {}
            }
        }
    }
}

fn u16_of(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u64_of(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default())
}

fuzz_target!(|data: &[u8]| {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let (router, other, stranger) = (ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.77"));
    let mut e = Engine::new(EngineConfig {
        user_fdt_ns: 10_000 * MS,
        failback: true,
        seed: 7,
    });
    e.add_group("g", Some(100 * MS));
    let mut now = 1_000 * MS;
    let mut sent = Sent::default();
    for (name, addr, targets) in [
        ("h0", "192.0.2.10", vec![router, other]),
        ("h1", "192.0.2.11", vec![]),
    ] {
        let spec = MemberSpec {
            ifname: name.into(),
            group: "g".into(),
            standby: false,
            test_addrs: vec![ip(addr)],
            targets,
        };
        sent.record(e.add_member(&spec, true, now));
    }
    for op in data.chunks_exact(16) {
        let ifname = if op[1] & 1 == 0 { "h0" } else { "h1" };
        let from = [router, other, stranger][usize::from(op[1] >> 1) % 3];
        match op[0] % 5 {
            0 => {
                now += (u64::from(op[2]) + 1) * MS;
                sent.record(e.tick(now));
            }
            1 if !sent.probes.is_empty() => {
                // A genuine probe's reply, maybe altered in one way or another.
                let (name, seq, target, at) =
                    sent.probes[usize::from(u16_of(op, 2)) % sent.probes.len()].clone();
                let seq = if op[4] & 1 != 0 { seq ^ u16_of(op, 5) } else { seq };
                let at = if op[4] & 2 != 0 { at ^ u64_of(op, 8) } else { at };
                let from = if op[4] & 4 != 0 { from } else { target };
                if let Ok(out) = e.probe_reply(name.as_str(), seq, from, at, MS, now) {
                    let genuine = sent
                        .probes
                        .iter()
                        .any(|p| p.0 == name && p.1 == seq && p.2 == from && p.3 == at);
                    assert!(genuine, "accepted {name} seq {seq} from {from} sent {at}");
                    assert!(sent.acked.insert((name, seq, at)), "accepted twice");
                    sent.record(out);
                }
            }
            2 => {
                let (seq, at) = (u16_of(op, 2), u64_of(op, 4));
                if let Ok(out) = e.probe_reply(ifname, seq, from, at, MS, now) {
                    let genuine = sent
                        .probes
                        .iter()
                        .any(|p| p.0 == ifname && p.1 == seq && p.2 == from && p.3 == at);
                    assert!(genuine, "made-up reply accepted");
                    assert!(sent.acked.insert((ifname.into(), seq, at)));
                    sent.record(out);
                }
            }
            3 => {
                let at = u64_of(op, 4);
                if let Ok(out) = e.rtt_reply(ifname, from, at, MS, now) {
                    assert!(sent.rtt.contains(&(ifname.into(), at)), "RTT reply to nothing");
                    sent.record(out);
                }
            }
            _ => {
                let at = if op[2] & 1 != 0 {
                    sent.discovery.iter().next().map_or(0, |d| d.1)
                } else {
                    u64_of(op, 4)
                };
                if let Ok(out) = e.discovered(ifname, from, at, now) {
                    assert!(
                        sent.discovery.contains(&(ifname.into(), at)),
                        "discovery reply to nothing"
                    );
                    sent.record(out);
                }
            }
        }
    }
});
