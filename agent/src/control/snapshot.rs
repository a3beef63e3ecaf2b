//! What `ipmpd stat` shows: one consistent snapshot of groups, interfaces, targets and addresses,
//! with ipmpstat's values already formatted (`-` flags, `10.00s` FDTs, `up`/`down` ...).

use serde::{Deserialize, Serialize};

/// ipmpstat -g.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRow {
    pub group: String,
    pub groupname: String,
    pub state: String,
    /// Empty unless some member probes.
    pub fdt: String,
    /// Active members bare, inactive ones in (), unusable ones in [].
    pub interfaces: String,
}

/// ipmpstat -i.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceRow {
    pub interface: String,
    pub active: String,
    pub group: String,
    pub flags: String,
    pub link: String,
    pub probe: String,
    pub state: String,
}

/// ipmpstat -t.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRow {
    pub interface: String,
    pub mode: String,
    pub testaddr: String,
    pub targets: String,
}

/// ipmpstat -a.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressRow {
    pub address: String,
    pub state: String,
    pub group: String,
    pub inbound: String,
    pub outbound: String,
}

/// ipmpd stat -r (ipmpd's own): what was refused, where and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectRow {
    /// `kernel` (the XDP program), `daemon` (reply checks) or `control` (the control socket).
    pub source: String,
    /// The interface; empty for the control socket.
    pub interface: String,
    pub reason: String,
    pub count: u64,
}

/// All four at one instant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub groups: Vec<GroupRow>,
    pub interfaces: Vec<InterfaceRow>,
    pub targets: Vec<TargetRow>,
    pub addresses: Vec<AddressRow>,
    /// What the kernel let the daemon use (`ipmpd stat -d`).
    #[serde(default)]
    pub datapath: Option<crate::datapath::Features>,
    /// Refused replies and control connections (`ipmpd stat -r`).
    #[serde(default)]
    pub rejected: Vec<RejectRow>,
}

/// ipmpstat's FLAGS string: `i` inactive, `s` standby, `m` IPv4 multicast nominee, `b` broadcast
/// nominee, `M` IPv6 multicast nominee, `d` all addresses down, `h` duplicate hardware address.
/// ipmpd nominates no interface for multicast or broadcast (Linux routes those like any other
/// traffic), so `m`, `b` and `M` stay `-`.
#[must_use]
pub fn flags(inactive: bool, standby: bool, down: bool, hwaddr_dup: bool) -> String {
    [
        (inactive, 'i'),
        (standby, 's'),
        (false, 'm'),
        (false, 'b'),
        (false, 'M'),
        (down, 'd'),
        (hwaddr_dup, 'h'),
    ]
    .iter()
    .map(|&(on, c)| if on { c } else { '-' })
    .collect()
}

/// ipmpstat's FDT column: seconds with two decimals.
#[must_use]
pub fn fdt(ns: u64) -> String {
    format!("{:.2}s", ns as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipmpstat_values() {
        assert_eq!(flags(true, true, false, false), "is-----");
        assert_eq!(flags(false, false, true, true), "-----dh");
        assert_eq!(fdt(10_000_000_000), "10.00s");
        assert_eq!(fdt(100_000_000), "0.10s");
    }
}
