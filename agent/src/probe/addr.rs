//! Finding an interface's addresses (getifaddrs), to pick a test address when none is given.

use std::{ffi::CStr, net::IpAddr};

use super::{packet::Family, socket::is_link_local};

/// Addresses configured on `ifname` of `family`, in the kernel's order.
#[must_use]
pub fn interface_addresses(ifname: &str, family: Family) -> Vec<IpAddr> {
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
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        if unsafe { CStr::from_ptr(ifa.ifa_name) }.to_bytes() != ifname.as_bytes() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points to a sockaddr whose family says its real type.
        let fam = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        match (fam, family) {
            (libc::AF_INET, Family::Inet) => {
                // SAFETY: AF_INET means the sockaddr is a sockaddr_in.
                let sin = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in>() };
                out.push(IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes()));
            }
            (libc::AF_INET6, Family::Inet6) => {
                // SAFETY: AF_INET6 means the sockaddr is a sockaddr_in6.
                let sin6 = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in6>() };
                out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
            }
            _ => {}
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
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
