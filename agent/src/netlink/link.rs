//! Links: the RTM_GETLINK dump request, and parsers for RTM_NEWLINK / RTM_DELLINK built on
//! netlink-packet-route. The carrier poll runs [`parse_link`] up to a thousand times a second, so
//! it uses the crate's buffer layer (the header and an attribute iterator over the message's own
//! bytes) and allocates nothing; [`parse_link_info`] (names, hardware addresses, XDP modes: read
//! on changes only) takes the whole message.

use std::sync::LazyLock;

use netlink_packet_core::{NlasIterator, Parseable as _};

use super::packet::attributes;
use netlink_packet_route::{
    RouteNetlinkMessage,
    link::{self, LinkAttribute, LinkExtentMask, LinkHeader, LinkMessage, LinkXdp},
};

use super::{
    msg::{NLM_F_DUMP, NLM_F_REQUEST, NLMSG_HDRLEN},
    packet::encode,
    socket::{NetlinkError, RouteSocket},
};

const IFINFOMSG_LEN: usize = 16;
/// `RTM_NEWLINK`.
pub const RTM_NEWLINK: u16 = 16;
/// `RTM_DELLINK`.
pub const RTM_DELLINK: u16 = 17;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINK: u16 = 5;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_LINK_NETNSID: u16 = 37;
/// Kinds of device whose carrier the kernel copies from the device below
/// (`netif_stacked_transfer_operstate`, on the lower device's NETDEV_CHANGE, which linkwatch
/// sends: up to a second after a NIC's carrier changed).
const STACKED_KINDS: [&[u8]; 5] = [b"vlan", b"macvlan", b"macvtap", b"ipvlan", b"ipvtap"];
const IFLA_XDP: u16 = 43;
const IFLA_CARRIER_UP_COUNT: u16 = 47;
const IFLA_CARRIER_DOWN_COUNT: u16 = 48;
/// `IFF_UP`.
pub const IFF_UP: u32 = 0x1;
/// `IFF_LOWER_UP`: the driver reports carrier.
pub const IFF_LOWER_UP: u32 = 0x1_0000;

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
    /// The device below, in the same namespace, whose carrier this one copies (a VLAN, macvlan or
    /// ipvlan); `None` for any other device, and for observations that do not say.
    pub lower: Option<u32>,
    /// Whether the kernel notifies this device's carrier changes at once: linkwatch treats a
    /// change as urgent when the device's index differs from its `iflink` (a veth whose ends have
    /// different indexes, a VLAN or macvlan, a tunnel), and batches it up to a second otherwise (a
    /// NIC, a veth whose ends share an index). `IFLA_LINK` is that `iflink`. `None` for
    /// observations that do not say (the ethtool poll's).
    pub prompt: Option<bool>,
}

impl LinkObservation {
    /// Carrier as the driver reports it (only meaningful while the interface is up).
    #[must_use]
    pub fn carrier(&self) -> bool {
        self.flags & IFF_LOWER_UP != 0 && !self.deleted
    }
}

const DUMP_REQUEST_LEN: usize = NLMSG_HDRLEN + IFINFOMSG_LEN + 8;

/// The dump request with sequence number 0, encoded once: the poll copies it and sets the number.
static DUMP_REQUEST: LazyLock<[u8; DUMP_REQUEST_LEN]> = LazyLock::new(|| {
    let mut m = LinkMessage::default();
    m.attributes = vec![LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats])];
    let bytes = encode(
        RouteNetlinkMessage::GetLink(m),
        NLM_F_REQUEST | NLM_F_DUMP,
        0,
    );
    bytes
        .try_into()
        .unwrap_or_else(|b: Vec<u8>| panic!("an RTM_GETLINK dump request is {} bytes", b.len()))
});

/// The RTM_GETLINK dump request, asking the kernel to skip statistics (the poll only needs flags
/// and carrier counters, and statistics are most of the kernel's work per interface).
#[must_use]
pub fn dump_request(seq: u32) -> [u8; DUMP_REQUEST_LEN] {
    let mut req = *DUMP_REQUEST;
    req[8..12].copy_from_slice(&seq.to_ne_bytes());
    req
}

