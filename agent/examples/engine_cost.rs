//! The engine's own CPU per probe, with no sockets, programs or kernel: 1,024 members in groups
//! of two, driven as the daemon drives them (a tick at each deadline, the replies queued since
//! the last wake-up read first), each probe answered after 50 µs. What the scale section
//! measures includes the kernel's send path; this is the engine's share alone, to compare one
//! build with another or replies by name with replies by key. The harness's own work (reading a
//! member's number from its name, queueing each reply) is timed with it, and no member is removed,
//! so kept keys never go stale: the best case for keys.
//!
//! `cargo run --release -p agent --example engine_cost [FDT_MS ...]` (default 1000 and 100).
//! Prints, per FDT and way of naming the interface, the median and the slowest of eleven rounds
//! of 10 simulated seconds, in nanoseconds of thread CPU per probe sent, and the ratio of the
//! two ways in neighbouring rounds.

use std::{
    collections::VecDeque,
    net::{IpAddr, Ipv4Addr},
};

use ipmpd::engine::{Engine, EngineConfig, IfKey, Iface, MemberSpec, Output};

const MEMBERS: usize = 1_024;
const ROUNDS: usize = 11;
const MS: u64 = 1_000_000;
const REPLY_AFTER_NS: u64 = 50_000;
/// Past the start-up quiet period before measuring.
const WARM_UP_NS: u64 = 5_000 * MS;
const MEASURED_NS: u64 = 10_000 * MS;

/// A reply on its way: arrival, member, failure-detection sequence (`None`: RTT-only), target,
/// tagged send time.
type InFlight = (u64, usize, Option<u16>, IpAddr, u64);

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill; the clock id is a constant.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

struct World {
    engine: Engine,
    names: Vec<String>,
    keys: Vec<Option<IfKey>>,
    by_key: bool,
    /// In arrival order: every reply takes the same time.
    in_flight: VecDeque<InFlight>,
    sent: u64,
    now: u64,
}

impl World {
    fn new(fdt_ms: u64, by_key: bool) -> Self {
        let mut engine = Engine::new(EngineConfig {
            user_fdt_ns: fdt_ms * MS,
            failback: true,
            seed: 7,
        });
        let names: Vec<String> = (0..MEMBERS).map(|i| format!("m{i}")).collect();
        for (i, name) in names.iter().enumerate() {
            let spec = MemberSpec {
                ifname: name.clone(),
                group: format!("g{}", i / 2),
                standby: false,
                test_addrs: vec![IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1))],
                targets: vec![IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1))],
            };
            let _ = engine.add_member(&spec, true, 0);
        }
        Self {
            engine,
            keys: vec![None; names.len()],
            names,
            by_key,
            in_flight: VecDeque::new(),
            sent: 0,
            now: 0,
        }
    }

    fn member(&self, ifname: &str) -> usize {
        ifname[1..].parse().expect("members are m0, m1, ...")
    }

    /// Takes a wake-up's outputs and gives the emptied list back, as the daemon's dispatch does.
    fn absorb(&mut self, mut out: Vec<Output>, now: u64) {
        for o in out.drain(..) {
            let (ifname, seq, target, sent_ns): (&str, _, _, _) = match &o {
                Output::SendProbe {
                    ifname,
                    target,
                    seq,
                    sent_ns,
                    ..
                } => (ifname.as_ref(), Some(*seq), *target, *sent_ns),
                Output::SendRttProbe {
                    ifname,
                    target,
                    sent_ns,
                    ..
                } => (ifname.as_ref(), None, *target, *sent_ns),
                _ => continue,
            };
            self.sent += 1;
            let m = self.member(ifname);
            self.in_flight
                .push_back((now + REPLY_AFTER_NS, m, seq, target, sent_ns));
        }
        self.engine.recycle(out);
    }

    /// The key kept for member `m` with `by_key` (a fresh one when it went stale), as the daemon
    /// keeps one per member; `None`: replies name it.
    fn key(&mut self, m: usize) -> Option<IfKey> {
        if !self.by_key {
            return None;
        }
        let key = self.engine.key_again(self.keys[m], &self.names[m]);
        self.keys[m] = key;
        key
    }

    /// One wake-up at `now`: the replies arrived by then, then the tick.
    fn wake(&mut self, now: u64) {
        while let Some(&(at, m, seq, target, sent_ns)) = self.in_flight.front() {
            if at > now {
                break;
            }
            self.in_flight.pop_front();
            let key = self.key(m);
            let who = key.map_or(Iface::Name(&self.names[m]), Iface::Key);
            let result = match seq {
                Some(seq) => {
                    self.engine
                        .probe_reply(who, seq, target, sent_ns, REPLY_AFTER_NS, now)
                }
                None => self
                    .engine
                    .rtt_reply(who, target, sent_ns, REPLY_AFTER_NS, now),
            };
            if let Ok(out) = result {
                self.absorb(out, now);
            }
        }
        let out = self.engine.tick(now);
        self.absorb(out, now);
    }

    /// Runs until `end`, waking at each deadline of the engine.
    fn run_until(&mut self, end: u64) {
        while let Some(due) = self.engine.next_deadline() {
            if due > end {
                break;
            }
            self.now = due.max(self.now);
            self.wake(self.now);
        }
    }
}

fn main() {
    let fdts: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("FDTs in milliseconds"))
        .collect();
    let fdts = if fdts.is_empty() {
        vec![1000, 100]
    } else {
        fdts
    };
    for fdt_ms in fdts {
        // The two ways alternate round by round: the machine's speed drifts between runs by
        // more than what separates them, and less between neighbouring rounds.
        let mut per_probe = [Vec::new(), Vec::new()];
        for round in 0..ROUNDS {
            // Which way goes first alternates too.
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for way in order {
                let by_key = way == 1;
                let mut w = World::new(fdt_ms, by_key);
                w.run_until(WARM_UP_NS);
                let (cpu0, sent0) = (thread_cpu_ns(), w.sent);
                w.run_until(WARM_UP_NS + MEASURED_NS);
                let probes = (w.sent - sent0).max(1);
                per_probe[way].push((thread_cpu_ns() - cpu0) as f64 / probes as f64);
            }
        }
        let mut ratios: Vec<f64> = per_probe[1]
            .iter()
            .zip(&per_probe[0])
            .map(|(k, n)| k / n)
            .collect();
        for (way, mut v) in per_probe.into_iter().enumerate() {
            v.sort_by(f64::total_cmp);
            println!(
                "FDT {fdt_ms} ms, replies by {}: median {:.0} ns per probe, slowest {:.0} ({ROUNDS} rounds of {} s at {MEMBERS} members)",
                ["name", "key"][way],
                v[ROUNDS / 2],
                v[ROUNDS - 1],
                MEASURED_NS / 1_000_000_000,
            );
        }
        ratios.sort_by(f64::total_cmp);
        println!(
            "FDT {fdt_ms} ms, by key / by name in neighbouring rounds: median {:.2}, range {:.2}-{:.2}",
            ratios[ROUNDS / 2],
            ratios[0],
            ratios[ROUNDS - 1]
        );
    }
}
