//! The peers ipmpd is compared with, run as child processes in the benchmark's namespaces:
//! FRR's bfdd, keepalived (VRRP) and an iputils ping loop. Every line they print is time-stamped
//! on arrival, so a state change is timed the same way for each. [`bfd_pair`] is the bfdd session
//! between h0 and the router that the peers and load sections both run.

use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use tests::{
    monotonic_ns,
    topology::{Lan, Netns},
};

/// SCHED_FIFO priority of the threads that time-stamp the peers' lines (as the flow's threads).
const READER_PRIORITY: i32 = 60;

/// A child process whose output lines (stdout and stderr) arrive time-stamped.
pub struct Lines {
    child: Child,
    rx: mpsc::Receiver<(u64, String)>,
    seen: Vec<(u64, String)>,
    /// Scratch directory (configuration, pid and socket files), removed on drop.
    dir: Option<PathBuf>,
}

impl Lines {
    /// Runs `cmd` (a shell command line) in `ns`, stderr merged into stdout.
    pub fn spawn(ns: &Netns, cmd: &str, dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let mut child = Command::new("nsenter")
            .arg(format!("--net={}", ns.path()))
            .args(["sh", "-c", &format!("exec {cmd} 2>&1")])
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {cmd}"))?;
        let out = child.stdout.take().context("piped stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Above everything a loaded run starts: a line read late would make the tool that
            // printed it look slower than it was. Best effort (the bench runs as root).
            let _ = crate::host::realtime(Some(READER_PRIORITY));
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send((monotonic_ns(), line)).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            child,
            rx,
            seen: Vec::new(),
            dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn pull(&mut self) {
        while let Ok(l) = self.rx.try_recv() {
            self.seen.push(l);
        }
    }

    /// The arrival time of the first line after `after` (ns) for which `step` returns true,
    /// waiting up to `timeout`. `step` sees the lines in order and may keep state.
    pub fn wait(
        &mut self,
        after: u64,
        timeout: Duration,
        mut step: impl FnMut(&str) -> bool,
    ) -> Option<u64> {
        let deadline = Instant::now() + timeout;
        let mut next = 0;
        loop {
            self.pull();
            while next < self.seen.len() {
                let (t, ref line) = self.seen[next];
                next += 1;
                if t >= after && step(line) {
                    return Some(t);
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.rx.recv_timeout(left.min(Duration::from_millis(50))) {
                Ok(l) => self.seen.push(l),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// How many lines since `after` (ns) match `pred`.
    pub fn count(&mut self, after: u64, pred: impl Fn(&str) -> bool) -> usize {
        self.pull();
        self.seen
            .iter()
            .filter(|(t, l)| *t >= after && pred(l))
            .count()
    }

    /// Forgets lines older than `before` (ns), so long runs do not rescan them.
    pub fn forget(&mut self, before: u64) {
        self.pull();
        self.seen.retain(|(t, _)| *t >= before);
    }

    /// The whole output so far, for error messages.
    pub fn text(&mut self) -> String {
        self.pull();
        self.seen
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn scratch(tag: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ipmpd-bench-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // bfdd drops to user frr and must create its sockets here.
    Command::new("chmod")
        .args(["0777", &dir.display().to_string()])
        .status()?;
    Ok(dir)
}

/// FRR's bfdd with one single-hop session from `local` to `peer`, `interval_ms` x 3, logging
/// state changes (`debug bfd peer`) on stdout. Runs without zebra: the session is bound to the
/// local address, and a carrier loss is seen as missing control packets.
pub fn bfdd(
    ns: &Netns,
    tag: &str,
    local: &str,
    peer: &str,
    interval_ms: u64,
) -> anyhow::Result<Lines> {
    let dir = scratch(&format!("bfdd-{tag}"))?;
    let conf = dir.join("bfdd.conf");
    std::fs::write(
        &conf,
        format!(
            "log timestamp precision 6\ndebug bfd peer\nbfd\n peer {peer} local-address {local}\n  \
             detect-multiplier 3\n  receive-interval {interval_ms}\n  transmit-interval {interval_ms}\n !\n!\n"
        ),
    )?;
    let d = dir.display();
    let cmd = format!(
        "/usr/lib/frr/bfdd -f {d}/bfdd.conf -i {d}/bfdd.pid --vty_socket {d} --bfdctl {d}/bfdd.sock \
         -z {d}/zserv.api -u frr -g frr --log stdout --log-level debug"
    );
    Lines::spawn(ns, &cmd, Some(dir))
}

/// A bfdd state change to down.
pub fn bfd_down(line: &str) -> bool {
    line.contains("state-change") && line.contains("-> down")
}

/// A bfdd state change to up.
pub fn bfd_up(line: &str) -> bool {
    line.contains("state-change") && line.contains("-> up")
}

/// keepalived (VRRP v3 only) for virtual router 51 on `ifname` with `vip`, at the fastest
/// advertisement interval it accepts (10 ms); priority 200 makes it the master.
pub fn keepalived(
    ns: &Netns,
    tag: &str,
    ifname: &str,
    priority: u8,
    vip: &str,
) -> anyhow::Result<Lines> {
    let dir = scratch(&format!("keepalived-{tag}"))?;
    let state = if priority > 100 { "MASTER" } else { "BACKUP" };
    std::fs::write(
        dir.join("keepalived.conf"),
        format!(
            "global_defs {{\n  vrrp_version 3\n  vrrp_garp_master_delay 0\n  vrrp_garp_master_refresh 0\n}}\n\
             vrrp_instance V {{\n  state {state}\n  interface {ifname}\n  virtual_router_id 51\n  \
             priority {priority}\n  advert_int 0.01\n  virtual_ipaddress {{\n    {vip}\n  }}\n}}\n"
        ),
    )?;
    let d = dir.display();
    let cmd = format!(
        "keepalived -n -l -D --vrrp -f {d}/keepalived.conf -p {d}/keepalived.pid -r {d}/vrrp.pid -i ipmpd-bench-{tag}"
    );
    Lines::spawn(ns, &cmd, Some(dir))
}

/// A ping every 10 ms from `ifname` to `target` that reports each unanswered request (`-O`).
pub fn ping_loop(ns: &Netns, ifname: &str, target: &str) -> anyhow::Result<Lines> {
    Lines::spawn(
        ns,
        &format!("stdbuf -oL ping -n -O -i 0.01 -I {ifname} {target}"),
        None,
    )
}

/// A step for [`Lines::wait`]: true at the third unanswered request in a row.
pub fn three_misses() -> impl FnMut(&str) -> bool {
    let mut misses = 0;
    move |line| {
        if line.contains("no answer yet") {
            misses += 1;
        } else if line.contains("bytes from") {
            misses = 0;
        }
        misses >= 3
    }
}

/// Starts bfdd on both ends and waits for the session to come up.
pub fn bfd_pair(lan: &Lan, ms: u64) -> anyhow::Result<(Lines, Lines)> {
    let mut host = bfdd(lan.host(), &format!("h{ms}"), "192.0.2.10", "192.0.2.1", ms)?;
    let router = bfdd(
        lan.router(),
        &format!("r{ms}"),
        "192.0.2.1",
        "192.0.2.10",
        ms,
    )?;
    if host.wait(0, Duration::from_secs(15), bfd_up).is_none() {
        anyhow::bail!("bfdd session did not come up:\n{}", host.text());
    }
    Ok((host, router))
}
