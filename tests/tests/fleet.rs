//! Fleet monitoring: ipmpd watches one host, fleets watch ipmpd through Prometheus. What ships for
//! them is checked here: `packaging/prometheus/ipmpd.rules.yml` (recording and alerting rules),
//! its unit tests `ipmpd.rules.test.yml` on recorded series, and the Grafana dashboard
//! `packaging/grafana/ipmpd.json`.
//!
//! - promtool accepts the rules, their unit tests pass, and every alert has a case where it fires
//!   and one where it must not.
//! - Every query names only metrics (and label names) ipmpd exports: the dashboard's panels,
//!   collapsed rows, annotations and template variables, the rules' expressions and the unit
//!   tests' recorded series. Recording rules count as known in the rules and their tests once the
//!   rules file defines them; the dashboard uses none (a fleet that did not load the rules would
//!   see empty panels), only ipmpd's metrics and Prometheus' `up`.
//!
//! The exported names come from ipmpd itself, not from a list here: a daemon runs with
//! `--metrics` and its exposition is scraped, as in `metrics.rs` (root and network namespaces).
//! ipmpd writes nothing, not even HELP and TYPE, for a family without samples, so the
//! daemon is driven until every family has one: its groups and interfaces give the state and FDT
//! gauges from the start, as do the rejected-reply counters (the kernel's reasons are there at
//! zero from the first read), the control-socket refusals (every reason, at zero), the engine
//! deadlines and the carrier poll interval; probing gives probes sent and acknowledged, the events
//! and the per-target CRTT; a silent loss on `h0` gives lost probes, a failed interface and a
//! failover. A family a future ipmpd adds without a sample in this scenario would be reported
//! as not exported, with that reason given.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_json::Value;
use tests::{
    daemon::{RunConfig, scrape_metrics, wait_event},
    topology::Lan,
};

const GROUP: &str = "[group.g]\nfdt_ms = 300\ndata_addresses = [\"192.0.2.100/24\"]\n\n\
    [interface.h0]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.10\"]\ntargets = [\"192.0.2.1\"]\n\n\
    [interface.h1]\ngroup = \"g\"\ntest_addresses = [\"192.0.2.11\"]\ntargets = [\"192.0.2.1\"]\n";

/// Labels Prometheus adds to every series it scrapes (the target's).
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

