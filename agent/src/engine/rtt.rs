//! The round-trip estimator in.mpathd uses (Jacobson/Karels, SIGCOMM '88), in nanoseconds.
//!
//! `sa` holds 8 × the smoothed mean, `sv` 4 × the mean deviation; CRTT = sa/8 + sv, i.e. the mean
//! plus four mean deviations. ipmpstat's RTTAVG is sa/8 and RTTDEV sv/4.

/// Smoothed RTT of one target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RttEstimator {
    sa: i64,
    sv: i64,
    valid: bool,
}

impl RttEstimator {
    /// Folds in one sample of `m` ns.
    pub fn sample(&mut self, m: u64) {
        let m = i64::try_from(m).unwrap_or(i64::MAX);
        if self.valid {
            let err = m - self.sa / 8;
            self.sa = (self.sa + err).max(0);
            self.sv += err.abs() - self.sv / 4;
        } else {
            self.sa = m.saturating_mul(8);
            self.sv = m.saturating_mul(2);
            self.valid = true;
        }
    }

    /// What CRTT would be after sampling `m`, without changing anything.
    #[must_use]
    pub fn crtt_with(&self, m: u64) -> u64 {
        let mut copy = *self;
        copy.sample(m);
        copy.crtt_ns()
    }

    /// Mean plus four mean deviations; 0 before the first sample.
    #[must_use]
    pub fn crtt_ns(&self) -> u64 {
        if self.valid {
            u64::try_from(self.sa / 8 + self.sv).unwrap_or(0)
        } else {
            0
        }
    }

    /// Smoothed mean (ipmpstat RTTAVG).
    #[must_use]
    pub fn avg_ns(&self) -> u64 {
        u64::try_from(self.sa / 8).unwrap_or(0)
    }

    /// Mean deviation (ipmpstat RTTDEV).
    #[must_use]
    pub fn dev_ns(&self) -> u64 {
        u64::try_from(self.sv / 4).unwrap_or(0)
    }

    /// Whether any sample was taken.
    #[must_use]
    pub fn is_valid(&self) -> bool {
        self.valid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_gives_three_times_the_sample() {
        let mut r = RttEstimator::default();
        assert_eq!(r.crtt_ns(), 0);
        r.sample(1000);
        assert_eq!((r.avg_ns(), r.dev_ns(), r.crtt_ns()), (1000, 500, 3000));
    }

    #[test]
    fn steady_samples_converge_to_the_mean() {
        let mut r = RttEstimator::default();
        for _ in 0..200 {
            r.sample(1000);
        }
        assert_eq!(r.avg_ns(), 1000);
        assert!(r.crtt_ns() < 1010, "deviation decays: {}", r.crtt_ns());
    }

    #[test]
    fn a_jump_raises_crtt_by_deviation() {
        let mut r = RttEstimator::default();
        for _ in 0..50 {
            r.sample(1000);
        }
        let before = r.crtt_ns();
        assert!(
            r.crtt_with(9000) > before + 8000 / 8,
            "err/8 on the mean plus |err| on the deviation"
        );
        assert_eq!(
            r.crtt_ns(),
            before,
            "crtt_with does not change the estimator"
        );
    }
}
