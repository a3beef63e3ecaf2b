//! `ipmpd check-config`: validate `/etc/default/mpathd` and the group file.

use std::path::PathBuf;

use crate::config::{self, DEFAULTS_PATH, GROUP_FILE_PATH};

/// Arguments of `ipmpd check-config` (also used by `ipmpd run`).
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigPaths {
    /// in.mpathd's defaults file.
    #[arg(long, default_value = DEFAULTS_PATH)]
    pub defaults: PathBuf,
    /// The group file.
    #[arg(long, default_value = GROUP_FILE_PATH)]
    pub config: PathBuf,
}

/// Runs `ipmpd check-config`: every problem on its own line (warnings say so), a note for each
/// interface the host does not have now (it may appear later: not an error); exit status 1 when
/// there is an error.
#[must_use]
pub fn run(paths: &ConfigPaths) -> std::process::ExitCode {
    let c = config::load(&paths.defaults, &paths.config);
    for p in &c.problems {
        println!("{p}");
    }
    let d = &c.defaults;
    println!(
        "FAILURE_DETECTION_TIME={} FAILBACK={} TRACK_INTERFACES_ONLY_WITH_GROUPS={}; {} group(s), {} interface(s)",
        d.failure_detection_time_ms,
        if d.failback { "yes" } else { "no" },
        if d.track_interfaces_only_with_groups {
            "yes"
        } else {
            "no"
        },
        c.groups.groups.len(),
        c.groups.interfaces.len()
    );
    for i in &c.groups.interfaces {
        if crate::datapath::ifindex_of(&i.name).is_err() {
            println!(
                "note: {} does not exist now; ipmpd tracks it when it appears",
                i.name
            );
        }
    }
    if c.problems.iter().all(|p| p.warning) {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
