//! `ipmpd events [NAME]`: the event catalogue.

use anyhow::bail;

use crate::events::{catalogue::CATALOGUE, spec};

/// Arguments of `ipmpd events`.
#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Show this event in full (e.g. ipmultipath.interface.failed).
    pub name: Option<String>,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
    /// Follow the running daemon's events as they happen, until interrupted.
    #[arg(long, conflicts_with = "name")]
    pub follow: bool,
    /// Print the journald message catalogue (`/usr/lib/systemd/catalog/ipmpd.catalog`) that lets
    /// `journalctl -x` explain every event.
    #[arg(long, conflicts_with_all = ["name", "follow", "json"])]
    pub journal_catalog: bool,
    #[command(flatten)]
    pub target: super::admin::Target,
}

/// Runs `ipmpd events`.
///
/// # Errors
/// An unknown event name.
pub fn run(args: &EventsArgs) -> anyhow::Result<()> {
    if args.journal_catalog {
        print!("{}", crate::events::journal::catalog());
        return Ok(());
    }
    if args.follow {
        let path = args.target.path();
        // On stderr, so that --json output stays one record per line: says from when on nothing
        // is missed (a script can wait for it before it changes the host).
        let subscribed = || {
            eprintln!(
                "following the events of {} (interrupt to stop)",
                path.display()
            );
        };
        let request = crate::control::Request::FollowEvents;
        crate::control::client::follow(&path, &request, subscribed, |v| {
            if args.json {
                println!("{v}");
            } else {
                println!(
                    "{} {}: {}",
                    v["event"].as_str().unwrap_or("?"),
                    v["severity"].as_str().unwrap_or("?"),
                    v["message"].as_str().unwrap_or("")
                );
            }
            true
        })?;
        return Ok(());
    }
    match &args.name {
        None if args.json => println!("{}", serde_json::to_string_pretty(CATALOGUE)?),
        None => {
            for e in CATALOGUE {
                println!(
                    "{:<36} {:<13} {}",
                    e.name,
                    format!("{:?}", e.severity).to_uppercase(),
                    e.template
                );
            }
        }
        Some(name) => {
            let Some(e) = spec(name) else {
                bail!("no event called {name:?}; `ipmpd events` lists them all");
            };
            if args.json {
                println!("{}", serde_json::to_string_pretty(e)?);
            } else {
                println!(
                    "{}\n\nSeverity: {:?} (syslog priority {})\nMessage: {}",
                    e.name,
                    e.severity,
                    e.severity.syslog_priority(),
                    e.template
                );
                println!("Parameters:");
                for (p, t) in e.params {
                    println!("  {p} ({t:?})");
                }
                println!(
                    "\nDescription: {}\nProbable causes: {}\nCorrective action: {}",
                    e.description, e.causes, e.action
                );
            }
        }
    }
    Ok(())
}
