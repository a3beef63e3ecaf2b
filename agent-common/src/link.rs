//! The link-state mirror: one entry per tracked interface in a pinned map.

/// Where the latest link-state change was learnt.
pub mod source {
    /// No observation yet.
    pub const NONE: u32 = 0;
    /// The initial dump at start-up.
    pub const INITIAL: u32 = 1;
    /// An rtnetlink RTM_NEWLINK notification.
    pub const NOTIFICATION: u32 = 2;
    /// The direct carrier poll (IFF_LOWER_UP in an RTM_GETLINK dump).
    pub const POLL: u32 = 3;
    /// A kernel tracing hook on the carrier change (fentry).
    pub const KERNEL_HOOK: u32 = 4;
}

/// Link state of one interface.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize))]
pub struct LinkState {
    /// 1 when the driver reports carrier (IFF_LOWER_UP), else 0.
    pub carrier: u32,
    /// Carrier transitions seen since tracking started (up and down both count).
    pub flaps: u32,
    /// CLOCK_MONOTONIC ns of the latest transition.
    pub last_change_ns: u64,
    /// One of [`source`]'s values: how the latest transition was learnt.
    pub source: u32,
    /// 1 when the interface is administratively up (IFF_UP).
    pub admin_up: u32,
    /// Changes the hook saw but could not hand to userspace (its ring buffer was full); userspace
    /// then learns of them from rtnetlink and the carrier counters, later.
    pub hook_records_lost: u32,
    pub _pad: u32,
}

const _: () = assert!(size_of::<LinkState>() == 32);

#[cfg(feature = "user")]
// SAFETY: repr(C), Copy, integer fields only, no padding (size asserted above).
unsafe impl aya::Pod for LinkState {}
