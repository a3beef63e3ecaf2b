//! Carrier through the ethtool generic-netlink family (ETHTOOL_MSG_LINKSTATE_GET, one dump for all
//! devices). The driver's own link state, like IFF_LOWER_UP, but each device costs the kernel a
//! 40-byte message instead of a full RTM_NEWLINK, which makes a millisecond poll affordable.

use crate::netlink::{
    NetlinkError, RouteSocket,
    msg::{Builder, NLM_F_DUMP, NLM_F_REQUEST, attrs, u16_at, u32_at},
};

const GENL_HDRLEN: usize = 4;
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const ETHTOOL_MSG_LINKSTATE_GET: u8 = 6;
const ETHTOOL_A_LINKSTATE_HEADER: u16 = 1;
const ETHTOOL_A_LINKSTATE_LINK: u16 = 2;
const ETHTOOL_A_HEADER_DEV_INDEX: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;

/// A generic-netlink socket that dumps ethtool link state.
#[derive(Debug)]
pub struct EthtoolLinkState {
    sock: RouteSocket,
    family: u16,
}

/// A generic-netlink message: header, `genlmsghdr` (command, version 1), attributes.
fn message(kind: u16, flags: u16, seq: u32, cmd: u8, attrs: &[u8]) -> Vec<u8> {
    Builder::new(kind, flags, seq)
        .bytes(&[cmd, 1, 0, 0])
        .bytes(attrs)
        .finish()
}

/// The family-resolution request for "ethtool".
#[must_use]
pub fn family_request(seq: u32) -> Vec<u8> {
    let mut attr = Vec::new();
    attr.extend(12u16.to_ne_bytes());
    attr.extend(CTRL_ATTR_FAMILY_NAME.to_ne_bytes());
    attr.extend(b"ethtool\0");
    message(GENL_ID_CTRL, NLM_F_REQUEST, seq, CTRL_CMD_GETFAMILY, &attr)
}

/// The link-state dump request (an empty request header: all devices, default flags).
#[must_use]
pub fn dump_request(family: u16, seq: u32) -> Vec<u8> {
    let mut attr = Vec::new();
    attr.extend(4u16.to_ne_bytes());
    attr.extend((ETHTOOL_A_LINKSTATE_HEADER | NLA_F_NESTED).to_ne_bytes());
    message(
        family,
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        ETHTOOL_MSG_LINKSTATE_GET,
        &attr,
    )
}

/// The link-state request for one device.
#[must_use]
pub fn get_request(family: u16, seq: u32, ifindex: u32) -> Vec<u8> {
    let mut attr = Vec::new();
    attr.extend(12u16.to_ne_bytes());
    attr.extend((ETHTOOL_A_LINKSTATE_HEADER | NLA_F_NESTED).to_ne_bytes());
    attr.extend(8u16.to_ne_bytes());
    attr.extend(ETHTOOL_A_HEADER_DEV_INDEX.to_ne_bytes());
    attr.extend(ifindex.to_ne_bytes());
    message(family, NLM_F_REQUEST, seq, ETHTOOL_MSG_LINKSTATE_GET, &attr)
}

/// (ifindex, link) from one reply body; `None` for devices that do not report link state.
#[must_use]
pub fn parse_reply(body: &[u8]) -> Option<(u32, bool)> {
    let (mut ifindex, mut link) = (None, None);
    for (t, payload) in attrs(body.get(GENL_HDRLEN..)?) {
        match t {
            ETHTOOL_A_LINKSTATE_HEADER => {
                ifindex = attrs(payload)
                    .find(|(t, _)| *t == ETHTOOL_A_HEADER_DEV_INDEX)
                    .and_then(|(_, p)| u32_at(p, 0));
            }
            ETHTOOL_A_LINKSTATE_LINK => link = payload.first().map(|b| *b != 0),
            _ => {}
        }
    }
    Some((ifindex?, link?))
}

