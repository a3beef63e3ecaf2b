//! A minimal NETLINK_ROUTE client for link state: one dump request, notification subscription, and
//! a parser that reads only what the mirror needs (index, flags, carrier counters).
//!
//! Hand-rolled rather than built on the rtnetlink crate because it runs up to a thousand times a
//! second: it reuses one buffer, allocates nothing per message and skips every attribute it does not
//! need.

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
};

const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const IFLA_EXT_MASK: u16 = 29;
/// `RTEXT_FILTER_SKIP_STATS`: leave the interface statistics out of the dump, most of each message.
const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;
const IFLA_CARRIER_UP_COUNT: u16 = 47;
const IFLA_CARRIER_DOWN_COUNT: u16 = 48;
/// `IFF_UP`.
pub const IFF_UP: u32 = 0x1;
/// `IFF_LOWER_UP`: the driver reports carrier.
pub const IFF_LOWER_UP: u32 = 0x1_0000;
/// `RTNLGRP_LINK` as a bind(2) group mask.
const RTMGRP_LINK: u32 = 0x1;

/// What one RTM_NEWLINK / RTM_DELLINK message says about one interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkObservation {
    pub ifindex: u32,
    /// `ifi_flags`: IFF_UP, IFF_LOWER_UP, ...
    pub flags: u32,
    /// `IFLA_CARRIER_UP_COUNT` + `IFLA_CARRIER_DOWN_COUNT` when the kernel sent them.
    pub carrier_changes: Option<u64>,
    /// RTM_DELLINK: the interface is gone.
    pub deleted: bool,
}

impl LinkObservation {
    /// Carrier as the driver reports it (only meaningful while the interface is up).
    #[must_use]
    pub fn carrier(&self) -> bool {
        self.flags & IFF_LOWER_UP != 0 && !self.deleted
    }
}

/// Errors from the netlink socket.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("cannot open a NETLINK_ROUTE socket: {0}")]
    Open(#[source] io::Error),
    #[error("netlink {call} failed: {source}")]
    Io {
        call: &'static str,
        source: io::Error,
    },
    #[error("the kernel refused the link dump: errno {0}")]
    Refused(i32),
    /// The kernel dropped notifications because the socket buffer was full: resynchronise with a dump.
    #[error("netlink notifications overran the socket buffer")]
    Overrun,
}

/// A NETLINK_ROUTE socket, either for dumps or subscribed to link notifications.
#[derive(Debug)]
pub struct RouteSocket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl RouteSocket {
    /// A socket for dump requests.
    ///
    /// # Errors
    /// When the socket cannot be opened.
    pub fn for_dumps() -> Result<Self, NetlinkError> {
        Self::open(0)
    }

    /// A non-blocking socket subscribed to link notifications (RTNLGRP_LINK).
    ///
    /// # Errors
    /// When the socket cannot be opened or bound.
    pub fn for_notifications() -> Result<Self, NetlinkError> {
        Self::open(RTMGRP_LINK)
    }

    fn open(groups: u32) -> Result<Self, NetlinkError> {
        Self::open_protocol(libc::NETLINK_ROUTE, groups)
    }

