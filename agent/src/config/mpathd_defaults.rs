//! `/etc/default/mpathd`, parsed the way in.mpathd's `defopen`/`defread` and `strtol` do.
//!
//! Keys match case-insensitively at the start of a line (`NAME=`); the first matching line wins;
//! surrounding double quotes are stripped. Bad values are reported with in.mpathd's own words and
//! the default is kept: a bad file never stops the daemon.

/// in.mpathd's `FAILURE_DETECTION_TIME` default (ms).
pub const DEFAULT_FDT_MS: u64 = 10_000;
/// in.mpathd's `MIN_FAILURE_DETECTION_TIME` (ms).
pub const MIN_FDT_MS: u64 = 100;
/// The longest FDT ipmpd takes (ms): in.mpathd has no maximum, but times are kept in
/// nanoseconds, and ten minutes is far beyond any use.
pub const MAX_FDT_MS: u64 = 600_000;

/// The three variables in.mpathd reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MpathdDefaults {
    /// Probe-based failure detection time in milliseconds.
    pub failure_detection_time_ms: u64,
    /// Whether a repaired interface becomes active again.
    pub failback: bool,
    /// Whether only interfaces in a named group are tracked.
    pub track_interfaces_only_with_groups: bool,
}

impl Default for MpathdDefaults {
    fn default() -> Self {
        Self {
            failure_detection_time_ms: DEFAULT_FDT_MS,
            failback: true,
            track_interfaces_only_with_groups: true,
        }
    }
}

/// A complaint about the file: in.mpathd's message, where it came from and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultsProblem {
    /// 1-based line of the offending value.
    pub line: usize,
    /// in.mpathd's message, word for word.
    pub message: String,
    /// What the operator can do.
    pub fix: &'static str,
}

/// The first line starting with `key=` (case-insensitive), its 1-based number and its value.
fn defread<'a>(text: &'a str, key: &str) -> Option<(usize, &'a str)> {
    text.lines().enumerate().find_map(|(i, line)| {
        // Bytes, not characters: a multi-byte character where the key would end is no key (and
        // no reason to panic).
        let head = line.as_bytes().get(..=key.len())?;
        if head[..key.len()].eq_ignore_ascii_case(key.as_bytes()) && head[key.len()] == b'=' {
            let v = line.get(key.len() + 1..)?;
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            Some((i + 1, v))
        } else {
            None
        }
    })
}

/// C's `strtol(s, NULL, 0)`: leading blanks, a sign, `0x` hex / `0` octal / decimal, stopping at
/// the first character that does not fit; 0 when nothing parses; saturates like LONG_MAX/LONG_MIN.
#[must_use]
pub fn strtol(s: &str) -> i64 {
    let s = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = if let Some(rest) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))
    {
        if rest.chars().next().is_some_and(|c| c.is_ascii_hexdigit()) {
            (16, rest)
        } else {
            (10, "0")
        }
    } else if s.starts_with('0') {
        (8, s)
    } else {
        (10, s)
    };
    let mut value: i64 = 0;
    for c in digits.chars() {
        let Some(d) = c.to_digit(radix) else { break };
        value = value
            .saturating_mul(i64::from(radix))
            .saturating_add(i64::from(d));
    }
    if neg { value.saturating_neg() } else { value }
}

fn yes_no(text: &str, key: &str, default: bool, problems: &mut Vec<DefaultsProblem>) -> bool {
    match defread(text, key) {
        None => default,
        Some((_, v)) if v.eq_ignore_ascii_case("yes") => true,
        Some((_, v)) if v.eq_ignore_ascii_case("no") => false,
        Some((line, v)) => {
            problems.push(DefaultsProblem {
                line,
                message: format!("Invalid value for {key} {v}"),
                fix: "use yes or no",
            });
            default
        }
    }
}

