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
