//! What one carrier poll costs, by way of asking: the ethtool LINKSTATE_GET dump of every device
//! (what the watcher does today), LINKSTATE_GET for each member, RTM_GETLINK for each member
//! (statistics skipped), the RTM_GETLINK dump (statistics skipped), and `pread` of each member's
//! `/sys/class/net/IF/carrier` on a kept descriptor. In a network namespace of its own (the
//! tests' `Netns`, removed when the run ends or panics) with `pairs` veth pairs (both ends
//! there, so twice as many devices), members the first `members` veths. Prints one Markdown row
//! per (pairs, members, way): the polling thread's CPU time per poll back to back (median of 9
//! batches) and per member, then per sleep and poll at a 1 ms and a 10 ms pace (median of 5
//! batches), as a paced watcher pays it, and the same sleeps with nothing asked. Needs root.
//!
//! `cargo run --release -p tests --example carrier_query_cost [pairs,...]`

use std::{
    cell::{Cell, RefCell},
    ffi::CString,
    fs::File,
    os::{fd::AsRawFd as _, unix::fs::FileExt as _},
    process::Command,
};

use ipmpd::{
    link::ethtool::EthtoolLinkState,
    netlink::{
        RouteSocket,
        link::dump_request,
        msg::{Builder, NLM_F_REQUEST},
    },
};
use tests::Netns;

const RTM_GETLINK: u16 = 18;
const IFLA_EXT_MASK: u16 = 29;
const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;
/// Polls per batch and batches per way.
const POLLS: usize = 200;
const BATCHES: usize = 9;

fn sh(args: &[&str]) {
    let ok = Command::new(args[0])
        .args(&args[1..])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{args:?} failed");
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The median CPU time (ns) of one call of `poll`, over batches of `POLLS`.
fn cost(mut poll: impl FnMut()) -> f64 {
    for _ in 0..POLLS / 10 {
        poll();
    }
    let mut per: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let t0 = thread_cpu_ns();
            for _ in 0..POLLS {
                poll();
            }
            (thread_cpu_ns() - t0) as f64 / POLLS as f64
        })
        .collect();
    per.sort_by(f64::total_cmp);
    per[BATCHES / 2]
}

/// Polls per batch and batches when each poll follows a sleep (the polls then take `PACED_POLLS`
/// times the pace: about 2.5 s per way at 10 ms).
const PACED_POLLS: usize = 50;
const PACED_BATCHES: usize = 5;
/// The paces measured: the watcher's floor, and about where its 1 % budget settles it.
const PACES_MS: [u64; 2] = [1, 10];

/// The median CPU time (ns) of one sleep of `pace_ms` followed by one call of `poll`: the cost of a
/// poll as a paced watcher pays it, caches and all (a poll after a 10 ms sleep finds less of its
/// code and data still cached than one right after another).
fn paced_cost(pace_ms: u64, mut poll: impl FnMut()) -> f64 {
    let pace = std::time::Duration::from_millis(pace_ms);
    let mut per: Vec<f64> = (0..PACED_BATCHES)
        .map(|_| {
            let t0 = thread_cpu_ns();
            for _ in 0..PACED_POLLS {
                std::thread::sleep(pace);
                poll();
            }
            (thread_cpu_ns() - t0) as f64 / PACED_POLLS as f64
        })
        .collect();
    per.sort_by(f64::total_cmp);
    per[PACED_BATCHES / 2]
}

/// One way of asking, run once per poll.
type Poll<'a> = Box<dyn FnMut() + 'a>;

fn getlink_request(seq: u32, ifindex: u32) -> Vec<u8> {
    // ifinfomsg: family, pad, type, index, flags, change.
    let mut ifi = [0u8; 16];
    ifi[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    Builder::new(RTM_GETLINK, NLM_F_REQUEST, seq)
        .bytes(&ifi)
        .attr(IFLA_EXT_MASK, &RTEXT_FILTER_SKIP_STATS.to_ne_bytes())
        .finish()
}

fn ifindex(name: &str) -> u32 {
    let c = CString::new(name).expect("a name");
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert_ne!(i, 0, "no {name}");
    i
}

/// Enters the namespace at `ns_path`, with a sysfs of its own (sysfs shows the mounter's
/// namespace).
fn enter(ns_path: &str, sysfs: &str) {
    let ns = File::open(ns_path).expect("the namespace");
    // SAFETY: setns and unshare on this (single-threaded) process with a valid descriptor.
    unsafe {
        assert_eq!(libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET), 0, "setns");
        assert_eq!(libc::unshare(libc::CLONE_NEWNS), 0, "unshare");
    }
    sh(&["mount", "--make-rprivate", "/"]);
    std::fs::create_dir_all(sysfs).expect("a mount point");
    sh(&["mount", "-t", "sysfs", "sysfs", sysfs]);
}

