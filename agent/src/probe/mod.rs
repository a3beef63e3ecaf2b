//! Probes: packets with ipmpd's payload header, their authentication tag, the raw sockets that send
//! them, and the matching of kernel-stamped replies to what was sent.

pub mod addr;
pub mod auth;
mod mmsg;
pub mod outbox;
pub mod packet;
pub mod session;
pub mod socket;
pub mod stats;
pub mod timing;
