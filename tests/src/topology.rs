//! Network namespaces and the links between them.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::{monotonic_ns, sh, spawn};

/// A fault made by one command, timed around it: detection counts from `began_ns` (the fault
/// takes effect somewhere inside the command), so a slow command (a module loaded on demand, a
/// VM under emulation) counts against the daemon, and [`Fault::describe`] says how slow it was.
#[derive(Clone, Copy, Debug)]
pub struct Fault {
    /// CLOCK_MONOTONIC just before the command.
    pub began_ns: u64,
    /// CLOCK_MONOTONIC once it returned: the fault is in force.
    pub in_force_ns: u64,
}

impl Fault {
    fn around(make: impl FnOnce()) -> Self {
        let began_ns = monotonic_ns();
        make();
        Self {
            began_ns,
            in_force_ns: monotonic_ns(),
        }
    }

    /// `what`, with how long the fault's command took (for messages and failures).
    #[must_use]
    pub fn describe(&self, what: &str) -> String {
        format!(
            "{what} (the fault's command took {} ms)",
            (self.in_force_ns - self.began_ns) / 1_000_000
        )
    }
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A new namespace named `ipt<pid>-<n>-<tag>` with `lo` up.
    #[must_use]
    pub fn new(tag: &str) -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("ipt{}-{n}-{tag}", std::process::id());
        sh(&format!("ip netns add {name}"));
        let ns = Self { name };
        let _ = ns.set_link_fast("lo", true);
        // No duplicate address detection: addresses (link-local ones too) are usable at once.
        ns.sysctls(&[
            ("net.ipv6.conf.default.accept_dad", "0"),
            ("net.ipv6.conf.all.accept_dad", "0"),
        ]);
        ns
    }

    /// Path of the namespace file, for `nsenter --net=` or [`spawn::command_in`].
    #[must_use]
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// A command that runs `program` inside the namespace (network only, see [`spawn`]).
    #[must_use]
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        spawn::command_in(&self.path(), program)
    }

    /// Runs the shell line `cmd` inside the namespace (network only) and returns stdout; panics
    /// on failure.
    pub fn sh(&self, cmd: &str) -> String {
        spawn::checked_output(
            spawn::shell(Some(&self.path()), cmd),
            &format!("{cmd} (in {})", self.name),
        )
    }

    /// Runs `cmd` inside the namespace, returning whether it succeeded.
    #[must_use]
    pub fn try_sh(&self, cmd: &str) -> bool {
        spawn::shell(Some(&self.path()), cmd)
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Runs `ip -batch -` inside the namespace with `commands` (one `ip` command each, without
    /// the `ip`): one process for all of them; panics when one fails.
    pub fn ip_batch(&self, commands: &[String]) {
        use std::io::Write as _;
        let mut child = self
            .command("ip")
            .args(["-batch", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("ip starts");
        let script = commands.join("\n") + "\n";
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(script.as_bytes())
            .expect("ip reads its commands");
        let out = child.wait_with_output().expect("ip ends");
        assert!(
            out.status.success(),
            "ip -batch failed in {}:\n{script}stderr: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Sets each `(key, value)` sysctl in the namespace, as `sysctl -qw` would, without a process
    /// (see [`spawn::sysctls_in`]).
    pub fn sysctls(&self, settings: &[(&str, &str)]) {
        spawn::sysctls_in(&self.path(), settings);
    }

    /// Index of `ifname` in this namespace.
    #[must_use]
    pub fn ifindex(&self, ifname: &str) -> u32 {
        let name = std::ffi::CString::new(ifname).expect("an interface name has no NUL");
        // SAFETY: if_nametoindex reads the NUL-terminated name; on the thread that entered the
        // namespace, it looks the name up there.
        let index = spawn::in_netns_thread(&self.path(), move || unsafe {
            libc::if_nametoindex(name.as_ptr())
        });
        assert_ne!(index, 0, "no interface {ifname} in {}", self.name);
        index
    }

    /// The Ethernet address of `ifname`.
    #[must_use]
    pub fn mac(&self, ifname: &str) -> String {
        let link = self.sh(&format!("ip -o link show {ifname}"));
        link.split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .expect("an Ethernet address")
            .to_owned()
    }

    /// The IPv6 link-local address of `ifname`, waiting up to 3 s for DAD.
    #[must_use]
    pub fn link_local(&self, ifname: &str) -> String {
        for _ in 0..60 {
            let out = self.sh(&format!(
                "ip -6 -o addr show dev {ifname} scope link -tentative"
            ));
            if let Some(addr) = out.split_whitespace().skip_while(|w| *w != "inet6").nth(1) {
                return addr.split('/').next().unwrap_or_default().to_owned();
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("no link-local address on {ifname} in {}", self.name);
    }

    /// Starts `ping -q -c COUNT -i 0.01 TARGET` from this namespace: a steady flow of 100 packets
    /// a second whose summary [`Flow::loss`] reads.
    #[must_use]
    pub fn ping_flow(&self, target: &str, count: u32) -> Flow {
        let child = self
            .command("ping")
            .args([
                "-q",
                "-c",
                &count.to_string(),
                "-i",
                "0.01",
                "-W",
                "1",
                target,
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("ping runs");
        Flow(child)
    }

    /// Carrier loss: sets `ifname` (usually the far end of a veth) down.
    pub fn link_down(&self, ifname: &str) {
        self.sh(&format!("ip link set {ifname} down"));
    }

    /// Sets `ifname` down or up; the change happened somewhere inside the returned window.
    pub fn set_link_timed(&self, ifname: &str, up: bool) -> Fault {
        Fault::around(|| {
            self.sh(&format!(
                "ip link set {ifname} {}",
                if up { "up" } else { "down" }
            ));
        })
    }

    /// Like [`Self::set_link_timed`] but with one `SIOCSIFFLAGS` ioctl from a thread that entered
    /// the namespace, so the window around the change is microseconds, not a process start.
    pub fn set_link_fast(&self, ifname: &str, up: bool) -> Fault {
        let ifname = ifname.to_owned();
        spawn::in_netns_thread(&self.path(), move || set_flags_here(&ifname, up))
    }

    /// Ends a carrier loss.
    pub fn link_up(&self, ifname: &str) {
        self.sh(&format!("ip link set {ifname} up"));
    }

    /// Silent loss: nftables drops every frame arriving on or leaving `ifname` (netdev ingress and
    /// egress hooks); the link stays up, so only probes can notice.
    ///
    /// One nft command, so one transaction: both ways stop at the same instant. (Three commands
    /// cut the ways about 10 ms apart, and tens of ms with the CPU busy, so a fault timed from the
    /// data flow it stops began earlier for the probes, and detection looked faster than it was.)
    pub fn drop_all(&self, ifname: &str) -> Fault {
        let t = format!("ipmpd_fault_{}", ifname.replace('-', "_"));
        Fault::around(|| {
            self.sh(&format!(
                "nft 'add table netdev {t}; \
                 add chain netdev {t} in {{ type filter hook ingress device {ifname} priority 0; policy drop; }}; \
                 add chain netdev {t} out {{ type filter hook egress device {ifname} priority 0; policy drop; }}'"
            ));
        })
    }

    /// One-way loss: nftables drops every frame leaving `ifname` (towards whatever is plugged into
    /// it); frames arriving pass. Ended by [`Self::undrop_all`].
    pub fn drop_outgoing(&self, ifname: &str) -> Fault {
        let t = format!("ipmpd_fault_{}", ifname.replace('-', "_"));
        Fault::around(|| {
            self.sh(&format!(
                "nft 'add table netdev {t}; \
                 add chain netdev {t} out {{ type filter hook egress device {ifname} priority 0; policy drop; }}'"
            ));
        })
    }

    /// Ends a silent loss on `ifname`.
    pub fn undrop_all(&self, ifname: &str) {
        self.sh(&format!(
            "nft delete table netdev ipmpd_fault_{}",
            ifname.replace('-', "_")
        ));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill anything still running inside (ipmpd, helpers) before the namespace goes.
        spawn::delete_netns(&self.name);
    }
}

/// A running `ping` flow.
pub struct Flow(std::process::Child);

impl Flow {
    /// Waits for the flow to end; its summary line (`... packet loss ...`).
    #[must_use]
    pub fn loss(self) -> String {
        let out = self.0.wait_with_output().expect("ping ends");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A topology: namespaces and the veth pairs and bridges between them.
#[derive(Debug, Default)]
pub struct Topology {
    pub namespaces: Vec<Netns>,
}

impl Topology {
    /// Adds a namespace and returns its index.
    pub fn ns(&mut self, tag: &str) -> usize {
        self.namespaces.push(Netns::new(tag));
        self.namespaces.len() - 1
    }

    /// The namespace at `i`.
    #[must_use]
    pub fn at(&self, i: usize) -> &Netns {
        &self.namespaces[i]
    }

    /// A veth pair `a_if`@`a` -- `b_if`@`b`, both up. With `nic_like`, both ends get the same index
    /// (as a physical NIC has ifindex == iflink), which makes linkwatch report carrier changes late,
    /// like a real NIC.
    pub fn veth(&self, a: usize, a_if: &str, b: usize, b_if: &str, nic_like: Option<u32>) {
        let (na, nb) = (&self.at(a).name, &self.at(b).name);
        let idx = nic_like.map_or((String::new(), String::new()), |i| {
            (format!(" index {i}"), format!(" index {i}"))
        });
        sh(&format!(
            "ip link add {a_if} netns {na}{} type veth peer name {b_if} netns {nb}{}",
            idx.0, idx.1
        ));
        let _ = self.at(a).set_link_fast(a_if, true);
        let _ = self.at(b).set_link_fast(b_if, true);
    }

    /// A bridge `br` in namespace `ns` with `ports` enslaved, all up; no STP, no forwarding delay.
    pub fn bridge(&self, ns: usize, br: &str, ports: &[&str]) {
        let mut commands = vec![
            format!("link add {br} type bridge forward_delay 0 stp_state 0"),
            format!("link set {br} up"),
        ];
        for p in ports {
            commands.push(format!("link set {p} master {br}"));
            commands.push(format!("link set {p} up"));
        }
        self.at(ns).ip_batch(&commands);
    }

    /// Adds `cidr` to `ifname` in namespace `ns` (IPv6 without duplicate address detection).
    pub fn addr(&self, ns: usize, ifname: &str, cidr: &str) {
        let nodad = if cidr.contains(':') { " nodad" } else { "" };
        self.at(ns)
            .sh(&format!("ip addr add {cidr} dev {ifname}{nodad}"));
    }

    /// Adds a route in namespace `ns`.
    pub fn route(&self, ns: usize, spec: &str) {
        self.at(ns).sh(&format!("ip route add {spec}"));
    }
}

/// The standard small topology: a host namespace with `h0` (and `h1` when `two`) on 192.0.2.0/24,
/// a switch namespace with a bridge, and a router namespace at 192.0.2.1 answering probes.
/// Host-side ports are `sw-h0`/`sw-h1`, the router's is `sw-r0`.
#[derive(Debug)]
pub struct Lan {
    pub topo: Topology,
    pub host: usize,
    pub switch: usize,
    pub router: usize,
}

impl Lan {
    /// Builds it; `nic_like` gives the host links equal indexes on both ends (see [`Topology::veth`]).
    /// Without it the kernel numbers each end, and in these fresh namespaces h0 and sw-h0 both get
    /// index 2 (h1 and sw-h1 both 3), so their carrier changes are batched like a NIC's too; only
    /// the index 20 of `nic_like` is fixed. [`Self::plug_notified_at_once`] adds a link the
    /// kernel notifies at once.
    #[must_use]
    pub fn new(two: bool, nic_like: bool) -> Self {
        let mut topo = Topology::default();
        let host = topo.ns("host");
        let switch = topo.ns("sw");
        // A switch has no IP presence: no IPv6 link-local addresses to answer all-hosts probes.
        topo.at(switch).sysctls(&[
            ("net.ipv6.conf.default.disable_ipv6", "1"),
            ("net.ipv6.conf.all.disable_ipv6", "1"),
        ]);
        let router = topo.ns("rtr");
        topo.veth(host, "h0", switch, "sw-h0", nic_like.then_some(20));
        let mut ports = vec!["sw-h0", "sw-r0"];
        if two {
            topo.veth(host, "h1", switch, "sw-h1", nic_like.then_some(21));
            ports.push("sw-h1");
        }
        topo.veth(router, "r0", switch, "sw-r0", None);
        topo.bridge(switch, "br0", &ports);
        topo.addr(host, "h0", "192.0.2.10/24");
        if two {
            topo.addr(host, "h1", "192.0.2.11/24");
            // Both host interfaces are on one subnet: answer ARP only on the interface that owns
            // the address (what ipmpd sets on group members).
            topo.at(host).sysctls(&[
                ("net.ipv4.conf.all.arp_ignore", "1"),
                ("net.ipv4.conf.all.arp_announce", "2"),
            ]);
        }
        topo.addr(router, "r0", "192.0.2.1/24");
        topo.addr(router, "r0", "2001:db8::1/64");
        Self {
            topo,
            host,
            switch,
            router,
        }
    }

    /// Plugs a new host interface `ifname` (with `cidr`) into the switch, as a driver loading
    /// late or a network manager would: a veth whose far end `sw-IFNAME` joins the bridge.
    pub fn plug(&self, ifname: &str, cidr: &str) {
        self.plug_with_index(ifname, cidr, None);
    }

    /// [`Self::plug`] with the interface index given (a device re-created under its old name gets
    /// a new index on a real host; the kernel here may hand the old one out again).
    pub fn plug_with_index(&self, ifname: &str, cidr: &str, index: Option<u32>) {
        self.plug_port(ifname, cidr, index.map(|i| (i, i)), true);
    }

    /// [`Self::plug`] with different indexes on the two ends, `host_index` and `port_index`: a
    /// veth whose carrier changes the kernel notifies at once. (Left to the kernel, the ends of
    /// a veth between two namespaces often get equal indexes, each the next free one of its
    /// namespace, and behave like a NIC's.)
    pub fn plug_notified_at_once(
        &self,
        ifname: &str,
        cidr: &str,
        host_index: u32,
        port_index: u32,
    ) {
        self.plug_port(ifname, cidr, Some((host_index, port_index)), true);
    }

    /// Adds `spare`, a NIC-like host link (index 22, far end `sw-spare`, on no bridge), for
    /// [`Self::hold_linkwatch`].
    pub fn add_spare_nic_like(&self) {
        self.topo
            .veth(self.host, "spare", self.switch, "sw-spare", Some(22));
    }

    /// Holds the kernel's linkwatch in its one-second pause, as on a busy host: after it, another
    /// NIC-like link's change waits up to a second to be notified and copied to the devices
    /// stacked on it (VLAN, macvlan). Needs [`Self::add_spare_nic_like`].
    ///
    /// The spare's carrier loss is not urgent, so only a full linkwatch run handles it, and that
    /// run starts the pause. Waiting until the spare's operational state (which linkwatch sets)
    /// says down makes sure that run is over. Without the wait, the run could still be queued
    /// when the caller cuts its link, and would then notify that change at once too: seen in the
    /// 6.12 guest, where the work queue lags the command that queued it. The state is read from
    /// a dump: since Linux 6.7 an RTM_GETLINK for the one device first runs linkwatch for it
    /// alone, which would end the wait without the full run (measured on 6.18: 5 ms, against
    /// 0.5-0.7 s from a dump).
    pub fn hold_linkwatch(&self) {
        self.switch().link_down("sw-spare");
        let tries = (crate::scaled(std::time::Duration::from_secs(3)).as_millis() / 20).max(1);
        assert!(
            self.host().try_sh(&format!(
                "for i in $(seq {tries}); do ip -o link show | grep -q \"^[0-9]*: spare@.*state DOWN\" && exit 0; sleep 0.02; done; exit 1"
            )),
            "linkwatch never handled the spare link's carrier loss"
        );
        self.switch().link_up("sw-spare");
    }

    /// [`Self::plug`] with the switch port left down: the interface appears without carrier.
    pub fn plug_without_carrier(&self, ifname: &str, cidr: &str) {
        self.plug_port(ifname, cidr, None, false);
    }

    fn plug_port(&self, ifname: &str, cidr: &str, indexes: Option<(u32, u32)>, port_up: bool) {
        let port = format!("sw-{ifname}");
        let (idx, port_idx) = indexes.map_or_else(Default::default, |(h, p)| {
            (format!(" index {h}"), format!(" index {p}"))
        });
        sh(&format!(
            "ip link add {ifname} netns {}{idx} type veth peer name {port} netns {}{port_idx}",
            self.host().name,
            self.switch().name,
        ));
        let _ = self.host().set_link_fast(ifname, true);
        let mut port_commands = vec![format!("link set {port} master br0")];
        if port_up {
            port_commands.push(format!("link set {port} up"));
        }
        self.switch().ip_batch(&port_commands);
        self.topo.addr(self.host, ifname, cidr);
    }

    /// Deletes host interface `ifname` (and with it its far end).
    pub fn unplug(&self, ifname: &str) {
        self.host().sh(&format!("ip link del {ifname}"));
    }

    /// The host namespace.
    #[must_use]
    pub fn host(&self) -> &Netns {
        self.topo.at(self.host)
    }
    /// The switch namespace.
    #[must_use]
    pub fn switch(&self) -> &Netns {
        self.topo.at(self.switch)
    }
    /// The router namespace.
    #[must_use]
    pub fn router(&self) -> &Netns {
        self.topo.at(self.router)
    }
}

/// Moves the calling thread into the network namespace at `path` (`/run/netns/NAME`). Only this
/// thread changes namespace; use it from a thread of its own.
pub fn enter_netns(path: &str) {
    use std::os::fd::AsRawFd as _;
    let ns = std::fs::File::open(path).expect("namespace file");
    // SAFETY: setns on a namespace fd; it changes only the calling thread's namespace.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {path}");
}

/// Takes `ifname` up or down in the calling thread's namespace with one SIOCSIFFLAGS, timed.
fn set_flags_here(ifname: &str, up: bool) -> Fault {
    // SAFETY: a plain datagram socket for interface ioctls.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    assert!(sock >= 0);
    // SAFETY: zeroed ifreq is valid; the name is copied in below, NUL-terminated.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr
        .ifr_name
        .iter_mut()
        .zip(ifname.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    // SAFETY: valid socket and ifreq.
    let rc = unsafe { libc::ioctl(sock, libc::SIOCGIFFLAGS, &raw mut ifr) };
    assert_eq!(rc, 0, "SIOCGIFFLAGS {ifname}");
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { ifr.ifr_ifru.ifru_flags };
    let up_flag = libc::IFF_UP as libc::c_short;
    ifr.ifr_ifru.ifru_flags = if up {
        flags | up_flag
    } else {
        flags & !up_flag
    };
    let mut rc = 0;
    let fault = Fault::around(|| {
        // SAFETY: valid socket and ifreq.
        rc = unsafe { libc::ioctl(sock, libc::SIOCSIFFLAGS, &raw mut ifr) };
    });
    // SAFETY: closing the socket opened above.
    unsafe { libc::close(sock) };
    assert_eq!(rc, 0, "SIOCSIFFLAGS {ifname}");
    fault
}