/// Parses the file's text; problems come back beside the values actually used.
#[must_use]
pub fn parse(text: &str) -> (MpathdDefaults, Vec<DefaultsProblem>) {
    let mut problems = Vec::new();
    let mut d = MpathdDefaults::default();
    if let Some((line, v)) = defread(text, "FAILURE_DETECTION_TIME") {
        let n = strtol(v);
        if n <= 0 {
            problems.push(DefaultsProblem {
                line,
                message: format!(
                    "Invalid failure detection time {v}, assuming default of {DEFAULT_FDT_MS} ms"
                ),
                fix: "set FAILURE_DETECTION_TIME to a whole number of milliseconds, 100 or more",
            });
        } else if n.unsigned_abs() > MAX_FDT_MS {
            problems.push(DefaultsProblem {
                line,
                message: format!(
                    "Too large failure detection time of {v}, assuming maximum of {MAX_FDT_MS} ms"
                ),
                fix: "use 600000 ms (10 minutes) or less",
            });
            d.failure_detection_time_ms = MAX_FDT_MS;
        } else if (n as u64) < MIN_FDT_MS {
            problems.push(DefaultsProblem {
                line,
                message: format!("Too small failure detection time of {v}, assuming minimum of {MIN_FDT_MS} ms"),
                fix: "use 100 ms or more here; a group in the group file may set its own FDT down to 10 ms",
            });
            d.failure_detection_time_ms = MIN_FDT_MS;
        } else {
            d.failure_detection_time_ms = n as u64;
        }
    }
    d.failback = yes_no(text, "FAILBACK", true, &mut problems);
    d.track_interfaces_only_with_groups = yes_no(
        text,
        "TRACK_INTERFACES_ONLY_WITH_GROUPS",
        true,
        &mut problems,
    );
    (d, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file() {
        let text = "#\n# Time taken by mpathd to detect a NIC failure in ms.\n#\nFAILURE_DETECTION_TIME=10000\n\
                    #\nFAILBACK=yes\n#\nTRACK_INTERFACES_ONLY_WITH_GROUPS=yes\n";
        assert_eq!(parse(text), (MpathdDefaults::default(), vec![]));
    }

    #[test]
    fn missing_file_content_means_defaults() {
        assert_eq!(parse(""), (MpathdDefaults::default(), vec![]));
    }

    #[test]
    fn keys_are_case_insensitive_and_the_first_line_wins() {
        let (d, p) =
            parse("failure_detection_time=2000\nFAILURE_DETECTION_TIME=3000\nFailBack=NO\n");
        assert_eq!(d.failure_detection_time_ms, 2000);
        assert!(!d.failback);
        assert!(p.is_empty());
    }

    #[test]
    fn strtol_semantics() {
        assert_eq!(strtol("10000ms"), 10000, "trailing garbage ignored");
        assert_eq!(strtol("abc"), 0);
        assert_eq!(strtol("0x1f4"), 500);
        assert_eq!(strtol("0764"), 500, "octal");
        assert_eq!(strtol("  -5"), -5);
        assert_eq!(strtol("+250"), 250);
        assert_eq!(strtol("0x"), 0);
        assert_eq!(strtol("99999999999999999999999"), i64::MAX);
        assert_eq!(strtol(""), 0);
    }

    #[test]
    fn fdt_hex_and_trailing_garbage() {
        assert_eq!(
            parse("FAILURE_DETECTION_TIME=0x1f4\n")
                .0
                .failure_detection_time_ms,
            500
        );
        assert_eq!(
            parse("FAILURE_DETECTION_TIME=\"2500ms\"\n")
                .0
                .failure_detection_time_ms,
            2500
        );
    }

    #[test]
    fn too_small_fdt_uses_the_minimum_with_in_mpathds_message() {
        let (d, p) = parse("FAILURE_DETECTION_TIME=50\n");
        assert_eq!(d.failure_detection_time_ms, 100);
        assert_eq!(
            p[0].message,
            "Too small failure detection time of 50, assuming minimum of 100 ms"
        );
        assert_eq!(p[0].line, 1);
    }

    #[test]
    fn invalid_fdt_keeps_the_default() {
        for bad in ["0", "abc", "-7", ""] {
            let (d, p) = parse(&format!("# c\nFAILURE_DETECTION_TIME={bad}\n"));
            assert_eq!(d.failure_detection_time_ms, 10_000, "{bad}");
            assert_eq!(
                p[0].message,
                format!("Invalid failure detection time {bad}, assuming default of 10000 ms")
            );
            assert_eq!(p[0].line, 2);
        }
    }

    #[test]
    fn invalid_booleans_keep_yes() {
        let (d, p) = parse("FAILBACK=maybe\nTRACK_INTERFACES_ONLY_WITH_GROUPS=1\n");
        assert!(d.failback && d.track_interfaces_only_with_groups);
        assert_eq!(p[0].message, "Invalid value for FAILBACK maybe");
        assert_eq!(
            p[1].message,
            "Invalid value for TRACK_INTERFACES_ONLY_WITH_GROUPS 1"
        );
        assert_eq!((p[0].line, p[1].line), (1, 2));
    }

    #[test]
    fn multi_byte_characters_where_a_key_would_end_are_no_key_and_no_panic() {
        for text in [
            "# 12345é\n",
            "FAILBACKé=no\n",
            "FAILBACK\u{e9}\n",
            "é",
            "FAILURE_DETECTION_TIME=2000é\n",
        ] {
            let (d, _) = parse(text);
            assert!(d.failback, "{text:?}");
        }
        assert_eq!(
            parse("FAILURE_DETECTION_TIME=2000é\n")
                .0
                .failure_detection_time_ms,
            2000
        );
    }

    #[test]
    fn a_huge_fdt_is_capped_with_a_message() {
        let (d, p) = parse("FAILURE_DETECTION_TIME=99999999999999999999\n");
        assert_eq!(d.failure_detection_time_ms, MAX_FDT_MS);
        assert!(p[0].message.starts_with("Too large failure detection time"));
        assert_eq!(
            d.failure_detection_time_ms
                .checked_mul(1_000_000)
                .map(|_| ()),
            Some(())
        );
    }

    #[test]
    fn indented_or_commented_keys_do_not_count() {
        let (d, _) = parse("  FAILBACK=no\n#FAILBACK=no\nFAILBACKX=no\n");
        assert!(d.failback);
    }
}
