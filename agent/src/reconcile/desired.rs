//! What the configuration asks for: both files, reduced to the groups and the members the
//! reconciler keeps on the host.

use std::{borrow::Cow, collections::HashSet};

use super::observed::{Observed, anonymous_eligible};
use crate::config::{
    Config,
    group_file::{GroupConfig, InterfaceConfig},
};

/// The desired state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    pub groups: Vec<GroupConfig>,
    /// The interfaces the group file names and that may be tracked (in the file's order).
    pub interfaces: Vec<InterfaceConfig>,
    /// `TRACK_INTERFACES_ONLY_WITH_GROUPS=no`: every other eligible link joins the anonymous group.
    pub track_all: bool,
    /// FAILURE_DETECTION_TIME in ms.
    pub fdt_ms: u64,
    /// FAILBACK.
    pub failback: bool,
}

impl Desired {
    /// The desired state of `cfg`, and a warning for each interface it leaves out.
    #[must_use]
    pub fn from_config(cfg: &Config) -> (Self, Vec<String>) {
        let track_all = !cfg.defaults.track_interfaces_only_with_groups;
        let mut warnings = Vec::new();
        let interfaces = cfg
            .groups
            .interfaces
            .iter()
            .filter(|ic| {
                let keep = !ic.group.is_empty() || track_all;
                if !keep {
                    warnings.push(format!(
                        "{} is in no group and TRACK_INTERFACES_ONLY_WITH_GROUPS=yes: not tracked",
                        ic.name
                    ));
                }
                keep
            })
            .cloned()
            .collect();
        (
            Self {
                groups: cfg.groups.groups.clone(),
                interfaces,
                track_all,
                fdt_ms: cfg.defaults.failure_detection_time_ms,
                failback: cfg.defaults.failback,
            },
            warnings,
        )
    }

    /// Every member to track on `observed`: the interfaces the file names, then (with
    /// `track_all`) each other eligible link in the anonymous group, by index.
    #[must_use]
    pub fn members<'a>(&'a self, observed: &Observed) -> Vec<Cow<'a, InterfaceConfig>> {
        let mut out: Vec<Cow<'a, InterfaceConfig>> =
            self.interfaces.iter().map(Cow::Borrowed).collect();
        if self.track_all {
            let named: HashSet<&str> = self.interfaces.iter().map(|i| i.name.as_str()).collect();
            for l in observed.links.values() {
                if anonymous_eligible(l) && !named.contains(l.name.as_str()) {
                    out.push(Cow::Owned(InterfaceConfig {
                        name: l.name.clone(),
                        group: String::new(),
                        standby: false,
                        test_addresses: Vec::new(),
                        targets: Vec::new(),
                    }));
                }
            }
        }
        out
    }

    /// The group named `name`.
    #[must_use]
    pub fn group(&self, name: &str) -> Option<&GroupConfig> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// The shortest FDT any group asks for, in ms.
    #[must_use]
    pub fn shortest_fdt_ms(&self) -> u64 {
        self.groups
            .iter()
            .map(|g| g.fdt_ms.unwrap_or(self.fdt_ms))
            .min()
            .unwrap_or(self.fdt_ms)
    }
}
