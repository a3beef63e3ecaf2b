//! The seam between failover and the kernel: addresses, routes, rules and announcements. The
//! daemon drives [`NetlinkKernel`]; tests drive a fake that records what it was asked.

use std::net::IpAddr;

use crate::{
    ip::Prefix,
    netlink::{NetlinkError, RouteSocket, route::Route, rule::Rule},
};

/// What failover needs from the kernel.
pub trait Kernel {
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
    /// Creates or replaces `route`.
    ///
    /// # Errors
    /// The kernel's refusal.
    fn set_route(&mut self, route: &Route) -> Result<(), NetlinkError>;
    /// Deletes `route`; absent is fine.
    ///
    /// # Errors
    /// The kernel's refusal.
    fn del_route(&mut self, route: &Route) -> Result<(), NetlinkError>;
    /// Adds `rule`; present is fine.
    ///
    /// # Errors
    /// The kernel's refusal.
    fn add_rule(&mut self, rule: &Rule) -> Result<(), NetlinkError>;
    /// Deletes `rule`; absent is fine.
    ///
    /// # Errors
    /// The kernel's refusal.
    fn del_rule(&mut self, rule: &Rule) -> Result<(), NetlinkError>;
    /// Sends one gratuitous ARP / unsolicited NA for `addr` from `ifindex` (`mac`).
    ///
    /// # Errors
    /// When the frame cannot be sent.
    fn announce(
        &mut self,
        ifindex: u32,
        ifname: &str,
        mac: [u8; 6],
        addr: IpAddr,
    ) -> std::io::Result<()>;
}

/// The real kernel, over one rtnetlink socket.
#[derive(Debug)]
pub struct NetlinkKernel(pub RouteSocket);

impl Kernel for NetlinkKernel {
    fn add_address(&mut self, ifindex: u32, addr: Prefix) -> Result<(), NetlinkError> {
        self.0.add_address(ifindex, addr)
    }
    fn del_address(&mut self, ifindex: u32, addr: Prefix) -> Result<(), NetlinkError> {
        self.0.del_address(ifindex, addr)
    }
    fn set_route(&mut self, route: &Route) -> Result<(), NetlinkError> {
        self.0.set_route(route)
    }
    fn del_route(&mut self, route: &Route) -> Result<(), NetlinkError> {
        self.0.del_route(route)
    }
    fn add_rule(&mut self, rule: &Rule) -> Result<(), NetlinkError> {
        self.0.add_rule(rule)
    }
    fn del_rule(&mut self, rule: &Rule) -> Result<(), NetlinkError> {
        self.0.del_rule(rule)
    }
    fn announce(
        &mut self,
        ifindex: u32,
        ifname: &str,
        mac: [u8; 6],
        addr: IpAddr,
    ) -> std::io::Result<()> {
        super::announce::announce(ifindex, ifname, mac, addr)
    }
}

/// A kernel that records every call as a line and refuses what it is told to.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct FakeKernel {
    pub log: Vec<String>,
    /// Interface indexes on which adding an address fails.
    pub refuse_on: Vec<u32>,
}

#[cfg(test)]
impl Kernel for FakeKernel {
    fn add_address(&mut self, ifindex: u32, addr: Prefix) -> Result<(), NetlinkError> {
        if self.refuse_on.contains(&ifindex) {
            return Err(NetlinkError::Refused(libc::ENODEV));
        }
        self.log.push(format!("add {addr} on {ifindex}"));
        Ok(())
    }
    fn del_address(&mut self, ifindex: u32, addr: Prefix) -> Result<(), NetlinkError> {
        self.log.push(format!("del {addr} on {ifindex}"));
        Ok(())
    }
    fn set_route(&mut self, r: &Route) -> Result<(), NetlinkError> {
        let hops: Vec<String> = r
            .hops
            .iter()
            .map(|h| match h.gateway {
                Some(g) => format!("{}@{g}", h.ifindex),
                None => h.ifindex.to_string(),
            })
            .collect();
        let src = r.prefsrc.map_or_else(String::new, |s| format!(" src {s}"));
        self.log.push(format!(
            "route {} table {} via [{}]{src}",
            r.dst,
            r.table,
            hops.join(", ")
        ));
        Ok(())
    }
    fn del_route(&mut self, r: &Route) -> Result<(), NetlinkError> {
        self.log
            .push(format!("del route {} table {}", r.dst, r.table));
        Ok(())
    }
    fn add_rule(&mut self, r: &Rule) -> Result<(), NetlinkError> {
        let src = r.src.map_or_else(|| "all".into(), |s| s.addr.to_string());
        self.log.push(format!("rule from {src} table {}", r.table));
        Ok(())
    }
    fn del_rule(&mut self, r: &Rule) -> Result<(), NetlinkError> {
        let src = r.src.map_or_else(|| "all".into(), |s| s.addr.to_string());
        self.log
            .push(format!("del rule from {src} table {}", r.table));
        Ok(())
    }
    fn announce(
        &mut self,
        ifindex: u32,
        _ifname: &str,
        _mac: [u8; 6],
        addr: IpAddr,
    ) -> std::io::Result<()> {
        self.log.push(format!("announce {addr} from {ifindex}"));
        Ok(())
    }
}
