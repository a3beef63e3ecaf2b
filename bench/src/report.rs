//! What the sections write into BENCHMARKS.md besides their own text: a table row of
//! statistics, and the plots ([`Plots`] knows where a run writes them and how it links them).

use std::path::{Path, PathBuf};

use crate::stats::stats;

/// A `| measure | n | min | median | p99 | max | unit |` row of `v`.
pub fn row(name: &str, unit: &str, v: Vec<f64>) -> String {
    let n = v.len();
    let (a, b, c, d) = stats(v);
    format!("| {name} | {n} | {a:.3} | {b:.3} | {c:.3} | {d:.3} | {unit} |\n")
}

/// Where a run's plots go: a full run writes them under docs/bench beside BENCHMARKS.md (and
/// BENCHMARKS.md shows them); a run of one section writes them to a temporary directory (and
/// names them).
pub struct Plots {
    /// The directory the SVG files are written to.
    dir: PathBuf,
    /// A full run: the files go to docs/bench and BENCHMARKS.md links them.
    full: bool,
}

impl Plots {
    /// A full run's: under docs/bench of the workspace at `root`.
    pub fn beside_benchmarks(root: &Path) -> Self {
        Self {
            dir: root.join("docs/bench"),
            full: true,
        }
    }

    /// A run of one section's: in a temporary directory.
    pub fn scratch() -> Self {
        Self {
            dir: std::env::temp_dir().join("ipmpd-bench"),
            full: false,
        }
    }

    /// Writes plot `name` (SVG) and returns the Markdown that shows it: in a full run under
    /// docs/bench (linked from BENCHMARKS.md), else in a temporary directory (named).
    pub fn plot(&self, name: &str, alt: &str, svg: &str) -> anyhow::Result<String> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(name);
        std::fs::write(&path, svg)?;
        Ok(if self.full {
            format!("![{alt}](docs/bench/{name})\n\n")
        } else {
            format!("(plot: {})\n\n", path.display())
        })
    }
}
