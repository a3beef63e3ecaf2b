//! Telling the neighbours where a data address lives now: gratuitous ARP (IPv4) and unsolicited
//! neighbour advertisements (IPv6), sent from the new interface.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV6},
};

use rustix::net::{
    AddressFamily, SendFlags, SocketFlags, SocketType,
    addr::{SocketAddrArg, SocketAddrLen, SocketAddrOpaque},
    eth, ipproto, sockopt,
};
use socket2::SockRef;

/// A gratuitous ARP request: sender and target protocol address both `addr`, broadcast.
#[must_use]
pub fn gratuitous_arp(mac: [u8; 6], addr: Ipv4Addr) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    // htype Ethernet, ptype IPv4, hlen 6, plen 4, op request
    f[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&addr.octets());
    // target hardware address stays zero
    f[38..42].copy_from_slice(&addr.octets());
    f
}

/// An unsolicited neighbour advertisement (override set) for `target` with our link-layer
/// address; the kernel fills in the ICMPv6 checksum.
#[must_use]
pub fn unsolicited_na(mac: [u8; 6], target: Ipv6Addr) -> [u8; 32] {
    let mut m = [0u8; 32];
    m[0] = 136; // neighbour advertisement
    m[4] = 0x20; // flags: Override
    m[8..24].copy_from_slice(&target.octets());
    m[24] = 2; // option: target link-layer address
    m[25] = 1; // length in units of 8 bytes
    m[26..32].copy_from_slice(&mac);
    m
}

/// `ETH_P_ARP` (linux/if_ether.h).
const ETH_P_ARP: u16 = 0x0806;

/// A link-layer destination (`sockaddr_ll`) for sending on an `AF_PACKET` socket: rustix and
/// socket2 have no safe constructor for one, so this wraps the libc struct and hands it to
/// rustix's `sendto` through [`SocketAddrArg`].
struct LinkAddr(libc::sockaddr_ll);

impl LinkAddr {
    /// The Ethernet broadcast address on interface `ifindex`, for frames of `protocol`.
    fn broadcast(ifindex: u32, protocol: u16) -> Self {
        let mut sll_addr = [0u8; 8];
        sll_addr[..6].copy_from_slice(&[0xff; 6]);
        Self(libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as libc::c_ushort,
            sll_protocol: protocol.to_be(),
            sll_ifindex: ifindex as libc::c_int,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 6,
            sll_addr,
        })
    }
}

// SAFETY: `with_sockaddr` passes a pointer to the whole `sockaddr_ll` this value owns, which is
// readable for the length passed with it (its size) for the duration of the call, and the struct
// is a complete, valid AF_PACKET socket address (family set, every other field initialised).
unsafe impl SocketAddrArg for LinkAddr {
    unsafe fn with_sockaddr<R>(
        &self,
        f: impl FnOnce(*const SocketAddrOpaque, SocketAddrLen) -> R,
    ) -> R {
        f(
            (&raw const self.0).cast(),
            size_of::<libc::sockaddr_ll>() as SocketAddrLen,
        )
    }
}

/// Sends one announcement of `addr` from `ifindex` (hardware address `mac`).
///
/// # Errors
/// When the socket cannot be made or the send fails.
pub fn announce(ifindex: u32, ifname: &str, mac: [u8; 6], addr: IpAddr) -> io::Result<()> {
    match addr {
        IpAddr::V4(a) => {
            let frame = gratuitous_arp(mac, a);
            let fd = rustix::net::socket_with(
                AddressFamily::PACKET,
                SocketType::RAW,
                SocketFlags::CLOEXEC,
                Some(eth::ARP),
            )?;
            rustix::net::sendto(
                &fd,
                &frame,
                SendFlags::empty(),
                &LinkAddr::broadcast(ifindex, ETH_P_ARP),
            )?;
            Ok(())
        }
        IpAddr::V6(a) => {
            let msg = unsolicited_na(mac, a);
            let fd = rustix::net::socket_with(
                AddressFamily::INET6,
                SocketType::RAW,
                SocketFlags::CLOEXEC,
                Some(ipproto::ICMPV6),
            )?;
            SockRef::from(&fd).bind_device(Some(ifname.as_bytes()))?;
            // Neighbour discovery requires hop limit 255.
            sockopt::set_ipv6_multicast_hops(&fd, 255)?;
            sockopt::set_ipv6_multicast_if(&fd, ifindex)?;
            // Failure (e.g. a tentative address) leaves the kernel to choose the source.
            let _ = rustix::net::bind(&fd, &SocketAddrV6::new(a, 0, 0, 0));
            let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
            rustix::net::sendto(
                &fd,
                &msg,
                SendFlags::empty(),
                &SocketAddrV6::new(all_nodes, 0, 0, ifindex),
            )?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];

    #[test]
    fn gratuitous_arp_golden() {
        #[rustfmt::skip]
        assert_eq!(gratuitous_arp(MAC, Ipv4Addr::new(192, 0, 2, 100)), [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff,    // broadcast
            0x02, 0, 0, 0, 0, 0x11,                // our MAC
            0x08, 0x06,                            // ARP
            0, 1, 0x08, 0x00, 6, 4, 0, 1,          // Ethernet/IPv4, request
            0x02, 0, 0, 0, 0, 0x11, 192, 0, 2, 100, // sender: us, the data address
            0, 0, 0, 0, 0, 0, 192, 0, 2, 100,      // target: the same address
        ]);
    }

    #[test]
    fn unsolicited_na_golden() {
        let m = unsolicited_na(MAC, "2001:db8::100".parse().unwrap());
        assert_eq!(
            &m[..8],
            &[136, 0, 0, 0, 0x20, 0, 0, 0],
            "NA, checksum by the kernel, Override"
        );
        assert_eq!(
            &m[8..24],
            &"2001:db8::100".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(
            &m[24..],
            &[2, 1, 0x02, 0, 0, 0, 0, 0x11],
            "target link-layer address option"
        );
    }
}
