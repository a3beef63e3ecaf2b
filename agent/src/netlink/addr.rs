//! Addresses: RTM_NEWADDR / RTM_DELADDR requests, and the dump and notifications of what is
//! configured.

use netlink_packet_core::Parseable as _;
use netlink_packet_route::{
    RouteNetlinkMessage,
    address::{AddressAttribute, AddressFlags, AddressHeader, AddressMessage},
};

use super::{
    msg::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST},
    packet::{attributes, encode, family_of},
    socket::{NetlinkError, RouteSocket},
};
use crate::ip::Prefix;

/// `RTM_NEWADDR`.
pub const RTM_NEWADDR: u16 = 20;
/// `RTM_DELADDR`.
pub const RTM_DELADDR: u16 = 21;
/// `IFA_F_TENTATIVE`: IPv6 duplicate address detection has not finished.
pub const IFA_F_TENTATIVE: u32 = 0x40;
/// `IFA_F_DADFAILED`: another host has this IPv6 address.
pub const IFA_F_DADFAILED: u32 = 0x08;
/// Length of `struct ifaddrmsg`.
const IFADDRMSG_LEN: usize = 8;

/// One address of one interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Addr {
    pub ifindex: u32,
    pub prefix: Prefix,
    /// `IFA_F_*` (the 32-bit `IFA_FLAGS` where the kernel sends it).
    pub flags: u32,
}

impl Addr {
    /// Whether the address can be used as a source now (not tentative, no DAD failure).
    #[must_use]
    pub fn usable(&self) -> bool {
        self.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED) == 0
    }
}

