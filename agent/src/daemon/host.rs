//! The host as the reconciler sees it: the observed state, kept current from rtnetlink
//! notifications (links, addresses, routes, rules), and resynchronised with full dumps after an
//! overrun and on in.mpathd's 20 s rescan.

use std::os::fd::{AsFd as _, BorrowedFd};

use crate::{
    netlink::{NetlinkError, RTMGRP_EVERYTHING, RouteSocket, update::Update},
    reconcile::Observed,
};

/// The observed state and the sockets that feed it.
#[derive(Debug)]
pub struct Host {
    pub observed: Observed,
    notifications: RouteSocket,
    dumps: RouteSocket,
}

/// What a drain of notifications brought.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// The observed state changed.
    pub changed: bool,
    /// A link came, went or changed, or an address went: the kernel may have flushed IPv4 routes
    /// (through the device, or with that preferred source) without a word.
    pub links: bool,
}

impl Host {
    /// Subscribes to notifications, then takes the first full picture (in that order, so nothing
    /// that happens in between is missed).
    ///
    /// # Errors
    /// When rtnetlink refuses the sockets or a dump.
    pub fn open() -> Result<Self, NetlinkError> {
        let notifications = RouteSocket::for_groups(RTMGRP_EVERYTHING)?;
        let mut dumps = RouteSocket::for_dumps()?;
        let observed = dump_all(&mut dumps)?;
        Ok(Self {
            observed,
            notifications,
            dumps,
        })
    }

    /// The notification socket, for `ppoll`.
    #[must_use]
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.notifications.as_fd()
    }

    /// Folds in every queued notification; after an overrun, a full resync.
    ///
    /// # Errors
    /// When the resync's dumps fail.
    pub fn drain(&mut self) -> Result<Drained, NetlinkError> {
        let mut d = Drained::default();
        let observed = &mut self.observed;
        let result = self.notifications.drain_updates(|u| {
            d.links |= matches!(u, Update::Link { .. } | Update::Addr { deleted: true, .. });
            d.changed |= observed.apply(u);
        });
        match result {
            Ok(()) => Ok(d),
            Err(NetlinkError::Overrun) => {
                tracing::warn!("rtnetlink notifications overran; resynchronising with dumps");
                self.resync().map(|changed| Drained {
                    changed,
                    links: true,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Replaces the observed state with full dumps; whether anything differed.
    ///
    /// # Errors
    /// When a dump fails (the old state is kept).
    pub fn resync(&mut self) -> Result<bool, NetlinkError> {
        let fresh = dump_all(&mut self.dumps)?;
        let changed = fresh != self.observed;
        self.observed = fresh;
        Ok(changed)
    }

    /// Replaces only the routes and rules (after a link change: the kernel flushes IPv4 routes of
    /// a device that goes down without a notification).
    ///
    /// # Errors
    /// When a dump fails.
    pub fn resync_routes(&mut self) -> Result<bool, NetlinkError> {
        let fresh = dump_routes_and_rules(&mut self.dumps)?;
        let changed = fresh.routes != self.observed.routes || fresh.rules != self.observed.rules;
        self.observed.routes = fresh.routes;
        self.observed.rules = fresh.rules;
        Ok(changed)
    }
}

const FAMILIES: [u8; 2] = [libc::AF_INET as u8, libc::AF_INET6 as u8];

fn dump_routes_and_rules(s: &mut RouteSocket) -> Result<Observed, NetlinkError> {
    let mut routes = Vec::new();
    let mut rules = Vec::new();
    for f in FAMILIES {
        routes.extend(s.dump_routes(f)?);
        rules.extend(s.dump_rules(f)?);
    }
    Ok(Observed::from_dumps(Vec::new(), Vec::new(), routes, rules))
}

fn dump_all(s: &mut RouteSocket) -> Result<Observed, NetlinkError> {
    let links = s.dump_link_info()?;
    let addrs = s.dump_addrs()?;
    let rr = dump_routes_and_rules(s)?;
    let mut o = Observed::from_dumps(links, addrs, Vec::new(), Vec::new());
    o.routes = rr.routes;
    o.rules = rr.rules;
    Ok(o)
}
