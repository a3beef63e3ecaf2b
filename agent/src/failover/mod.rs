//! Failover on Linux: what in.mpathd's kernel did on Solaris. The engine decides which members are
//! active; this module decides where each data address lives ([`plan`]) and what the routing
//! tables hold ([`outbound`]), and carries it out through a small seam ([`kernel`]) that tests
//! replace.

pub mod announce;
pub mod apply;
pub mod arp_flux;
pub mod kernel;
pub mod outbound;
pub mod plan;