/// The RTM_NEWADDR (create or replace) / RTM_DELADDR request for `addr` on `ifindex`.
#[must_use]
pub fn address_request(add: bool, seq: u32, ifindex: u32, addr: Prefix) -> Vec<u8> {
    let mut m = AddressMessage::default();
    m.header.family = family_of(addr.addr);
    m.header.prefix_len = addr.len;
    m.header.index = ifindex;
    m.attributes = vec![
        AddressAttribute::Local(addr.addr),
        AddressAttribute::Address(addr.addr),
    ];
    if add {
        // A moved IPv6 data address must be usable at once, without duplicate detection.
        if addr.addr.is_ipv6() {
            m.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
        encode(RouteNetlinkMessage::NewAddress(m), flags, seq)
    } else {
        encode(
            RouteNetlinkMessage::DelAddress(m),
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
        )
    }
}

/// The RTM_GETADDR dump request of every address of every family.
#[must_use]
pub fn dump_request(seq: u32) -> Vec<u8> {
    encode(
        RouteNetlinkMessage::GetAddress(AddressMessage::default()),
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
    )
}

/// The address in one RTM_NEWADDR / RTM_DELADDR body: IFA_LOCAL where given (the local address
/// of a point-to-point link), else IFA_ADDRESS. `None` for a malformed body.
#[must_use]
pub fn parse_addr(body: &[u8]) -> Option<Addr> {
    let header = AddressHeader::parse(body).ok()?;
    let mut flags = u32::from(header.flags.bits());
    let (mut local, mut address) = (None, None);
    for nla in attributes(body, IFADDRMSG_LEN) {
        match AddressAttribute::parse(&nla) {
            Ok(AddressAttribute::Local(ip)) => local = Some(ip),
            Ok(AddressAttribute::Address(ip)) => address = Some(ip),
            // The 32-bit IFA_FLAGS, where the kernel sends it, supersedes the header's 8 bits.
            Ok(AddressAttribute::Flags(f)) => flags = f.bits(),
            _ => {}
        }
    }
    Some(Addr {
        ifindex: header.index,
        prefix: Prefix {
            addr: local.or(address)?,
            len: header.prefix_len,
        },
        flags,
    })
}

impl RouteSocket {
    /// Every address of every interface of the namespace.
    ///
    /// # Errors
    /// On a socket error or a refusal by the kernel.
    pub fn dump_addrs(&mut self) -> Result<Vec<Addr>, NetlinkError> {
        let seq = self.next_seq();
        let mut out = Vec::new();
        self.request(&dump_request(seq), |kind, body| {
            if kind == RTM_NEWADDR
                && let Some(a) = parse_addr(body)
            {
                out.push(a);
            }
        })?;
        Ok(out)
    }

    /// Adds (or refreshes) `addr` on `ifindex`.
    ///
    /// # Errors
    /// The kernel's refusal.
    pub fn add_address(&mut self, ifindex: u32, addr: Prefix) -> Result<(), NetlinkError> {
        let seq = self.next_seq();
        self.request(&address_request(true, seq, ifindex, addr), |_, _| {})
    }

    /// Removes `addr` from `ifindex`; absent is fine.
    ///
    /// # Errors
    /// The kernel's refusal.
    pub fn del_address(&mut self, ifindex: u32, addr: Prefix) -> Result<(), NetlinkError> {
        let seq = self.next_seq();
        match self.request(&address_request(false, seq, ifindex, addr), |_, _| {}) {
            // Already gone, or its device is (EADDRNOTAVAIL, ENODEV): the goal is reached.
            Err(NetlinkError::Refused(libc::EADDRNOTAVAIL | libc::ENODEV)) => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_golden() {
        let a = Prefix {
            addr: [192, 0, 2, 100].into(),
            len: 24,
        };
        #[rustfmt::skip]
        assert_eq!(address_request(true, 7, 3, a), [
            40, 0, 0, 0,          // length
            20, 0,                // RTM_NEWADDR
            0x05, 0x05,           // REQUEST | ACK | REPLACE | CREATE
            7, 0, 0, 0, 0, 0, 0, 0,
            2, 24, 0, 0,          // AF_INET, /24, flags, scope universe
            3, 0, 0, 0,           // ifindex 3
            8, 0, 2, 0, 192, 0, 2, 100, // IFA_LOCAL
            8, 0, 1, 0, 192, 0, 2, 100, // IFA_ADDRESS
        ]);
        let v6 = Prefix {
            addr: "2001:db8::100".parse().unwrap(),
            len: 64,
        };
        let m = address_request(true, 1, 3, v6);
        assert_eq!(&m[16..18], &[10, 64], "AF_INET6 /64");
        assert_eq!(
            &m[m.len() - 8..],
            &[8, 0, 8, 0, 2, 0, 0, 0],
            "IFA_FLAGS NODAD"
        );
        let d = address_request(false, 1, 3, a);
        assert_eq!(&d[4..8], &[21, 0, 0x05, 0x00], "RTM_DELADDR, REQUEST | ACK");
    }

    #[test]
    fn a_dumped_address_parses_and_truncation_never_panics() {
        // The request body is what the kernel sends back for the same address.
        let a = Prefix {
            addr: [192, 0, 2, 10].into(),
            len: 24,
        };
        let m = address_request(true, 1, 4, a);
        let body = &m[16..];
        assert_eq!(
            parse_addr(body),
            Some(Addr {
                ifindex: 4,
                prefix: a,
                flags: 0
            })
        );
        for cut in 0..body.len() {
            let _ = parse_addr(&body[..cut]);
        }
        let mut tentative = address_request(true, 1, 4, a)[16..].to_vec();
        tentative[2] = IFA_F_TENTATIVE as u8;
        assert!(!parse_addr(&tentative).unwrap().usable());
    }

    #[test]
    fn a_label_that_is_not_utf8_hides_nothing() {
        let a = Prefix {
            addr: [192, 0, 2, 10].into(),
            len: 24,
        };
        let mut body = address_request(true, 1, 4, a)[16..].to_vec();
        // IFA_LABEL (3), which the crate decodes as UTF-8 and refuses.
        crate::netlink::msg::attr(&mut body, 3, &[0xff, 0xfe, 0]);
        assert_eq!(parse_addr(&body).map(|x| x.prefix), Some(a));
    }
}
