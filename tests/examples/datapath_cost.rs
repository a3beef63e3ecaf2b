//! Per-packet cost of the XDP and TC programs through BPF_PROG_TEST_RUN with `repeat`; prints JSON.
//! Run by `cargo xtask bench` (needs root).

use agent_common::names;
use aya::programs::{SchedClassifier, TestRun, TestRunOptions, Xdp};
use tests::frames::{Frame, Payload};

#[path = "../tests/programs/mod.rs"]
mod programs;

fn per_packet_ns(run: impl Fn() -> std::time::Duration, rounds: usize) -> Vec<f64> {
    (0..rounds).map(|_| run().as_nanos() as f64).collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let programs::Programs {
        mut ebpf, mut ring, ..
    } = programs::Programs::load();
    let tcp = {
        let mut f = Frame {
            payload: Payload::Raw(vec![0; 1400]),
            ..Frame::reply(false)
        }
        .bytes();
        f[14 + 9] = 6;
        f
    };
    let reply = Frame::reply(false).bytes();
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
    // The ring holds about 3,000 records: run bursts of 1,000 and drain between them.
    let mut reply_ns = Vec::new();
    for _ in 0..9 {
        let d = xdp
            .test_run(TestRunOptions {
                data_in: Some(&reply),
                repeat: 1_000,
                ..Default::default()
            })
            .unwrap()
            .duration;
        while ring.next().is_some() {}
        reply_ns.push(d.as_nanos() as f64);
    }
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
            "xdp_probe_reply_ns": median(reply_ns),
            "tc_probe_ns": tc_probe,
            "tc_non_probe_ns": tc_other,
        })
    );
}
