//! The targets a full run checks, gathered from the sections that measure them into one table at
//! the top of BENCHMARKS.md: what was measured, the target, met or missed, and a peer's figure
//! where the target names one. Sections add rows as they go; nothing here measures.

use std::fmt::Write as _;

/// One checked target.
struct Row {
    measure: String,
    value: String,
    target: String,
    met: bool,
    beside: String,
}

/// The targets of one run, in the order the sections checked them.
#[derive(Default)]
pub struct Targets {
    rows: Vec<Row>,
}

/// "met" or a bold "missed", as every table of BENCHMARKS.md says it.
#[must_use]
pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

impl Targets {
    /// Records a target; returns the "target: verdict" text for the section's own table.
    pub fn row(&mut self, measure: &str, value: String, target: &str, met: bool) -> String {
        self.row_beside(measure, value, target, met, String::new())
    }

    /// [`Targets::row`] with a peer's figure for the same measure (bfdd where the target names it).
    pub fn row_beside(
        &mut self,
        measure: &str,
        value: String,
        target: &str,
        met: bool,
        beside: String,
    ) -> String {
        self.rows.push(Row {
            measure: measure.to_owned(),
            value,
            target: target.to_owned(),
            met,
            beside,
        });
        format!("{target}: {}", verdict(met))
    }

    /// The table, or nothing when no section checked a target.
    #[must_use]
    pub fn markdown(&self) -> String {
        if self.rows.is_empty() {
            return String::new();
        }
        let mut md = String::from(
            "## Targets\n\nEvery target this run checked, from the sections below; \"beside\" is a peer's figure\n\
             measured in the same run.\n\n| measure | this run | target | verdict | beside |\n|---|---|---|---|---|\n",
        );
        for r in &self.rows {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                r.measure,
                r.value,
                r.target,
                verdict(r.met),
                r.beside
            );
        }
        let met = self.rows.iter().filter(|r| r.met).count();
        let _ = writeln!(md, "\n{met} of {} met.\n", self.rows.len());
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_keep_their_order_and_the_count_of_met_targets_is_said() {
        let mut t = Targets::default();
        assert_eq!(t.markdown(), "");
        assert_eq!(t.row("start", "1.2 s".into(), "< 2 s", true), "< 2 s: met");
        assert_eq!(
            t.row_beside("p99", "12 ms".into(), "≤ 10 ms", false, "bfdd 30 ms".into()),
            "≤ 10 ms: **missed**"
        );
        let md = t.markdown();
        let start = md.find("| start | 1.2 s | < 2 s | met |  |").unwrap();
        let p99 = md
            .find("| p99 | 12 ms | ≤ 10 ms | **missed** | bfdd 30 ms |")
            .unwrap();
        assert!(start < p99);
        assert!(md.contains("1 of 2 met."));
    }
}
