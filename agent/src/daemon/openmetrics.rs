//! A writer of the OpenMetrics text format, straight into one `String`. The exposition used to
//! build a prometheus-client registry of every series (some 20,000 at 1,024 members: a label map
//! and an atomic per series) and then walk it; writing each row as it is read from the copied
//! state allocates little beyond the text itself. The output has the lines prometheus-client 0.25
//! wrote (help text ending in a full stop, counters named `_total`, floats by `dtoa`, label
//! values escaped, nothing for a family without samples), with the rows of a family in the order
//! they are given rather than a hash map's.

use std::fmt::Write as _;

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

/// A sample's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Self::Int(n)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Self::Int(u64::from(b))
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Self::Float(x)
    }
}

/// An exposition being written.
#[derive(Debug)]
pub struct Text {
    prefix: &'static str,
    out: String,
}

/// One family's rows. Its `# HELP` and `# TYPE` lines are written with its first sample: a
/// family without samples writes nothing, as prometheus-client did.
#[derive(Debug)]
pub struct Family<'a> {
    out: &'a mut String,
    /// The family's name, prefix included.
    name: String,
    help: &'a str,
    kind: Kind,
    started: bool,
}

impl Text {
    /// An empty exposition whose metric names start with `prefix_`; `capacity` is a guess at its
    /// length, to grow the text once.
    #[must_use]
    pub fn new(prefix: &'static str, capacity: usize) -> Self {
        Self {
            prefix,
            out: String::with_capacity(capacity),
        }
    }

    /// Starts a family: its help (a full stop is added) and type.
    pub fn family<'a>(&'a mut self, name: &str, help: &'a str, kind: Kind) -> Family<'a> {
        Family {
            name: format!("{}_{name}", self.prefix),
            out: &mut self.out,
            help,
            kind,
            started: false,
        }
    }

    /// The text, ended with OpenMetrics' `# EOF`.
    #[must_use]
    pub fn finish(mut self) -> String {
        self.out.push_str("# EOF\n");
        self.out
    }
}

impl Family<'_> {
    /// One sample: `name{k="v",...} value`.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl Into<Value>) {
        let (type_name, suffix) = match self.kind {
            Kind::Gauge => ("gauge", ""),
            Kind::Counter => ("counter", "_total"),
        };
        if !self.started {
            self.started = true;
            let _ = writeln!(self.out, "# HELP {} {}.", self.name, self.help);
            let _ = writeln!(self.out, "# TYPE {} {type_name}", self.name);
        }
        self.out.push_str(&self.name);
        self.out.push_str(suffix);
        for (i, (key, v)) in labels.iter().enumerate() {
            self.out.push(if i == 0 { '{' } else { ',' });
            self.out.push_str(key);
            self.out.push_str("=\"");
            push_escaped(self.out, v);
            self.out.push('"');
        }
        if !labels.is_empty() {
            self.out.push('}');
        }
        self.out.push(' ');
        match value.into() {
            Value::Int(n) => self.out.push_str(itoa::Buffer::new().format(n)),
            Value::Float(x) => self.out.push_str(dtoa::Buffer::new().format(x)),
        }
        self.out.push('\n');
    }

    /// Samples that are 1 for the current one of `values` under `key` and 0 for the others,
    /// each with the labels of `base` first (at most two).
    pub fn one_hot(&mut self, base: &[(&str, &str)], key: &str, values: &[&str], current: &str) {
        debug_assert!(base.len() <= 2, "one_hot takes at most two base labels");
        let mut labels = [("", ""); 3];
        let n = base.len().min(2);
        labels[..n].copy_from_slice(&base[..n]);
        for v in values {
            labels[n] = (key, v);
            self.sample(&labels[..=n], *v == current);
        }
    }
}

/// A label value with `\`, `"` and newline escaped, as the format asks.
fn push_escaped(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escaping_follow_the_format() {
        let mut text = Text::new("p", 0);
        let mut f = text.family("up", "Whether it is up", Kind::Gauge);
        f.sample(&[], true);
        f.sample(&[("a", "x\"y\\z\nw")], 0.25);
        let mut f = text.family("sent", "Sent", Kind::Counter);
        f.sample(&[("i", "e0"), ("r", "magic")], 7_u64);
        f.one_hot(&[("i", "e0")], "state", &["ok", "failed"], "failed");
        text.family("none", "Nothing", Kind::Counter);
        assert_eq!(
            text.finish(),
            "# HELP p_up Whether it is up.\n# TYPE p_up gauge\np_up 1\n\
             p_up{a=\"x\\\"y\\\\z\\nw\"} 0.25\n\
             # HELP p_sent Sent.\n# TYPE p_sent counter\np_sent_total{i=\"e0\",r=\"magic\"} 7\n\
             p_sent_total{i=\"e0\",state=\"ok\"} 0\np_sent_total{i=\"e0\",state=\"failed\"} 1\n\
             # EOF\n"
        );
    }

    #[test]
    fn floats_are_written_as_prometheus_client_wrote_them() {
        let mut text = Text::new("p", 0);
        let mut f = text.family("x", "X", Kind::Gauge);
        for x in [0.0, 10.0, 0.0015, 1e-7, 123_456.789] {
            f.sample(&[], x);
        }
        let body: Vec<_> = text
            .finish()
            .lines()
            .skip(2)
            .take(5)
            .map(str::to_owned)
            .collect();
        assert_eq!(
            body,
            [
                "p_x 0.0",
                "p_x 10.0",
                "p_x 0.0015",
                "p_x 1e-7",
                "p_x 123456.789"
            ]
        );
    }
}