/// The RTM_GETLINK request for one interface, statistics skipped as in [`dump_request`].
#[must_use]
pub fn get_request(seq: u32, ifindex: u32) -> Vec<u8> {
    let mut m = LinkMessage::default();
    m.header.index = ifindex;
    m.attributes = vec![LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats])];
    encode(RouteNetlinkMessage::GetLink(m), NLM_F_REQUEST, seq)
}

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
    /// The kind of device (`IFLA_INFO_KIND`: "veth", "vlan", ...); `None` for a device with a
    /// driver of its own (a NIC), which sends no `IFLA_LINKINFO`.
    pub kind: Option<String>,
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
    fn from_kernel(v: &link::XdpAttached) -> Option<Self> {
        match v {
            link::XdpAttached::Driver => Some(Self::Driver),
            link::XdpAttached::SocketBuffer => Some(Self::Generic),
            link::XdpAttached::Hardware => Some(Self::Hardware),
            link::XdpAttached::Multiple => Some(Self::Multiple),
            _ => None,
        }
    }
}

/// Name, flags, hardware address and kind from one RTM_NEWLINK body; `None` when malformed or
/// nameless. Only these attributes are read (the name as the kernel has it, bytes that are not
/// UTF-8 replaced), so no other attribute can make the interface invisible.
#[must_use]
pub fn parse_link_info(body: &[u8]) -> Option<LinkInfo> {
    let header = LinkHeader::parse(body).ok()?;
    let (mut name, mut hwaddr, mut xdp, mut kind) = (None, None, None, None);
    for nla in attributes(body, IFINFOMSG_LEN) {
        match nla.kind() {
            IFLA_XDP => {
                xdp = NlasIterator::new(nla.value())
                    .map_while(Result::ok)
                    .find_map(|x| match LinkXdp::parse(&x) {
                        Ok(LinkXdp::Attached(how)) => XdpAttached::from_kernel(&how),
                        _ => None,
                    });
            }
            IFLA_IFNAME => {
                let v = nla.value();
                let bytes = v.split(|b| *b == 0).next().unwrap_or(v);
                name = Some(String::from_utf8_lossy(bytes).into_owned());
            }
            IFLA_ADDRESS => hwaddr = <[u8; 6]>::try_from(nla.value()).ok(),
            IFLA_LINKINFO => {
                kind = with_info_kind(nla.value(), |k| String::from_utf8_lossy(k).into_owned());
            }
            _ => {}
        }
    }
    Some(LinkInfo {
        ifindex: header.index,
        name: name?,
        flags: header.flags.bits(),
        hwaddr,
        xdp,
        kind,
    })
}

impl RouteSocket {
    /// Dumps every link of the namespace and calls `each` per interface.
    ///
    /// # Errors
    /// On a socket error or a refusal by the kernel.
    pub fn dump_links(
        &mut self,
        mut each: impl FnMut(LinkObservation),
    ) -> Result<(), NetlinkError> {
        let req = dump_request(self.next_seq());
        self.request(&req, |kind, body| {
            if kind == RTM_NEWLINK
                && let Some(obs) = parse_link(body, false)
            {
                each(obs);
            }
        })
    }

