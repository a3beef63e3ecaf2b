//! Carrying out address moves through rtnetlink, behind a seam tests replace: add on the new
//! member first, then delete from the old one, so the address is never absent.

use super::plan::Move;
use crate::{
    config::group_file::Prefix,
    link::{
        netlink::{NetlinkError, RouteSocket},
        nlmsg::{Builder, NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, family, ip_bytes},
    },
};

const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_FLAGS: u16 = 8;
/// `IFA_F_NODAD`: a moved IPv6 data address must be usable at once.
const IFA_F_NODAD: u32 = 0x02;

/// What the mover needs from the kernel.
pub trait AddressOps {
    /// Adds (or refreshes) `addr` on `ifindex`.
    ///
    /// # Errors
    /// The kernel's refusal.
    fn add_address(&mut self, ifindex: u32, addr: Prefix) -> Result<(), NetlinkError>;
    /// Removes `addr` from `ifindex`; absent is fine.
    ///
    /// # Errors
    /// The kernel's refusal.
    fn del_address(&mut self, ifindex: u32, addr: Prefix) -> Result<(), NetlinkError>;
}

/// The RTM_NEWADDR / RTM_DELADDR request for `addr` on `ifindex`.
#[must_use]
pub fn address_request(add: bool, seq: u32, ifindex: u32, addr: Prefix) -> Vec<u8> {
    let (kind, flags) = if add {
        (
            RTM_NEWADDR,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )
    } else {
        (RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK)
    };
    let bytes = ip_bytes(addr.addr);
    let mut ifa = vec![family(addr.addr), addr.len, 0, 0];
    ifa.extend(ifindex.to_ne_bytes());
    // ifaddrmsg: family, prefix length, flags, scope (universe), index; then the address.
    let m = Builder::new(kind, flags, seq)
        .bytes(&ifa)
        .attr(IFA_LOCAL, &bytes)
        .attr(IFA_ADDRESS, &bytes);
    if addr.addr.is_ipv6() && add {
        m.attr(IFA_FLAGS, &IFA_F_NODAD.to_ne_bytes()).finish()
    } else {
        m.finish()
    }
}

impl AddressOps for RouteSocket {
    fn add_address(&mut self, ifindex: u32, addr: Prefix) -> Result<(), NetlinkError> {
        let seq = self.next_seq();
        self.request(&address_request(true, seq, ifindex, addr), |_, _| {})
    }

    fn del_address(&mut self, ifindex: u32, addr: Prefix) -> Result<(), NetlinkError> {
        let seq = self.next_seq();
        match self.request(&address_request(false, seq, ifindex, addr), |_, _| {}) {
            // Already gone (EADDRNOTAVAIL): the goal is reached.
            Err(NetlinkError::Refused(libc::EADDRNOTAVAIL)) => Ok(()),
            other => other,
        }
    }
}

/// The outcome of one move.
#[derive(Debug)]
pub struct Applied {
    pub mv: Move,
    /// Interface index of the new home, for the announcements.
    pub to_ifindex: u32,
    pub result: Result<(), NetlinkError>,
}

/// Carries out `moves`: add on the new member, then delete from the old one. A failed add leaves
/// the address where it was.
pub fn execute(
    ops: &mut dyn AddressOps,
    moves: &[Move],
    ifindex_of: impl Fn(&str) -> Option<u32>,
) -> Vec<Applied> {
    moves
        .iter()
        .filter_map(|mv| {
            let to = ifindex_of(&mv.to)?;
            let mut result = ops.add_address(to, mv.addr);
            if result.is_ok()
                && let Some(from) = mv.from.as_deref().and_then(&ifindex_of)
                && from != to
            {
                result = ops.del_address(from, mv.addr);
            }
            Some(Applied {
                mv: mv.clone(),
                to_ifindex: to,
                result,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what it is asked to do; refuses adds on index 99.
    #[derive(Default)]
    struct Fake {
        log: Vec<String>,
    }

    impl AddressOps for Fake {
        fn add_address(&mut self, ifindex: u32, addr: Prefix) -> Result<(), NetlinkError> {
            if ifindex == 99 {
                return Err(NetlinkError::Refused(libc::ENODEV));
            }
            self.log.push(format!("add {} on {ifindex}", addr.addr));
            Ok(())
        }
        fn del_address(&mut self, ifindex: u32, addr: Prefix) -> Result<(), NetlinkError> {
            self.log.push(format!("del {} on {ifindex}", addr.addr));
            Ok(())
        }
    }

    fn idx(name: &str) -> Option<u32> {
        match name {
            "h0" => Some(2),
            "h1" => Some(3),
            "bad" => Some(99),
            _ => None,
        }
    }

    #[test]
    fn add_before_delete_and_a_failed_add_keeps_the_old_home() {
        let a = Prefix {
            addr: [192, 0, 2, 100].into(),
            len: 24,
        };
        let mut f = Fake::default();
        let done = execute(
            &mut f,
            &[Move {
                addr: a,
                from: Some("h0".into()),
                to: "h1".into(),
            }],
            idx,
        );
        assert_eq!(f.log, ["add 192.0.2.100 on 3", "del 192.0.2.100 on 2"]);
        assert!(done[0].result.is_ok());
        let mut f = Fake::default();
        let done = execute(
            &mut f,
            &[Move {
                addr: a,
                from: Some("h0".into()),
                to: "bad".into(),
            }],
            idx,
        );
        assert!(f.log.is_empty(), "no delete after a failed add");
        assert!(done[0].result.is_err());
    }

    #[test]
    fn netlink_messages_golden() {
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
}
