//! The faults the detection sections inject on h0's switch port and what times them: [`Flow`], a
//! steady UDP flow with every arrival timed (a silent fault starts at the last packet of it that
//! got through; the outage section measures its gaps), [`Fault`] (carrier loss, silent both ways,
//! silent one way) and [`Tally`], one tool's detection latencies and misses.

use std::{
    net::UdpSocket,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use crate::host::realtime;
use tests::{
    monotonic_ns,
    topology::{Lan, enter_netns},
};

/// The rate of [`Flow::start`]'s flow, packets a second.
pub const PPS: u64 = 10_000;

/// Rate of the stream that marks when a silent fault started: fine enough (0.5 ms) for an FDT of
/// 10 ms, light enough (a 10,000 packets/s stream here delayed the 10 ms timers of every tool on
/// two cores) not to disturb what is measured.
pub const MARKER_PPS: u64 = 2_000;

/// A steady UDP flow from the router to the data address, with every arrival timed.
pub struct Flow {
    stop: Arc<AtomicBool>,
    arrivals: Arc<Mutex<Vec<u64>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Flow {
    /// Starts sender and receiver threads in their namespaces, sending to the data address.
    ///
    /// # Errors
    /// None at present (a thread that cannot start panics); the `Result` is for callers' `?`.
    pub fn start(lan: &Lan) -> anyhow::Result<Self> {
        Self::start_to(lan, "192.0.2.100", PPS)
    }

    /// The same towards `dest` (an address of the host namespace) at `pps` packets a second.
    ///
    /// # Errors
    /// As [`Flow::start`].
    pub fn start_to(lan: &Lan, dest: &str, pps: u64) -> anyhow::Result<Self> {
        Self::start_with(lan, dest, pps, None)
    }

    /// [`Flow::start_to`] with both threads SCHED_FIFO at `priority`, for runs with every core
    /// busy: at normal priority the receiver reads each packet late, and a fault would seem to
    /// start later than it did (so detection would seem faster); the sender falls behind.
    ///
    /// # Errors
    /// When a thread cannot have that priority.
    pub fn start_realtime(lan: &Lan, dest: &str, pps: u64, priority: i32) -> anyhow::Result<Self> {
        Self::start_with(lan, dest, pps, Some(priority))
    }

    fn start_with(lan: &Lan, dest: &str, pps: u64, rt: Option<i32>) -> anyhow::Result<Self> {
        let dest = format!("{dest}:9000");
        let stop = Arc::new(AtomicBool::new(false));
        let arrivals: Arc<Mutex<Vec<u64>>> = Arc::default();
        let (host, router) = (lan.host().path(), lan.router().path());
        let (st, arr) = (Arc::clone(&stop), Arc::clone(&arrivals));
        // Each thread says whether it got its priority before the flow counts as started.
        let (set_up, setups) = std::sync::mpsc::channel::<Result<(), String>>();
        let rx_set_up = set_up.clone();
        let rx = std::thread::spawn(move || {
            enter_netns(&host);
            let _ = rx_set_up.send(realtime(rt));
            let sock = UdpSocket::bind("0.0.0.0:9000").expect("bind the receiver");
            sock.set_read_timeout(Some(Duration::from_millis(50))).ok();
            let mut buf = [0u8; 64];
            while !st.load(Ordering::Relaxed) {
                if sock.recv(&mut buf).is_ok() {
                    // Stamped before the lock: a reader holding it must not delay the stamp.
                    let at = monotonic_ns();
                    arr.lock().map(|mut a| a.push(at)).ok();
                }
            }
        });
        let st = Arc::clone(&stop);
        let tx = std::thread::spawn(move || {
            enter_netns(&router);
            let _ = set_up.send(realtime(rt));
            let sock = UdpSocket::bind("0.0.0.0:0").expect("bind the sender");
            sock.connect(&dest).expect("connect");
            let period = 1_000_000_000 / pps.max(1);
            let mut next = monotonic_ns();
            let mut seq: u64 = 0;
            while !st.load(Ordering::Relaxed) {
                let _ = sock.send(&seq.to_be_bytes());
                seq += 1;
                next += period;
                let now = monotonic_ns();
                if next > now {
                    std::thread::sleep(Duration::from_nanos(next - now));
                } else if now - next > 10 * period {
                    next = now; // fell behind: do not burst
                }
            }
        });
        let flow = Self {
            stop,
            arrivals,
            threads: vec![rx, tx],
        };
        for _ in 0..2 {
            match setups.recv_timeout(Duration::from_secs(5)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    flow.stop();
                    anyhow::bail!("the flow's threads: {e}");
                }
                Err(_) => {
                    flow.stop();
                    anyhow::bail!("the flow's threads did not start");
                }
            }
        }
        Ok(flow)
    }

    /// The longest gap between arrivals in [from, to], in ms.
    pub fn max_gap_ms(&self, from: u64, to: u64) -> f64 {
        let a = self.arrivals.lock().map(|a| a.clone()).unwrap_or_default();
        let window: Vec<u64> = a
            .into_iter()
            .filter(|t| *t + 5_000_000 >= from && *t <= to)
            .collect();
        window.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0) as f64 / 1e6
    }

    /// The last arrival at or before `t` (ns).
    pub fn last_arrival_before(&self, t: u64) -> Option<u64> {
        let a = self.arrivals.lock().ok()?;
        let k = a.partition_point(|x| *x <= t);
        k.checked_sub(1).map(|k| a[k])
    }

    /// Packets that arrived in [from, to].
    pub fn arrived(&self, from: u64, to: u64) -> usize {
        self.arrivals
            .lock()
            .map(|a| a.iter().filter(|t| (from..=to).contains(*t)).count())
            .unwrap_or(0)
    }

    /// Stops both threads.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Fault {
    Carrier,
    Silent,
    OneWay,
}