const RULES: &str = "packaging/prometheus/ipmpd.rules.yml";
const RULE_TESTS: &str = "packaging/prometheus/ipmpd.rules.test.yml";
const DASHBOARD: &str = "packaging/grafana/ipmpd.json";

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn read(rel: &str) -> String {
    let path = repo_file(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn promtool_accepts_the_rules_and_their_unit_tests_pass() {
    // promtool runs the cases that are there; that every alert has both kinds is checked here.
    let rules = read(RULES);
    let unit = read(RULE_TESTS);
    let alerts: Vec<String> = yaml_values(&rules, "alert")
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert!(!alerts.is_empty(), "{RULES} defines no alert");
    let cases = alert_cases(&unit);
    let mut problems = Vec::new();
    for alert in &alerts {
        let (fires, quiet) = cases.get(alert).copied().unwrap_or_default();
        if !fires {
            problems.push(format!(
                "{RULE_TESTS}: no case where alert {alert} (from {RULES}) fires (an alert_rule_test with alertname: {alert} and exp_alerts listing it)"
            ));
        }
        if !quiet {
            problems.push(format!(
                "{RULE_TESTS}: no case where alert {alert} (from {RULES}) must not fire (alertname: {alert} with exp_alerts: [])"
            ));
        }
    }
    for name in cases.keys() {
        if !alerts.contains(name) {
            problems.push(format!(
                "{RULE_TESTS} tests alert {name}, which {RULES} does not define"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    if let Err(e) = Command::new("promtool").arg("--version").output() {
        let why = format!(
            "promtool cannot run ({e}); `cargo xtask setup` installs it (Debian package `prometheus`)"
        );
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but {why}"
        );
        tests::not_run(&why);
        return;
    }
    let dir = repo_file("packaging/prometheus");
    for args in [
        ["check", "rules", "ipmpd.rules.yml"],
        ["test", "rules", "ipmpd.rules.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("promtool runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!(
            "promtool {} (in packaging/prometheus):\n{text}",
            args.join(" ")
        );
        assert!(
            out.status.success(),
            "`promtool {}` in packaging/prometheus failed ({}):\n{text}",
            args.join(" "),
            out.status
        );
    }
}

#[test]
fn every_dashboard_and_rule_query_names_a_metric_ipmpd_exports() {
    // What the files ask for; parsed before the daemon runs, so a malformed query fails even
    // where the daemon cannot run.
    let rules = read(RULES);
    let records: BTreeSet<String> = yaml_values(&rules, "record")
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let mut queries = rule_queries(&rules);
    queries.extend(rule_test_queries(&read(RULE_TESTS)));
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD))
        .unwrap_or_else(|e| panic!("{DASHBOARD} is not valid JSON: {e}"));
    let mut problems = Vec::new();
    let before = queries.len();
    dashboard_queries(&dashboard, DASHBOARD, &mut queries, &mut problems);
    assert!(
        queries.len() - before >= 10,
        "{DASHBOARD}: only {} queries found",
        queries.len() - before
    );
    let parsed: Vec<(&Query, Parsed)> = queries
        .iter()
        .filter_map(|q| match parse(&q.expr) {
            Ok(p) => Some((q, p)),
            Err(e) => {
                problems.push(format!("{}: cannot read `{}`: {e}", q.place, q.expr));
                None
            }
        })
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    if !tests::privileged() {
        return;
    }
    let exported = exported_metrics();
    println!("ipmpd exports:");
    for (name, labels) in &exported {
        let names: Vec<&str> = labels.keys().map(String::as_str).collect();
        println!("  {name} {{{}}}", names.join(","));
    }

    for (q, p) in &parsed {
        check(q, p, &exported, &records, &mut problems);
    }
    println!(
        "{} queries checked ({} in {DASHBOARD})",
        parsed.len(),
        queries.len() - before
    );
    assert!(
        problems.is_empty(),
        "queries naming what ipmpd does not export:\n{}\n\nipmpd exports: {}",
        problems.join("\n"),
        exported.keys().cloned().collect::<Vec<_>>().join(", ")
    );
}

/// A daemon's exposition: metric name → label name → the values seen. Driven until every family
/// has a sample (see the module's documentation).
fn exported_metrics() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let lan = Lan::new(true, false);
    let cfg = RunConfig::new("fleet", GROUP, None);
    let mut d = cfg.spawn_with(lan.host(), &["--metrics"]);
    d.wait_for(tests::scaled(Duration::from_secs(10)), |v| {
        v["event"] == "ready"
    })
    .expect("daemon ready");
    d.wait_for(tests::scaled(Duration::from_secs(5)), |v| {
        v["probe"]["event"] == "probe_acked"
    })
    .expect("probing");
    // A silent loss: probes are lost, h0 fails and the data address moves to h1.
    lan.switch().drop_all("sw-h0");
    wait_event(
        &mut d,
        tests::scaled(Duration::from_secs(5)),
        "ipmultipath.address.moved",
        None,
    )
    .expect("failover after the silent loss on h0");
    std::thread::sleep(Duration::from_millis(1200)); // the exposition is rendered every second
    let response =
        scrape_metrics(&lan.host().path(), "127.0.0.1:9870").expect("metrics endpoint answers");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.0 200 OK"), "{head}");
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))
        .expect("valid Prometheus text format");
    let mut exported: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for s in &scrape.samples {
        let labels = exported.entry(s.metric.clone()).or_default();
        for (k, v) in s.labels.iter() {
            labels.entry(k.clone()).or_default().insert(v.clone());
        }
    }
    for family in scrape.docs.keys() {
        assert!(
            exported.contains_key(family) || exported.contains_key(&format!("{family}_total")),
            "the exposition documents {family} but has no sample of it:\n{body}"
        );
    }
    assert!(
        exported.keys().all(|n| n.starts_with("ipmpd_")),
        "a metric without the ipmpd_ prefix:\n{body}"
    );
    exported
}

/// A query and where it is.
#[derive(Debug)]
struct Query {
    place: String,
    expr: String,
    /// Whether recording rules of the rules file may be named (not in the dashboard).
    records: bool,
    /// A label the query needs on its metric (Grafana's `label_values(SELECTOR, LABEL)`).
    label: Option<String>,
}

/// A label matcher: label, operator, value.
type Matcher = (String, String, String);

/// What a query names.
#[derive(Debug, Default)]
struct Parsed {
    /// Each metric selector: the name and its matchers.
    selectors: Vec<(String, Vec<Matcher>)>,
    /// Labels named in `by`, `without`, `on`, `ignoring`, `group_left`, `group_right`.
    grouping: Vec<String>,
}

/// The checks of one query against the exposition.
fn check(
    q: &Query,
    p: &Parsed,
    exported: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    records: &BTreeSet<String>,
    problems: &mut Vec<String>,
) {
    let at = format!("{}: `{}`", q.place, q.expr);
    if p.selectors.is_empty() {
        problems.push(format!("{at}: names no metric"));
    }
    let mut known_labels: BTreeSet<&str> = TARGET_LABELS.into_iter().collect();
    let mut all_ipmpd = true;
    for (name, matchers) in &p.selectors {
        if name.is_empty() {
            problems.push(format!("{at}: a selector without a metric name"));
            all_ipmpd = false;
            continue;
        }
        if name == "up" {
            for (label, _, _) in matchers {
                if !TARGET_LABELS.contains(&label.as_str()) {
                    problems.push(format!(
                        "{at}: up{{{label}...}}: a label the scrape's target may not have"
                    ));
                }
            }
            continue;
        }
        if records.contains(name) {
            all_ipmpd = false;
            if !q.records {
                problems.push(format!(
                    "{at}: names the recording rule {name} of {RULES}; the dashboard must work without the rules, use ipmpd's metrics"
                ));
            }
            continue;
        }
        let Some(labels) = exported.get(name) else {
            all_ipmpd = false;
            let hint = if name.contains(':') {
                format!(" nor does {RULES} record it")
            } else {
                String::new()
            };
            problems.push(format!(
                "{at}: names metric {name}, which ipmpd does not export{hint} (not in the scrape; a family without any sample in the test's scenario would be missing too)"
            ));
            continue;
        };
        known_labels.extend(labels.keys().map(String::as_str));
        for (label, op, value) in matchers {
            if TARGET_LABELS.contains(&label.as_str()) {
                continue;
            }
            let Some(values) = labels.get(label) else {
                problems.push(format!(
                    "{at}: {name} has no label {label} (ipmpd exports it with: {})",
                    labels.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
                continue;
            };
            // The state gauges carry every state (1 for the current one, 0 for the others), so
            // the scrape lists all their values: a misspelt state never matches.
            if label == "state" && (op == "=" || op == "=~") {
                for v in value.split('|') {
                    if !values.contains(v) {
                        problems.push(format!(
                            "{at}: {name}{{state=\"{v}\"}}: ipmpd's states are {}",
                            values.iter().cloned().collect::<Vec<_>>().join(", ")
                        ));
                    }
                }
            }
        }
    }
    // Grouping labels are checked where every metric is ipmpd's (a recording rule's labels are
    // whatever it keeps).
    if all_ipmpd {
        for label in p.grouping.iter().chain(&q.label) {
            if !known_labels.contains(label.as_str()) {
                problems.push(format!(
                    "{at}: label {label} is on none of its metrics (their labels: {})",
                    known_labels.iter().copied().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
}

/// Every `expr` of the dashboard (panel targets, panels inside collapsed rows, annotations) and
/// every template variable's query, with where it is; a panel without a query is a problem.
fn dashboard_queries(v: &Value, place: &str, out: &mut Vec<Query>, problems: &mut Vec<String>) {
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                dashboard_queries(item, &format!("{place}[{i}]"), out, problems);
            }
        }
        Value::Object(obj) => {
            let text = |k: &str| obj.get(k).and_then(Value::as_str);
            let here = if let Some(r) = text("refId") {
                format!("{place}, target {r}")
            } else if obj.contains_key("gridPos") {
                let id = obj
                    .get("id")
                    .map_or_else(String::new, |i| format!(" (id {i})"));
                format!(
                    "{DASHBOARD}: {} \"{}\"{id}",
                    text("type").unwrap_or("panel"),
                    text("title").unwrap_or("")
                )
            } else if let Some(n) = text("name") {
                format!("{place} \"{n}\"")
            } else {
                place.to_owned()
            };
            if obj.contains_key("gridPos") && text("type") != Some("row") {
                let has_query = obj
                    .get("targets")
                    .and_then(Value::as_array)
                    .is_some_and(|t| {
                        t.iter()
                            .any(|t| t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()))
                    });
                if !has_query {
                    problems.push(format!("{here}: no target with an `expr`"));
                }
            }
            // A template variable of type query: `definition` and `query` (a string, or the
            // query editor's object), in Grafana's variable syntax.
            if text("type") == Some("query") && obj.contains_key("name") {
                let mut variable_queries: Vec<&str> = Vec::new();
                variable_queries.extend(text("definition"));
                match obj.get("query") {
                    Some(Value::String(s)) => variable_queries.push(s),
                    Some(Value::Object(o)) => {
                        variable_queries.extend(o.get("query").and_then(Value::as_str));
                    }
                    _ => {}
                }
                if variable_queries.is_empty() {
                    problems.push(format!("{here}: a query variable without a query"));
                }
                for q in variable_queries {
                    match variable_query(q) {
                        Some((expr, label)) => out.push(Query {
                            place: format!("{here}, variable query"),
                            expr,
                            records: false,
                            label,
                        }),
                        None => problems.push(format!(
                            "{here}: variable query `{q}` is none of label_values(SELECTOR, LABEL), query_result(EXPR)"
                        )),
                    }
                }
            }
            for (k, x) in obj {
                if k == "expr" {
                    match x.as_str() {
                        Some(e) => out.push(Query {
                            place: here.clone(),
                            expr: e.to_owned(),
                            records: false,
                            label: None,
                        }),
                        None => problems.push(format!("{here}: `expr` is not a string")),
                    }
                } else {
                    dashboard_queries(x, &format!("{here} › {k}"), out, problems);
                }
            }
        }
        _ => {}
    }
}

/// A Prometheus template variable's query as (PromQL, label it asks for).
fn variable_query(q: &str) -> Option<(String, Option<String>)> {
    let q = q.trim();
    if let Some(inner) = q
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
    {
        // label_values(SELECTOR, LABEL); the selector's matchers may hold commas, the label not.
        let (sel, label) = inner.rsplit_once(',')?;
        return Some((sel.trim().to_owned(), Some(label.trim().to_owned())));
    }
    q.strip_prefix("query_result(")
        .and_then(|r| r.strip_suffix(')'))
        .map(|e| (e.to_owned(), None))
}

/// The rules file's expressions, each with its line and its rule.
fn rule_queries(rules: &str) -> Vec<Query> {
    let mut names: Vec<(usize, String)> = yaml_values(rules, "alert")
        .into_iter()
        .map(|(l, n)| (l, format!("alert {n}")))
        .chain(
            yaml_values(rules, "record")
                .into_iter()
                .map(|(l, n)| (l, format!("record {n}"))),
        )
        .collect();
    names.sort();
    let exprs = yaml_values(rules, "expr");
    assert!(!exprs.is_empty(), "{RULES}: no `expr:` found");
    exprs
        .into_iter()
        .map(|(line, expr)| {
            let rule = names
                .iter()
                .rev()
                .find(|(l, _)| *l <= line)
                .map_or("no rule", |(_, n)| n.as_str());
            Query {
                place: format!("{RULES}:{line} ({rule})"),
                expr,
                records: true,
                label: None,
            }
        })
        .collect()
}

/// The unit tests' recorded series, PromQL tests and expected samples.
fn rule_test_queries(unit: &str) -> Vec<Query> {
    let series = yaml_values(unit, "series");
    assert!(!series.is_empty(), "{RULE_TESTS}: no input series found");
    ["series", "expr", "labels"]
        .into_iter()
        .flat_map(|key| {
            yaml_values(unit, key)
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(move |(line, expr)| Query {
                    place: format!("{RULE_TESTS}:{line} ({key})"),
                    expr,
                    records: true,
                    label: None,
                })
        })
        .collect()
}

/// For each alert the unit tests name: whether a case expects it firing, and whether one expects
/// it not to (`exp_alerts: []`).
fn alert_cases(unit: &str) -> BTreeMap<String, (bool, bool)> {
    let lines: Vec<&str> = unit.lines().collect();
    let mut cases: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start().trim_start_matches("- ");
        if let Some(name) = t.strip_prefix("alertname:") {
            current = Some(unquote(name.trim()));
        } else if let Some(rest) = t.strip_prefix("exp_alerts:")
            && let Some(name) = current.take()
        {
            let entry = cases.entry(name).or_default();
            if rest.trim() == "[]" {
                entry.1 = true;
            } else {
                // Firing when a list item follows.
                let next = lines[i + 1..]
                    .iter()
                    .map(|l| l.trim())
                    .find(|l| !l.is_empty() && !l.starts_with('#'));
                if next.is_some_and(|l| l.starts_with("- ")) {
                    entry.0 = true;
                } else {
                    entry.1 = true;
                }
            }
        }
    }
    cases
}

/// Every value of `key` in a YAML file, with its 1-based line: plain, quoted, or a block scalar
/// (`|`, `>`, with `-`/`+`), whose lines are kept apart by newlines. Line-based: enough for the
/// files shipped, which keep one key per line.
fn yaml_values(text: &str, key: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let mut indent = line.len() - line.trim_start().len();
        let mut t = line.trim_start();
        if let Some(rest) = t.strip_prefix("- ") {
            indent += 2;
            t = rest;
        }
        let Some(value) = t
            .strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::trim)
        else {
            continue;
        };
        if matches!(value, "|" | "|-" | "|+" | ">" | ">-" | ">+") {
            let block: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim())
                .collect();
            out.push((i + 1, block.join("\n").trim().to_owned()));
        } else {
            out.push((i + 1, unquote(value)));
        }
    }
    out
}

