//! `ipmpd watch IFACE...`: the link-state mirror on its own.

use std::time::Duration;

use anyhow::Context as _;

use super::tracking::{Tracking, TrackingArgs};

/// Arguments of `ipmpd watch`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Interfaces to watch.
    #[arg(required = true)]
    pub interfaces: Vec<String>,
    /// Stop after this many milliseconds (default: until interrupted).
    #[arg(long)]
    pub duration_ms: Option<u64>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub tracking: TrackingArgs,
}

/// Runs `ipmpd watch`.
///
/// # Errors
/// When the datapath cannot be loaded or attached.
pub async fn run(args: WatchArgs) -> anyhow::Result<()> {
    let WatchArgs {
        interfaces,
        duration_ms,
        json,
        tracking: targs,
    } = args;
    let mut t = Tracking::start(&interfaces, &targs, format!("watch-{}", std::process::id()))?;
    if !json {
        println!(
            "watching {}; {}",
            interfaces.join(" "),
            t.link_source_line()
        );
        println!("pinned under {}", t.datapath.pin_dir().display());
    }
    let deadline = tokio::time::sleep(duration_ms.map_or(Duration::MAX / 4, Duration::from_millis));
    tokio::pin!(deadline);
    let stop = super::output::shutdown_signal().context("installing signal handlers")?;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut deadline => break,
            () = &mut stop => break,
            report = t.reports.recv() => match report {
                Some(r) => t.print_report(json, &r),
                None => break,
            },
        }
    }
    t.finish().context("cleaning up")
}
