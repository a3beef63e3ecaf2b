//! The kernel programs on synthetic frames through BPF_PROG_TEST_RUN: no interface needed.

use agent_common::{
    checksum::internet_checksum,
    probe::{PROBE_HEADER_LEN, ProbeHeader},
};
use tests::frames::{Frame, PROBE_ID, Payload, TEST_RUN_IFINDEX, ext8, probe_header};

use std::time::{Duration, Instant};

mod programs;

use programs::{Programs, XDP_DROP, XDP_PASS};

fn load() -> Option<Programs> {
    tests::privileged().then(Programs::load)
}

#[test]
fn good_replies_are_consumed_and_recorded() {
    let Some(mut p) = load() else { return };
    let cases: Vec<(&str, Frame)> = vec![
        ("ipv4", Frame::reply(false)),
        ("ipv6", Frame::reply(true)),
        (
            "ipv4 behind 802.1Q",
            Frame {
                vlan: Some(42),
                ..Frame::reply(false)
            },
        ),
        (
            "ipv6 behind 802.1Q",
            Frame {
                vlan: Some(7),
                ..Frame::reply(true)
            },
        ),
        (
            "ipv4 with options",
            Frame {
                ipv4_options: vec![1, 1, 1, 0, 7, 4, 4, 0],
                ..Frame::reply(false)
            },
        ),
        (
            "ipv6 with hop-by-hop",
            Frame {
                ipv6_ext: vec![(0, ext8(58))],
                ..Frame::reply(true)
            },
        ),
        (
            "ipv6 with hop-by-hop + dest options",
            Frame {
                ipv6_ext: vec![(0, ext8(60)), (60, ext8(58))],
                ..Frame::reply(true)
            },
        ),
    ];
    for (name, frame) in cases {
        assert_eq!(
            p.xdp(&frame.bytes()),
            XDP_DROP,
            "{name}: a valid reply is consumed"
        );
        let recs = p.records();
        assert_eq!(recs.len(), 1, "{name}: one record");
        let r = recs[0];
        assert_eq!(r.header, probe_header(), "{name}: header copied unchanged");
        assert_eq!((r.icmp_id, r.icmp_seq), (0x4202, 7), "{name}");
        assert_eq!(r.vlan_tagged != 0, frame.vlan.is_some(), "{name}");
        assert_eq!(r.vlan_id, frame.vlan.unwrap_or(0), "{name}");
        assert!(r.rx_ns > 0, "{name}: receive time stamped");
        assert_eq!(r.hop_limit, 64);
        if frame.v6 {
            assert_eq!(r.src_addr, tests::frames::SRC6, "{name}");
        } else {
            assert_eq!(&r.src_addr[..4], &[192, 0, 2, 1], "{name}");
        }
    }
    let c = p.counters();
    assert_eq!(c.probe_replies, 7);
    assert!(c.last_icmp_ns > 0);
}

#[test]
fn invalid_replies_pass_and_are_counted_by_reason() {
    let Some(mut p) = load() else { return };
    let with = |f: fn(&mut ProbeHeader)| {
        let mut h = probe_header();
        f(&mut h);
        Frame {
            payload: Payload::Probe(h),
            ..Frame::reply(false)
        }
    };
    let wrong_magic = with(|h| h.magic = 0xdead_beef_u32.to_be());
    let bad_version = with(|h| h.version = 2);
    let bad_cksum = with(|h| h.checksum_type = 9);
    let mut short = probe_header().to_bytes().to_vec();
    short.truncate(PROBE_HEADER_LEN - 1);
    let truncated = Frame {
        payload: Payload::Raw(short),
        ..Frame::reply(false)
    };
    let routing = Frame {
        ipv6_ext: vec![(43, ext8(58))],
        ..Frame::reply(true)
    };
    for f in [&wrong_magic, &bad_version, &bad_cksum, &truncated, &routing] {
        assert_eq!(p.xdp(&f.bytes()), XDP_PASS);
    }
    assert_eq!(p.records().len(), 0, "nothing invalid reaches userspace");
    let c = p.counters();
    assert_eq!(
        (
            c.rejected_magic,
            c.rejected_version,
            c.rejected_checksum_type,
            c.rejected_truncated,
            c.rejected_routing_header
        ),
        (1, 1, 1, 1, 1)
    );
    assert_eq!(c.probe_replies, 0);
}