/// A YAML flow scalar without its quotes.
fn unquote(v: &str) -> String {
    if let Some(inner) = v.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        inner.replace("''", "'")
    } else if let Some(inner) = v.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        inner.replace("\\\"", "\"").replace("\\\\", "\\")
    } else {
        v.to_owned()
    }
}

/// PromQL tokens, as far as finding metric names needs.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Punct(char),
    /// Numbers, durations, ranges and subqueries (`[5m]`), Grafana's `$variables`.
    Other,
}

fn lex(expr: &str) -> Result<Vec<Tok>, String> {
    let c: Vec<char> = expr.chars().collect();
    let ident = |ch: char| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':';
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '#' {
            // A comment, to the end of the line.
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if matches!(ch, '"' | '\'' | '`') {
            let mut s = String::new();
            i += 1;
            loop {
                match c.get(i) {
                    None => return Err(format!("unterminated string {ch}{s}")),
                    Some('\\') if ch != '`' => {
                        s.extend(c.get(i + 1));
                        i += 2;
                    }
                    Some(&q) if q == ch => {
                        i += 1;
                        break;
                    }
                    Some(&x) => {
                        s.push(x);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
        } else if ch == '[' {
            let end = c[i..]
                .iter()
                .position(|&x| x == ']')
                .ok_or("unterminated [")?;
            i += end + 1;
            out.push(Tok::Other);
        } else if ch == '$' {
            i += 1;
            if c.get(i) == Some(&'{') {
                let end = c[i..]
                    .iter()
                    .position(|&x| x == '}')
                    .ok_or("unterminated ${")?;
                i += end + 1;
            } else {
                while i < c.len() && ident(c[i]) {
                    i += 1;
                }
            }
            out.push(Tok::Other);
        } else if ch.is_ascii_digit()
            || (ch == '.' && c.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.' || c[i] == '_') {
                i += 1;
            }
            out.push(Tok::Other);
        } else if ident(ch) {
            let start = i;
            while i < c.len() && ident(c[i]) {
                i += 1;
            }
            out.push(Tok::Ident(c[start..i].iter().collect()));
        } else {
            out.push(Tok::Punct(ch));
            i += 1;
        }
    }
    Ok(out)
}

/// Keywords after which a parenthesised list of label names follows.
const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
/// Aggregation operators (they may be followed by `by`/`without` rather than `(`).
const AGGREGATIONS: [&str; 14] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
/// Other words that are no metric.
const KEYWORDS: [&str; 12] = [
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
    "inf",
    "nan",
    "by",
    "without",
    "group_left",
    "group_right",
];

/// The metric selectors and grouping labels of a PromQL expression. A word is a metric unless
/// it is a keyword, an aggregation, a function (followed by `(`), or a label (inside `{}` or a
/// grouping list).
fn parse(expr: &str) -> Result<Parsed, String> {
    let toks = lex(expr)?;
    let mut p = Parsed::default();
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Ident(word) => {
                let lower = word.to_ascii_lowercase();
                let next = toks.get(i + 1);
                if GROUPING.contains(&lower.as_str()) && next == Some(&Tok::Punct('(')) {
                    i += 2;
                    loop {
                        match toks.get(i) {
                            None => return Err(format!("unclosed `{word} (`")),
                            Some(Tok::Punct(')')) => break,
                            Some(Tok::Ident(l)) => p.grouping.push(l.clone()),
                            Some(Tok::Punct(',')) => {}
                            Some(t) => return Err(format!("{t:?} in `{word} (...)`")),
                        }
                        i += 1;
                    }
                    i += 1;
                } else if next == Some(&Tok::Punct('('))
                    || KEYWORDS.contains(&lower.as_str())
                    || AGGREGATIONS.contains(&lower.as_str())
                {
                    i += 1;
                } else {
                    let mut matchers = Vec::new();
                    i += 1;
                    if toks.get(i) == Some(&Tok::Punct('{')) {
                        i = matchers_of(&toks, i + 1, &mut matchers)?;
                    }
                    p.selectors.push((word.clone(), matchers));
                }
            }
            Tok::Punct('{') => {
                let mut matchers = Vec::new();
                i = matchers_of(&toks, i + 1, &mut matchers)?;
                p.selectors.push((String::new(), matchers));
            }
            _ => i += 1,
        }
    }
    Ok(p)
}

