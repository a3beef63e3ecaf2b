//! Configuration: `/etc/default/mpathd` (in.mpathd's exact semantics and messages) and the group file.

pub mod group_file;
pub mod mpathd_defaults;

use std::path::{Path, PathBuf};

/// Default path of in.mpathd's defaults file.
pub const DEFAULTS_PATH: &str = "/etc/default/mpathd";
/// Default path of the group file.
pub const GROUP_FILE_PATH: &str = "/etc/ipmpd/ipmpd.toml";

/// A problem in one of the files, ready to print as `path:line: message (fix)`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub path: PathBuf,
    pub line: usize,
    pub message: String,
    pub fix: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {} ({})",
            self.path.display(),
            self.line,
            self.message,
            self.fix
        )
    }
}

/// Both files, with every problem found.
#[derive(Clone, Debug)]
pub struct Config {
    pub defaults: mpathd_defaults::MpathdDefaults,
    pub groups: group_file::GroupFile,
    pub problems: Vec<Problem>,
}

/// Reads both files. A missing defaults file means in.mpathd's defaults; a missing or unreadable
/// group file is a problem (nothing to track).
#[must_use]
pub fn load(defaults_path: &Path, group_path: &Path) -> Config {
    let mut problems = Vec::new();
    let defaults = match std::fs::read_to_string(defaults_path) {
        Ok(text) => {
            let (d, p) = mpathd_defaults::parse(&text);
            problems.extend(p.into_iter().map(|p| Problem {
                path: defaults_path.into(),
                line: p.line,
                message: p.message,
                fix: p.fix.into(),
            }));
            d
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            mpathd_defaults::MpathdDefaults::default()
        }
        Err(e) => {
            problems.push(Problem {
                path: defaults_path.into(),
                line: 0,
                message: format!("cannot read: {e}"),
                fix: "make the file readable by ipmpd, or remove it to use the defaults".into(),
            });
            mpathd_defaults::MpathdDefaults::default()
        }
    };
    let groups = match std::fs::read_to_string(group_path) {
        Ok(text) => {
            let (g, p) = group_file::parse(&text);
            problems.extend(p.into_iter().map(|p| Problem {
                path: group_path.into(),
                line: p.line,
                message: p.message,
                fix: p.fix,
            }));
            g
        }
        Err(e) => {
            problems.push(Problem {
                path: group_path.into(),
                line: 0,
                message: format!("cannot read the group file: {e}"),
                fix: "create it (see the example in the README) or pass --config PATH".into(),
            });
            group_file::GroupFile::default()
        }
    };
    Config {
        defaults,
        groups,
        problems,
    }
}