impl EthtoolLinkState {
    /// Opens the socket and resolves the ethtool family.
    ///
    /// # Errors
    /// When generic netlink or the ethtool family (CONFIG_ETHTOOL_NETLINK) is unavailable.
    pub fn open() -> Result<Self, NetlinkError> {
        let mut sock = RouteSocket::open_protocol(Some(rustix::net::netlink::GENERIC), 0)?;
        let seq = sock.next_seq();
        let mut family = None;
        sock.request(&family_request(seq), |_, body| {
            family = body.get(GENL_HDRLEN..).and_then(|a| {
                attrs(a)
                    .find(|(t, _)| *t == CTRL_ATTR_FAMILY_ID)
                    .and_then(|(_, p)| u16_at(p, 0))
            });
        })?;
        let family = family.ok_or(NetlinkError::Refused(libc::ENOENT))?;
        Ok(Self { sock, family })
    }

    /// Dumps the link state of every device and calls `each(ifindex, link)`.
    ///
    /// # Errors
    /// On a socket error or a refusal by the kernel.
    pub fn dump(&mut self, each: impl FnMut(u32, bool)) -> Result<(), NetlinkError> {
        let seq = self.sock.next_seq();
        self.ask(&dump_request(self.family, seq), each)
    }

    /// Asks for the link state of one device and calls `each(ifindex, link)` with it.
    ///
    /// # Errors
    /// On a socket error or a refusal by the kernel (ENODEV: no such device).
    pub fn get(&mut self, ifindex: u32, each: impl FnMut(u32, bool)) -> Result<(), NetlinkError> {
        let seq = self.sock.next_seq();
        self.ask(&get_request(self.family, seq, ifindex), each)
    }

    fn ask(&mut self, req: &[u8], mut each: impl FnMut(u32, bool)) -> Result<(), NetlinkError> {
        let family = self.family;
        self.sock.request(req, |kind, body| {
            if kind == family
                && let Some((ifindex, link)) = parse_reply(body)
            {
                each(ifindex, link);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_golden() {
        #[rustfmt::skip]
        assert_eq!(family_request(5), [
            32, 0, 0, 0,  0x10, 0,  1, 0,  5, 0, 0, 0,  0, 0, 0, 0, // nlmsghdr: GENL_ID_CTRL, REQUEST
            3, 1, 0, 0,                                             // CTRL_CMD_GETFAMILY, version 1
            12, 0, 2, 0, b'e', b't', b'h', b't', b'o', b'o', b'l', 0, // CTRL_ATTR_FAMILY_NAME
        ]);
        #[rustfmt::skip]
        assert_eq!(dump_request(21, 6), [
            24, 0, 0, 0,  21, 0,  1, 3,  6, 0, 0, 0,  0, 0, 0, 0, // nlmsghdr: family 21, REQUEST|DUMP
            6, 1, 0, 0,                                         // LINKSTATE_GET, version 1
            4, 0, 1, 0x80,                                      // empty nested header
        ]);
        #[rustfmt::skip]
        assert_eq!(get_request(21, 7, 3), [
            32, 0, 0, 0,  21, 0,  1, 0,  7, 0, 0, 0,  0, 0, 0, 0, // nlmsghdr: family 21, REQUEST
            6, 1, 0, 0,                                         // LINKSTATE_GET, version 1
            12, 0, 1, 0x80,                                     // nested header
              8, 0, 1, 0, 3, 0, 0, 0,                           //   DEV_INDEX 3
        ]);
    }

    #[test]
    fn parses_replies_and_survives_garbage() {
        #[rustfmt::skip]
        let body = [
            6, 1, 0, 0,                           // genl header
            20, 0, 1, 0x80,                       // nested header
              8, 0, 1, 0, 7, 0, 0, 0,             //   DEV_INDEX 7
              7, 0, 2, 0, b'h', b'0', 0, 0,       //   DEV_NAME "h0"
            5, 0, 2, 0, 1, 0, 0, 0,               // LINK 1
        ];
        assert_eq!(parse_reply(&body), Some((7, true)));
        for cut in 0..body.len() {
            let _ = parse_reply(&body[..cut]);
        }
        assert_eq!(
            parse_reply(&body[..24]),
            None,
            "no LINK attribute: no observation"
        );
    }
}
