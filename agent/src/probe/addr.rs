//! The host's addresses (getifaddrs): to pick a test address, to learn a test address's subnet,
//! and to recognise replies from this host's own addresses.

use std::{ffi::CStr, net::IpAddr};

use super::{packet::Family, socket::is_link_local};

/// One configured address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfAddr {
    pub ifname: String,
    pub addr: IpAddr,
    pub prefix_len: u8,
}

/// # Safety
/// `sa` must be null or point to a sockaddr whose family field tells its real type.
unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: non-null and valid per the function's contract.
    match i32::from(unsafe { (*sa).sa_family }) {
        // SAFETY: AF_INET means a sockaddr_in.
        libc::AF_INET => Some(IpAddr::from(
            unsafe { (*sa.cast::<libc::sockaddr_in>()).sin_addr.s_addr }.to_ne_bytes(),
        )),
        // SAFETY: AF_INET6 means a sockaddr_in6.
        libc::AF_INET6 => Some(IpAddr::from(unsafe {
            (*sa.cast::<libc::sockaddr_in6>()).sin6_addr.s6_addr
        })),
        _ => None,
    }
}

fn mask_len(mask: IpAddr) -> u8 {
    match mask {
        IpAddr::V4(m) => u32::from(m).count_ones() as u8,
        IpAddr::V6(m) => u128::from(m).count_ones() as u8,
    }
}

/// Every IPv4 and IPv6 address of every interface in this network namespace.
#[must_use]
pub fn all_addresses() -> Vec<IfAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we free below.
    if unsafe { libc::getifaddrs(&raw mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned and has not been freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: the list's sockaddrs are null or valid with a meaningful family.
        let Some(addr) = (unsafe { sockaddr_ip(ifa.ifa_addr) }) else {
            continue;
        };
        // SAFETY: as above.
        let prefix_len = unsafe { sockaddr_ip(ifa.ifa_netmask) }
            .map_or(if addr.is_ipv4() { 32 } else { 128 }, mask_len);
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let ifname = unsafe { CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        out.push(IfAddr {
            ifname,
            addr,
            prefix_len,
        });
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

/// Addresses configured on `ifname` of `family`, in the kernel's order.
#[must_use]
pub fn interface_addresses(ifname: &str, family: Family) -> Vec<IpAddr> {
    all_addresses()
        .into_iter()
        .filter(|a| a.ifname == ifname && a.addr.is_ipv4() == (family == Family::Inet))
        .map(|a| a.addr)
        .collect()
}

/// Whether `a` and `b` share the first `len` bits.
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

/// The test address in.mpathd would use for probing `target` from `ifname`: IPv6 test addresses
/// must be link-local; IPv4 takes the first address.
#[must_use]
pub fn pick_test_address(ifname: &str, target: IpAddr) -> Option<IpAddr> {
    match target {
        IpAddr::V4(_) => interface_addresses(ifname, Family::Inet).into_iter().next(),
        IpAddr::V6(_) => interface_addresses(ifname, Family::Inet6)
            .into_iter()
            .find(|a| matches!(a, IpAddr::V6(v6) if is_link_local(*v6))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(
            !same_subnet(a, "fe80::2".parse().unwrap(), 0),
            "families never match"
        );
    }

    #[test]
    fn loopback_is_listed() {
        assert!(
            all_addresses()
                .iter()
                .any(|a| a.addr == IpAddr::from([127, 0, 0, 1]) && a.prefix_len == 8)
        );
    }
}
