//! `sendmmsg` of probes on an unbound raw socket, each message carrying its egress interface and
//! source address as IP_PKTINFO / IPV6_PKTINFO ancillary data (rustix's ancillary messages do not
//! include these).

use std::{
    io,
    net::IpAddr,
    os::fd::{AsRawFd as _, OwnedFd},
};

use super::{outbox::Probe, packet::Family};

/// The kernel takes at most this many messages per call (`UIO_MAXIOV`).
const MAX_PER_CALL: usize = 1024;

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

/// The destination and control message of `p`; the length of each that the kernel reads. The
/// control length is CMSG_LEN, without the trailing padding CMSG_SPACE would add: the kernel
/// accepts it for a single message, and an IPv6 one (36 bytes) then fits the kernel's on-stack
/// control buffer instead of taking an allocation per message.
fn message_parts(p: &Probe) -> (Dest, libc::socklen_t, Control, usize) {
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
            (
                Dest { v4: dest },
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
                Control { v4: control },
                cmsg_len(size_of::<libc::in_pktinfo>()),
            )
        }
        (s, t) => {
            let to_in6 = |a: IpAddr| match a {
                IpAddr::V6(a) => a.octets(),
                IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            };
            // SAFETY: sockaddr_in6 is plain C data; all zeroes is a valid value.
            let mut dest: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            dest.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            dest.sin6_addr.s6_addr = to_in6(t);
            // The scope of a link-local target is the member's interface.
            dest.sin6_scope_id = p.ifindex;
            let info = libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr { s6_addr: to_in6(s) },
                ipi6_ifindex: p.ifindex,
            };
            let control = PktInfo6 {
                hdr: zeroed_cmsghdr(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, size_of_val(&info)),
                info,
            };
            (
                Dest { v6: dest },
                size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                Control { v6: control },
                cmsg_len(size_of::<libc::in6_pktinfo>()),
            )
        }
    }
}

/// Sends up to 1,024 of `probes` (all of `family`) on `fd` in one `sendmmsg`: how many went, or the
/// first one's error when none did.
///
/// # Errors
/// The first probe's send error (EAGAIN when the send buffer is full).
pub(super) fn send(fd: &OwnedFd, family: Family, probes: &[Probe]) -> io::Result<usize> {
    let probes = &probes[..probes.len().min(MAX_PER_CALL)];
    debug_assert!(
        probes
            .iter()
            .all(|p| p.target.is_ipv4() == (family == Family::Inet)),
        "a batch holds one family"
    );
    let mut parts: Vec<(Dest, libc::socklen_t, Control, usize)> =
        probes.iter().map(message_parts).collect();
    let mut iovs: Vec<libc::iovec> = probes
        .iter()
        .map(|p| libc::iovec {
            // The kernel only reads a message's data on send.
            iov_base: p.packet.as_ptr().cast_mut().cast(),
            iov_len: p.packet.len(),
        })
        .collect();
    let mut headers: Vec<libc::mmsghdr> = parts
        .iter_mut()
        .zip(iovs.iter_mut())
        .map(|((dest, dest_len, control, control_len), iov)| {
            // SAFETY: msghdr is plain C data (with private padding on musl); all zeroes is valid.
            let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
            h.msg_name = std::ptr::from_mut(dest).cast();
            h.msg_namelen = *dest_len;
            h.msg_iov = iov;
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::from_mut(control).cast();
            h.msg_controllen = *control_len as _;
            libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            }
        })
        .collect();
    // SAFETY: the descriptor is open (borrowed for the call); every header points at a
    // destination, an iovec and a control buffer in `parts` / `iovs`, and every iovec at a packet
    // in `probes`, all of which live (unmoved) until the call returns; the count is the headers'.
    let sent = unsafe {
        libc::sendmmsg(
            fd.as_raw_fd(),
            headers.as_mut_ptr(),
            headers.len() as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}