/// Whether thread `tid` of this process is asleep (state S in its stat line).
fn asleep(tid: libc::pid_t) -> bool {
    tests::procstat::Stat::read(format!("/proc/self/task/{tid}/stat"))
        .is_some_and(|s| s.state() == 'S')
}

/// How long a reader blocked in poll(2) on the ring buffer waited while XDP queued `replies`
/// good replies, with the interface's `PROBE_IDS` value `value`.
fn reader_wait(p: &mut Programs, value: u32, replies: u32, limit: Duration) -> Duration {
    use std::os::fd::{AsFd as _, AsRawFd as _};
    p.set_probe_ids_value(value);
    let fd = p.ring.as_fd().as_raw_fd();
    let (tid_tx, tid) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: gettid has no preconditions.
        tid_tx.send(unsafe { libc::gettid() }).unwrap();
        let t0 = Instant::now();
        // SAFETY: one valid pollfd; the descriptor outlives the thread (joined below).
        let n = unsafe { libc::poll(&raw mut pfd, 1, limit.as_millis() as libc::c_int) };
        assert_eq!(n, 1, "the ring is readable by the end of the wait");
        t0.elapsed()
    });
    // The replies are queued once the reader sleeps in poll(2) (a slow VM may take a while).
    let tid = tid.recv().unwrap();
    let t0 = Instant::now();
    while !asleep(tid) && t0.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(asleep(tid), "the reader went to sleep in poll(2)");
    assert_eq!(
        p.xdp_repeat(&Frame::reply(false).bytes(), replies),
        XDP_DROP
    );
    let waited = reader.join().unwrap();
    assert_eq!(p.records().len(), replies as usize, "every reply is queued");
    waited
}

#[test]
fn a_reply_wakes_the_reader_only_when_its_interface_asks_or_the_backlog_grows() {
    let Some(mut p) = load() else { return };
    let limit = Duration::from_secs(4);
    let quiet_value = u32::from(PROBE_ID);
    let quiet = reader_wait(&mut p, quiet_value, 1, limit);
    let woken = reader_wait(&mut p, agent_common::probe_id(PROBE_ID, true), 1, limit);
    // Enough silent replies to fill a quarter of the ring.
    let backlog = (agent_common::record::WAKE_BACKLOG_RECORDS + 2) as u32;
    let flooded = reader_wait(&mut p, quiet_value, backlog, limit);
    assert!(
        quiet >= limit - Duration::from_millis(100),
        "without the wake bit the reader sleeps on to its own deadline (woke after {quiet:?})"
    );
    assert!(
        woken < limit / 2,
        "with it the reader wakes for the reply (after {woken:?})"
    );
    assert!(
        flooded < limit / 2,
        "a backlog of a quarter of the ring wakes the reader (after {flooded:?})"
    );
    assert_eq!(p.counters().probe_replies, u64::from(2 + backlog));
}

#[test]
fn replies_with_another_identity_are_dropped_and_counted() {
    let Some(mut p) = load() else { return };
    let other_id = Frame {
        id: PROBE_ID ^ 1,
        ..Frame::reply(false)
    };
    let mut h = probe_header();
    h.ifindex = (TEST_RUN_IFINDEX + 1).to_be();
    let other_interface = Frame {
        payload: Payload::Probe(h),
        ..Frame::reply(true)
    };
    for f in [&other_id, &other_interface] {
        // Dropped: a flood of them must not reach userspace (or the stack's ping sockets).
        assert_eq!(p.xdp(&f.bytes()), XDP_DROP);
    }
    assert!(
        p.records().is_empty(),
        "a foreign identity is never an answer"
    );
    let c = p.counters();
    assert_eq!((c.rejected_identity, c.probe_replies), (2, 0));
}

