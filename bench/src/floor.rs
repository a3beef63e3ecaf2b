//! The kernel's floor for probing: a bare sender with one raw ICMP socket per member (bound to its
//! device and test address, as ipmpd's), one `sendto` per probe and one `recv` per reply, no
//! engine, no programs' bookkeeping. What ipmpd spends above this is its own. On veths the whole
//! round trip (the peer's reply included) runs in the sending thread's softirq, so the floor is
//! far above what one probe costs a real NIC's host.
//!
//! Two ways: in bursts (the scale section: what ipmpd's loop sends per wake-up at 1,024 members)
//! and paced (a few members at a short FDT, where in.mpathd's jitter gives each probe a wake-up of
//! its own).

use std::time::Duration;

/// Rounds of one probe per member; a pause between rounds lets the replies come back.
const ROUNDS: usize = 20;
const PAUSE: Duration = Duration::from_millis(50);
/// Probes sent per burst, with [`BURST_PAUSE`] between bursts: 1,024 at once overflowed the
/// peers' receive backlog (`netdev_max_backlog`, 1,000 by default) and half the replies were
/// lost, which made the floor look cheaper than it is. 64 is about what ipmpd's loop sends per
/// wake-up at 1,024 members and FDT 1 s.
const BURST: usize = 64;
const BURST_PAUSE: Duration = Duration::from_millis(2);

/// Thread CPU time in seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill; the clock id is a constant.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// An echo request (id 0x1234, sequence `seq`) with its checksum.
fn echo(seq: u16) -> [u8; 56] {
    let mut p = [0u8; 56];
    p[0] = 8;
    p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    let mut sum: u32 = p
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum >> 16) + (sum & 0xffff);
    }
    p[2..4].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p
}

fn sockaddr(addr: std::net::Ipv4Addr) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// One member's socket: bound to `ifname` and `source`, probing `target`.
struct Member {
    fd: std::os::fd::OwnedFd,
    target: libc::sockaddr_in,
}

impl Member {
    /// Sends `packet` to the member's target; whether the kernel took it.
    fn send(&self, packet: &[u8]) -> bool {
        use std::os::fd::AsRawFd as _;
        // SAFETY: valid descriptor, buffer and sockaddr_in with their sizes.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&raw const self.target).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        n > 0
    }

    /// Reads every packet waiting on the (non-blocking) socket into `buf`; how many there were.
    fn drain(&self, buf: &mut [u8]) -> usize {
        use std::os::fd::AsRawFd as _;
        let mut read = 0;
        // SAFETY: valid descriptor and buffer with its size.
        while unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) } > 0
        {
            read += 1;
        }
        read
    }
}

fn open(
    ifname: &str,
    source: std::net::Ipv4Addr,
    target: std::net::Ipv4Addr,
) -> anyhow::Result<Member> {
    use std::os::fd::{AsRawFd as _, FromRawFd as _};
    // SAFETY: plain socket creation; the descriptor is owned below.
    let raw = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMP,
        )
    };
    anyhow::ensure!(
        raw >= 0,
        "raw ICMP socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `raw` is a fresh descriptor nothing else owns.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
    // SAFETY: the option value is the device name's bytes with their length.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            ifname.as_ptr().cast(),
            ifname.len() as libc::socklen_t,
        )
    };
    anyhow::ensure!(
        rc == 0,
        "SO_BINDTODEVICE {ifname}: {}",
        std::io::Error::last_os_error()
    );
    let src = sockaddr(source);
    // SAFETY: a valid sockaddr_in with its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const src).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    anyhow::ensure!(
        rc == 0,
        "bind {source}: {}",
        std::io::Error::last_os_error()
    );
    Ok(Member {
        fd,
        target: sockaddr(target),
    })
}

