//! Small sampling helpers shared by the benign and attack generators.

use rand::Rng;
use rand_distr::StandardNormal;

/// A standard normal draw.
pub(crate) fn normal<R: Rng>(rng: &mut R) -> f64 {
    rng.sample(StandardNormal)
}

/// A log-normal draw with the given median and log-space sigma: the
/// heavy-tailed shape of flow sizes and durations.
pub(crate) fn log_normal<R: Rng>(rng: &mut R, median: f64, sigma: f64) -> f64 {
    median * (sigma * normal(rng)).exp()
}

/// `median * exp(sigma * z)` for a given z, for correlated draws.
pub(crate) fn log_normal_at(median: f64, sigma: f64, z: f64) -> f64 {
    median * (sigma * z).exp()
}

/// A weighted pick from a static, non-empty table.
pub(crate) fn pick<R: Rng, T: Copy>(rng: &mut R, table: &[(T, f64)]) -> T {
    let total: f64 = table.iter().map(|&(_, w)| w).sum();
    let mut u = rng.random::<f64>() * total;
    for &(item, weight) in table {
        if u < weight {
            return item;
        }
        u -= weight;
    }
    table[table.len() - 1].0
}

/// A uniform draw from `[lo, hi)`.
pub(crate) fn uniform<R: Rng>(rng: &mut R, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// Packets needed to carry `bytes` of payload in segments of about `segment` bytes.
pub(crate) fn segments(bytes: f64, segment: f64) -> f64 {
    if bytes <= 0.0 {
        0.0
    } else {
        (bytes / segment).ceil()
    }
}
