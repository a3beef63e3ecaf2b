//! ipmpd: IP multipathing for Linux with in.mpathd's semantics and eBPF-measured probes.
//!
//! Module map (see DESIGN.md):
//! - [`datapath`]: load, attach and pin the kernel programs; read their ring buffer and maps.
//! - [`link`]: the link-state mirror (the carrier hook, or rtnetlink notifications plus a direct
//!   carrier poll).
//! - [`netlink`]: the one rtnetlink layer (links, addresses, routes, rules, qdiscs, filters).
//! - [`ip`]: prefixes and subnet arithmetic.
//! - [`probe`]: probe packets, their authentication tag, raw sockets and reply matching.
//! - [`reconcile`]: the desired state (configuration) against the observed one (rtnetlink), as
//!   actions: pure, like the engine.
//! - [`cli`]: the command-line front end.
//! - [`fds`]: signalfd, eventfd and `ppoll`, for the threads that wait on descriptors.
//! - [`sched`]: real-time scheduling for the probing loop and the link watcher.
//! - [`clock`]: the one clock every timestamp uses (CLOCK_MONOTONIC, like `bpf_ktime_get_ns`).

pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod daemon;
pub mod datapath;
pub mod engine;
pub mod events;
pub mod failover;
pub mod fds;
pub mod ip;
pub mod journal;
pub mod journal_log;
pub mod lines;
pub mod link;
pub mod netlink;
pub mod privileges;
pub mod probe;
pub mod reconcile;
pub mod sched;
