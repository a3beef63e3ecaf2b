//! The group file (`/etc/ipmpd/ipmpd.toml`): groups, their members, standby members, test
//! addresses, probe targets, data addresses and routes.
//!
//! ```toml
//! [group.uplinks]
//! fdt_ms = 100                         # optional; default FAILURE_DETECTION_TIME; at least 10
//! data_addresses = ["192.0.2.100/24"]  # moved between active members (failover)
//! announcements = 3                    # gratuitous ARPs / unsolicited NAs after a move
//! announce_interval_ms = 100
//! routes = ["198.51.100.0/24 via 192.0.2.1"]  # over the active members (multipath)
//! table = 1000                         # optional; the group's routing table (default: from its name)
//!
//! [interface.eth0]
//! group = "uplinks"
//! test_addresses = ["192.0.2.10", "fe80::10"]  # at most one per family; IPv6 link-local only
//! targets = ["192.0.2.1"]              # optional; else router targets, else multicast discovery
//!
//! [interface.eth1]
//! group = "uplinks"
//! standby = true
//! test_addresses = ["192.0.2.11"]
//! ```
//!
//! Every problem is reported with its line and what to do; none panics.

use std::{collections::BTreeMap, net::IpAddr, ops::Range};

use serde::Deserialize;
use toml::Spanned;

/// Lowest per-group FDT: kernel timestamps make 10 ms meaningful.
pub const MIN_GROUP_FDT_MS: u64 = 10;
use super::mpathd_defaults::MAX_FDT_MS;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    group: BTreeMap<String, Spanned<RawGroup>>,
    #[serde(default)]
    interface: BTreeMap<String, Spanned<RawInterface>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    fdt_ms: Option<Spanned<u64>>,
    #[serde(default)]
    data_addresses: Vec<Spanned<String>>,
    #[serde(default)]
    routes: Vec<Spanned<String>>,
    announcements: Option<u32>,
    announce_interval_ms: Option<u64>,
    table: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInterface {
    group: Option<Spanned<String>>,
    #[serde(default)]
    standby: bool,
    #[serde(default)]
    test_addresses: Vec<Spanned<String>>,
    #[serde(default)]
    targets: Vec<Spanned<String>>,
}

pub use crate::ip::Prefix;

/// A route kept on a group's active members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteConfig {
    pub dst: Prefix,
    /// Next hop; none for an on-link route.
    pub via: Option<IpAddr>,
}

/// `PREFIX` or `PREFIX via GATEWAY` (same family).
#[must_use]
pub fn parse_route(s: &str) -> Option<RouteConfig> {
    let mut words = s.split_whitespace();
    let dst = parse_prefix(words.next()?)?;
    let via = match (words.next(), words.next(), words.next()) {
        (None, _, _) => None,
        (Some("via"), Some(gw), None) => Some(
            gw.parse::<IpAddr>()
                .ok()
                .filter(|g| g.is_ipv4() == dst.addr.is_ipv4())?,
        ),
        _ => return None,
    };
    Some(RouteConfig { dst, via })
}

/// A group as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    pub name: String,
    pub fdt_ms: Option<u64>,
    pub data_addresses: Vec<Prefix>,
    pub routes: Vec<RouteConfig>,
    /// Gratuitous ARPs / unsolicited NAs sent after a data address moves (default 3).
    pub announcements: u32,
    /// Spacing of those announcements (default 100 ms).
    pub announce_interval_ms: u64,
    /// The group's routing table: `table = N`, or [`default_table`] of its name.
    pub table: u32,
}

/// Lowest table number a group may use without saying so; the default tables lie from here up.
pub const TABLE_DEFAULT_BASE: u32 = 10_000;
/// How many default table numbers there are.
const TABLE_DEFAULT_SPAN: u32 = 50_000;

/// The routing table of a group without `table = N`: a hash of its name, so it never changes when
/// other groups come or go (FNV-1a, which is fixed: a table number must survive upgrades too).
#[must_use]
pub fn default_table(group: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in group.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    TABLE_DEFAULT_BASE + h % TABLE_DEFAULT_SPAN
}

