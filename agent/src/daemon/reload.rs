//! The configuration, read the same way at start and on SIGHUP. Problems in
//! `/etc/default/mpathd` are in.mpathd's warnings (the default is used, as in.mpathd does);
//! problems in the group file refuse the configuration: at start the daemon does not run, on
//! SIGHUP it keeps the running one. A reload is one more reconcile pass, never a re-exec: nothing
//! is torn down, and an interface the new file names that does not exist yet is waited for.
//! On SIGHUP the files are read on a thread of their own ([`super::loader`]): a huge or broken
//! file never holds up detection.

use super::{Daemon, report::Reporter};
use crate::{
    cli::check_config::ConfigPaths,
    clock::monotonic_ns,
    config::{self, Config, Problem},
    reconcile::Desired,
};

/// Problems reported one by one at most; the rest are summed up in one line (a file with a
/// million bad lines must not flood the log or hold up the loop).
const MAX_REPORTED: usize = 50;

/// What reading both files gave, before anything is reported: built on any thread.
pub struct Loaded {
    problems: Vec<Problem>,
    /// Problems of the group file that refuse it.
    refusals: usize,
    desired: Desired,
    warnings: Vec<String>,
    group_file: std::path::PathBuf,
}

/// Reads and checks both files. Touches nothing but the files, so it may run off the detection
/// thread.
#[must_use]
pub fn read_files(paths: &ConfigPaths) -> Loaded {
    let mut cfg: Config = config::load(&paths.defaults, &paths.config);
    // Without TRACK_INTERFACES_ONLY_WITH_GROUPS every interface is tracked in the anonymous
    // group, as in.mpathd does: no group file is needed then.
    if !cfg.defaults.track_interfaces_only_with_groups && !paths.config.exists() {
        cfg.problems.retain(|p| p.path != paths.config);
    }
    let refusals = cfg
        .problems
        .iter()
        .filter(|p| p.path == paths.config && !p.warning)
        .count();
    let (desired, warnings) = Desired::from_config(&cfg);
    Loaded {
        problems: std::mem::take(&mut cfg.problems),
        refusals,
        desired,
        warnings,
        group_file: paths.config.clone(),
    }
}

/// Reports what `loaded` found; the desired state, or the number of problems that refuse it.
fn accept(loaded: Loaded, rep: &mut Reporter) -> Result<Desired, usize> {
    for p in loaded.problems.iter().take(MAX_REPORTED) {
        rep.config_problem(p);
    }
    if loaded.problems.len() > MAX_REPORTED {
        tracing::error!(
            "... and {} more problems (`ipmpd check-config` lists them all)",
            loaded.problems.len() - MAX_REPORTED
        );
    }
    if loaded.refusals > 0 {
        return Err(loaded.refusals);
    }
    for w in loaded.warnings {
        tracing::warn!("{w}");
    }
    let desired = loaded.desired;
    if desired.interfaces.is_empty() && !desired.track_all {
        tracing::warn!(
            path = %loaded.group_file.display(),
            "the group file names no interface: nothing to track until it does (and SIGHUP)"
        );
    }
    Ok(desired)
}

/// The configuration at start was refused: `ipmpd run` exits with EX_CONFIG, which the unit's
/// `RestartPreventExitStatus=` keeps from a restart loop.
#[derive(Debug, thiserror::Error)]
#[error(
    "{} has {problems} problem(s) (listed above); fix them and start again (`ipmpd check-config` checks without running)",
    path.display()
)]
pub struct ConfigRefused {
    pub path: std::path::PathBuf,
    pub problems: usize,
}

/// sysexits.h's EX_CONFIG: the exit status of a start refused for its configuration.
pub const EX_CONFIG: u8 = 78;

/// The configuration at start.
///
/// # Errors
/// [`ConfigRefused`] when the files have problems (each reported with its line and what to do).
pub fn load(paths: &ConfigPaths, rep: &mut Reporter) -> Result<Desired, ConfigRefused> {
    accept(read_files(paths), rep).map_err(|problems| ConfigRefused {
        path: paths.config.clone(),
        problems,
    })
}

impl Daemon {
    /// A configuration read after SIGHUP: a valid one becomes the desired state; a bad one is
    /// reported and the running one kept.
    pub(super) fn reload(&mut self, loaded: Loaded) {
        let Ok(desired) = accept(loaded, &mut self.out.rep) else {
            self.out.rep.reload_refused();
            return;
        };
        self.out.rep.reloading();
        self.out.notifier.reloading();
        self.engine
            .set_defaults(desired.fdt_ms * 1_000_000, desired.failback);
        for g in &desired.groups {
            let fdt = g.fdt_ms.map(|ms| ms * 1_000_000);
            if self.engine.group(&g.name).is_some() {
                self.engine.set_group_fdt(&g.name, fdt);
            } else {
                self.engine.add_group(&g.name, fdt);
            }
        }
        let gone: Vec<String> = self
            .rec
            .desired
            .groups
            .iter()
            .filter(|g| desired.group(&g.name).is_none())
            .map(|g| g.name.clone())
            .collect();
        self.rec.desired = desired;
        self.reconcile(monotonic_ns());
        // Members of groups that went left with the pass; now the groups can go.
        for g in gone {
            self.engine.remove_group(&g);
        }
        self.out.rep.ready(&self.engine);
        self.out.notifier.reloaded();
    }
}
