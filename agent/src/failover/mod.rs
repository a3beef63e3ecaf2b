//! Failover on Linux: what in.mpathd's kernel did on Solaris. The engine decides which members are
//! active; this module decides where each data address lives ([`plan`]) and carries it out
//! through a small seam ([`apply`]) that tests replace.

pub mod announce;
pub mod apply;
pub mod arp_flux;
pub mod plan;
pub mod routes;