/// Tables a group may not use: unspec, the kernel's default, main and local tables.
fn reserved_table(t: u32) -> bool {
    matches!(t, 0 | 253 | 254 | 255)
}

/// An interface as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceConfig {
    pub name: String,
    /// Empty: the anonymous group.
    pub group: String,
    pub standby: bool,
    pub test_addresses: Vec<IpAddr>,
    pub targets: Vec<IpAddr>,
}

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupFile {
    pub groups: Vec<GroupConfig>,
    pub interfaces: Vec<InterfaceConfig>,
}

/// One problem: line, message, what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileProblem {
    pub line: usize,
    pub message: String,
    pub fix: String,
    /// A warning: a value was replaced by the nearest one allowed, and the file is still used.
    /// Anything else refuses the file.
    pub warning: bool,
}

/// Where each line starts, so a problem's line is found in O(log n), however many problems a
/// large file has.
pub(super) struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Self {
        Self(
            std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
        )
    }

    /// The 1-based line of byte `offset`.
    pub(super) fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&start| start <= offset).max(1)
    }
}

/// The problems of one parse, with their lines.
pub(super) struct Problems<'a> {
    lines: &'a Lines,
    pub(super) list: Vec<FileProblem>,
}

impl Problems<'_> {
    /// An error at `span`: the entry is left out and the file refused.
    pub(super) fn error(&mut self, span: &Range<usize>, message: String, fix: &str) {
        self.push(span, message, fix, false);
    }

    /// A warning at `span`: the nearest allowed value is used.
    pub(super) fn warn(&mut self, span: &Range<usize>, message: String, fix: &str) {
        self.push(span, message, fix, true);
    }

    fn push(&mut self, span: &Range<usize>, message: String, fix: &str, warning: bool) {
        self.list.push(FileProblem {
            line: self.lines.line(span.start),
            message,
            fix: fix.into(),
            warning,
        });
    }
}

/// The most TOML syntax errors reported in one file (each costs a parse of the whole file).
const MAX_SYNTAX_ERRORS: usize = 20;

/// Parses the TOML, reporting up to [`MAX_SYNTAX_ERRORS`] syntax errors: each bad line is blanked
/// and the rest parsed again, so an administrator sees them all at once.
fn parse_toml(text: &str, problems: &mut Problems<'_>) -> Option<RawFile> {
    let mut text = text.to_owned();
    for _ in 0..MAX_SYNTAX_ERRORS {
        match toml::from_str::<RawFile>(&text) {
            Ok(r) => return Some(r),
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                problems.error(
                    &span,
                    e.message().trim().to_owned(),
                    "correct the TOML syntax or the key (see the example in the README)",
                );
                // Blank the line in place (same length: later spans keep their lines).
                let line = problems.lines.line(span.start);
                let start = problems.lines.0[line - 1];
                let end = text[start..].find('\n').map_or(text.len(), |n| start + n);
                if e.span().is_none() || start >= end {
                    return None;
                }
                text.replace_range(start..end, &" ".repeat(end - start));
            }
        }
    }
    None
}

