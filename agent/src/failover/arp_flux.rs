//! ARP flux: by default Linux answers ARP for any local address on any interface, so with several
//! members on one subnet a neighbour can learn a data address on the wrong (even a failed)
//! member. On every group member ipmpd sets `arp_ignore=1` (answer only for addresses on the
//! receiving interface) and `arp_announce=2` (use the best local source address in requests),
//! and puts the old values back when it stops cleanly.

use std::{io, path::PathBuf};

/// The settings ipmpd changes, with the values it sets.
const SETTINGS: [(&str, &str); 2] = [("arp_ignore", "1"), ("arp_announce", "2")];

fn path(ifname: &str, key: &str) -> PathBuf {
    PathBuf::from(format!("/proc/sys/net/ipv4/conf/{ifname}/{key}"))
}

/// Old values to put back.
#[derive(Debug, Default)]
pub struct ArpFlux {
    saved: Vec<(PathBuf, String)>,
}

impl ArpFlux {
    /// Reads and remembers the values `ifname` has now (in the caller's network namespace) where
    /// they differ from ipmpd's, before [`Self::set`] changes them, so that the caller can save
    /// them first: a crash in between must not lose the administrator's values. Whether anything
    /// new was remembered.
    ///
    /// # Errors
    /// When a sysctl cannot be read (no IPv4 on the interface).
    pub fn remember(&mut self, ifname: &str) -> io::Result<bool> {
        // Once per interface: the values found the first time are the administrator's.
        if self
            .saved
            .iter()
            .any(|(p, _)| p.parent().and_then(|d| d.file_name()) == Some(ifname.as_ref()))
        {
            return Ok(false);
        }
        let mut any = false;
        for (key, value) in SETTINGS {
            let p = path(ifname, key);
            let old = std::fs::read_to_string(&p)?.trim().to_owned();
            if old != value {
                self.saved.push((p, old));
                any = true;
            }
        }
        Ok(any)
    }

    /// Sets the two sysctls on `ifname`, after [`Self::remember`].
    ///
    /// # Errors
    /// When a sysctl cannot be written (no privilege).
    pub fn set(&self, ifname: &str) -> io::Result<()> {
        for (key, value) in SETTINGS {
            std::fs::write(path(ifname, key), value)?;
        }
        Ok(())
    }

    /// The values found before ipmpd changed them, as (sysctl path, value): kept in ipmpd's state
    /// file so that a crash does not lose the administrator's values.
    #[must_use]
    pub fn originals(&self) -> Vec<(PathBuf, String)> {
        self.saved.clone()
    }

    /// Takes over the originals a previous process saved (its values are ipmpd's, not the
    /// administrator's).
    #[must_use]
    pub fn with_originals(saved: Vec<(PathBuf, String)>) -> Self {
        Self { saved }
    }

    /// The interfaces whose values ipmpd changed.
    pub fn interfaces(&self) -> impl Iterator<Item = String> + '_ {
        let mut seen: Vec<String> = Vec::new();
        self.saved.iter().filter_map(move |(p, _)| {
            let name = p.parent()?.file_name()?.to_string_lossy().into_owned();
            (!seen.contains(&name)).then(|| {
                seen.push(name.clone());
                name
            })
        })
    }

    /// Puts the old values of `ifname` back (it is no longer a member).
    pub fn restore_one(&mut self, ifname: &str) {
        let mine: Vec<(PathBuf, String)> = self
            .saved
            .iter()
            .filter(|(p, _)| p.parent().and_then(|d| d.file_name()) == Some(ifname.as_ref()))
            .cloned()
            .collect();
        self.saved.retain(|s| !mine.contains(s));
        for (p, old) in mine.into_iter().rev() {
            let _ = std::fs::write(p, old);
        }
    }

    /// Puts the old values back (interfaces that disappeared are skipped).
    pub fn restore(&mut self) {
        for (p, old) in self.saved.drain(..).rev() {
            let _ = std::fs::write(p, old);
        }
    }
}
