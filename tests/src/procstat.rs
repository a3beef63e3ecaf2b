//! Reading `/proc/PID/stat` and `/proc/PID/task/TID/stat` (proc(5)): the tests, the hostile-client
//! checks and the benchmark all need a process's CPU time or a thread's scheduling policy; and
//! each thread's `schedstat`, to the nanosecond.

/// One stat line split: the command name and the fields after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// The command (or thread) name, which may hold spaces and parentheses.
    pub name: String,
    fields: Vec<String>,
}

impl Stat {
    /// Splits a stat line. The name runs from the first '(' to the last ')', so a name with
    /// spaces or parentheses cannot shift the fields; `None` for a line without one.
    #[must_use]
    pub fn parse(line: &str) -> Option<Self> {
        let (open, close) = (line.find('(')?, line.rfind(')')?);
        let name = line.get(open + 1..close)?.to_owned();
        let fields = line[close + 1..]
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        Some(Self { name, fields })
    }

    /// Reads and splits the stat file at `path`; `None` if it is gone (the process exited).
    #[must_use]
    pub fn read(path: impl AsRef<std::path::Path>) -> Option<Self> {
        Self::parse(&std::fs::read_to_string(path).ok()?)
    }

    /// The state letter (field 3: R running, S sleeping, D waiting, ...); '?' if absent.
    #[must_use]
    pub fn state(&self) -> char {
        self.fields
            .first()
            .and_then(|f| f.chars().next())
            .unwrap_or('?')
    }

    /// Field `n` as numbered in proc(5) (1 is the pid, 2 the name, 3 the state); 0 if absent.
    #[must_use]
    pub fn field(&self, n: usize) -> u64 {
        n.checked_sub(3)
            .and_then(|i| self.fields.get(i))
            .and_then(|f| f.parse().ok())
            .unwrap_or(0)
    }

    /// The nice value (field 19, which may be negative); 0 if absent.
    #[must_use]
    pub fn nice(&self) -> i64 {
        self.fields
            .get(19 - 3)
            .and_then(|f| f.parse().ok())
            .unwrap_or(0)
    }

    /// User plus system time in clock ticks (fields 14 and 15).
    #[must_use]
    pub fn cpu_ticks(&self) -> u64 {
        self.field(14) + self.field(15)
    }
}

/// Clock ticks per second, the unit of [`Stat::cpu_ticks`].
#[must_use]
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).unwrap_or(100).max(1)
}

/// CPU time (ns) the threads of `pid` have had so far, from each thread's schedstat (nanoseconds,
/// where /proc/PID/stat counts 10 ms ticks: a window of a few seconds needs it).
pub fn threads_cpu_ns(pid: u32) -> u64 {
    threads_cpu_ns_by_name(pid).values().sum()
}

/// [`threads_cpu_ns`] per thread name (`comm`; threads of one name add up): where a process's
/// CPU goes, by thread.
pub fn threads_cpu_ns_by_name(pid: u32) -> std::collections::BTreeMap<String, u64> {
    let mut by_name = std::collections::BTreeMap::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten();
    for task in tasks {
        let Some(ns) = std::fs::read_to_string(task.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        else {
            continue;
        };
        let name = std::fs::read_to_string(task.path().join("comm"))
            .map_or_else(|_| "?".to_owned(), |c| c.trim_end().to_owned());
        *by_name.entry(name).or_insert(0) += ns;
    }
    by_name
}

#[cfg(test)]
mod tests {
    use super::Stat;

    #[test]
    fn a_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        let line = "42 (a (b) c) S 1 42 42 0 -1 4194560 10 0 0 0 7 5 0 0 20 0 3";
        let stat = Stat::parse(line).expect("a stat line");
        assert_eq!(stat.name, "a (b) c");
        assert_eq!(stat.field(3), 0, "the state is not a number");
        assert_eq!(stat.state(), 'S');
        assert_eq!(stat.field(4), 1);
        assert_eq!(stat.cpu_ticks(), 12);
        assert_eq!(stat.field(99), 0);
        assert_eq!(Stat::parse("no name"), None);
    }
}
