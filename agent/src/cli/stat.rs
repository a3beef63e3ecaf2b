//! `ipmpd stat` (also `ipmpstat` when invoked under that name): ipmpstat's modes, columns, flags,
//! `--`/parsable conventions, and JSON for scripts.

use anyhow::{Context as _, bail};

use super::admin::Target;
use crate::control::{
    Request, Response, client,
    snapshot::{AddressRow, GroupRow, InterfaceRow, RejectRow, Snapshot, TargetRow},
};

/// Arguments of `ipmpd stat` / `ipmpstat`.
#[derive(Debug, clap::Args)]
pub struct StatArgs {
    /// Groups: GROUP GROUPNAME STATE FDT INTERFACES.
    #[arg(short = 'g')]
    pub groups: bool,
    /// Interfaces: INTERFACE ACTIVE GROUP FLAGS LINK PROBE STATE.
    #[arg(short = 'i')]
    pub interfaces: bool,
    /// Probe targets: INTERFACE MODE TESTADDR TARGETS.
    #[arg(short = 't')]
    pub targets: bool,
    /// Data addresses: ADDRESS STATE GROUP INBOUND OUTBOUND.
    #[arg(short = 'a')]
    pub addresses: bool,
    /// Probes as they happen, until interrupted: TIME INTERFACE PROBE NETRTT RTT RTTAVG RTTDEV TARGET.
    #[arg(short = 'p')]
    pub probes: bool,
    /// The datapath (ipmpd's own): kernel, TC attach mode, link-state source and why.
    #[arg(short = 'd')]
    pub datapath: bool,
    /// What was refused (ipmpd's own): SOURCE INTERFACE REASON COUNT, for probe replies refused
    /// by the XDP program or the daemon and for control-socket connections.
    #[arg(short = 'r')]
    pub rejected: bool,
    /// Numeric output (ipmpd prints addresses numerically anyway).
    #[arg(short = 'n')]
    pub numeric: bool,
    /// Fields to print, comma-separated, case-insensitive, or `all`.
    #[arg(short = 'o', value_name = "FIELDS")]
    pub fields: Option<String>,
    /// Parsable output: no header, fields separated by `:` (needs -o).
    #[arg(short = 'P')]
    pub parsable: bool,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: Target,
}

/// A mode's columns: name and human width (the last column is not padded).
type Columns = &'static [(&'static str, usize)];

const GROUP_COLUMNS: Columns = &[
    ("GROUP", 10),
    ("GROUPNAME", 10),
    ("STATE", 9),
    ("FDT", 9),
    ("INTERFACES", 0),
];
const INTERFACE_COLUMNS: Columns = &[
    ("INTERFACE", 10),
    ("ACTIVE", 7),
    ("GROUP", 10),
    ("FLAGS", 8),
    ("LINK", 10),
    ("PROBE", 9),
    ("STATE", 0),
];
const TARGET_COLUMNS: Columns = &[
    ("INTERFACE", 10),
    ("MODE", 10),
    ("TESTADDR", 19),
    ("TARGETS", 0),
];
const PROBE_COLUMNS: Columns = &[
    ("TIME", 9),
    ("INTERFACE", 10),
    ("PROBE", 6),
    ("NETRTT", 9),
    ("RTT", 9),
    ("RTTAVG", 9),
    ("RTTDEV", 9),
    ("TARGET", 0),
];
const REJECT_COLUMNS: Columns = &[
    ("SOURCE", 8),
    ("INTERFACE", 10),
    ("REASON", 15),
    ("COUNT", 0),
];
const ADDRESS_COLUMNS: Columns = &[
    ("ADDRESS", 19),
    ("STATE", 6),
    ("GROUP", 10),
    ("INBOUND", 9),
    ("OUTBOUND", 0),
];

fn group_cells(r: &GroupRow) -> Vec<String> {
    vec![
        r.group.clone(),
        r.groupname.clone(),
        r.state.clone(),
        r.fdt.clone(),
        r.interfaces.clone(),
    ]
}
fn interface_cells(r: &InterfaceRow) -> Vec<String> {
    vec![
        r.interface.clone(),
        r.active.clone(),
        r.group.clone(),
        r.flags.clone(),
        r.link.clone(),
        r.probe.clone(),
        r.state.clone(),
    ]
}
fn target_cells(r: &TargetRow) -> Vec<String> {
    vec![
        r.interface.clone(),
        r.mode.clone(),
        r.testaddr.clone(),
        r.targets.clone(),
    ]
}
fn reject_cells(r: &RejectRow) -> Vec<String> {
    vec![
        r.source.clone(),
        r.interface.clone(),
        r.reason.clone(),
        r.count.to_string(),
    ]
}
fn address_cells(r: &AddressRow) -> Vec<String> {
    vec![
        r.address.clone(),
        r.state.clone(),
        r.group.clone(),
        r.inbound.clone(),
        r.outbound.clone(),
    ]
}

