#![no_std]
//! Types shared by the ipmpd agent (userspace) and its kernel programs (agent-ebpf).
//!
//! Every type here is `#[repr(C)]`, `Copy`, has no implicit padding (explicit `_pad` fields) and has
//! its size asserted at compile time, so the kernel and userspace can never disagree on a layout and
//! the verifier never sees uninitialised padding bytes.

pub mod checksum;
pub mod counters;
pub mod link;
pub mod probe;
pub mod record;

/// Most interfaces one agent tracks (the size of the per-interface maps).
pub const MAX_TRACKED: usize = 4096;

/// Size of the `PROBE_REPLIES` ring buffer in bytes: about 2,900 records of 80 bytes (plus the
/// kernel's 8-byte header each).
pub const PROBE_REPLIES_BYTES: usize = 256 * 1024;

/// Bit of a `PROBE_IDS` value asking XDP to wake userspace for each reply on the interface.
/// Without it the reply is queued silently (`BPF_RB_NO_WAKEUP`) and read at the agent's next turn,
/// which always comes before a probe is declared lost: a reply that cannot change a decision
/// soon costs no wake-up.
pub const PROBE_ID_WAKE: u32 = 1 << 16;

/// The `PROBE_IDS` value for ICMP identifier `id`, with [`PROBE_ID_WAKE`] when `wake`.
#[must_use]
pub const fn probe_id(id: u16, wake: bool) -> u32 {
    id as u32 | if wake { PROBE_ID_WAKE } else { 0 }
}

/// Names of the maps and programs, shared so userspace finds what the kernel side declares.
pub mod names {
    /// Ring buffer carrying [`crate::record::ProbeReplyRecord`]s from XDP to userspace.
    pub const PROBE_REPLIES: &str = "PROBE_REPLIES";
    /// Per-CPU counters per tracked interface ([`crate::counters::IfaceCounters`]).
    pub const IFACE_COUNTERS: &str = "IFACE_COUNTERS";
    /// Per-CPU count of the probes the TC egress program stamped, on every interface together.
    pub const PROBES_STAMPED: &str = "PROBES_STAMPED";
    /// Link-state mirror per tracked interface ([`crate::link::LinkState`]).
    pub const LINK_STATE: &str = "LINK_STATE";
    /// The ICMP identifier of ipmpd's probes per interface: XDP queues only replies to those
    /// (the value is a [`crate::probe_id`]).
    pub const PROBE_IDS: &str = "PROBE_IDS";
    /// Ring buffer carrying [`crate::record::LinkRecord`]s from the carrier hook to userspace.
    pub const LINK_EVENTS: &str = "LINK_EVENTS";
    /// XDP program recognising probe replies.
    pub const XDP_PROBE_REPLY: &str = "ipmpd_xdp_reply";
    /// TC ingress program doing the same as [`XDP_PROBE_REPLY`] (`--reply-hook tc`).
    pub const TC_PROBE_REPLY: &str = "ipmpd_tc_reply";
    /// TC egress program stamping outgoing probes.
    pub const TC_PROBE_STAMP: &str = "ipmpd_tc_stamp";
}
