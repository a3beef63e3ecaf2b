//! Raw ICMP / ICMPv6 sockets for probes, with TTL / hop limit 1 so a probe never leaves the link
//! and every incoming ICMP type filtered out: replies never reach them, XDP consumes them and
//! hands them over through the ring buffer. A member's socket is bound to its test address and
//! interface (SO_BINDTODEVICE): binding it is how the daemon finds the address usable, and
//! `ipmpd probe` sends on it. The daemon sends its probes on one shared socket per family with
//! the same options ([`configured`], used by [`super::outbox`]).
use std::{
    io,
    net::{IpAddr, SocketAddrV4, SocketAddrV6},
    os::fd::{AsRawFd as _, OwnedFd},
};

use rustix::net::{AddressFamily, SendFlags, SocketFlags, SocketType, ipproto, sockopt};
use socket2::SockRef;

use super::packet::Family;

/// `ICMP_FILTER` (linux/icmp.h): a bit mask of ICMP types a raw IPv4 socket drops.
const ICMP_FILTER: libc::c_int = 1;
/// `ICMP6_FILTER` (linux/icmpv6.h), option level IPPROTO_ICMPV6.
const ICMP6_FILTER: libc::c_int = 1;

/// Errors opening or using a probe socket.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("cannot open a raw {family:?} socket (ipmpd needs root or CAP_NET_RAW)")]
    Open { family: Family, source: io::Error },
    #[error("setsockopt {option} on the probe socket for {ifname}")]
    Option {
        option: &'static str,
        ifname: String,
        source: io::Error,
    },
    #[error(
        "cannot bind the probe socket to test address {addr} on {ifname} (is the address configured and up?)"
    )]
    Bind {
        addr: IpAddr,
        ifname: String,
        source: io::Error,
    },
    #[error("test address {addr} and target {target} are not of the same family")]
    FamilyMismatch { addr: IpAddr, target: IpAddr },
}

/// A raw socket sending probes from one test address on one interface.
#[derive(Debug)]
pub struct ProbeSocket {
    fd: OwnedFd,
    family: Family,
    ifindex: u32,
    ifname: String,
}

impl ProbeSocket {
    /// Opens a socket sending from `test_addr` out of `ifname` (index `ifindex`).
    ///
    /// # Errors
    /// When the socket cannot be made or configured; the message says what to check.
    pub fn open(ifname: &str, ifindex: u32, test_addr: IpAddr) -> Result<Self, SocketError> {
        let family = match test_addr {
            IpAddr::V4(_) => Family::Inet,
            IpAddr::V6(_) => Family::Inet6,
        };
        let sock = Self {
            fd: configured(family, ifname)?,
            family,
            ifindex,
            ifname: ifname.to_owned(),
        };
        let fd = &sock.fd;
        check(
            "SO_BINDTODEVICE",
            ifname,
            SockRef::from(fd).bind_device(Some(ifname.as_bytes())),
        )?;
        if family == Family::Inet6 {
            check(
                "IPV6_MULTICAST_IF",
                ifname,
                sockopt::set_ipv6_multicast_if(fd, ifindex),
            )?;
        }
        sock.bind(test_addr)?;
        Ok(sock)
    }

    /// The family of this socket.
    #[must_use]
    pub fn family(&self) -> Family {
        self.family
    }

    /// Sends `packet` to `target`.
    ///
    /// # Errors
    /// The kernel's refusal (a full send buffer too: [`send_buffer_full`]), or a target of the
    /// other family.
    pub fn send(&self, target: IpAddr, packet: &[u8]) -> io::Result<()> {
        let sent = match (self.family, target) {
            (Family::Inet, IpAddr::V4(t)) => rustix::net::sendto(
                &self.fd,
                packet,
                SendFlags::empty(),
                &SocketAddrV4::new(t, 0),
            ),
            (Family::Inet6, IpAddr::V6(t)) => rustix::net::sendto(
                &self.fd,
                packet,
                SendFlags::empty(),
                &SocketAddrV6::new(t, 0, 0, self.ifindex),
            ),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "target of the other address family",
                ));
            }
        };
        sent.map(drop).map_err(Into::into)
    }

    fn bind(&self, addr: IpAddr) -> Result<(), SocketError> {
        let bound = match addr {
            IpAddr::V4(a) => rustix::net::bind(&self.fd, &SocketAddrV4::new(a, 0)),
            IpAddr::V6(a) => {
                let scope = if crate::ip::is_link_local(IpAddr::V6(a)) {
                    self.ifindex
                } else {
                    0
                };
                rustix::net::bind(&self.fd, &SocketAddrV6::new(a, 0, 0, scope))
            }
        };
        bound.map_err(|e| SocketError::Bind {
            addr,
            ifname: self.ifname.clone(),
            source: e.into(),
        })
    }
}