impl Fault {
    pub const ALL: [Self; 3] = [Self::Carrier, Self::Silent, Self::OneWay];

    pub fn name(self) -> &'static str {
        match self {
            Self::Carrier => "carrier loss",
            Self::Silent => "silent, both ways",
            Self::OneWay => "silent, one way",
        }
    }

    /// Injects the fault on h0's switch port; returns (when it took effect, how long the command
    /// took), ns. A carrier change is one ioctl, timed from just before it. `nft` runs for about
    /// 10 ms before its rule is in force, so a silent fault starts at the last packet of `flow`
    /// (a steady stream from the router to h0) that got through, within 0.5 ms.
    pub fn inject(self, lan: &Lan, flow: &Flow) -> (u64, u64) {
        let sw = lan.switch();
        let fault = match self {
            Self::Carrier => {
                let cut = sw.set_link_fast("sw-h0", false);
                return (cut.began_ns, cut.in_force_ns - cut.began_ns);
            }
            Self::Silent => sw.drop_all("sw-h0"),
            Self::OneWay => sw.drop_outgoing("sw-h0"),
        };
        let (t0, t1) = (fault.began_ns, fault.in_force_ns);
        // Let the last packets in flight land before asking which was last.
        std::thread::sleep(Duration::from_millis(2));
        let t = flow
            .last_arrival_before(t1)
            .filter(|&a| a >= t0)
            .unwrap_or(t1);
        (t, t1 - t0)
    }

    /// Ends it; returns the time after.
    pub fn clear(self, lan: &Lan) -> u64 {
        let sw = lan.switch();
        match self {
            Self::Carrier => return sw.set_link_fast("sw-h0", true).in_force_ns,
            Self::Silent | Self::OneWay => sw.undrop_all("sw-h0"),
        }
        monotonic_ns()
    }
}

/// Detection latencies (ms) and misses of one tool for one fault type.
#[derive(Default)]
pub struct Tally {
    pub ms: Vec<f64>,
    pub missed: usize,
}

impl Tally {
    /// Percentile `q` of the latencies detected; infinity when none was.
    pub fn pct(&self, q: f64) -> f64 {
        if self.ms.is_empty() {
            return f64::INFINITY;
        }
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        crate::stats::pct(&v, q)
    }

    /// p99, or infinity when any fault was missed (a miss is worse than any latency).
    pub fn p99_or_inf(&self) -> f64 {
        if self.missed > 0 {
            f64::INFINITY
        } else {
            self.pct(99.0)
        }
    }

    pub fn add(&mut self, from: u64, at: Option<u64>) {
        match at {
            Some(t) => self.ms.push(t.saturating_sub(from) as f64 / 1e6),
            None => self.missed += 1,
        }
    }
}
