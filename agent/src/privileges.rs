//! What the daemon keeps of the privileges it starts with: the capabilities it needs and no
//! others, with no_new_privs, dropped in the code itself (a unit file can be edited or not used).
//!
//! Capabilities belong to a thread: the drop must come before the first thread is spawned, so
//! that every thread of the daemon has only what is kept. The process stays uid 0 (its files in
//! `/run/ipmpd` and `/sys/fs/bpf` are root's, so no DAC override is needed), but a uid 0 without
//! capabilities cannot get them back: the bounding set is cut where the kernel lets us, and
//! no_new_privs stops an exec from granting any.

use std::io;

use rustix::{
    process::{Resource, Rlimit},
    thread::{CapabilitySet, CapabilitySets},
};

/// Attach XDP/TC, addresses, routes, rules, the ARP sysctls.
const CAP_NET_ADMIN: u32 = 12;
/// Raw ICMP/ICMPv6 probe sockets, SO_BINDTODEVICE, gratuitous ARP and unsolicited NA.
const CAP_NET_RAW: u32 = 13;
/// BPF before Linux 5.8 split CAP_BPF off.
const CAP_SYS_ADMIN: u32 = 21;
/// bpf_probe_read_kernel in the carrier hook.
const CAP_PERFMON: u32 = 38;
/// Programs and maps: load, pin, attach, look up.
const CAP_BPF: u32 = 39;

/// Errors dropping privileges.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("prctl(PR_SET_NO_NEW_PRIVS) failed")]
    NoNewPrivs(#[source] io::Error),
    #[error("capset to {kept} failed")]
    Capset {
        kept: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "ipmpd lacks {missing} (it has {have}); run it as root or give it these capabilities (see packaging/ipmpd.service)"
    )]
    Missing { missing: String, have: String },
}

/// What was kept, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kept {
    /// The capabilities kept, by name.
    pub names: Vec<&'static str>,
    /// Capabilities left in the bounding set that could not be cut (no CAP_SETPCAP); harmless
    /// with no_new_privs, said for completeness.
    pub bounding_left: u32,
}

/// The capabilities the daemon needs on a kernel whose highest capability is `last_cap`.
#[must_use]
pub fn needed(last_cap: u32) -> u64 {
    let bpf = if last_cap >= CAP_BPF {
        bit(CAP_BPF) | bit(CAP_PERFMON)
    } else {
        bit(CAP_SYS_ADMIN)
    };
    bit(CAP_NET_ADMIN) | bit(CAP_NET_RAW) | bpf
}

const fn bit(cap: u32) -> u64 {
    1 << cap
}

/// The names of the capabilities in `mask`.
#[must_use]
pub fn names(mask: u64) -> Vec<&'static str> {
    [
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
        (CAP_NET_RAW, "CAP_NET_RAW"),
        (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
        (CAP_PERFMON, "CAP_PERFMON"),
        (CAP_BPF, "CAP_BPF"),
    ]
    .iter()
    .filter(|(c, _)| mask & bit(*c) != 0)
    .map(|(_, n)| *n)
    .collect()
}

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(CAP_BPF)
}

/// The effective and permitted sets of this thread.
fn capget() -> io::Result<(u64, u64)> {
    let sets = rustix::thread::capabilities(None)?;
    Ok((sets.effective.bits(), sets.permitted.bits()))
}

/// Makes `mask` this thread's effective and permitted sets (the inheritable set empty).
fn capset(mask: u64) -> io::Result<()> {
    let kept = CapabilitySet::from_bits_retain(mask);
    Ok(rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: kept,
            permitted: kept,
            inheritable: CapabilitySet::empty(),
        },
    )?)
}

/// Raises the locked-memory limit: kernels before 5.11 charge BPF maps to it. Needs a capability
/// that is about to go, so it comes first; failure is not fatal (later kernels do not use it).
fn raise_memlock() {
    let unlimited = Rlimit {
        current: None,
        maximum: None,
    };
    let _ = rustix::process::setrlimit(Resource::Memlock, unlimited);
}

/// Keeps only the capabilities the daemon needs, sets no_new_privs and clears the ambient set.
/// Must be called before any thread is spawned.
///
/// # Errors
/// When a needed capability is missing (the message says which), or the kernel refuses the drop.
pub fn drop_to_needed() -> Result<Kept, PrivilegeError> {
    let last = last_cap();
    let needed = needed(last);
    let (_, permitted) = capget().map_err(|source| PrivilegeError::Capset {
        kept: names(needed).join(" "),
        source,
    })?;
    if permitted & needed != needed {
        return Err(PrivilegeError::Missing {
            missing: names(needed & !permitted).join(" "),
            have: names(permitted).join(" "),
        });
    }
    raise_memlock();
    let mut bounding_left = 0;
    for cap in (0..=last.min(63)).filter(|c| needed & bit(*c) == 0) {
        let cap = CapabilitySet::from_bits_retain(bit(cap));
        let in_set = rustix::thread::capability_is_in_bounding_set(cap).unwrap_or(false);
        if in_set && rustix::thread::remove_capability_from_bounding_set(cap).is_err() {
            bounding_left += 1;
        }
    }
    // Nothing to clear on kernels without ambient capabilities (before 4.3).
    let _ = rustix::thread::clear_ambient_capability_set();
    rustix::thread::set_no_new_privs(true).map_err(|e| PrivilegeError::NoNewPrivs(e.into()))?;
    capset(needed).map_err(|source| PrivilegeError::Capset {
        kept: names(needed).join(" "),
        source,
    })?;
    Ok(Kept {
        names: names(needed),
        bounding_left,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_capabilities_on_kernels_with_cap_bpf_and_sys_admin_before() {
        assert_eq!(
            names(needed(40)),
            ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_PERFMON", "CAP_BPF"]
        );
        assert_eq!(needed(40).count_ones(), 4);
        assert_eq!(
            names(needed(37)),
            ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_ADMIN"]
        );
    }
}