    /// A socket of netlink `protocol` (NETLINK_ROUTE, NETLINK_GENERIC), joined to `groups`;
    /// non-blocking when it listens to groups.
    pub(crate) fn open_protocol(protocol: libc::c_int, groups: u32) -> Result<Self, NetlinkError> {
        let nonblock = if groups != 0 { libc::SOCK_NONBLOCK } else { 0 };
        // SAFETY: plain socket(2); the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | nonblock,
                protocol,
            )
        };
        if raw < 0 {
            return Err(NetlinkError::Open(io::Error::last_os_error()));
        }
        // SAFETY: a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: zeroed sockaddr_nl is a valid "any" address.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        sa.nl_groups = groups;
        // SAFETY: valid sockaddr_nl and length.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sa).cast(),
                size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc < 0 {
            return Err(NetlinkError::Io {
                call: "bind",
                source: io::Error::last_os_error(),
            });
        }
        Ok(Self {
            fd,
            seq: 0,
            buf: vec![0; 256 * 1024],
        })
    }

    /// The descriptor, for poll(2).
    #[must_use]
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Dumps every link of the namespace and calls `each` per interface.
    ///
    /// # Errors
    /// On a socket error or a refusal by the kernel.
    pub fn dump_links(
        &mut self,
        mut each: impl FnMut(LinkObservation),
    ) -> Result<(), NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let req = dump_request(self.seq);
        self.request(&req, |kind, body| {
            if kind == RTM_NEWLINK
                && let Some(obs) = parse_link(body, false)
            {
                each(obs);
            }
        })
    }

    /// The next sequence number for a request.
    pub(crate) fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends `req` and calls `each(type, body)` for every reply message until the kernel says it is
    /// done (a dump's NLMSG_DONE, or the acknowledgement of a plain request).
    ///
    /// # Errors
    /// On a socket error or a refusal by the kernel.
    pub(crate) fn request(
        &mut self,
        req: &[u8],
        mut each: impl FnMut(u16, &[u8]),
    ) -> Result<(), NetlinkError> {
        let dump = u16_at(req, 6).is_some_and(|f| f & NLM_F_DUMP == NLM_F_DUMP);
        // SAFETY: `req` is valid for its length.
        let rc = unsafe { libc::send(self.fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
        if rc < 0 {
            return Err(NetlinkError::Io {
                call: "send",
                source: io::Error::last_os_error(),
            });
        }
        loop {
            let n = self.recv()?;
            let mut done = false;
            let mut refused = None;
            parse_messages(&self.buf[..n], |msg| match msg {
                Message::Other(kind, body) => {
                    each(kind, body);
                    // A plain request is answered by one message.
                    done |= !dump;
                }
                Message::Done => done = true,
                Message::Error(0) => done = true,
                Message::Error(errno) => refused = Some(errno),
            });
            if let Some(errno) = refused {
                return Err(NetlinkError::Refused(errno));
            }
            if done {
                return Ok(());
            }
        }
    }

    /// A non-blocking socket joined to the multicast `groups` (a bind(2) mask of `RTMGRP_*`).
    ///
    /// # Errors
    /// When the socket cannot be opened or bound.
    pub fn for_groups(groups: u32) -> Result<Self, NetlinkError> {
        Self::open(groups)
    }

    /// Reads every queued message (non-blocking) and calls `each` with its type.
    ///
    /// # Errors
    /// [`NetlinkError::Overrun`] when messages were lost; other socket errors.
    pub fn drain_kinds(&mut self, mut each: impl FnMut(u16)) -> Result<(), NetlinkError> {
        self.drain(|kind, _| each(kind))
    }

    /// Reads every queued notification (non-blocking) and calls `each` per link message.
    ///
    /// # Errors
    /// [`NetlinkError::Overrun`] when notifications were lost; other socket errors.
    pub fn drain_notifications(
        &mut self,
        mut each: impl FnMut(LinkObservation),
    ) -> Result<(), NetlinkError> {
        self.drain(|kind, body| {
            if matches!(kind, RTM_NEWLINK | RTM_DELLINK)
                && let Some(obs) = parse_link(body, kind == RTM_DELLINK)
            {
                each(obs);
            }
        })
    }

    /// Reads every queued message (non-blocking) and calls `each(type, body)`.
    fn drain(&mut self, mut each: impl FnMut(u16, &[u8])) -> Result<(), NetlinkError> {
        loop {
            let n = match self.recv() {
                Ok(n) => n,
                Err(NetlinkError::Io { source, .. })
                    if source.kind() == io::ErrorKind::WouldBlock =>
                {
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            parse_messages(&self.buf[..n], |msg| {
                if let Message::Other(kind, body) = msg {
                    each(kind, body);
                }
            });
        }
    }

    fn recv(&mut self) -> Result<usize, NetlinkError> {
        // SAFETY: `buf` is valid and writable for its length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                self.buf.as_mut_ptr().cast(),
                self.buf.len(),
                0,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENOBUFS) {
                return Err(NetlinkError::Overrun);
            }
            return Err(NetlinkError::Io {
                call: "recv",
                source: err,
            });
        }
        Ok(n as usize)
    }
}

const DUMP_REQUEST_LEN: usize = NLMSG_HDRLEN + IFINFOMSG_LEN + 8;

/// The RTM_GETLINK dump request, asking the kernel to skip statistics (the poll only needs flags
/// and carrier counters, and statistics are most of the kernel's work per interface).
#[must_use]
pub fn dump_request(seq: u32) -> [u8; DUMP_REQUEST_LEN] {
    let mut req = [0u8; DUMP_REQUEST_LEN];
    req[0..4].copy_from_slice(&(DUMP_REQUEST_LEN as u32).to_ne_bytes());
    req[4..6].copy_from_slice(&RTM_GETLINK.to_ne_bytes());
    req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req[8..12].copy_from_slice(&seq.to_ne_bytes());
    // ifinfomsg: family AF_UNSPEC, everything else 0.
    let attr = NLMSG_HDRLEN + IFINFOMSG_LEN;
    req[attr..attr + 2].copy_from_slice(&8u16.to_ne_bytes());
    req[attr + 2..attr + 4].copy_from_slice(&IFLA_EXT_MASK.to_ne_bytes());
    req[attr + 4..attr + 8].copy_from_slice(&RTEXT_FILTER_SKIP_STATS.to_ne_bytes());
    req
}

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
/// `IFF_LOOPBACK`.
pub const IFF_LOOPBACK: u32 = 0x8;
/// `IFF_POINTOPOINT`.
pub const IFF_POINTOPOINT: u32 = 0x10;
/// `IFF_MULTICAST`.
pub const IFF_MULTICAST: u32 = 0x1000;

/// Who an interface is: name, flags and hardware address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    pub ifindex: u32,
    pub name: String,
    pub flags: u32,
    /// The Ethernet address, when the interface has a 6-byte one.
    pub hwaddr: Option<[u8; 6]>,
    /// How an XDP program is attached (`IFLA_XDP_ATTACHED`), when one is.
    pub xdp: Option<XdpAttached>,
}

