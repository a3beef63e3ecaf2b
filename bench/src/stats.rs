//! The statistics every section reports: nearest-rank percentiles, (min, median, p99, max).

/// p99 of `v`, NaN when empty.
pub fn p99(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        stats(v.to_vec()).2
    }
}

/// Percentile `p` (0 to 100, nearest rank) of `sorted`, which must not be empty.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// (min, median, p99, max) of `v`.
pub fn stats(mut v: Vec<f64>) -> (f64, f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], pct(&v, 50.0), pct(&v, 99.0), v[v.len() - 1])
}
