//! Per-packet cost of the XDP and TC programs through BPF_PROG_TEST_RUN with `repeat`; prints JSON.
//! Run by `cargo xtask bench` (needs root).

use agent_common::{names, probe_id, record::WAKE_BACKLOG_RECORDS};
use aya::programs::{SchedClassifier, TestRun, TestRunOptions, Xdp};
use tests::frames::{Frame, PROBE_ID, Payload};

#[path = "../tests/programs/mod.rs"]
mod programs;

fn per_packet_ns(run: impl Fn() -> std::time::Duration, rounds: usize) -> Vec<f64> {
    (0..rounds).map(|_| run().as_nanos() as f64).collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Replies per burst: half of the backlog (a quarter of the ring) from which the program forces
/// wake-ups, so that a burst measures only the wake-ups its replies ask for.
const REPLY_BURST: u32 = (WAKE_BACKLOG_RECORDS / 2) as u32;

/// Median ns per probe reply over 9 bursts of [`REPLY_BURST`], the ring drained between them,
/// with the interface's `PROBE_IDS` value `probe_id` (whether each reply forces a wake-up).
fn reply_ns(p: &mut programs::Programs, reply: &[u8], probe_id: u32) -> f64 {
    p.set_probe_ids_value(probe_id);
    let mut ns = Vec::new();
    for _ in 0..9 {
        let d = p
            .xdp_program()
            .test_run(TestRunOptions {
                data_in: Some(reply),
                repeat: REPLY_BURST,
                ..Default::default()
            })
            .unwrap()
            .duration;
        p.records();
        ns.push(d.as_nanos() as f64);
    }
    median(ns)
}

fn main() {
    let mut p = programs::Programs::load();
    let reply = Frame::reply(false).bytes();
    // Without a wake-up: how every reply goes while the member is steady and the reader keeps up.
    let reply_quiet = reply_ns(&mut p, &reply, probe_id(PROBE_ID, false));
    // With one: a member whose next reply may change a decision, or a ring a quarter full.
    let reply_wake = reply_ns(&mut p, &reply, probe_id(PROBE_ID, true));
    let programs::Programs { mut ebpf, .. } = p;
    let tcp = {
        let mut f = Frame {
            payload: Payload::Raw(vec![0; 1400]),
            ..Frame::reply(false)
        }
        .bytes();
        f[14 + 9] = 6;
        f
    };
    let request = Frame::request(false).bytes();
    let cal: &mut Xdp = ebpf
        .program_mut("ipmpd_xdp_calibrate")
        .unwrap()
        .try_into()
        .unwrap();
    cal.load().unwrap();
    let overhead = median(per_packet_ns(
        || {
            cal.test_run(TestRunOptions {
                data_in: Some(&tcp),
                repeat: 1_000_000,
                ..Default::default()
            })
            .unwrap()
            .duration
        },
        9,
    ));
    let xdp: &mut Xdp = ebpf
        .program_mut(names::XDP_PROBE_REPLY)
        .unwrap()
        .try_into()
        .unwrap();
    let non_probe = median(per_packet_ns(
        || {
            xdp.test_run(TestRunOptions {
                data_in: Some(&tcp),
                repeat: 1_000_000,
                ..Default::default()
            })
            .unwrap()
            .duration
        },
        9,
    ));
    let tc: &mut SchedClassifier = ebpf
        .program_mut(names::TC_PROBE_STAMP)
        .unwrap()
        .try_into()
        .unwrap();
    let mut out = vec![0u8; 2048];
    let tc_probe = median(per_packet_ns(
        || {
            tc.test_run(TestRunOptions {
                data_in: Some(&request),
                data_out: Some(&mut out.clone()),
                repeat: 100_000,
                ..Default::default()
            })
            .unwrap()
            .duration
        },
        9,
    ));
    let tc_other = median(per_packet_ns(
        || {
            tc.test_run(TestRunOptions {
                data_in: Some(&tcp),
                repeat: 1_000_000,
                ..Default::default()
            })
            .unwrap()
            .duration
        },
        9,
    ));
    out.clear();
    println!(
        "{}",
        serde_json::json!({
            "xdp_test_run_overhead_ns": overhead,
            "xdp_non_probe_ns": non_probe,
            "xdp_probe_reply_ns": reply_quiet,
            "xdp_probe_reply_wake_ns": reply_wake,
            "reply_burst": REPLY_BURST,
            "tc_probe_ns": tc_probe,
            "tc_non_probe_ns": tc_other,
        })
    );
}