#[test]
fn foreign_and_non_ip_traffic_passes_untouched() {
    let Some(mut p) = load() else { return };
    let ping = Frame {
        payload: Payload::Raw(b"abcdefghijklmnopqrstuvwxyz012345".to_vec()),
        ..Frame::reply(false)
    };
    let request = Frame::request(false);
    let unreachable = Frame {
        icmp_type: 3,
        icmp_code: 1,
        ..Frame::reply(false)
    };
    let reply_code_1 = Frame {
        icmp_code: 1,
        ..Frame::reply(false)
    };
    let mut arp = vec![0xff; 6];
    arp.extend([2, 0, 0, 0, 0, 1, 0x08, 0x06]);
    arp.extend([0u8; 28]);
    let mut tcp = Frame::reply(false).bytes();
    tcp[14 + 9] = 6; // protocol TCP
    let mut fragment = Frame::reply(false).bytes();
    fragment[14 + 6] = 0x20; // more fragments
    let frames = [
        ping.bytes(),
        request.bytes(),
        unreachable.bytes(),
        reply_code_1.bytes(),
        arp,
        tcp,
        fragment,
    ];
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(p.xdp(f), XDP_PASS, "frame {i}");
    }
    assert!(p.records().is_empty());
    let c = p.counters();
    // The ARP frame, the TCP segment and the fragment pass before any counter is touched.
    assert_eq!(c.icmp_packets, frames.len() as u64 - 3);
    assert_eq!(
        c.rejected_magic, 1,
        "only the foreign echo reply counts as a wrong magic"
    );
}

#[test]
fn truncated_frames_at_every_length_pass() {
    let Some(mut p) = load() else { return };
    for frame in [
        Frame::reply(false),
        Frame::reply(true),
        Frame {
            vlan: Some(1),
            ..Frame::reply(false)
        },
    ] {
        let bytes = frame.bytes();
        // BPF_PROG_TEST_RUN needs at least an Ethernet header.
        for len in 14..bytes.len() {
            assert_eq!(
                p.xdp(&bytes[..len]),
                XDP_PASS,
                "cut at {len} of {}",
                bytes.len()
            );
        }
        assert_eq!(p.xdp(&bytes), XDP_DROP, "the whole frame is a valid reply");
    }
    assert_eq!(p.records().len(), 3);
}

#[test]
fn tc_stamps_outgoing_probes_and_keeps_checksums_valid() {
    let Some(mut p) = load() else { return };
    let mut stamped = 0;
    for v6 in [false, true] {
        for vlan in [None, Some(5)] {
            let frame = Frame {
                vlan,
                ..Frame::request(v6)
            };
            let (verdict, out) = p.tc(&frame.bytes());
            stamped += 1;
            assert_eq!(p.stamped(), stamped, "v6={v6} vlan={vlan:?}: counted once");
            assert_eq!(
                verdict, -1,
                "TC_ACT_UNSPEC: stamping never decides the packet's fate"
            );
            let l2 = 14 + if vlan.is_some() { 4 } else { 0 };
            let l4 = l2 + if v6 { 40 } else { 20 };
            let h = ProbeHeader::from_bytes(&out[l4 + 8..]).unwrap();
            assert!(
                h.kernel_tx_ns() > 0,
                "v6={v6} vlan={vlan:?}: kernel transmit time written"
            );
            let icmp = &out[l4..];
            let sum = if v6 {
                let mut pseudo = Vec::new();
                pseudo.extend(tests::frames::SRC6);
                pseudo.extend(tests::frames::DST6);
                pseudo.extend((icmp.len() as u32).to_be_bytes());
                pseudo.extend([0, 0, 0, 58]);
                pseudo.extend(icmp);
                internet_checksum(&pseudo)
            } else {
                internet_checksum(icmp)
            };
            assert_eq!(
                sum, 0,
                "v6={v6} vlan={vlan:?}: checksum still valid after the stamp"
            );
        }
    }
    // Not a probe: left alone.
    let ping = Frame {
        payload: Payload::Raw(vec![0; 40]),
        ..Frame::request(false)
    }
    .bytes();
    assert_eq!(p.tc(&ping).1, ping);
    assert_eq!(
        p.stamped(),
        stamped,
        "a ping that is not a probe is not counted"
    );
}

