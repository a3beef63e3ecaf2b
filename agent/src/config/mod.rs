//! Configuration: `/etc/default/mpathd` with in.mpathd's exact semantics and messages.

pub mod mpathd_defaults;
