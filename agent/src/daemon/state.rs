//! What survives a restart of the daemon (a crash, an upgrade, `systemctl restart`): each
//! member's verdict (a member that had failed, with its link up and its path dead, stays failed;
//! an offlined one stays offline; one past its quiet period does not start another), where
//! ipmpd placed data addresses, and the administrator's ARP sysctl values ipmpd replaced. Kept in `/run/ipmpd/INSTANCE.state.json` (`/run` is emptied at
//! boot, when nothing of this is true any more), with the boot's id to be sure.

use std::{collections::BTreeMap, path::PathBuf};

use serde::{Deserialize, Serialize};

use super::Daemon;
use crate::{engine::Prior, ip::Prefix};

/// The file's format.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    version: u32,
    boot_id: String,
    members: BTreeMap<String, Prior>,
    /// (address, prefix length, member).
    placed: Vec<(std::net::IpAddr, u8, String)>,
    /// The ARP sysctls' values before ipmpd changed them: (path, value).
    #[serde(default)]
    arp: Vec<(PathBuf, String)>,
}

const VERSION: u32 = 1;

/// What a new process finds.
#[derive(Debug, Default)]
pub struct Loaded {
    pub members: BTreeMap<String, Prior>,
    pub placed: BTreeMap<Prefix, String>,
    pub arp: Vec<(PathBuf, String)>,
}

/// The state file of one instance.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

impl StateFile {
    /// The file of `instance`.
    #[must_use]
    pub fn new(instance: Option<&str>) -> Self {
        Self {
            path: PathBuf::from(format!(
                "/run/ipmpd/{}.state.json",
                instance.unwrap_or("ipmpd")
            )),
        }
    }

    /// What the previous process of this instance left, if it ran in this boot; nothing
    /// otherwise (a missing, unreadable or foreign file is no error: a fresh start).
    #[must_use]
    pub fn load(&self) -> Loaded {
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return Loaded::default();
        };
        match serde_json::from_str::<Saved>(&text) {
            Ok(s) if s.version == VERSION && s.boot_id == boot_id() => Loaded {
                members: s.members,
                placed: s
                    .placed
                    .into_iter()
                    .map(|(addr, len, m)| (Prefix { addr, len }, m))
                    .collect(),
                arp: s.arp,
            },
            Ok(_) => Loaded::default(),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "ignoring an unreadable state file");
                Loaded::default()
            }
        }
    }

    /// Writes the state (to a new file renamed over the old one: never half a file).
    fn save(
        &self,
        members: BTreeMap<String, Prior>,
        placed: &BTreeMap<Prefix, String>,
        arp: Vec<(PathBuf, String)>,
    ) {
        let s = Saved {
            version: VERSION,
            boot_id: boot_id(),
            members,
            placed: placed
                .iter()
                .map(|(p, m)| (p.addr, p.len, m.clone()))
                .collect(),
            arp,
        };
        let Ok(text) = serde_json::to_string(&s) else {
            return;
        };
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let tmp = self.path.with_extension("json.tmp");
        let result = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = result {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot save the state");
        }
    }
}

impl Daemon {
    /// Saves the state when something worth keeping changed.
    pub(super) fn save_state(&mut self, now: u64) {
        if !std::mem::replace(&mut self.rec.unsaved, false) {
            return;
        }
        let mut members = self.rec.priors.clone();
        for v in self.engine.interfaces() {
            if let Some(p) = self.engine.prior(&v.ifname, now) {
                members.insert(v.ifname, p);
            }
        }
        self.rec.state.save(
            members,
            &self.rec.applied.placed,
            self.io.arp_flux.originals(),
        );
    }
}
