//! Summaries of RTT samples: min, median, p99, max.

use serde::Serialize;

/// Order statistics of a set of durations in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub count: usize,
    pub min_ns: u64,
    pub median_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

impl Summary {
    /// Summarises `samples` (nearest-rank percentiles); `None` when there are none.
    #[must_use]
    pub fn of(samples: &[u64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_unstable();
        Some(Self {
            count: s.len(),
            min_ns: s[0],
            median_ns: percentile(&s, 50.0),
            p99_ns: percentile(&s, 99.0),
            max_ns: s[s.len() - 1],
        })
    }
}

/// Nearest-rank percentile of sorted, non-empty `sorted`.
#[must_use]
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Nanoseconds as milliseconds with three decimals.
#[must_use]
pub fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        let s = Summary::of(&v).unwrap();
        assert_eq!(
            (s.min_ns, s.median_ns, s.p99_ns, s.max_ns, s.count),
            (1, 50, 99, 100, 100)
        );
        assert_eq!(Summary::of(&[5]).unwrap().p99_ns, 5);
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[3, 1, 2]).unwrap().median_ns, 2);
    }
}
