//! Raw ICMP / ICMPv6 sockets that send probes from one test address out of one interface.
//!
//! Bound to the test address and the interface (SO_BINDTODEVICE), TTL / hop limit 1 so a probe never
//! leaves the link, and with every incoming ICMP type filtered out: replies never reach this socket,
//! XDP consumes them and hands them over through the ring buffer.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

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
            Family::Inet => (libc::AF_INET, libc::IPPROTO_ICMP),
            Family::Inet6 => (libc::AF_INET6, libc::IPPROTO_ICMPV6),
        };
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                domain,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                proto,
            )
        };
        if raw < 0 {
            return Err(SocketError::Open {
                family,
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sock = Self {
            fd,
            family,
            ifindex,
            ifname: ifname.to_owned(),
        };
        sock.set_bytes(
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            "SO_BINDTODEVICE",
            ifname.as_bytes(),
        )?;
        match family {
            Family::Inet => {
                sock.set_int(libc::IPPROTO_IP, libc::IP_TTL, "IP_TTL", 1)?;
                sock.set_int(
                    libc::IPPROTO_IP,
                    libc::IP_MULTICAST_TTL,
                    "IP_MULTICAST_TTL",
                    1,
                )?;
                sock.set_int(
                    libc::IPPROTO_IP,
                    libc::IP_MULTICAST_LOOP,
                    "IP_MULTICAST_LOOP",
                    0,
                )?;
                // The bound test address is known to be local: IP_TRANSPARENT spares every send
                // the kernel's check that the source is one of the host's addresses (a hash
                // lookup over every address of every namespace). Best effort: without the
                // privilege the check simply stays.
                let _ = sock.set_int(libc::IPPROTO_IP, libc::IP_TRANSPARENT, "IP_TRANSPARENT", 1);
                // Drop every ICMP type on input: replies arrive through the datapath instead.
                sock.set_bytes(
                    libc::SOL_RAW,
                    ICMP_FILTER,
                    "ICMP_FILTER",
                    &u32::MAX.to_ne_bytes(),
                )?;
            }
            Family::Inet6 => {
                sock.set_int(
                    libc::IPPROTO_IPV6,
                    libc::IPV6_UNICAST_HOPS,
                    "IPV6_UNICAST_HOPS",
                    1,
                )?;
                sock.set_int(
                    libc::IPPROTO_IPV6,
                    libc::IPV6_MULTICAST_HOPS,
                    "IPV6_MULTICAST_HOPS",
                    1,
                )?;
                sock.set_int(
                    libc::IPPROTO_IPV6,
                    libc::IPV6_MULTICAST_LOOP,
                    "IPV6_MULTICAST_LOOP",
                    0,
                )?;
                sock.set_int(
                    libc::IPPROTO_IPV6,
                    libc::IPV6_MULTICAST_IF,
                    "IPV6_MULTICAST_IF",
                    ifindex as i32,
                )?;
                sock.set_bytes(
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
        let rc = match (self.family, target) {
            (Family::Inet, IpAddr::V4(t)) => {
                let sa = sockaddr_in(t, 0);
                // SAFETY: `sa` is a valid sockaddr_in of the given length; `packet` outlives the call.
                unsafe {
                    libc::sendto(
                        self.fd.as_raw_fd(),
                        packet.as_ptr().cast(),
                        packet.len(),
                        0,
                        (&raw const sa).cast(),
                        size_of::<libc::sockaddr_in>() as u32,
                    )
                }
            }
            (Family::Inet6, IpAddr::V6(t)) => {
                let sa = sockaddr_in6(t, 0, self.ifindex);
                // SAFETY: as above with sockaddr_in6.
                unsafe {
                    libc::sendto(
                        self.fd.as_raw_fd(),
                        packet.as_ptr().cast(),
                        packet.len(),
                        0,
                        (&raw const sa).cast(),
                        size_of::<libc::sockaddr_in6>() as u32,
                    )
                }
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "target of the other address family",
                ));
            }
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::WouldBlock {
                return Ok(());
            }
            return Err(err);
        }
        Ok(())
    }

    fn bind(&self, addr: IpAddr) -> Result<(), SocketError> {
        let rc = match addr {
            IpAddr::V4(a) => {
                let sa = sockaddr_in(a, 0);
                // SAFETY: valid sockaddr_in and length.
                unsafe {
                    libc::bind(
                        self.fd.as_raw_fd(),
                        (&raw const sa).cast(),
                        size_of::<libc::sockaddr_in>() as u32,
                    )
                }
            }
            IpAddr::V6(a) => {
                let scope = if crate::ip::is_link_local(IpAddr::V6(a)) {
                    self.ifindex
                } else {
                    0
                };
                let sa = sockaddr_in6(a, 0, scope);
                // SAFETY: valid sockaddr_in6 and length.
                unsafe {
                    libc::bind(
                        self.fd.as_raw_fd(),
                        (&raw const sa).cast(),
                        size_of::<libc::sockaddr_in6>() as u32,
                    )
                }
            }
        };
        if rc < 0 {
            return Err(SocketError::Bind {
                addr,
                ifname: self.ifname.clone(),
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    fn set_int(
        &self,
        level: libc::c_int,
        name: libc::c_int,
        option: &'static str,
        v: libc::c_int,
    ) -> Result<(), SocketError> {
        self.set_bytes(level, name, option, &v.to_ne_bytes())
    }

    fn set_bytes(
        &self,
        level: libc::c_int,
        name: libc::c_int,
        option: &'static str,
        v: &[u8],
    ) -> Result<(), SocketError> {
        // SAFETY: `v` is valid for `v.len()` bytes during the call.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                v.as_ptr().cast(),
                v.len() as u32,
            )
        };
        if rc < 0 {
            return Err(SocketError::Option {
                option,
                ifname: self.ifname.clone(),
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }
}

fn sockaddr_in(a: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.octets()),
        },
        sin_zero: [0; 8],
    }
}

fn sockaddr_in6(a: Ipv6Addr, port: u16, scope_id: u32) -> libc::sockaddr_in6 {
    libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: port.to_be(),
        sin6_flowinfo: 0,
        sin6_addr: libc::in6_addr {
            s6_addr: a.octets(),
        },
        sin6_scope_id: scope_id,
    }
}
