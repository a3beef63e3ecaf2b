//! The one rtnetlink layer: a socket, the message codec and its constants, and per object kind
//! (links, addresses, routes, rules, qdiscs and filters) the requests ipmpd sends and the parsers
//! of what the kernel reports. `link/`, `failover/`, `datapath/` and the daemon's observer all go
//! through here.

pub mod addr;
pub mod link;
pub mod msg;
pub mod packet;
pub mod route;
pub mod rule;
pub mod socket;
pub mod tc;
pub mod update;

pub use socket::{NetlinkError, RouteSocket};

/// Multicast groups (bind(2) masks of `RTMGRP_*`) for everything the reconciler follows: links,
/// IPv4/IPv6 addresses, routes and rules.
pub const RTMGRP_EVERYTHING: u32 = RTMGRP_LINK
    | RTMGRP_IPV4_IFADDR
    | RTMGRP_IPV4_ROUTE
    | RTMGRP_IPV4_RULE
    | RTMGRP_IPV6_IFADDR
    | RTMGRP_IPV6_ROUTE
    | RTMGRP_IPV6_RULE;
const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV4_ROUTE: u32 = 0x40;
const RTMGRP_IPV4_RULE: u32 = 0x80;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;
const RTMGRP_IPV6_ROUTE: u32 = 0x400;
/// `RTNLGRP_IPV6_RULE` (19) as a mask bit.
const RTMGRP_IPV6_RULE: u32 = 1 << (19 - 1);
