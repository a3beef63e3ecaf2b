//! The configuration, read the same way at start and on SIGHUP. Problems in
//! `/etc/default/mpathd` are in.mpathd's warnings (the default is used, as in.mpathd does);
//! problems in the group file refuse the configuration: at start the daemon does not run, on
//! SIGHUP it keeps the running one. A reload is one more reconcile pass, never a re-exec: nothing
//! is torn down, and an interface the new file names that does not exist yet is waited for.

use anyhow::bail;

use super::{Daemon, report::Reporter};
use crate::{
    cli::check_config::ConfigPaths,
    clock::monotonic_ns,
    config::{self, Config},
    reconcile::Desired,
};

/// Reads both files; the desired state, or the problems that refuse it (reported).
fn read(paths: &ConfigPaths, rep: &mut Reporter) -> Result<Desired, usize> {
    let mut cfg: Config = config::load(&paths.defaults, &paths.config);
    // Without TRACK_INTERFACES_ONLY_WITH_GROUPS every interface is tracked in the anonymous
    // group, as in.mpathd does: no group file is needed then.
    if !cfg.defaults.track_interfaces_only_with_groups && !paths.config.exists() {
        cfg.problems.retain(|p| p.path != paths.config);
    }
    let mut refusals = 0;
    for p in &cfg.problems {
        rep.config_problem(p);
        refusals += usize::from(p.path == paths.config && !p.warning);
    }
    if refusals > 0 {
        return Err(refusals);
    }
    let (desired, warnings) = Desired::from_config(&cfg);
    for w in warnings {
        tracing::warn!("{w}");
    }
    if desired.interfaces.is_empty() && !desired.track_all {
        tracing::warn!(
            path = %paths.config.display(),
            "the group file names no interface: nothing to track until it does (and SIGHUP)"
        );
    }
    Ok(desired)
}

/// The configuration at start.
///
/// # Errors
/// When the group file has problems (each reported with its line and what to do).
pub fn load(paths: &ConfigPaths, rep: &mut Reporter) -> anyhow::Result<Desired> {
    match read(paths, rep) {
        Ok(d) => Ok(d),
        Err(n) => bail!(
            "{} has {n} problem(s) (listed above); fix them and start again (`ipmpd check-config` checks without running)",
            paths.config.display()
        ),
    }
}

impl Daemon {
    /// SIGHUP: a valid new configuration becomes the desired state; a bad one is reported and the
    /// running one kept.
    pub(super) fn reload(&mut self) {
        let Ok(desired) = read(&self.args.paths, &mut self.out.rep) else {
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
        self.out.notifier.send("READY=1");
    }
}