/// CPU µs per probe (send and reply read) of a bare sender over `members` (interface, test
/// address, target), measured on a thread inside the namespace at `netns` pinned to core 0, as
/// ipmpd is; and the share of replies it read.
pub fn per_probe_us(
    netns: &str,
    members: Vec<(String, std::net::Ipv4Addr, std::net::Ipv4Addr)>,
) -> anyhow::Result<(f64, f64)> {
    let netns = netns.to_owned();
    std::thread::spawn(move || -> anyhow::Result<(f64, f64)> {
        tests::topology::enter_netns(&netns);
        // SAFETY: a zeroed cpu_set_t is empty; CPU_SET adds core 0; the size is the set's.
        let pinned = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set)
        };
        anyhow::ensure!(
            pinned == 0,
            "cannot pin the bare sender to core 0: {}",
            std::io::Error::last_os_error()
        );
        let socks = members
            .iter()
            .map(|(i, s, t)| open(i, *s, *t))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (mut sent, mut read) = (0usize, 0usize);
        let mut buf = [0u8; 256];
        let mut cpu = 0.0;
        for round in 0..ROUNDS {
            let p = echo(round as u16);
            let t0 = thread_cpu();
            for (k, m) in socks.iter().enumerate() {
                if k > 0 && k % BURST == 0 {
                    std::thread::sleep(BURST_PAUSE);
                }
                sent += usize::from(m.send(&p));
            }
            std::thread::sleep(PAUSE);
            // Every ICMP packet the sockets see; one reply is expected per member and round.
            read += socks.iter().map(|m| m.drain(&mut buf)).sum::<usize>();
            cpu += thread_cpu() - t0;
        }
        anyhow::ensure!(sent > 0, "the bare sender sent nothing");
        Ok((cpu * 1e6 / sent as f64, read as f64 / sent as f64))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the bare sender's thread panicked"))?
}

/// CPU of a bare sender that sends `rate` probes a second, in turn over `members`, for `secs`
/// seconds, each at a wake-up of its own (an absolute sleep until it is due) and reading every
/// reply waiting at each wake-up, as % of one core; and the share of replies it read.
pub fn paced_pct(
    netns: &str,
    members: Vec<(String, std::net::Ipv4Addr, std::net::Ipv4Addr)>,
    rate: u64,
    secs: u64,
) -> anyhow::Result<(f64, f64)> {
    anyhow::ensure!(rate > 0 && !members.is_empty(), "nothing to send");
    let netns = netns.to_owned();
    std::thread::spawn(move || -> anyhow::Result<(f64, f64)> {
        tests::topology::enter_netns(&netns);
        let socks = members
            .iter()
            .map(|(i, s, t)| open(i, *s, *t))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (mut sent, mut read) = (0usize, 0usize);
        let mut buf = [0u8; 256];
        let step_ns = 1_000_000_000 / rate;
        let total = rate * secs;
        let start = tests::monotonic_ns();
        let t0 = thread_cpu();
        for k in 0..total {
            let due = start + k * step_ns;
            let ts = libc::timespec {
                tv_sec: (due / 1_000_000_000) as libc::time_t,
                tv_nsec: (due % 1_000_000_000) as libc::c_long,
            };
            // SAFETY: a valid timespec; no remainder is asked for with TIMER_ABSTIME.
            unsafe {
                libc::clock_nanosleep(
                    libc::CLOCK_MONOTONIC,
                    libc::TIMER_ABSTIME,
                    &raw const ts,
                    std::ptr::null_mut(),
                )
            };
            let m = &socks[k as usize % socks.len()];
            let p = echo(k as u16);
            sent += usize::from(m.send(&p));
            read += socks.iter().map(|m| m.drain(&mut buf)).sum::<usize>();
        }
        let cpu = thread_cpu() - t0;
        let wall = (tests::monotonic_ns() - start) as f64 / 1e9;
        anyhow::ensure!(sent > 0, "the bare sender sent nothing");
        Ok((100.0 * cpu / wall, read as f64 / sent as f64))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the bare sender's thread panicked"))?
}
