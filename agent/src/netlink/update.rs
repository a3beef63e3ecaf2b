//! One notification of the kernel's routing layer, parsed: a link, an address, a route or a rule
//! that appeared, changed or went away.

use super::{
    addr::{self, Addr},
    link::{self, LinkInfo},
    route::{self, Route},
    rule::{self, Rule},
};

/// What one notification says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Update {
    Link { link: LinkInfo, deleted: bool },
    Addr { addr: Addr, deleted: bool },
    Route { route: Route, deleted: bool },
    Rule { rule: Rule, deleted: bool },
}

/// The update in a message of type `kind` with `body`; `None` for anything else or anything
/// malformed.
#[must_use]
pub fn parse(kind: u16, body: &[u8]) -> Option<Update> {
    match kind {
        link::RTM_NEWLINK | link::RTM_DELLINK => Some(Update::Link {
            link: link::parse_link_info(body)?,
            deleted: kind == link::RTM_DELLINK,
        }),
        addr::RTM_NEWADDR | addr::RTM_DELADDR => Some(Update::Addr {
            addr: addr::parse_addr(body)?,
            deleted: kind == addr::RTM_DELADDR,
        }),
        route::RTM_NEWROUTE | route::RTM_DELROUTE => Some(Update::Route {
            route: route::parse_route(body)?,
            deleted: kind == route::RTM_DELROUTE,
        }),
        rule::RTM_NEWRULE | rule::RTM_DELRULE => Some(Update::Rule {
            rule: rule::parse_rule(body)?,
            deleted: kind == rule::RTM_DELRULE,
        }),
        _ => None,
    }
}

impl super::RouteSocket {
    /// Reads every queued notification (non-blocking) and calls `each` with what it says.
    ///
    /// # Errors
    /// [`super::NetlinkError::Overrun`] when notifications were lost: the caller resynchronises
    /// with dumps.
    pub fn drain_updates(
        &mut self,
        mut each: impl FnMut(Update),
    ) -> Result<(), super::NetlinkError> {
        self.drain(|kind, body| {
            if let Some(u) = parse(kind, body) {
                each(u);
            }
        })
    }
}
