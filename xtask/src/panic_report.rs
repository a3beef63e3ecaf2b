//! The reason a failed test gives, taken from its standard error as it goes by: the `panicked at`
//! line and the message under it. The suite's summary repeats it beside the test's name, so the
//! tail of a long log (all a CI page may keep) says why a test failed, not only that it did.

/// Most message lines kept after `panicked at` (a timing assertion appends the daemon's last 40
/// lines; the first few say what went wrong).
const MAX_LINES: usize = 6;
/// Most characters kept in all.
const MAX_CHARS: usize = 700;

/// The last panic seen in a test's standard error.
#[derive(Debug, Default)]
pub struct PanicReport {
    lines: Vec<String>,
    /// Still inside the panic's message (it ends at the `note:` line, a backtrace or the limit).
    open: bool,
}

impl PanicReport {
    /// Takes one line of standard error.
    pub fn see(&mut self, line: &str) {
        // `thread 'NAME' panicked at FILE:LINE:COL:`, or `thread 'NAME' (TID) panicked at ...`.
        if line.starts_with("thread '") && line.contains(" panicked at ") {
            self.lines = vec![line.trim().to_owned()];
            self.open = true;
            return;
        }
        if !self.open {
            return;
        }
        let line = line.trim();
        if line.starts_with("note: ") || line.starts_with("stack backtrace:") {
            self.open = false;
        } else if !line.is_empty() {
            self.lines.push(line.to_owned());
            self.open = self.lines.len() <= MAX_LINES;
        }
    }

    /// The panic on one line (empty when none was seen), at most [`MAX_CHARS`] characters.
    #[must_use]
    pub fn text(&self) -> String {
        let joined = self.lines.join(" | ");
        match joined.char_indices().nth(MAX_CHARS) {
            Some((cut, _)) => format!("{}...", &joined[..cut]),
            None => joined,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(stderr: &str) -> String {
        let mut r = PanicReport::default();
        stderr.lines().for_each(|l| r.see(l));
        r.text()
    }

    #[test]
    fn the_panic_line_and_its_message_are_kept_and_the_note_is_not() {
        let stderr = "ipmpd: INFO probing\n\
                      thread 'main' (208) panicked at tests/tests/daemon_run.rs:905:5:\n\
                      silent fault: failed after 412 ms; limit 300 ms\n\
                      \n\
                      note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n\
                      ipmpd: INFO stopping\n";
        assert_eq!(
            report(stderr),
            "thread 'main' (208) panicked at tests/tests/daemon_run.rs:905:5: | silent fault: failed \
             after 412 ms; limit 300 ms"
        );
    }

    #[test]
    fn a_long_message_is_cut_in_lines_and_characters() {
        let many: String = (0..50).map(|i| format!("line {i}\n")).collect();
        let text = report(&format!("thread 'main' panicked at a.rs:1:1:\n{many}"));
        assert!(
            text.contains("line 5") && !text.contains("line 6"),
            "{text}"
        );
        let wide = format!("{}\n", "é".repeat(400));
        let text = report(&format!(
            "thread 'main' panicked at a.rs:1:1:\n{wide}{wide}"
        ));
        assert_eq!(text.chars().count(), MAX_CHARS + 3, "{text}");
        assert!(text.ends_with("..."), "{text}");
    }

    #[test]
    fn the_last_panic_is_the_one_reported_and_no_panic_reports_nothing() {
        assert_eq!(report("all fine\nnote: nothing\n"), "");
        let two = "thread 'a' panicked at x.rs:1:1:\nfirst\n\
                   thread 'main' panicked at y.rs:2:2:\nsecond\n";
        assert_eq!(report(two), "thread 'main' panicked at y.rs:2:2: | second");
    }
}