    /// Asks for one interface (an RTM_GETLINK request for `ifindex`, statistics skipped) and calls
    /// `each` with what the kernel says of it. A newly tracked member's state costs one request
    /// rather than a dump of every device: the link watcher dumped on each batch of members the
    /// daemon tracked at start, hundreds of dumps of a thousand devices each.
    ///
    /// # Errors
    /// [`NetlinkError::Refused`] with ENODEV when the interface is gone (see
    /// [`NetlinkError::device_gone`]); other socket errors.
    pub fn get_link(
        &mut self,
        ifindex: u32,
        mut each: impl FnMut(LinkObservation),
    ) -> Result<(), NetlinkError> {
        let req = get_request(self.next_seq(), ifindex);
        self.request(&req, |kind, body| {
            if kind == RTM_NEWLINK
                && let Some(obs) = parse_link(body, false)
            {
                each(obs);
            }
        })
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

    /// The kind of device `ifindex` is ("veth", "vlan", ...; `None` for a NIC), from one
    /// RTM_GETLINK request.
    ///
    /// # Errors
    /// [`NetlinkError::Refused`] with ENODEV when the interface is gone; other socket errors.
    pub fn link_kind(&mut self, ifindex: u32) -> Result<Option<String>, NetlinkError> {
        let req = get_request(self.next_seq(), ifindex);
        let mut out = None;
        self.request(&req, |kind, body| {
            if kind == RTM_NEWLINK {
                out = parse_link_info(body).and_then(|l| l.kind);
            }
        })?;
        Ok(out)
    }

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

/// What one RTM_NEWLINK / RTM_DELLINK body says of carrier: index, flags, counters. Reads the
/// header and walks the attributes in place; allocates nothing.
#[must_use]
pub fn parse_link(body: &[u8], deleted: bool) -> Option<LinkObservation> {
    let header = LinkHeader::parse(body).ok()?;
    let (mut up, mut down) = (None, None);
    let (mut link, mut stacked, mut elsewhere) = (None, false, false);
    for nla in attributes(body, IFINFOMSG_LEN) {
        let value = || Some(u32::from_ne_bytes(nla.value().get(..4)?.try_into().ok()?));
        match nla.kind() {
            IFLA_CARRIER_UP_COUNT => up = value(),
            IFLA_CARRIER_DOWN_COUNT => down = value(),
            IFLA_LINK => link = value(),
            IFLA_LINK_NETNSID => elsewhere = true,
            IFLA_LINKINFO => stacked = is_stacked(nla.value()),
            _ => {}
        }
    }
    let carrier_changes = match (up, down) {
        (Some(u), Some(d)) => Some(u64::from(u) + u64::from(d)),
        _ => None,
    };
    Some(LinkObservation {
        ifindex: header.index,
        flags: header.flags.bits(),
        carrier_changes,
        deleted,
        // Below in another namespace: not a device this namespace's poll can read.
        lower: link.filter(|&l| stacked && !elsewhere && l != 0 && l != header.index),
        // The kernel's own test (`linkwatch_urgent_event`), by number whatever the namespace.
        prompt: Some(link.is_some_and(|l| l != header.index)),
    })
}

/// Whether an `IFLA_LINKINFO` names a kind of device stacked on another ([`STACKED_KINDS`]).
fn is_stacked(linkinfo: &[u8]) -> bool {
    with_info_kind(linkinfo, |kind| STACKED_KINDS.contains(&kind)).unwrap_or(false)
}

/// `f` of the kind (`IFLA_INFO_KIND`: "veth", "vlan", ...) an `IFLA_LINKINFO` names, without its
/// NUL; `None` when it names none.
fn with_info_kind<R>(linkinfo: &[u8], f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    NlasIterator::new(linkinfo)
        .map_while(Result::ok)
        .find(|a| a.kind() == IFLA_INFO_KIND)
        .map(|a| {
            let kind = a.value();
            f(kind.strip_suffix(b"\0").unwrap_or(kind))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::msg::{Message, parse_messages};

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
                deleted: false,
                lower: None,
                prompt: Some(false),
            }]
        );
    }

