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

/// Names of the maps and programs, shared so userspace finds what the kernel side declares.
pub mod names {
    /// Ring buffer carrying [`crate::record::ProbeReplyRecord`]s from XDP to userspace.
    pub const PROBE_REPLIES: &str = "PROBE_REPLIES";
    /// Per-CPU counters per tracked interface ([`crate::counters::IfaceCounters`]).
    pub const IFACE_COUNTERS: &str = "IFACE_COUNTERS";
    /// Link-state mirror per tracked interface ([`crate::link::LinkState`]).
    pub const LINK_STATE: &str = "LINK_STATE";
    /// The ICMP identifier of ipmpd's probes per interface: XDP queues only replies to those.
    pub const PROBE_IDS: &str = "PROBE_IDS";
    /// Ring buffer carrying [`crate::record::LinkRecord`]s from the carrier hook to userspace.
    pub const LINK_EVENTS: &str = "LINK_EVENTS";
    /// XDP program recognising probe replies.
    pub const XDP_PROBE_REPLY: &str = "ipmpd_xdp_reply";
    /// TC egress program stamping outgoing probes.
    pub const TC_PROBE_STAMP: &str = "ipmpd_tc_stamp";
}
