//! Configuration: `/etc/default/mpathd` (in.mpathd's exact semantics and messages) and the group file.

mod checks;
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
    /// A warning: the value was replaced by the nearest one allowed (in.mpathd's way with
    /// `/etc/default/mpathd`); anything else in the group file refuses it.
    pub warning: bool,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}{}:{}: {} ({})",
            if self.warning { "warning: " } else { "" },
            self.path.display(),
            self.line,
            self.message,
            self.fix
        )
    }
}

/// Reads `path` as text. A line that is not UTF-8 is a problem of its own (its bytes replaced):
/// one bad byte must not make the whole file vanish (`FAILBACK=no` silently becoming yes).
fn read_text(path: &Path, problems: &mut Vec<Problem>) -> std::io::Result<String> {
    let bytes = std::fs::read(path)?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(e) => {
            let bytes = e.into_bytes();
            for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
                if std::str::from_utf8(line).is_err() {
                    problems.push(Problem {
                        path: path.into(),
                        line: i + 1,
                        message: "not valid UTF-8; read with the bad bytes replaced".into(),
                        fix: "write the file in UTF-8 (or ASCII)".into(),
                        warning: false,
                    });
                }
            }
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        }
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
    let defaults = match read_text(defaults_path, &mut problems) {
        Ok(text) => {
            let (d, p) = mpathd_defaults::parse(&text);
            problems.extend(p.into_iter().map(|p| Problem {
                path: defaults_path.into(),
                line: p.line,
                message: p.message,
                fix: p.fix.into(),
                warning: true,
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
                warning: true,
            });
            mpathd_defaults::MpathdDefaults::default()
        }
    };
    let groups = match read_text(group_path, &mut problems) {
        Ok(text) => {
            let (g, p) = group_file::parse(&text);
            problems.extend(p.into_iter().map(|p| Problem {
                path: group_path.into(),
                line: p.line,
                message: p.message,
                fix: p.fix,
                warning: p.warning,
            }));
            g
        }
        Err(e) => {
            problems.push(Problem {
                path: group_path.into(),
                line: 0,
                message: format!("cannot read the group file: {e}"),
                fix: "create it (see the example in the README) or pass --config PATH".into(),
                warning: false,
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