/// Reads `label op "value", ...}` from `i`; the index after the `}`.
fn matchers_of(
    toks: &[Tok],
    mut i: usize,
    out: &mut Vec<(String, String, String)>,
) -> Result<usize, String> {
    loop {
        match toks.get(i) {
            None => return Err("unclosed {".into()),
            Some(Tok::Punct('}')) => return Ok(i + 1),
            Some(Tok::Punct(',')) => i += 1,
            Some(Tok::Ident(label)) => {
                let mut op = String::new();
                i += 1;
                while let Some(Tok::Punct(c @ ('=' | '!' | '~'))) = toks.get(i) {
                    op.push(*c);
                    i += 1;
                }
                let Some(Tok::Str(value)) = toks.get(i) else {
                    return Err(format!("matcher {label}{op} without a quoted value"));
                };
                out.push((label.clone(), op, value.clone()));
                i += 1;
            }
            Some(t) => return Err(format!("{t:?} in a label matcher")),
        }
    }
}

#[test]
fn the_query_reader_finds_metrics_and_labels_but_not_functions_or_keywords() {
    let p = parse(
        "sum by (instance, group) (increase(ipmpd_failovers_total{cause!~\"a|b\",group=~\"$group\"}[$__rate_interval])) > 3 \
         and on (instance) ipmpd:x:y or vector(0) unless ignoring(job) up{job=~\".*ipmpd.*\"} offset 5m",
    )
    .unwrap();
    let names: Vec<&str> = p.selectors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ipmpd_failovers_total", "ipmpd:x:y", "up"]);
    assert_eq!(
        p.selectors[0].1,
        [("cause", "!~", "a|b"), ("group", "=~", "$group")].map(|(l, o, v)| (
            l.to_owned(),
            o.to_owned(),
            v.to_owned()
        ))
    );
    assert_eq!(p.grouping, ["instance", "group", "instance", "job"]);
    assert_eq!(
        variable_query(
            "label_values(ipmpd_interface_state{instance=~\"$i\",group=~\"$g\"}, interface)"
        ),
        Some((
            "ipmpd_interface_state{instance=~\"$i\",group=~\"$g\"}".into(),
            Some("interface".into())
        ))
    );
    let yaml = "  - alert: A\n    expr: >-\n      x > 1\n      unless y\n    for: 1m\n  - record: r\n    expr: 'z{a=\"b\"}'\n";
    assert_eq!(
        yaml_values(yaml, "expr"),
        [
            (2, "x > 1\nunless y".to_owned()),
            (7, "z{a=\"b\"}".to_owned())
        ]
    );
}