/// `XDP_ATTACHED_*`: where the kernel runs an interface's XDP program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum XdpAttached {
    /// In the driver (native XDP).
    Driver,
    /// In the generic path, after the driver built an skb (slower; the driver has no XDP).
    Generic,
    /// Offloaded to the NIC.
    Hardware,
    /// More than one mode at once.
    Multiple,
}

impl XdpAttached {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Driver),
            2 => Some(Self::Generic),
            3 => Some(Self::Hardware),
            4 => Some(Self::Multiple),
            _ => None,
        }
    }
}

const IFLA_XDP: u16 = 43;
const IFLA_XDP_ATTACHED: u16 = 2;

/// Name, flags and hardware address from one RTM_NEWLINK body.
#[must_use]
pub fn parse_link_info(body: &[u8]) -> Option<LinkInfo> {
    let ifindex = u32_at(body, 4)?;
    let flags = u32_at(body, 8)?;
    let (mut name, mut hwaddr, mut xdp) = (None, None, None);
    for (t, p) in attrs(body.get(IFINFOMSG_LEN..)?) {
        match t {
            IFLA_XDP => {
                xdp = attrs(p)
                    .find(|(k, _)| *k == IFLA_XDP_ATTACHED)
                    .and_then(|(_, v)| XdpAttached::from_u8(*v.first()?));
            }
            IFLA_IFNAME => {
                name = Some(
                    String::from_utf8_lossy(p.split(|b| *b == 0).next().unwrap_or(p)).into_owned(),
                )
            }
            IFLA_ADDRESS => hwaddr = <[u8; 6]>::try_from(p).ok(),
            _ => {}
        }
    }
    Some(LinkInfo {
        ifindex,
        name: name?,
        flags,
        hwaddr,
        xdp,
    })
}

impl RouteSocket {
    /// Every interface of the namespace with its name and hardware address.
    ///
    /// # Errors
    /// On a socket error or a refusal by the kernel.
    pub fn dump_link_info(&mut self) -> Result<Vec<LinkInfo>, NetlinkError> {
        let seq = self.next_seq();
        let mut out = Vec::new();
        self.request(&dump_request(seq), |kind, body| {
            if kind == RTM_NEWLINK
                && let Some(l) = parse_link_info(body)
            {
                out.push(l);
            }
        })?;
        Ok(out)
    }
}

/// `RTMGRP_LINK` | `RTMGRP_IPV4_IFADDR` | `RTMGRP_IPV4_ROUTE` | `RTMGRP_IPV6_IFADDR` | `RTMGRP_IPV6_ROUTE`.
pub const RTMGRP_LINKS_ADDRESSES_ROUTES: u32 = 0x1 | 0x10 | 0x40 | 0x100 | 0x400;
/// `RTM_NEWLINK`.
pub const RTM_NEWLINK_MSG: u16 = RTM_NEWLINK;
/// `RTM_NEWROUTE`.
pub const RTM_NEWROUTE: u16 = 24;
/// `RTM_DELROUTE`.
pub const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const RTMSG_LEN: usize = 12;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;

/// A route with a next hop: where router targets come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteEntry {
    /// Prefix length of the destination (host routes are 32/128, the default route 0).
    pub dst_len: u8,
    pub gateway: std::net::IpAddr,
    pub oif: Option<u32>,
}

