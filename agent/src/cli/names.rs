//! The binary's other names: installed as `ipmpstat` and `if_mpadm` (links to `ipmpd`), it takes
//! those tools' arguments. Kept in the library so completions and the man-page check see the same
//! parsers the binary uses.

use clap::{CommandFactory as _, Parser};

/// `ipmpstat`: `ipmpd stat` under in.mpathd's name.
#[derive(Debug, Parser)]
#[command(name = "ipmpstat", version, about = "IP multipathing status (ipmpd)")]
pub struct Ipmpstat {
    #[command(flatten)]
    pub args: super::stat::StatArgs,
}

/// `if_mpadm -d IF` / `if_mpadm -r IF`: `ipmpd offline` / `ipmpd online`.
#[derive(Debug, Parser)]
#[command(
    name = "if_mpadm",
    version,
    about = "Offline (-d) or online (-r) an interface of an IPMP group (ipmpd)"
)]
pub struct IfMpadm {
    /// Offline the interface.
    #[arg(
        short = 'd',
        value_name = "IF",
        conflicts_with = "online",
        required_unless_present = "online"
    )]
    pub offline: Option<String>,
    /// Online the interface.
    #[arg(short = 'r', value_name = "IF")]
    pub online: Option<String>,
    #[command(flatten)]
    pub target: super::admin::Target,
}

impl IfMpadm {
    /// The interface and whether it goes offline (`-d`, true) or online (`-r`); clap requires
    /// one of them.
    #[must_use]
    pub fn request(self) -> Option<(super::admin::AdminArgs, bool)> {
        let offline = self.offline.is_some();
        let interface = self.offline.or(self.online)?;
        let args = super::admin::AdminArgs {
            interface,
            target: self.target,
        };
        Some((args, offline))
    }
}

/// The names the binary answers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Program {
    #[value(name = "ipmpd")]
    Ipmpd,
    #[value(name = "ipmpstat")]
    Ipmpstat,
    #[value(name = "if_mpadm")]
    IfMpadm,
}

impl Program {
    /// The program `argv[0]` names, when it is one of the other names.
    #[must_use]
    pub fn from_argv0(argv0: &std::ffi::OsStr) -> Option<Self> {
        match std::path::Path::new(argv0).file_name()?.to_str()? {
            "ipmpstat" => Some(Self::Ipmpstat),
            "if_mpadm" => Some(Self::IfMpadm),
            _ => None,
        }
    }

    /// Its name as installed.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Ipmpd => "ipmpd",
            Self::Ipmpstat => "ipmpstat",
            Self::IfMpadm => "if_mpadm",
        }
    }

    /// Its command-line parser.
    #[must_use]
    pub fn command(self) -> clap::Command {
        match self {
            Self::Ipmpd => super::Cli::command(),
            Self::Ipmpstat => Ipmpstat::command(),
            Self::IfMpadm => IfMpadm::command(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The man page of `program`, as shipped.
    fn page(program: Program) -> String {
        let path = format!(
            "{}/../docs/man/man8/{}.8",
            env!("CARGO_MANIFEST_DIR"),
            program.name()
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Every option of `command` and its subcommands, as roff writes it (`\-\-long`, `\-s`).
    fn options(command: &clap::Command, prefix: &str, out: &mut Vec<(String, String)>) {
        let name = format!("{prefix}{}", command.get_name());
        for arg in command.get_arguments() {
            if arg.is_hide_set() || ["help", "version"].contains(&arg.get_id().as_str()) {
                continue;
            }
            if let Some(long) = arg.get_long() {
                out.push((name.clone(), format!("\\-\\-{}", long.replace('-', "\\-"))));
            }
            if let Some(short) = arg.get_short() {
                out.push((name.clone(), format!("\\-{short}")));
            }
        }
        for sub in command.get_subcommands() {
            if sub.is_hide_set() {
                continue;
            }
            out.push((name.clone(), sub.get_name().replace('-', "\\-")));
            options(sub, &format!("{name} "), out);
        }
    }

    /// Whether `text` has `token` as a whole word: `\\-c` inside `\\-\\-count` does not count.
    fn mentions(text: &str, token: &str) -> bool {
        text.match_indices(token).any(|(at, _)| {
            let after = text[at + token.len()..].chars().next();
            !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    }

    #[test]
    fn mentions_matches_whole_options_only() {
        assert!(mentions(r"\fB\-c\fR N", r"\-c"));
        assert!(!mentions(r"\fB\-\-count\fR", r"\-c"));
        assert!(mentions(r"[\fB\-\-count\fR]", r"\-\-count"));
        assert!(!mentions(r"\-\-countdown", r"\-\-count"));
    }

    #[test]
    fn every_option_clap_knows_is_in_its_man_page() {
        let mut missing = Vec::new();
        for program in [Program::Ipmpd, Program::Ipmpstat, Program::IfMpadm] {
            let text = page(program);
            let mut wanted = Vec::new();
            options(&program.command(), "", &mut wanted);
            assert!(!wanted.is_empty());
            for (command, option) in wanted {
                if !mentions(&text, &option) {
                    missing.push(format!(
                        "{}.8 lacks {option} of `{command}`",
                        program.name()
                    ));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "man pages drifted from clap:\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn the_other_names_are_recognised_from_any_path() {
        assert_eq!(
            Program::from_argv0("/usr/sbin/ipmpstat".as_ref()),
            Some(Program::Ipmpstat)
        );
        assert_eq!(
            Program::from_argv0("if_mpadm".as_ref()),
            Some(Program::IfMpadm)
        );
        assert_eq!(Program::from_argv0("/usr/sbin/ipmpd".as_ref()), None);
    }

    #[test]
    fn if_mpadm_takes_exactly_one_of_d_and_r() {
        let (args, offline) = IfMpadm::try_parse_from(["if_mpadm", "-d", "eth0"])
            .unwrap()
            .request()
            .unwrap();
        assert!(offline);
        assert_eq!(args.interface, "eth0");
        let (_, offline) = IfMpadm::try_parse_from(["if_mpadm", "-r", "eth0"])
            .unwrap()
            .request()
            .unwrap();
        assert!(!offline);
        assert!(IfMpadm::try_parse_from(["if_mpadm"]).is_err());
        assert!(IfMpadm::try_parse_from(["if_mpadm", "-d", "a", "-r", "b"]).is_err());
    }
}
