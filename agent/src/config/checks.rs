//! Checks across the group file's entries, after each entry was read on its own: one address
//! cannot be two things, names must be names the kernel accepts, and the file must fit the maps
//! the kernel programs have. Problems name the entry's line.

use std::{collections::BTreeMap, net::IpAddr};

use super::group_file::{GroupFile, Problems, Spans};

/// `IFNAMSIZ` - 1: the longest interface name the kernel takes.
const MAX_IFNAME: usize = 15;

/// Whether the kernel would take `name` as an interface name (`dev_valid_name`).
fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME
        && name != "."
        && name != ".."
        && !name.contains(['/', ':'])
        && !name.chars().any(char::is_whitespace)
}

/// Whether `a` can be a unicast probe target at all.
fn unicast(a: IpAddr) -> bool {
    !(a.is_multicast()
        || a.is_unspecified()
        || a.is_loopback()
        || a == IpAddr::from([255, 255, 255, 255]))
}

/// Runs every check; entries with errors are left out of `out`.
pub(super) fn cross_check(out: &mut GroupFile, spans: &Spans, problems: &mut Problems<'_>) {
    let span_of_if = |n: &str| spans.interfaces.get(n).cloned().unwrap_or(0..0);
    let span_of_group = |n: &str| spans.groups.get(n).cloned().unwrap_or(0..0);
    out.interfaces.retain(|i| {
        let ok = valid_ifname(&i.name);
        if !ok {
            problems.error(
                &span_of_if(&i.name),
                format!("interface {:?}: not a name the kernel takes", i.name),
                "at most 15 characters, none of them '/', ':' or white space",
            );
        }
        ok
    });
    if out.interfaces.len() > agent_common::MAX_TRACKED {
        let first_out = &out.interfaces[agent_common::MAX_TRACKED].name;
        problems.error(
            &span_of_if(first_out),
            format!(
                "{} interfaces; ipmpd's kernel maps hold {}: the rest are left out",
                out.interfaces.len(),
                agent_common::MAX_TRACKED
            ),
            "split the hosts' interfaces between instances (--instance)",
        );
        out.interfaces.truncate(agent_common::MAX_TRACKED);
    }
    // Test addresses: unique across the whole file, never a data address.
    let mut tested: BTreeMap<IpAddr, String> = BTreeMap::new();
    for i in &mut out.interfaces {
        let name = i.name.clone();
        i.test_addresses.retain(|a| match tested.get(a) {
            Some(other) if *other != name => {
                problems.error(
                    &span_of_if(&name),
                    format!("interface {name}: test address {a} is also {other}'s"),
                    "give each interface its own test address",
                );
                false
            }
            _ => {
                tested.insert(*a, name.clone());
                true
            }
        });
    }
    let mut data: BTreeMap<IpAddr, String> = BTreeMap::new();
    for g in &mut out.groups {
        let group = g.name.clone();
        g.data_addresses.retain(|d| {
            let clash = if let Some(owner) = tested.get(&d.addr) {
                Some(format!("is also the test address of {owner}"))
            } else {
                data.get(&d.addr)
                    .map(|other| format!("is already a data address of group {other}"))
            };
            match clash {
                Some(why) => {
                    problems.error(
                        &span_of_group(&group),
                        format!("group {group}: data address {} {why}", d.addr),
                        "a test address stays on its interface while data addresses move, and a data address lives in one group once: give each its own address",
                    );
                    false
                }
                None => {
                    data.insert(d.addr, group.clone());
                    true
                }
            }
        });
    }
    for i in &mut out.interfaces {
        let name = i.name.clone();
        i.targets.retain(|t| {
            let why = if !unicast(*t) {
                Some("is not a unicast address")
            } else if tested.contains_key(t) || data.contains_key(t) {
                Some("is one of this host's own addresses in the group file")
            } else {
                None
            };
            if let Some(why) = why {
                problems.error(
                    &span_of_if(&name),
                    format!("interface {name}: target {t} {why}"),
                    "name routers or hosts on the test address's subnet",
                );
            }
            why.is_none()
        });
    }
    if out.interfaces.is_empty() {
        problems.warn(
            &(0..0),
            "the file names no interface: nothing is tracked (unless TRACK_INTERFACES_ONLY_WITH_GROUPS=no)".into(),
            "add [interface.NAME] tables",
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::config::group_file::parse;

    fn messages(text: &str) -> Vec<String> {
        parse(text).1.into_iter().map(|p| p.message).collect()
    }

    #[test]
    fn one_address_cannot_be_two_things() {
        let m = messages(
            "[group.a]\ndata_addresses = [\"192.0.2.100/24\"]\n[group.b]\ndata_addresses = [\"192.0.2.100/24\"]\n\
             [interface.h0]\ngroup = \"a\"\ntest_addresses = [\"192.0.2.10\"]\n\
             [interface.h1]\ngroup = \"b\"\ntest_addresses = [\"192.0.2.10\"]\n",
        );
        assert!(
            m.iter()
                .any(|m| m.contains("test address 192.0.2.10 is also h0's")),
            "{m:?}"
        );
        assert!(
            m.iter()
                .any(|m| m.contains("is already a data address of group a")),
            "{m:?}"
        );
    }

    #[test]
    fn targets_must_be_unicast_and_not_ours() {
        let m = messages(
            "[group.a]\ndata_addresses = [\"192.0.2.100/24\"]\n[interface.h0]\ngroup = \"a\"\ntest_addresses = [\"192.0.2.10\"]\n\
             targets = [\"224.0.0.1\", \"255.255.255.255\", \"0.0.0.0\", \"192.0.2.100\", \"192.0.2.1\"]\n",
        );
        assert_eq!(
            m.iter()
                .filter(|m| m.contains("not a unicast address"))
                .count(),
            3,
            "{m:?}"
        );
        assert_eq!(
            m.iter().filter(|m| m.contains("own addresses")).count(),
            1,
            "{m:?}"
        );
        let (f, _) = parse(
            "[group.a]\n[interface.h0]\ngroup = \"a\"\ntargets = [\"192.0.2.1\", \"ff02::1\"]\n",
        );
        assert_eq!(
            f.interfaces[0].targets,
            vec!["192.0.2.1".parse::<std::net::IpAddr>().unwrap()]
        );
    }

    #[test]
    fn names_the_kernel_refuses_are_refused() {
        let m = messages(
            "[group.a]\n[interface.\"sixteen-chars-xx\"]\ngroup = \"a\"\n[interface.\"a/b\"]\ngroup = \"a\"\n[interface.\"eth0.100\"]\ngroup = \"a\"\n",
        );
        assert_eq!(
            m.iter()
                .filter(|m| m.contains("not a name the kernel takes"))
                .count(),
            2,
            "{m:?}"
        );
    }

    #[test]
    fn more_interfaces_than_the_maps_hold_and_an_empty_file() {
        let mut text = String::from("[group.a]\n");
        for k in 0..=agent_common::MAX_TRACKED {
            text.push_str(&format!("[interface.i{k}]\ngroup = \"a\"\n"));
        }
        let (f, p) = parse(&text);
        assert_eq!(f.interfaces.len(), agent_common::MAX_TRACKED);
        assert!(p.iter().any(|p| p.message.contains("kernel maps hold")));
        let (_, p) = parse("");
        assert!(p.len() == 1 && p[0].warning, "{p:?}");
    }
}