fn parse_prefix(s: &str) -> Option<Prefix> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a.parse::<IpAddr>().ok()?, l.parse::<u8>().ok()?),
        None => {
            let a = s.parse::<IpAddr>().ok()?;
            (a, if a.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some(Prefix { addr, len })
}

use crate::ip::is_link_local;

/// Parses and validates the file's text. Entries with problems are left out; the rest is usable.
#[must_use]
pub fn parse(text: &str) -> (GroupFile, Vec<FileProblem>) {
    let lines = Lines::new(text);
    let mut problems = Problems {
        lines: &lines,
        list: Vec::new(),
    };
    let Some(raw) = parse_toml(text, &mut problems) else {
        return (GroupFile::default(), problems.list);
    };
    let mut out = GroupFile::default();
    for (name, g) in &raw.group {
        let fdt_ms = g.get_ref().fdt_ms.as_ref().map(|f| {
            let ms = *f.get_ref();
            if ms < MIN_GROUP_FDT_MS {
                problems.warn(&f.span(), format!("group {name}: too small failure detection time of {ms} ms, assuming minimum of {MIN_GROUP_FDT_MS} ms"), "use fdt_ms = 10 or more");
                MIN_GROUP_FDT_MS
            } else if ms > MAX_FDT_MS {
                problems.warn(&f.span(), format!("group {name}: too large failure detection time of {ms} ms, assuming maximum of {MAX_FDT_MS} ms"), "use fdt_ms = 600000 or less");
                MAX_FDT_MS
            } else {
                ms
            }
        });
        let mut prefixes = |list: &[Spanned<String>], what: &str| -> Vec<Prefix> {
            list.iter()
                .filter_map(|s| {
                    let p = parse_prefix(s.get_ref());
                    if p.is_none() {
                        problems.error(
                            &s.span(),
                            format!(
                                "group {name}: {what} {:?} is not an address or prefix",
                                s.get_ref()
                            ),
                            "write it as ADDRESS/LENGTH, e.g. 192.0.2.100/24",
                        );
                    }
                    p
                })
                .collect()
        };
        let data_addresses = prefixes(&g.get_ref().data_addresses, "data address");
        let routes = g
            .get_ref()
            .routes
            .iter()
            .filter_map(|s| {
                let r = parse_route(s.get_ref());
                if r.is_none() {
                    problems.error(
                        &s.span(),
                        format!("group {name}: route {:?} is not PREFIX or PREFIX via GATEWAY", s.get_ref()),
                        "write it as 198.51.100.0/24 via 192.0.2.1 (the gateway on the members' subnet)",
                    );
                }
                r
            })
            .collect();
        let table = match &g.get_ref().table {
            Some(t) if reserved_table(*t.get_ref()) => {
                problems.error(
                    &t.span(),
                    format!(
                        "group {name}: table {} is one of the kernel's own (0, 253 default, 254 main, 255 local)",
                        t.get_ref()
                    ),
                    "choose another number, or leave `table` out for a stable default",
                );
                default_table(name)
            }
            Some(t) => *t.get_ref(),
            None => default_table(name),
        };
        if let Some(other) = out.groups.iter().find(|o| o.table == table) {
            let span = g
                .get_ref()
                .table
                .as_ref()
                .map_or_else(|| g.span(), Spanned::span);
            problems.error(
                &span,
                format!(
                    "group {name}: routing table {table} is also group {}'s",
                    other.name
                ),
                "give one of them its own `table = N`",
            );
        }
        out.groups.push(GroupConfig {
            name: name.clone(),
            fdt_ms,
            data_addresses,
            routes,
            announcements: bounded(
                &mut problems,
                &g.span(),
                &format!("group {name}: announcements"),
                g.get_ref().announcements.map_or(3, u64::from),
                MAX_ANNOUNCEMENTS,
            ) as u32,
            announce_interval_ms: bounded(
                &mut problems,
                &g.span(),
                &format!("group {name}: announce_interval_ms"),
                g.get_ref().announce_interval_ms.unwrap_or(100),
                MAX_ANNOUNCE_INTERVAL_MS,
            ),
            table,
        });
    }
    let mut test_owner: BTreeMap<(String, IpAddr), String> = BTreeMap::new();
    for (ifname, i) in &raw.interface {
        let r = i.get_ref();
        let group = r
            .group
            .as_ref()
            .map(|g| g.get_ref().clone())
            .unwrap_or_default();
        if let Some(g) = &r.group
            && !raw.group.contains_key(g.get_ref())
        {
            problems.error(
                &g.span(),
                format!("interface {ifname}: group {:?} is not defined", g.get_ref()),
                "add a [group.NAME] table or correct the name",
            );
            continue;
        }
        let mut tests: Vec<IpAddr> = Vec::new();
        for t in &r.test_addresses {
            let Ok(a) = t.get_ref().parse::<IpAddr>() else {
                problems.error(
                    &t.span(),
                    format!(
                        "interface {ifname}: test address {:?} is not an IP address",
                        t.get_ref()
                    ),
                    "write a plain address without a prefix length",
                );
                continue;
            };
            if a.is_ipv6() && !is_link_local(a) {
                problems.error(
                    &t.span(),
                    format!(
                        "interface {ifname}: IPv6 test address {a} is not link-local; it is ignored"
                    ),
                    "use the interface's fe80:: address",
                );
                continue;
            }
            if tests.iter().any(|x| x.is_ipv4() == a.is_ipv4()) {
                problems.error(
                    &t.span(),
                    format!(
                        "interface {ifname}: more than one IPv{} test address",
                        if a.is_ipv4() { 4 } else { 6 }
                    ),
                    "keep one test address per family",
                );
                continue;
            }
            if !group.is_empty()
                && let Some(other) = test_owner.insert((group.clone(), a), ifname.clone())
            {
                problems.error(
                    &t.span(),
                    format!(
                        "Test address {a} is not unique in group; disabling probe-based failure detection on {ifname} (also on {other})"
                    ),
                    "give each member its own test address",
                );
                continue;
            }
            tests.push(a);
        }
        let targets = r
            .targets
            .iter()
            .filter_map(|t| {
                let a = t.get_ref().parse::<IpAddr>().ok();
                if a.is_none() {
                    problems.error(
                        &t.span(),
                        format!(
                            "interface {ifname}: target {:?} is not an IP address",
                            t.get_ref()
                        ),
                        "write a plain address",
                    );
                }
                a
            })
            .collect();
        out.interfaces.push(InterfaceConfig {
            name: ifname.clone(),
            group,
            standby: r.standby,
            test_addresses: tests,
            targets,
        });
    }
    super::checks::cross_check(&mut out, &raw_spans(&raw), &mut problems);
    (out, problems.list)
}

/// Where each group and interface was written, for the cross-checks' messages.
pub(super) struct Spans {
    pub(super) groups: BTreeMap<String, Range<usize>>,
    pub(super) interfaces: BTreeMap<String, Range<usize>>,
}

fn raw_spans(raw: &RawFile) -> Spans {
    Spans {
        groups: raw
            .group
            .iter()
            .map(|(n, g)| (n.clone(), g.span()))
            .collect(),
        interfaces: raw
            .interface
            .iter()
            .map(|(n, i)| (n.clone(), i.span()))
            .collect(),
    }
}

/// Most announcements after a move, and their longest spacing.
const MAX_ANNOUNCEMENTS: u64 = 100;
const MAX_ANNOUNCE_INTERVAL_MS: u64 = 60_000;

/// `value`, or `max` with a warning when it is larger.
fn bounded(
    problems: &mut Problems<'_>,
    span: &Range<usize>,
    what: &str,
    value: u64,
    max: u64,
) -> u64 {
    if value > max {
        problems.warn(
            span,
            format!("{what} = {value} is more than {max}; using {max}"),
            "use a smaller value",
        );
        max
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[group.uplinks]
fdt_ms = 100
data_addresses = ["192.0.2.100/24"]
routes = ["198.51.100.0/24 via 192.0.2.1"]

[interface.eth0]
group = "uplinks"
test_addresses = ["192.0.2.10", "fe80::10"]
targets = ["192.0.2.1"]

[interface.eth1]
group = "uplinks"
standby = true
test_addresses = ["192.0.2.11"]
"#;

    #[test]
    fn the_readme_example_parses() {
        let (f, p) = parse(EXAMPLE);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(f.groups[0].fdt_ms, Some(100));
        assert_eq!(
            f.groups[0].data_addresses[0],
            Prefix {
                addr: [192, 0, 2, 100].into(),
                len: 24
            }
        );
        assert_eq!(f.interfaces.len(), 2);
        assert_eq!(f.interfaces[0].test_addresses.len(), 2);
        assert!(f.interfaces[1].standby);
    }

    #[test]
    fn problems_carry_lines_and_keep_the_rest() {
        let text = "[group.g]\nfdt_ms = 5\n\n[interface.a]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.10\"]\n\n[interface.b]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.10\", \"2001:db8::1\"]\n\n[interface.c]\ngroup = \"nope\"\n";
        let (f, p) = parse(text);
        let lines: Vec<usize> = p.iter().map(|x| x.line).collect();
        assert_eq!(lines, vec![2, 10, 10, 13], "{p:#?}");
        assert!(p[1].message.starts_with("Test address 192.0.2.10 is not unique in group; disabling probe-based failure detection on b"));
        assert!(p[2].message.contains("not link-local"));
        assert_eq!(f.interfaces.len(), 2, "c left out, a and b kept");
        assert!(f.interfaces[1].test_addresses.is_empty());
    }

    #[test]
    fn syntax_errors_and_unknown_keys_are_reported_with_a_line() {
        let (_, p) = parse("[group.g]\nfdt_ms = \n");
        let p: Vec<_> = p.into_iter().filter(|x| !x.warning).collect();
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].line, 2);
        let (_, p) = parse("[group.g]\nfailback = true\n");
        assert!(p[0].message.contains("unknown field"), "{p:?}");
        assert_eq!(p[0].line, 2);
    }

    #[test]
    fn a_data_address_that_is_also_a_test_address_is_refused() {
        let (f, p) = parse(
            "[group.g]\ndata_addresses = [\"192.0.2.10/24\"]\n[interface.h0]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.10\"]\n",
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].line, 1);
        assert!(p[0].message.contains("is also the test address of h0"));
        assert!(f.groups[0].data_addresses.is_empty());
    }

    #[test]
    fn tables_are_stable_explicit_or_refused() {
        assert_eq!(default_table("uplinks"), default_table("uplinks"));
        assert!(
            (TABLE_DEFAULT_BASE..TABLE_DEFAULT_BASE + TABLE_DEFAULT_SPAN)
                .contains(&default_table("a"))
        );
        // Adding a group does not renumber the others.
        let (one, _) = parse("[group.b]\n");
        let (two, _) = parse("[group.a]\n[group.b]\n");
        assert_eq!(one.groups[0].table, two.groups[1].table);
        let (f, p) =
            parse("[group.a]\ntable = 1000\n[group.b]\ntable = 1000\n[group.c]\ntable = 254\n");
        let p: Vec<_> = p.into_iter().filter(|x| !x.warning).collect();
        assert_eq!(f.groups[0].table, 1000);
        let lines: Vec<usize> = p.iter().map(|x| x.line).collect();
        assert_eq!(lines, vec![4, 6], "{p:?}");
        assert!(p[0].message.contains("also group a's"));
        assert!(p[1].message.contains("kernel's own"));
    }

    #[test]
    fn routes() {
        let r = parse_route("198.51.100.0/24 via 192.0.2.1").unwrap();
        assert_eq!((r.dst.len, r.via), (24, Some([192, 0, 2, 1].into())));
        assert_eq!(parse_route("198.51.100.0/24").unwrap().via, None);
        assert_eq!(
            parse_route("198.51.100.0/24 via 2001:db8::1"),
            None,
            "families differ"
        );
        assert_eq!(parse_route("198.51.100.0/24 dev eth0"), None);
        assert_eq!(parse_route("198.51.100.0/24 via 192.0.2.1 extra"), None);
    }

    #[test]
    fn prefixes() {
        assert_eq!(
            parse_prefix("2001:db8::/32"),
            Some(Prefix {
                addr: "2001:db8::".parse().unwrap(),
                len: 32
            })
        );
        assert_eq!(
            parse_prefix("192.0.2.1"),
            Some(Prefix {
                addr: [192, 0, 2, 1].into(),
                len: 32
            })
        );
        assert_eq!(parse_prefix("192.0.2.1/33"), None);
        assert_eq!(parse_prefix("x/1"), None);
    }
}
