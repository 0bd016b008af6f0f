//! Toy data for the unit tests: a low-dimensional "normal traffic" manifold and off-manifold
//! "attacks", so tests can check learning and detection without real datasets.

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Feature count of the toy data.
pub(crate) const DIM: usize = 8;

/// Rows on a 2-D subspace of R^8 plus a little noise: easy for a 2-wide bottleneck.
pub(crate) fn normal_rows(n: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Array2::zeros((n, DIM));
    for mut row in out.rows_mut() {
        let a: f32 = rng.random_range(-1.0..1.0);
        let b: f32 = rng.random_range(-1.0..1.0);
        for (j, v) in row.iter_mut().enumerate() {
            let j = j as f32;
            let noise: f32 = rng.random_range(-1.0..1.0);
            *v = a * (0.7 * j).sin() + b * (0.5 * j).cos() + 0.01 * noise;
        }
    }
    out
}

/// Rows with i.i.d. uniform features of similar scale: off the normal manifold.
pub(crate) fn anomalous_rows(n: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((n, DIM), || rng.random_range(-1.0..1.0))
}

/// Standard-normal features shifted by `shift` along the unit diagonal `(1, …, 1)/√DIM`: two
/// calls with different shifts give Gaussian classes whose separation is exactly `shift`.
pub(crate) fn gaussian_rows(n: usize, shift: f32, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let offset = shift / (DIM as f32).sqrt();
    Array2::from_shape_simple_fn((n, DIM), || {
        // Box–Muller; `1 − u` keeps the log argument in (0, 1].
        let u1: f32 = 1.0 - rng.random::<f32>();
        let u2: f32 = rng.random();
        offset + (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    })
}

/// `benign` rows of N(0, I) then `attacks` rows shifted by `shift`, with their labels.
pub(crate) fn labelled_blobs(
    benign: usize,
    attacks: usize,
    shift: f32,
    seed: u64,
) -> (Array2<f32>, Vec<bool>) {
    let neg = gaussian_rows(benign, 0.0, seed);
    let pos = gaussian_rows(attacks, shift, seed.wrapping_add(1_000_003));
    let data = ndarray::concatenate(ndarray::Axis(0), &[neg.view(), pos.view()]).unwrap();
    let labels = (0..benign + attacks).map(|i| i >= benign).collect();
    (data, labels)
}
