//! `sendmmsg` of probes on an unbound raw socket, each message carrying its egress interface and
//! source address as IP_PKTINFO / IPV6_PKTINFO ancillary data (rustix's ancillary messages do not
//! include these).

use std::{
    io,
    net::IpAddr,
    os::fd::{AsRawFd as _, OwnedFd},
};

use super::outbox::Probe;

/// Messages per call. The kernel takes up to 1,024 (`UIO_MAXIOV`); 64 keep the messages on the
/// stack (about 10 KiB) for one system call per 64 probes, the burst the bench's bare sender
/// (the kernel's floor, `bench/src/sections/scale/floor.rs`) sends per wake-up.
const MAX_PER_CALL: usize = 64;

/// One control message with an IPv4 packet-info: the header, then the data at
/// `CMSG_ALIGN(sizeof(cmsghdr))`, which is where `repr(C)` puts it.
#[repr(C)]
#[derive(Clone, Copy)]
struct PktInfo4 {
    hdr: libc::cmsghdr,
    info: libc::in_pktinfo,
}

/// The same for IPv6.
#[repr(C)]
#[derive(Clone, Copy)]
struct PktInfo6 {
    hdr: libc::cmsghdr,
    info: libc::in6_pktinfo,
}

/// `CMSG_SPACE(len)`: a control message with `len` bytes of data and its padding.
const fn cmsg_space(len: usize) -> usize {
    // SAFETY: CMSG_SPACE is arithmetic on its argument.
    unsafe { libc::CMSG_SPACE(len as u32) as usize }
}

/// `CMSG_LEN(len)`: a control message header and `len` bytes of data.
const fn cmsg_len(len: usize) -> usize {
    // SAFETY: CMSG_LEN is arithmetic on its argument.
    unsafe { libc::CMSG_LEN(len as u32) as usize }
}

const _: () = assert!(size_of::<PktInfo4>() == cmsg_space(size_of::<libc::in_pktinfo>()));
const _: () = assert!(size_of::<PktInfo6>() == cmsg_space(size_of::<libc::in6_pktinfo>()));
const _: () = assert!(std::mem::offset_of!(PktInfo4, info) == cmsg_len(0));
const _: () = assert!(std::mem::offset_of!(PktInfo6, info) == cmsg_len(0));

/// One message's control buffer, of either family.
#[repr(C)]
#[derive(Clone, Copy)]
union Control {
    v4: PktInfo4,
    v6: PktInfo6,
}

/// One message's destination, of either family.
#[repr(C)]
#[derive(Clone, Copy)]
union Dest {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

fn zeroed_cmsghdr(level: libc::c_int, kind: libc::c_int, data_len: usize) -> libc::cmsghdr {
    // SAFETY: cmsghdr is plain C data (on musl it has private padding, hence no literal); all
    // zeroes is a valid value.
    let mut h: libc::cmsghdr = unsafe { std::mem::zeroed() };
    h.cmsg_len = cmsg_len(data_len) as _;
    h.cmsg_level = level;
    h.cmsg_type = kind;
    h
}

/// The destination and control message of `p`; the length of each that the kernel reads; `None`
/// when its source and target are of different families. The control length is CMSG_LEN, without
/// the trailing padding CMSG_SPACE would add: the kernel accepts it for a single message, and an
/// IPv6 one (36 bytes) then fits the kernel's on-stack control buffer instead of taking an
/// allocation per message.
fn message_parts(p: &Probe) -> Option<(Dest, libc::socklen_t, Control, usize)> {
    match (p.source, p.target) {
        (IpAddr::V4(s), IpAddr::V4(t)) => {
            let dest = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from(t).to_be(),
                },
                sin_zero: [0; 8],
            };
            let info = libc::in_pktinfo {
                ipi_ifindex: p.ifindex as libc::c_int,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from(s).to_be(),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            let control = PktInfo4 {
                hdr: zeroed_cmsghdr(libc::SOL_IP, libc::IP_PKTINFO, size_of_val(&info)),
                info,
            };
            Some((
                Dest { v4: dest },
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
                Control { v4: control },
                cmsg_len(size_of::<libc::in_pktinfo>()),
            ))
        }
        (IpAddr::V6(s), IpAddr::V6(t)) => {
            // SAFETY: sockaddr_in6 is plain C data; all zeroes is a valid value.
            let mut dest: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            dest.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            dest.sin6_addr.s6_addr = t.octets();
            // The scope of a link-local target is the member's interface.
            dest.sin6_scope_id = p.ifindex;
            let info = libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: s.octets(),
                },
                ipi6_ifindex: p.ifindex,
            };
            let control = PktInfo6 {
                hdr: zeroed_cmsghdr(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, size_of_val(&info)),
                info,
            };
            Some((
                Dest { v6: dest },
                size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                Control { v6: control },
                cmsg_len(size_of::<libc::in6_pktinfo>()),
            ))
        }
        _ => None,
    }
}