/// Indexes of the requested fields.
fn select(columns: Columns, fields: Option<&str>) -> anyhow::Result<Vec<usize>> {
    let Some(fields) = fields else {
        return Ok((0..columns.len()).collect());
    };
    if fields.eq_ignore_ascii_case("all") {
        return Ok((0..columns.len()).collect());
    }
    fields
        .split(',')
        .map(|f| {
            columns
                .iter()
                .position(|(name, _)| name.eq_ignore_ascii_case(f.trim()))
                .with_context(|| {
                    format!(
                        "unknown output field \"{f}\"; this mode has {}",
                        columns.iter().map(|c| c.0).collect::<Vec<_>>().join(",")
                    )
                })
        })
        .collect()
}

/// Escapes `:` and `\` for parsable output with more than one field.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace(':', "\\:")
}

/// Renders rows the way ipmpstat does.
#[must_use]
pub fn render(columns: Columns, rows: &[Vec<String>], chosen: &[usize], parsable: bool) -> String {
    render_rows(columns, rows, chosen, parsable, true)
}

/// [`render`], with or without the header (a stream prints it once).
#[must_use]
pub fn render_rows(
    columns: Columns,
    rows: &[Vec<String>],
    chosen: &[usize],
    parsable: bool,
    header: bool,
) -> String {
    let mut out = String::new();
    if parsable {
        for row in rows {
            let cells: Vec<String> = chosen
                .iter()
                .map(|&i| {
                    if chosen.len() > 1 {
                        escape(&row[i])
                    } else {
                        row[i].clone()
                    }
                })
                .collect();
            out += &cells.join(":");
            out.push('\n');
        }
        return out;
    }
    let line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (k, (&i, cell)) in chosen.iter().zip(cells).enumerate() {
            let width = columns[i].1;
            if k + 1 == chosen.len() {
                l += cell;
            } else {
                l += &format!("{cell:<width$} ");
            }
        }
        l.trim_end().to_owned() + "\n"
    };
    if header {
        out += &line(chosen.iter().map(|&i| columns[i].0).collect());
    }
    for row in rows {
        out += &line(
            chosen
                .iter()
                .map(|&i| {
                    if row[i].is_empty() {
                        "--"
                    } else {
                        row[i].as_str()
                    }
                })
                .collect(),
        );
    }
    out
}

/// Runs `ipmpd stat`.
///
/// # Errors
/// Bad arguments, or an unreachable daemon ("cannot contact ipmpd -- is IPMP in use?").
pub fn run(args: &StatArgs) -> anyhow::Result<()> {
    let modes = [
        args.groups,
        args.interfaces,
        args.targets,
        args.addresses,
        args.probes,
        args.datapath,
        args.rejected,
    ]
    .iter()
    .filter(|m| **m)
    .count();
    if modes != 1 {
        bail!(
            "exactly one of -g, -i, -t, -a, -p, -d, -r is needed\nusage: ipmpstat [-n] [-o field[,...] [-P]] -a|-g|-i|-p|-t"
        );
    }
    if args.parsable && args.fields.is_none() {
        bail!("-P requires -o\nusage: ipmpstat [-n] [-o field[,...] [-P]] -a|-g|-i|-p|-t");
    }
    let path = args.target.path();
    let snap: Snapshot = match client::call(&path, &Request::Snapshot) {
        Ok(Response::Ok(v)) => {
            serde_json::from_value(v).context("the daemon's snapshot is not understood")?
        }
        Ok(Response::Err(e)) => bail!("the daemon refused: {e}"),
        Err(client::ClientError::Unreachable { .. }) => bail!(
            "cannot contact ipmpd -- is IPMP in use? (no daemon answers on {})",
            path.display()
        ),
        Err(e) => return Err(e.into()),
    };
    if args.probes {
        return probes(args, &snap);
    }
    if args.datapath {
        let f = snap
            .datapath
            .context("the daemon does not say what its datapath uses (an older ipmpd?)")?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&f)?);
        } else {
            println!("{}", super::features::describe(&f));
        }
        return Ok(());
    }
    if args.rejected {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&snap.rejected)?);
            return Ok(());
        }
        let rows: Vec<Vec<String>> = snap.rejected.iter().map(reject_cells).collect();
        let chosen = select(REJECT_COLUMNS, args.fields.as_deref())?;
        print!("{}", render(REJECT_COLUMNS, &rows, &chosen, args.parsable));
        return Ok(());
    }
    if args.json {
        let v = match (args.groups, args.interfaces, args.targets) {
            (true, _, _) => serde_json::to_value(&snap.groups)?,
            (_, true, _) => serde_json::to_value(&snap.interfaces)?,
            (_, _, true) => serde_json::to_value(&snap.targets)?,
            _ => serde_json::to_value(&snap.addresses)?,
        };
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let (columns, rows): (Columns, Vec<Vec<String>>) =
        match (args.groups, args.interfaces, args.targets) {
            (true, _, _) => (GROUP_COLUMNS, snap.groups.iter().map(group_cells).collect()),
            (_, true, _) => (
                INTERFACE_COLUMNS,
                snap.interfaces.iter().map(interface_cells).collect(),
            ),
            (_, _, true) => (
                TARGET_COLUMNS,
                snap.targets.iter().map(target_cells).collect(),
            ),
            _ => (
                ADDRESS_COLUMNS,
                snap.addresses.iter().map(address_cells).collect(),
            ),
        };
    let chosen = select(columns, args.fields.as_deref())?;
    print!("{}", render(columns, &rows, &chosen, args.parsable));
    Ok(())
}