/// The RTM_GETROUTE dump request for `family` (AF_INET / AF_INET6).
#[must_use]
pub fn route_dump_request(seq: u32, family: u8) -> [u8; NLMSG_HDRLEN + RTMSG_LEN] {
    let mut req = [0u8; NLMSG_HDRLEN + RTMSG_LEN];
    req[0..4].copy_from_slice(&((NLMSG_HDRLEN + RTMSG_LEN) as u32).to_ne_bytes());
    req[4..6].copy_from_slice(&RTM_GETROUTE.to_ne_bytes());
    req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req[8..12].copy_from_slice(&seq.to_ne_bytes());
    req[NLMSG_HDRLEN] = family;
    req
}

/// A route with a gateway from one RTM_NEWROUTE body.
#[must_use]
pub fn parse_route(body: &[u8]) -> Option<RouteEntry> {
    let family = *body.first()?;
    let dst_len = *body.get(1)?;
    let (mut gateway, mut oif) = (None, None);
    for (t, p) in attrs(body.get(RTMSG_LEN..)?) {
        match (t, family as i32, p.len()) {
            (RTA_GATEWAY, libc::AF_INET, 4) => {
                gateway = Some(std::net::IpAddr::from(<[u8; 4]>::try_from(p).ok()?))
            }
            (RTA_GATEWAY, libc::AF_INET6, 16) => {
                gateway = Some(std::net::IpAddr::from(<[u8; 16]>::try_from(p).ok()?))
            }
            (RTA_OIF, _, _) => oif = u32_at(p, 0),
            _ => {}
        }
    }
    Some(RouteEntry {
        dst_len,
        gateway: gateway?,
        oif,
    })
}

impl RouteSocket {
    /// Every route of `family` (AF_INET / AF_INET6) that has a gateway, most specific first.
    ///
    /// # Errors
    /// On a socket error or a refusal by the kernel.
    pub fn dump_routes(&mut self, family: u8) -> Result<Vec<RouteEntry>, NetlinkError> {
        let seq = self.next_seq();
        let mut out = Vec::new();
        self.request(&route_dump_request(seq, family), |kind, body| {
            if kind == RTM_NEWROUTE
                && let Some(r) = parse_route(body)
            {
                out.push(r);
            }
        })?;
        out.sort_by_key(|r| std::cmp::Reverse(r.dst_len));
        Ok(out)
    }
}

/// One netlink message of a datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// Any message but the two below: its type and body (after the netlink header).
    Other(u16, &'a [u8]),
    Done,
    /// NLMSG_ERROR: 0 is an acknowledgement, otherwise the (positive) errno.
    Error(i32),
}

pub(crate) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Walks the messages in one datagram. Malformed messages end the walk; nothing panics.
pub fn parse_messages<'a>(mut data: &'a [u8], mut each: impl FnMut(Message<'a>)) {
    while data.len() >= NLMSG_HDRLEN {
        let Some(len) = u32_at(data, 0).map(|l| l as usize) else {
            return;
        };
        let Some(kind) = u16_at(data, 4) else { return };
        if len < NLMSG_HDRLEN || len > data.len() {
            return;
        }
        let body = &data[NLMSG_HDRLEN..len];
        match kind {
            NLMSG_DONE => each(Message::Done),
            NLMSG_ERROR => each(Message::Error(-u32_at(body, 0).map_or(0, |e| e as i32))),
            _ => each(Message::Other(kind, body)),
        }
        let aligned = (len + 3) & !3;
        data = data.get(aligned..).unwrap_or(&[]);
    }
}

/// The netlink attributes in `data` as (type without flag bits, payload); stops at a malformed one.
pub(crate) fn attrs(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let alen = usize::from(u16_at(data, 0)?);
        let atype = u16_at(data, 2)? & 0x3fff;
        if alen < 4 || alen > data.len() {
            return None;
        }
        let payload = &data[4..alen];
        data = data.get((alen + 3) & !3..).unwrap_or(&[]);
        Some((atype, payload))
    })
}