/// A raw socket of `family` with every option a probe socket has whatever sends through it: TTL /
/// hop limit 1, no multicast loop, Don't Fragment, every incoming ICMP type filtered out. `owner`
/// names what it is for in errors (an interface, or every member for the shared socket).
pub(super) fn configured(family: Family, owner: &str) -> Result<OwnedFd, SocketError> {
    let (domain, proto) = match family {
        Family::Inet => (AddressFamily::INET, ipproto::ICMP),
        Family::Inet6 => (AddressFamily::INET6, ipproto::ICMPV6),
    };
    let fd = rustix::net::socket_with(
        domain,
        SocketType::RAW,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        Some(proto),
    )
    .map_err(|e| SocketError::Open {
        family,
        source: e.into(),
    })?;
    let fd_ref = &fd;
    match family {
        Family::Inet => {
            check("IP_TTL", owner, sockopt::set_ip_ttl(fd_ref, 1))?;
            check(
                "IP_MULTICAST_TTL",
                owner,
                sockopt::set_ip_multicast_ttl(fd_ref, 1),
            )?;
            check(
                "IP_MULTICAST_LOOP",
                owner,
                sockopt::set_ip_multicast_loop(fd_ref, false),
            )?;
            // The source is a test address, known to be local: IP_TRANSPARENT spares every send
            // the kernel's check that the source is one of the host's addresses (a hash lookup
            // over every address of every namespace). Best effort: without the privilege the
            // check simply stays.
            let _ = SockRef::from(fd_ref).set_ip_transparent_v4(true);
            // Don't Fragment: a probe is far below any MTU, and a DF datagram takes IP ID 0
            // instead of a hashed one from the kernel's shared generator (a few percent of every
            // send at 1,024 members in the scale profile). Best effort as well.
            let _ = set_raw_option(
                fd_ref,
                (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER),
                ("IP_MTU_DISCOVER", owner),
                &libc::IP_PMTUDISC_DO.to_ne_bytes(),
            );
            // Drop every ICMP type on input: replies arrive through the datapath instead.
            set_raw_option(
                fd_ref,
                (libc::SOL_RAW, ICMP_FILTER),
                ("ICMP_FILTER", owner),
                &u32::MAX.to_ne_bytes(),
            )?;
        }
        Family::Inet6 => {
            check(
                "IPV6_UNICAST_HOPS",
                owner,
                sockopt::set_ipv6_unicast_hops(fd_ref, Some(1)),
            )?;
            check(
                "IPV6_MULTICAST_HOPS",
                owner,
                sockopt::set_ipv6_multicast_hops(fd_ref, 1),
            )?;
            check(
                "IPV6_MULTICAST_LOOP",
                owner,
                sockopt::set_ipv6_multicast_loop(fd_ref, false),
            )?;
            set_raw_option(
                fd_ref,
                (libc::IPPROTO_ICMPV6, ICMP6_FILTER),
                ("ICMP6_FILTER", owner),
                &[0xffu8; 32],
            )?;
        }
    }
    Ok(fd)
}

/// Whether a send failed only because the socket's send buffer is full: ENOBUFS on a raw socket
/// (its datagrams are allocated against twice the buffer, `__ip_append_data`), EAGAIN elsewhere.
/// Such a probe counts as sent, as in.mpathd does: a stuck lower layer shows up as lost probes.
#[must_use]
pub fn send_buffer_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::EAGAIN))
}

/// Turns the outcome of setting `option` on `owner`'s socket into a [`SocketError`].
fn check<E: Into<io::Error>>(
    option: &'static str,
    owner: &str,
    set: Result<(), E>,
) -> Result<(), SocketError> {
    set.map_err(|e| SocketError::Option {
        option,
        ifname: owner.to_owned(),
        source: e.into(),
    })
}

/// Sets an option rustix and socket2 do not offer (the raw-socket ICMP type filters, path MTU
/// discovery, IPV6_TRANSPARENT) from its bytes; `at` is (level, name), `what` the option's name
/// and the socket's owner for the error.
fn set_raw_option(
    fd: &OwnedFd,
    at: (libc::c_int, libc::c_int),
    what: (&'static str, &str),
    v: &[u8],
) -> Result<(), SocketError> {
    // Stays libc: neither rustix nor socket2 has these options (nor a raw setsockopt taking a
    // byte slice).
    // SAFETY: the descriptor is open (borrowed for the call); `v` is valid for reads of `v.len()`
    // bytes during the call, and the kernel only reads that many bytes from it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            at.0,
            at.1,
            v.as_ptr().cast(),
            v.len() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return check(what.0, what.1, Err(io::Error::last_os_error()));
    }
    Ok(())
}
