//! The host's addresses (getifaddrs): to pick a test address, to learn a test address's subnet,
//! and to recognise replies from this host's own addresses.
//!
//! This stays on libc: neither rustix nor socket2 offers getifaddrs(3), so walking its list (raw
//! pointers into memory libc owns) needs the `unsafe` blocks below.

use std::{ffi::CStr, net::IpAddr};

use super::packet::Family;
use crate::ip::is_link_local;
pub use crate::ip::same_subnet;

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
    // Stays libc: rustix and socket2 have no getifaddrs.
    // SAFETY: getifaddrs only writes the list head through the valid pointer it gets; the list
    // is freed once below, after the last use of its nodes.
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
    // Stays libc, the counterpart of getifaddrs above.
    // SAFETY: `head` came from a successful getifaddrs, is freed once, and no reference into the
    // list outlives this point (names and addresses were copied out).
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

/// The test address in.mpathd would use for probing `target` from `ifname`: IPv6 test addresses
/// must be link-local; IPv4 takes the first address.
#[must_use]
pub fn pick_test_address(ifname: &str, target: IpAddr) -> Option<IpAddr> {
    match target {
        IpAddr::V4(_) => interface_addresses(ifname, Family::Inet).into_iter().next(),
        IpAddr::V6(_) => interface_addresses(ifname, Family::Inet6)
            .into_iter()
            .find(|a| is_link_local(*a)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_listed() {
        assert!(
            all_addresses()
                .iter()
                .any(|a| a.addr == IpAddr::from([127, 0, 0, 1]) && a.prefix_len == 8)
        );
    }
}
