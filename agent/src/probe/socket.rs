//! Raw ICMP / ICMPv6 sockets that send probes from one test address out of one interface.
//!
//! Bound to the test address and the interface (SO_BINDTODEVICE), TTL / hop limit 1 so a probe never
//! leaves the link, and with every incoming ICMP type filtered out: replies never reach this socket,
//! XDP consumes them and hands them over through the ring buffer.

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
        let sock = Self {
            fd,
            family,
            ifindex,
            ifname: ifname.to_owned(),
        };
        let fd = &sock.fd;
        sock.check(
            "SO_BINDTODEVICE",
            SockRef::from(fd).bind_device(Some(ifname.as_bytes())),
        )?;
        match family {
            Family::Inet => {
                sock.check("IP_TTL", sockopt::set_ip_ttl(fd, 1))?;
                sock.check("IP_MULTICAST_TTL", sockopt::set_ip_multicast_ttl(fd, 1))?;
                sock.check(
                    "IP_MULTICAST_LOOP",
                    sockopt::set_ip_multicast_loop(fd, false),
                )?;
                // The bound test address is known to be local: IP_TRANSPARENT spares every send
                // the kernel's check that the source is one of the host's addresses (a hash
                // lookup over every address of every namespace). Best effort: without the
                // privilege the check simply stays.
                let _ = SockRef::from(fd).set_ip_transparent_v4(true);
                // Don't Fragment: a probe is far below any MTU, and a DF datagram takes IP ID 0
                // instead of a hashed one from the kernel's shared generator (a few percent of
                // every send at 1,024 members in the scale profile). Best effort as well.
                let _ = sock.set_raw_option(
                    libc::IPPROTO_IP,
                    libc::IP_MTU_DISCOVER,
                    "IP_MTU_DISCOVER",
                    &libc::IP_PMTUDISC_DO.to_ne_bytes(),
                );
                // Drop every ICMP type on input: replies arrive through the datapath instead.
                sock.set_raw_option(
                    libc::SOL_RAW,
                    ICMP_FILTER,
                    "ICMP_FILTER",
                    &u32::MAX.to_ne_bytes(),
                )?;
            }
            Family::Inet6 => {
                sock.check(
                    "IPV6_UNICAST_HOPS",
                    sockopt::set_ipv6_unicast_hops(fd, Some(1)),
                )?;
                sock.check(
                    "IPV6_MULTICAST_HOPS",
                    sockopt::set_ipv6_multicast_hops(fd, 1),
                )?;
                sock.check(
                    "IPV6_MULTICAST_LOOP",
                    sockopt::set_ipv6_multicast_loop(fd, false),
                )?;
                sock.check(
                    "IPV6_MULTICAST_IF",
                    sockopt::set_ipv6_multicast_if(fd, ifindex),
                )?;
                sock.set_raw_option(
                    libc::IPPROTO_ICMPV6,
                    ICMP6_FILTER,
                    "ICMP6_FILTER",
                    &[0xffu8; 32],
                )?;
            }
        }
        sock.bind(test_addr)?;
        Ok(sock)
    }

    /// The family of this socket.
    #[must_use]
    pub fn family(&self) -> Family {
        self.family
    }

    /// Sends `packet` to `target`. A full send buffer (EAGAIN) counts as sent, as in.mpathd does: a
    /// stuck lower layer then shows up as lost probes.
    ///
    /// # Errors
    /// Any other send error, or a target of the other family.
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
        match sent {
            Ok(_) | Err(rustix::io::Errno::AGAIN) => Ok(()),
            Err(e) => Err(e.into()),
        }
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

    /// Turns the outcome of setting `option` into this socket's error.
    fn check<E: Into<io::Error>>(
        &self,
        option: &'static str,
        set: Result<(), E>,
    ) -> Result<(), SocketError> {
        set.map_err(|e| SocketError::Option {
            option,
            ifname: self.ifname.clone(),
            source: e.into(),
        })
    }

    /// Sets an option rustix and socket2 do not offer (the raw-socket ICMP type filters, path MTU
    /// discovery) from its bytes.
    fn set_raw_option(
        &self,
        level: libc::c_int,
        name: libc::c_int,
        option: &'static str,
        v: &[u8],
    ) -> Result<(), SocketError> {
        // Stays libc: neither rustix nor socket2 has ICMP_FILTER / ICMP6_FILTER or
        // IP_MTU_DISCOVER (nor a raw setsockopt taking a byte slice).
        // SAFETY: the descriptor is open (owned by `self`); `v` is valid for reads of `v.len()`
        // bytes during the call, and the kernel only reads that many bytes from it.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                v.as_ptr().cast(),
                v.len() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return self.check(option, Err(io::Error::last_os_error()));
        }
        Ok(())
    }
}