fn ms(v: &serde_json::Value) -> String {
    v.as_u64()
        .map_or_else(String::new, |ns| format!("{:.2}ms", ns as f64 / 1e6))
}

/// ipmpstat -p: probe results as they happen.
fn probes(args: &StatArgs, snap: &Snapshot) -> anyhow::Result<()> {
    if snap.targets.iter().all(|t| t.mode == "disabled") {
        bail!("probe-based failure detection is disabled");
    }
    let chosen = select(PROBE_COLUMNS, args.fields.as_deref())?;
    let start = crate::clock::monotonic_ns();
    let mut header = !args.parsable;
    client::follow(
        &args.target.path(),
        &Request::FollowProbes,
        || {},
        |v| {
            if args.json {
                println!("{v}");
                return true;
            }
            let at = v["at_ns"].as_u64().unwrap_or(start);
            let acked = v["acked"].as_bool().unwrap_or(false);
            let rtt = |key: &str| if acked { ms(&v[key]) } else { String::new() };
            let row = vec![
                format!("{:.2}s", (at as f64 - start as f64) / 1e9),
                v["ifname"].as_str().unwrap_or("").to_owned(),
                v["seq"].to_string(),
                rtt("netrtt_ns"),
                rtt("rtt_ns"),
                rtt("rttavg_ns"),
                rtt("rttdev_ns"),
                v["target"].as_str().unwrap_or("").to_owned(),
            ];
            print!(
                "{}",
                render_rows(PROBE_COLUMNS, &[row], &chosen, args.parsable, header)
            );
            header = false;
            true
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Vec<String>> {
        vec![
            vec![
                "h0".into(),
                "yes".into(),
                "g".into(),
                "-------".into(),
                "up".into(),
                "ok".into(),
                "ok".into(),
            ],
            vec![
                "h1".into(),
                "no".into(),
                "g".into(),
                "is-----".into(),
                "up".into(),
                "ok".into(),
                "ok".into(),
            ],
        ]
    }

    #[test]
    fn human_table_with_header_and_padding() {
        let all = select(INTERFACE_COLUMNS, None).unwrap();
        assert_eq!(
            render(INTERFACE_COLUMNS, &rows(), &all, false),
            "INTERFACE  ACTIVE  GROUP      FLAGS    LINK       PROBE     STATE\n\
             h0         yes     g          -------  up         ok        ok\n\
             h1         no      g          is-----  up         ok        ok\n"
        );
    }

    #[test]
    fn empty_fields_print_dashes_in_tables_and_nothing_when_parsable() {
        let r = vec![vec![
            "h0".into(),
            "disabled".into(),
            String::new(),
            String::new(),
        ]];
        let all = select(TARGET_COLUMNS, Some("all")).unwrap();
        assert!(
            render(TARGET_COLUMNS, &r, &all, false)
                .ends_with("h0         disabled   --                  --\n")
        );
        assert_eq!(render(TARGET_COLUMNS, &r, &all, true), "h0:disabled::\n");
    }

    #[test]
    fn parsable_escapes_only_with_several_fields() {
        let r = vec![vec![
            "fe80::1".into(),
            "up".into(),
            "g".into(),
            "h0".into(),
            "h0 h1".into(),
        ]];
        let two = select(ADDRESS_COLUMNS, Some("address,STATE")).unwrap();
        assert_eq!(render(ADDRESS_COLUMNS, &r, &two, true), "fe80\\:\\:1:up\n");
        let one = select(ADDRESS_COLUMNS, Some("address")).unwrap();
        assert_eq!(render(ADDRESS_COLUMNS, &r, &one, true), "fe80::1\n");
    }

    #[test]
    fn fields_are_case_insensitive_and_unknown_ones_refused() {
        assert_eq!(
            select(GROUP_COLUMNS, Some("fdt,Group")).unwrap(),
            vec![3, 0]
        );
        assert!(
            select(GROUP_COLUMNS, Some("nope"))
                .unwrap_err()
                .to_string()
                .contains("unknown output field")
        );
    }
}
