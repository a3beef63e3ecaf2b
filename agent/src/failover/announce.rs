//! Telling the neighbours where a data address lives now: gratuitous ARP (IPv4) and unsolicited
//! neighbour advertisements (IPv6), sent from the new interface.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

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

fn cvt(rc: isize) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn socket(domain: i32, kind: i32, proto: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked.
    let fd = unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends one announcement of `addr` from `ifindex` (hardware address `mac`).
///
/// # Errors
/// When the socket cannot be made or the send fails.
pub fn announce(ifindex: u32, ifname: &str, mac: [u8; 6], addr: IpAddr) -> io::Result<()> {
    match addr {
        IpAddr::V4(a) => {
            let frame = gratuitous_arp(mac, a);
            let fd = socket(
                libc::AF_PACKET,
                libc::SOCK_RAW,
                i32::from(0x0806u16.to_be()),
            )?;
            // SAFETY: zeroed sockaddr_ll is valid; the fields below make it a unicast-free send.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = 0x0806u16.to_be();
            sll.sll_ifindex = ifindex as i32;
            sll.sll_halen = 6;
            sll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
            // SAFETY: `frame` and `sll` are valid for the call.
            cvt(unsafe {
                libc::sendto(
                    fd.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&raw const sll).cast(),
                    size_of::<libc::sockaddr_ll>() as u32,
                )
            })
        }
        IpAddr::V6(a) => {
            let msg = unsolicited_na(mac, a);
            let fd = socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6)?;
            let set = |level: i32, name: i32, v: &[u8]| {
                // SAFETY: `v` is valid for its length.
                cvt(unsafe {
                    libc::setsockopt(
                        fd.as_raw_fd(),
                        level,
                        name,
                        v.as_ptr().cast(),
                        v.len() as u32,
                    )
                } as isize)
            };
            set(libc::SOL_SOCKET, libc::SO_BINDTODEVICE, ifname.as_bytes())?;
            // Neighbour discovery requires hop limit 255.
            set(
                libc::IPPROTO_IPV6,
                libc::IPV6_MULTICAST_HOPS,
                &255i32.to_ne_bytes(),
            )?;
            set(
                libc::IPPROTO_IPV6,
                libc::IPV6_MULTICAST_IF,
                &(ifindex as i32).to_ne_bytes(),
            )?;
            // SAFETY: zeroed sockaddr_in6 is valid; filled below.
            let mut src: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            src.sin6_family = libc::AF_INET6 as u16;
            src.sin6_addr.s6_addr = a.octets();
            // SAFETY: valid sockaddr and length. Failure (e.g. a tentative address) leaves the
            // kernel to choose the source.
            let _ = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&raw const src).cast(),
                    size_of::<libc::sockaddr_in6>() as u32,
                )
            };
            let mut dst = src;
            dst.sin6_addr.s6_addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets();
            dst.sin6_scope_id = ifindex;
            // SAFETY: valid buffer and address.
            cvt(unsafe {
                libc::sendto(
                    fd.as_raw_fd(),
                    msg.as_ptr().cast(),
                    msg.len(),
                    0,
                    (&raw const dst).cast(),
                    size_of::<libc::sockaddr_in6>() as u32,
                )
            })
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