fn measure(pairs: usize, members: usize, sysfs: &str) {
    let ns = Netns::new("cqcost");
    let batch: String = (0..pairs)
        .map(|i| {
            format!(
                "link add cq{i} type veth peer name cqp{i}\nlink set cq{i} up\nlink set cqp{i} up\n"
            )
        })
        .collect();
    let file = format!("/tmp/{}.batch", ns.name);
    std::fs::write(&file, batch).expect("the batch file");
    sh(&["ip", "-n", &ns.name, "-batch", &file]);
    let _ = std::fs::remove_file(&file);
    let child = Command::new(std::env::current_exe().expect("this program"))
        .args(["--inside", &pairs.to_string(), &members.to_string()])
        .args([&ns.path(), sysfs])
        .status()
        .expect("the measuring child");
    assert!(child.success(), "measuring {pairs} pairs failed");
}

fn inside(pairs: usize, members: usize, ns_path: &str, sysfs: &str) {
    enter(ns_path, sysfs);
    let names: Vec<String> = (0..members).map(|i| format!("cq{i}")).collect();
    let indexes: Vec<u32> = names.iter().map(|n| ifindex(n)).collect();
    let et = RefCell::new(EthtoolLinkState::open().expect("ethtool netlink"));
    let route = RefCell::new(RouteSocket::for_dumps().expect("rtnetlink"));
    let files: Vec<File> = names
        .iter()
        .map(|n| File::open(format!("{sysfs}/class/net/{n}/carrier")).expect("carrier file"))
        .collect();
    let up = Cell::new(0usize);
    let saw = |link: bool| up.set(up.get() + usize::from(link));
    let mut ways: Vec<(&str, Poll<'_>)> = vec![
        (
            "ethtool LINKSTATE_GET dump, every device",
            Box::new(|| {
                et.borrow_mut().dump(|_, l| saw(l)).expect("dump");
            }),
        ),
        (
            "ethtool LINKSTATE_GET per member",
            Box::new(|| {
                let mut et = et.borrow_mut();
                for &i in &indexes {
                    et.get(i, |_, l| saw(l)).expect("get");
                }
            }),
        ),
        (
            "RTM_GETLINK per member, no statistics",
            Box::new(|| {
                let mut route = route.borrow_mut();
                for &i in &indexes {
                    let seq = route.next_seq();
                    route
                        .request(&getlink_request(seq, i), |_, b| saw(!b.is_empty()))
                        .expect("getlink");
                }
            }),
        ),
        (
            "RTM_GETLINK dump, no statistics",
            Box::new(|| {
                let mut route = route.borrow_mut();
                let seq = route.next_seq();
                route
                    .request(&dump_request(seq), |_, b| saw(!b.is_empty()))
                    .expect("dump");
            }),
        ),
        (
            "pread /sys/class/net/IF/carrier per member",
            Box::new(|| {
                let mut buf = [0u8; 8];
                for f in &files {
                    let n = f.read_at(&mut buf, 0).expect("carrier");
                    saw(n > 0 && buf[0] == b'1');
                }
            }),
        ),
    ];
    for (way, poll) in &mut ways {
        let [at_floor, stretched] =
            PACES_MS.map(|ms| format!("{:.1}", paced_cost(ms, &mut *poll) / 1e3));
        let ns = cost(&mut *poll);
        println!(
            "| {} | {members} | {way} | {:.1} | {:.2} | {at_floor} | {stretched} |",
            2 * pairs,
            ns / 1e3,
            ns / 1e3 / members as f64
        );
    }
    // The sleeps and wake-ups alone: what every paced row above pays before it asks anything.
    let [at_floor, stretched] = PACES_MS.map(|ms| format!("{:.1}", paced_cost(ms, || {}) / 1e3));
    println!(
        "| {} | {members} | nothing asked (the wake-up alone) | | | {at_floor} | {stretched} |",
        2 * pairs
    );
    assert!(up.get() > 0, "no member's carrier was seen up");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--inside") {
        let n = |i: usize| args[i].parse().expect("a number");
        inside(n(2), n(3), &args[4], &args[5]);
        return;
    }
    let sizes: Vec<usize> = args
        .get(1)
        .map_or("1,64,512".into(), Clone::clone)
        .split(',')
        .map(|s| s.parse().expect("pairs, comma-separated"))
        .collect();
    // The children's sysfs mount point, removed when the run ends or panics (the mounts are the
    // children's, gone with their mount namespaces).
    struct MountPoint(String);
    impl Drop for MountPoint {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let sysfs = MountPoint(format!("/tmp/ipmpd-cqcost-{}-sysfs", std::process::id()));
    println!(
        "| devices | members | way | µs CPU per poll, back to back | µs per member | µs CPU per 1 ms sleep and poll | per 10 ms sleep and poll |"
    );
    println!("|---|---|---|---|---|---|---|");
    for pairs in sizes {
        measure(pairs, pairs.min(64), &sysfs.0);
    }
}
