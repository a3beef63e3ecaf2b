//! The link-state mirror: which tracked interfaces have carrier, how often they flapped and when.
//!
//! Sources, fastest first: a kernel hook on the carrier change (fentry; the datapath says whether the
//! kernel allows it), the direct carrier poll (an RTM_GETLINK dump whose IFF_LOWER_UP is the driver's
//! carrier, not delayed by linkwatch), and rtnetlink notifications. The kernel's per-device carrier
//! up/down counters travel with every observation, so a flap shorter than the poll interval is still
//! counted, and a stale notification (one the poll already overtook) is recognised and ignored.
//! A member stacked on another device (VLAN, macvlan, ipvlan) takes that device's carrier too: the
//! kernel copies it up only when linkwatch runs, up to a second after a NIC's change.

pub mod ethtool;
pub mod mirror;
pub mod watcher;
