//! IP addresses with prefixes, and the arithmetic on them every part of ipmpd shares.

use std::net::IpAddr;

/// An address with its prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    /// The network of this prefix (host bits cleared).
    #[must_use]
    pub fn network(self) -> Self {
        let addr = match self.addr {
            IpAddr::V4(a) => {
                let mask = if self.len == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(self.len.min(32)))
                };
                IpAddr::from((u32::from(a) & mask).to_be_bytes())
            }
            IpAddr::V6(a) => {
                let mask = if self.len == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.len.min(128)))
                };
                IpAddr::from((u128::from(a) & mask).to_be_bytes())
            }
        };
        Self {
            addr,
            len: self.len,
        }
    }

    /// Whether `a` lies in this prefix.
    #[must_use]
    pub fn contains(self, a: IpAddr) -> bool {
        same_subnet(self.addr, a, self.len)
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Whether `a` and `b` share the first `len` bits (never across families).
#[must_use]
pub fn same_subnet(a: IpAddr, b: IpAddr, len: u8) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let shift = 32 - u32::from(len.min(32));
            shift == 32 || (u32::from(a) >> shift) == (u32::from(b) >> shift)
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let shift = 128 - u32::from(len.min(128));
            shift == 128 || (u128::from(a) >> shift) == (u128::from(b) >> shift)
        }
        _ => false,
    }
}

/// Whether `a` is an IPv6 link-local unicast address (fe80::/10).
#[must_use]
pub fn is_link_local(a: IpAddr) -> bool {
    matches!(a, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

/// The host prefix length of `a`'s family (32 or 128).
#[must_use]
pub fn host_len(a: IpAddr) -> u8 {
    if a.is_ipv4() { 32 } else { 128 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &str, len: u8) -> Prefix {
        Prefix {
            addr: a.parse().unwrap(),
            len,
        }
    }

    #[test]
    fn networks_and_containment() {
        assert_eq!(p("192.0.2.100", 24).network(), p("192.0.2.0", 24));
        assert_eq!(p("192.0.2.100", 0).network(), p("0.0.0.0", 0));
        assert_eq!(p("2001:db8::1:5", 64).network(), p("2001:db8::", 64));
        assert!(p("192.0.2.0", 24).contains("192.0.2.77".parse().unwrap()));
        assert!(!p("192.0.2.0", 24).contains("192.0.3.1".parse().unwrap()));
        assert!(!p("0.0.0.0", 0).contains("fe80::1".parse().unwrap()));
    }

    #[test]
    fn subnets() {
        let a: IpAddr = [192, 0, 2, 10].into();
        assert!(same_subnet(a, [192, 0, 2, 1].into(), 24));
        assert!(!same_subnet(a, [192, 0, 3, 1].into(), 24));
        assert!(same_subnet(a, [10, 0, 0, 1].into(), 0));
        assert!(same_subnet(
            "fe80::1".parse().unwrap(),
            "fe80::2".parse().unwrap(),
            64
        ));
        assert!(!same_subnet(a, "fe80::2".parse().unwrap(), 0));
        assert!(is_link_local("fe80::1".parse().unwrap()));
        assert!(!is_link_local("2001:db8::1".parse().unwrap()));
    }
}
