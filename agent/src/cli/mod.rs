//! The command-line front end: one module per subcommand, clap derive, `anyhow` at this edge only.

pub mod admin;
pub mod check_config;
pub mod completions;
pub mod detach;
pub mod events;
pub mod features;
pub mod names;
pub mod output;
pub mod probe;
pub mod stat;
pub mod tracking;
pub mod watch;

use clap::{Parser, Subcommand};

/// ipmpd: IP multipathing for Linux, with probes measured in the kernel.
#[derive(Debug, Parser)]
#[command(name = "ipmpd", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Probe TARGET from IFACE like ping, with kernel-stamped round trips (XDP receive minus TC
    /// transmit) beside the userspace ones; link changes of IFACE are shown as they happen.
    Probe(probe::ProbeArgs),
    /// Watch the carrier of interfaces through the link-state mirror and print every change.
    Watch(watch::WatchArgs),
    /// Run the daemon: track the group file's interfaces, detect failures and repairs.
    Run(crate::daemon::RunArgs),
    /// ipmpstat: groups (-g), interfaces (-i), probe targets (-t) or data addresses (-a).
    Stat(stat::StatArgs),
    /// Take an interface out of service (if_mpadm -d); refused when no other usable member would remain.
    Offline(admin::AdminArgs),
    /// Return an offlined interface to service (if_mpadm -r).
    Online(admin::AdminArgs),
    /// Validate /etc/default/mpathd and the group file; print every problem with file and line.
    CheckConfig(check_config::ConfigPaths),
    /// List the event catalogue, or show one event in full.
    Events(events::EventsArgs),
    /// Show what the kernel lets ipmpd use: TCX or clsact, the carrier hook or the poll, and
    /// where XDP runs on the interfaces given (attaches, reports, detaches).
    Features(features::FeaturesArgs),
    /// Take ipmpd's programs off every interface and remove its pins (a stopped daemon leaves
    /// them attached for the next start to adopt).
    Detach(detach::DetachArgs),
    /// Print shell completions (bash, zsh, fish, ...) for ipmpd, ipmpstat or if_mpadm.
    Completions(completions::CompletionsArgs),
}