fn parse_link(body: &[u8], deleted: bool) -> Option<LinkObservation> {
    let ifindex = u32_at(body, 4)?;
    let flags = u32_at(body, 8)?;
    let (mut up, mut down) = (None, None);
    for (atype, payload) in attrs(body.get(IFINFOMSG_LEN..)?) {
        match atype {
            IFLA_CARRIER_UP_COUNT => up = u32_at(payload, 0),
            IFLA_CARRIER_DOWN_COUNT => down = u32_at(payload, 0),
            _ => {}
        }
    }
    let carrier_changes = match (up, down) {
        (Some(u), Some(d)) => Some(u64::from(u) + u64::from(d)),
        _ => None,
    };
    Some(LinkObservation {
        ifindex,
        flags,
        carrier_changes,
        deleted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    fn newlink(ifindex: u8, lower_up: bool, up_count: u8, down_count: u8) -> Vec<u8> {
        let flags: u32 = 0x1003 | if lower_up { IFF_LOWER_UP } else { 0 };
        let f = flags.to_ne_bytes();
        let mut m = vec![
            56, 0, 0, 0,        // nlmsg_len 56
            16, 0,              // RTM_NEWLINK
            0, 0,               // flags
            1, 0, 0, 0,         // seq
            0, 0, 0, 0,         // pid
            0, 0, 1, 0,         // ifi_family, pad, ifi_type ARPHRD_ETHER
            ifindex, 0, 0, 0,   // ifi_index
            f[0], f[1], f[2], f[3], // ifi_flags
            0, 0, 0, 0,         // ifi_change
            8, 0, 47, 0, up_count, 0, 0, 0,   // IFLA_CARRIER_UP_COUNT
            8, 0, 48, 0, down_count, 0, 0, 0, // IFLA_CARRIER_DOWN_COUNT
            7, 0, 3, 0, b'h', b'0', 0, 0,     // IFLA_IFNAME "h0" (len 7, padded)
        ];
        m.truncate(56);
        m
    }

    #[test]
    fn parses_flags_and_carrier_counters() {
        let mut seen = vec![];
        let data = newlink(7, true, 2, 3);
        parse_messages(&data, |m| {
            if let Message::Other(16, body) = m {
                seen.push(parse_link(body, false).unwrap());
            }
        });
        assert_eq!(
            seen,
            vec![LinkObservation {
                ifindex: 7,
                flags: 0x1003 | IFF_LOWER_UP,
                carrier_changes: Some(5),
                deleted: false
            }]
        );
    }

    #[test]
    fn several_messages_and_done() {
        let mut data = newlink(1, false, 0, 1);
        data.extend(newlink(2, true, 1, 1));
        data.extend([20, 0, 0, 0, 3, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut seen = vec![];
        parse_messages(&data, |m| seen.push(m));
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[2], Message::Done);
        assert!(matches!(
            seen[0],
            Message::Other(16, body) if parse_link(body, false).unwrap().ifindex == 1
        ));
    }

    #[test]
    fn truncated_and_garbage_input_never_panics() {
        let good = newlink(3, true, 1, 0);
        for cut in 0..good.len() {
            parse_messages(&good[..cut], |_| {});
        }
        let mut bad = good.clone();
        bad[0] = 0xff; // length beyond the datagram
        let mut n = 0;
        parse_messages(&bad, |_| n += 1);
        assert_eq!(n, 0);
        let mut zero_attr = good;
        zero_attr[32] = 0; // attribute length 0
        parse_messages(&zero_attr, |_| {});
    }

    #[test]
    fn link_info_name_and_hardware_address() {
        let mut m = newlink(4, true, 0, 0);
        m.truncate(56 - 8);
        #[rustfmt::skip]
        m.extend([
            10, 0, 1, 0, 2, 0, 0, 0, 0, 9, 0, 0, // IFLA_ADDRESS 02:00:00:00:00:09
            7, 0, 3, 0, b'h', b'0', 0, 0,        // IFLA_IFNAME "h0"
        ]);
        let info = parse_link_info(&m[16..]).unwrap();
        assert_eq!(
            (info.ifindex, info.name.as_str(), info.hwaddr),
            (4, "h0", Some([2, 0, 0, 0, 0, 9]))
        );
    }

    #[test]
    fn routes_with_gateways() {
        #[rustfmt::skip]
        let body = [
            2, 0, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0, // rtmsg: AF_INET, default route, main table
            8, 0, 5, 0, 192, 0, 2, 1,             // RTA_GATEWAY 192.0.2.1
            8, 0, 4, 0, 3, 0, 0, 0,               // RTA_OIF 3
        ];
        assert_eq!(
            parse_route(&body),
            Some(RouteEntry {
                dst_len: 0,
                gateway: [192, 0, 2, 1].into(),
                oif: Some(3)
            })
        );
        assert_eq!(parse_route(&body[..12]), None, "no gateway, no target");
        assert_eq!(&route_dump_request(1, 10)[16..17], &[10]);
    }

    #[test]
    fn dump_request_golden() {
        #[rustfmt::skip]
        assert_eq!(dump_request(9), [
            40, 0, 0, 0,     // nlmsg_len
            18, 0,           // RTM_GETLINK
            1, 3,            // NLM_F_REQUEST | NLM_F_DUMP
            9, 0, 0, 0,      // seq
            0, 0, 0, 0,      // pid
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // ifinfomsg
            8, 0, 29, 0,     // IFLA_EXT_MASK, 8 bytes
            8, 0, 0, 0,      // RTEXT_FILTER_SKIP_STATS
        ]);
    }
}