/// The messages of one call, on the stack: no allocation per batch.
#[repr(C)]
struct Messages {
    dests: [Dest; MAX_PER_CALL],
    controls: [Control; MAX_PER_CALL],
    iovs: [libc::iovec; MAX_PER_CALL],
    headers: [libc::mmsghdr; MAX_PER_CALL],
}

/// Sends the first of `probes` in one `sendmmsg` on `fd` (up to [`MAX_PER_CALL`], and up to the
/// first whose source and target differ in family): how many went, or the first one's error when
/// none did.
///
/// # Errors
/// The first probe's send error (ENOBUFS or EAGAIN when the send buffer is full), or
/// `InvalidInput` when its source and target differ in family.
pub(super) fn send(fd: &OwnedFd, probes: &[Probe]) -> io::Result<usize> {
    // SAFETY: every field is an array of plain C data (unions of sockaddrs and control messages,
    // iovecs and mmsghdrs holding null pointers); all zeroes is a valid value of each.
    let mut m: Messages = unsafe { std::mem::zeroed() };
    let mut count = 0;
    for (i, p) in probes.iter().take(MAX_PER_CALL).enumerate() {
        let Some((dest, dest_len, control, control_len)) = message_parts(p) else {
            break;
        };
        m.dests[i] = dest;
        m.controls[i] = control;
        // The kernel only reads a message's data on send.
        m.iovs[i] = libc::iovec {
            iov_base: p.packet.as_ptr().cast_mut().cast(),
            iov_len: p.packet.len(),
        };
        let h = &mut m.headers[i].msg_hdr;
        h.msg_name = std::ptr::from_mut(&mut m.dests[i]).cast();
        h.msg_namelen = dest_len;
        h.msg_iov = &raw mut m.iovs[i];
        h.msg_iovlen = 1;
        h.msg_control = std::ptr::from_mut(&mut m.controls[i]).cast();
        h.msg_controllen = control_len as _;
        count = i + 1;
    }
    if count == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "probe source and target of different families",
        ));
    }
    // SAFETY: the descriptor is open (borrowed for the call); each of the first `count` headers
    // points at a destination, an iovec and a control buffer in `m`, and each iovec at a packet in
    // `probes`, all of which live (unmoved) until the call returns.
    let sent = unsafe {
        libc::sendmmsg(
            fd.as_raw_fd(),
            m.headers.as_mut_ptr(),
            count as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::probe::packet::PROBE_LEN;

    #[test]
    fn a_probe_whose_source_and_target_differ_in_family_is_refused_before_the_kernel() {
        // Never sent: any descriptor will do.
        let fd = OwnedFd::from(std::fs::File::open("/dev/null").expect("/dev/null"));
        let mixed = Probe {
            ifindex: 1,
            source: Ipv4Addr::new(192, 0, 2, 2).into(),
            target: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1).into(),
            packet: [0; PROBE_LEN],
        };
        let e = send(&fd, &[mixed; 3]).expect_err("refused");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(message_parts(&mixed).is_none());
    }
}