/// Interrupts for the kernel's irq_work on every CPU (the `IWI` line of /proc/interrupts): each
/// wake-up a program forces on the ring buffer raises one.
fn irq_work_interrupts() -> u64 {
    let text = std::fs::read_to_string("/proc/interrupts").expect("/proc/interrupts");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("IWI:"))
        .expect("an IWI line in /proc/interrupts");
    line.split_whitespace()
        .skip(1)
        .map_while(|w| w.parse::<u64>().ok())
        .sum()
}

#[test]
fn a_backlog_wakes_the_reader_a_bounded_number_of_times_not_once_per_reply() {
    let Some(mut p) = load() else { return };
    p.set_probe_ids_value(u32::from(PROBE_ID));
    let quarter = agent_common::record::WAKE_BACKLOG_RECORDS as u32;
    // Far past a quarter of the ring, with nobody reading: a forced wake-up is a self-interrupt
    // (microseconds in a virtual machine), so one per reply would cost most when the reader is
    // already behind.
    let past = 600;
    let before = irq_work_interrupts();
    assert_eq!(
        p.xdp_repeat(&Frame::reply(false).bytes(), quarter + past),
        XDP_DROP
    );
    let raised = irq_work_interrupts() - before;
    assert_eq!(
        p.records().len(),
        (quarter + past) as usize,
        "every reply is queued"
    );
    assert!(
        raised < u64::from(past) / 4,
        "{raised} irq_work interrupts for {past} replies past a quarter of the ring"
    );
}

#[test]
fn every_interfaces_counters_read_in_batches_equal_those_read_one_at_a_time() {
    use agent_common::{counters::IfaceCounters, names};
    use aya::maps::{Map, PerCpuHashMap, PerCpuValues};
    use ipmpd::datapath::batch::{CounterBatch, read_each};
    use std::os::fd::AsFd as _;

    let Some(mut p) = load() else { return };
    // What the program counts on the test interface, beside 1,000 more interfaces with a
    // different value on each CPU: four batches of the reader's first size (256).
    for _ in 0..3 {
        assert_eq!(p.xdp(&Frame::reply(false).bytes()), XDP_DROP);
    }
    let ncpus = aya::util::nr_cpus().unwrap();
    {
        let mut map: PerCpuHashMap<_, u32, IfaceCounters> =
            PerCpuHashMap::try_from(p.ebpf.map_mut(names::IFACE_COUNTERS).unwrap()).unwrap();
        for ifindex in 1_000..2_000_u32 {
            let per_cpu: Vec<IfaceCounters> = (0..ncpus as u64)
                .map(|cpu| IfaceCounters {
                    icmp_packets: u64::from(ifindex) * 10 + cpu,
                    last_icmp_ns: cpu,
                    ..IfaceCounters::default()
                })
                .collect();
            map.insert(ifindex, PerCpuValues::try_from(per_cpu).unwrap(), 0)
                .unwrap();
        }
    }
    let test_interface = p.counters();
    let any = p.ebpf.map(names::IFACE_COUNTERS).unwrap();
    let Map::PerCpuHashMap(data) = any else {
        panic!("IFACE_COUNTERS is a per-CPU hash map");
    };
    let mut batched = CounterBatch::new(ncpus).read(data.fd().as_fd()).unwrap();
    let map: PerCpuHashMap<_, u32, IfaceCounters> = PerCpuHashMap::try_from(any).unwrap();
    let mut each = read_each(&map).unwrap();
    batched.sort_by_key(|(ifindex, _)| *ifindex);
    each.sort_by_key(|(ifindex, _)| *ifindex);
    assert_eq!(batched.len(), 1_001);
    assert_eq!(batched, each);
    let n = ncpus as u64;
    let (_, c1500) = batched.iter().find(|(i, _)| *i == 1_500).unwrap();
    assert_eq!(c1500.icmp_packets, 15_000 * n + n * (n - 1) / 2);
    assert_eq!(
        c1500.last_icmp_ns,
        n - 1,
        "the latest CPU's time, not a sum"
    );
    let (_, mine) = batched
        .iter()
        .find(|(i, _)| *i == TEST_RUN_IFINDEX)
        .unwrap();
    assert_eq!(*mine, test_interface);
    assert_eq!((mine.probe_replies, mine.icmp_packets), (3, 3));
}