    #[test]
    fn a_stacked_device_names_the_device_below_and_a_veth_does_not() {
        let lower_of = |kind: &[u8], netnsid: bool| {
            let mut body = vec![0u8, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            crate::netlink::msg::attr(&mut body, IFLA_LINK, &4u32.to_ne_bytes());
            if netnsid {
                crate::netlink::msg::attr(&mut body, IFLA_LINK_NETNSID, &0i32.to_ne_bytes());
            }
            let mut info = vec![];
            crate::netlink::msg::attr(&mut info, IFLA_INFO_KIND, kind);
            crate::netlink::msg::attr(&mut body, IFLA_LINKINFO, &info);
            parse_link(&body, false).unwrap().lower
        };
        assert_eq!(lower_of(b"macvlan\0", false), Some(4));
        assert_eq!(lower_of(b"vlan\0", false), Some(4));
        assert_eq!(lower_of(b"ipvlan", false), Some(4), "without its NUL");
        assert_eq!(
            lower_of(b"veth\0", false),
            None,
            "a veth's link is its peer"
        );
        assert_eq!(
            lower_of(b"macvlan\0", true),
            None,
            "below in another namespace"
        );
        assert_eq!(lower_of(b"macvlanx\0", false), None);
    }

    #[test]
    fn a_device_whose_index_differs_from_its_link_is_notified_at_once() {
        let prompt = |link: Option<u32>| {
            let mut body = vec![0u8, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            if let Some(l) = link {
                crate::netlink::msg::attr(&mut body, IFLA_LINK, &l.to_ne_bytes());
            }
            parse_link(&body, false).unwrap().prompt
        };
        assert_eq!(
            prompt(Some(4)),
            Some(true),
            "a veth's peer, a macvlan's NIC"
        );
        assert_eq!(prompt(Some(0)), Some(true), "a tunnel bound to no device");
        assert_eq!(
            prompt(Some(9)),
            Some(false),
            "a veth whose ends share an index: batched like a NIC's"
        );
        assert_eq!(prompt(None), Some(false), "a NIC");
    }

    #[test]
    fn the_kind_of_a_device_is_read_from_its_link_info_and_a_nic_has_none() {
        let with = |kind: Option<&[u8]>| {
            let mut body = vec![0u8, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            crate::netlink::msg::attr(&mut body, IFLA_IFNAME, b"h0\0");
            if let Some(kind) = kind {
                let mut info = vec![];
                crate::netlink::msg::attr(&mut info, IFLA_INFO_KIND, kind);
                crate::netlink::msg::attr(&mut body, IFLA_LINKINFO, &info);
            }
            parse_link_info(&body).expect("a named link").kind
        };
        assert_eq!(with(Some(b"veth\0")).as_deref(), Some("veth"));
        assert_eq!(
            with(Some(b"vlan")).as_deref(),
            Some("vlan"),
            "without its NUL"
        );
        assert_eq!(with(None), None);
        // A truncated header or an empty body is no device at all, and no panic.
        assert_eq!(parse_link_info(&[0u8; 3]), None);
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
        // A cut message is no message: nothing reaches the caller, and nothing panics.
        for cut in 0..good.len() {
            let mut n = 0;
            parse_messages(&good[..cut], |_| n += 1);
            assert_eq!(n, 0, "cut at {cut}");
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

    #[test]
    fn get_request_golden() {
        #[rustfmt::skip]
        assert_eq!(get_request(9, 0x0102_0304), [
            40, 0, 0, 0,     // nlmsg_len
            18, 0,           // RTM_GETLINK
            1, 0,            // NLM_F_REQUEST: one interface, not a dump
            9, 0, 0, 0,      // seq
            0, 0, 0, 0,      // pid
            0, 0, 0, 0,      // ifi_family, pad, ifi_type
            4, 3, 2, 1,      // ifi_index
            0, 0, 0, 0, 0, 0, 0, 0, // ifi_flags, ifi_change
            8, 0, 29, 0,     // IFLA_EXT_MASK, 8 bytes
            8, 0, 0, 0,      // RTEXT_FILTER_SKIP_STATS
        ]);
    }

    #[test]
    fn an_attribute_the_crate_cannot_decode_hides_nothing() {
        // ifinfomsg of index 9, then a name, an alias that is not UTF-8 (the crate refuses it)
        // and a hardware address.
        let mut body = vec![0u8, 0, 1, 0, 9, 0, 0, 0, 3, 0, 1, 0, 0, 0, 0, 0];
        crate::netlink::msg::attr(&mut body, IFLA_IFNAME, b"h0\0");
        crate::netlink::msg::attr(&mut body, 20, &[0xff, 0xfe, b'x', 0]);
        crate::netlink::msg::attr(&mut body, IFLA_ADDRESS, &[2, 0, 0, 0, 0, 9]);
        let info = parse_link_info(&body).expect("the link is seen");
        assert_eq!(
            (info.ifindex, info.name.as_str(), info.hwaddr),
            (9, "h0", Some([2, 0, 0, 0, 0, 9]))
        );
    }
}
