//! A small deterministic generator for probe jitter: the engine must replay exactly in tests.

/// xorshift64*: plenty for spreading probe times, seeded by the caller.
#[derive(Clone, Debug)]
pub struct Jitter(u64);

impl Jitter {
    /// A generator from `seed` (0 is replaced: xorshift needs a non-zero state).
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next value in [0, 1).
    pub fn next_unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A value in [lo, hi).
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + ((hi - lo) as f64 * self.next_unit()) as u64
    }
}
