//! Links: the RTM_GETLINK dump request, and parsers for RTM_NEWLINK / RTM_DELLINK that read
//! only what is asked (index, flags and carrier counters for the mirror; name, hardware address
//! and XDP mode for the rest).
//!
//! Hand-rolled rather than built on the rtnetlink crate because the carrier poll runs it up to a
//! thousand times a second: it allocates nothing per message and skips every attribute it does not
//! need.

use super::{
    msg::{NLM_F_DUMP, NLM_F_REQUEST, NLMSG_HDRLEN, attrs, u32_at},
    socket::{NetlinkError, RouteSocket},
};

const IFINFOMSG_LEN: usize = 16;
/// `RTM_NEWLINK`.
pub const RTM_NEWLINK: u16 = 16;
/// `RTM_DELLINK`.
pub const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const IFLA_EXT_MASK: u16 = 29;
/// `RTEXT_FILTER_SKIP_STATS`: leave the interface statistics out of the dump, most of each message.
const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;
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
}

impl LinkObservation {
    /// Carrier as the driver reports it (only meaningful while the interface is up).
    #[must_use]
    pub fn carrier(&self) -> bool {
        self.flags & IFF_LOWER_UP != 0 && !self.deleted
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
                );
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

/// What one RTM_NEWLINK / RTM_DELLINK body says of carrier: index, flags, counters.
#[must_use]
pub fn parse_link(body: &[u8], deleted: bool) -> Option<LinkObservation> {
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
