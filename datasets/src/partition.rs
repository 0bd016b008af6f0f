//! Splitting one record set among simulated participants.
//!
//! Only IID splitting for now (non-IID splits come from the synthetic
//! country profiles themselves). Deterministic by seed so an experiment can
//! be re-run exactly.

use rand::seq::SliceRandom;

use crate::error::DatasetError;
use crate::seed::{Purpose, stream};

/// A random permutation of `0..len` dealt round-robin into `parts` parts:
/// part sizes differ by at most one, every index appears exactly once.
pub fn iid_indices(len: usize, parts: usize, seed: u64) -> Result<Vec<Vec<usize>>, DatasetError> {
    if parts == 0 {
        return Err(DatasetError::ZeroParts);
    }
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut stream(seed, 0, Purpose::Partition));
    let mut out: Vec<Vec<usize>> = (0..parts)
        .map(|_| Vec::with_capacity(len / parts + 1))
        .collect();
    for (i, index) in order.into_iter().enumerate() {
        out[i % parts].push(index);
    }
    Ok(out)
}

/// `items` split IID into `parts` parts (see [`iid_indices`]).
pub fn iid_split<T: Clone>(
    items: &[T],
    parts: usize,
    seed: u64,
) -> Result<Vec<Vec<T>>, DatasetError> {
    Ok(iid_indices(items.len(), parts, seed)?
        .into_iter()
        .map(|part| part.into_iter().map(|i| items[i].clone()).collect())
        .collect())
}
