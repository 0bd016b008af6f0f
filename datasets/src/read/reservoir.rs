//! [`Reservoir`]: where streamed rows go, all of them or a uniform sample.
//!
//! A week of a national SOC's flows is hundreds of millions of rows; a
//! participant trains on a bounded number of them. Readers push rows one
//! at a time, and with a capacity the reservoir keeps a uniform random
//! sample of them (Vitter's Algorithm R: row `i` replaces a random kept row
//! with probability `capacity / (i + 1)`), so memory is bounded by the
//! capacity whatever the input's size. The random stream is a ChaCha
//! generator seeded by the caller, so the same input and seed keep the
//! same rows.
//!
//! Some rows are only complete once their whole file has been read
//! (Suricata flows take their label from alerts that may come later), so
//! the reservoir remembers which kept rows arrived since the last
//! [`Reservoir::settle`], and lets the reader finish exactly those.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Rows kept from a stream: every row, or a uniform sample of `capacity`.
pub struct Reservoir<T> {
    capacity: Option<usize>,
    items: Vec<T>,
    /// Rows offered so far.
    seen: u64,
    rng: ChaCha8Rng,
    /// Slots written since the last settle (sampling only; without a
    /// capacity they are `unsettled_from..`).
    touched: Vec<usize>,
    unsettled_from: usize,
}

impl<T> Reservoir<T> {
    /// Keeps every row when `capacity` is `None`, else a uniform sample of
    /// at most `capacity` rows drawn with `seed`.
    pub fn new(capacity: Option<usize>, seed: u64) -> Self {
        Reservoir {
            capacity,
            items: Vec::new(),
            seen: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
            touched: Vec::new(),
            unsettled_from: 0,
        }
    }

    /// Offers one row; it is kept, replaces a kept row, or is dropped.
    pub fn offer(&mut self, item: T) {
        self.seen += 1;
        let Some(capacity) = self.capacity else {
            self.items.push(item);
            return;
        };
        if self.items.len() < capacity {
            self.touched.push(self.items.len());
            self.items.push(item);
            return;
        }
        // Row number `seen` (1-based) is kept with probability capacity/seen.
        let slot = self.rng.random_range(0..self.seen);
        if let Ok(slot) = usize::try_from(slot)
            && slot < capacity
        {
            self.items[slot] = item;
            self.touched.push(slot);
        }
    }

    /// Rows offered so far, kept or not.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Rows kept so far.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Applies `finish` to every kept row offered since the last settle
    /// (perhaps more than once to one row, so `finish` must not mind).
    pub fn settle(&mut self, mut finish: impl FnMut(&mut T)) {
        if self.capacity.is_some() {
            for slot in self.touched.drain(..) {
                finish(&mut self.items[slot]);
            }
        } else {
            self.items[self.unsettled_from..]
                .iter_mut()
                .for_each(&mut finish);
        }
        self.unsettled_from = self.items.len();
    }

    /// The kept rows, in the order they were read for an unsampled stream
    /// and in slot order for a sample.
    pub fn into_items(self) -> Vec<T> {
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rows: usize, capacity: usize, seed: u64) -> Vec<usize> {
        let mut r = Reservoir::new(Some(capacity), seed);
        (0..rows).for_each(|i| r.offer(i));
        r.into_items()
    }

    #[test]
    fn keeps_exactly_the_capacity_and_is_deterministic_per_seed() {
        let kept = sample(10_000, 1_000, 7);
        assert_eq!(kept.len(), 1_000);
        let mut unique = kept.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 1_000, "a row was kept twice");
        assert_eq!(kept, sample(10_000, 1_000, 7));
        assert_ne!(kept, sample(10_000, 1_000, 8));
        // Fewer rows than the capacity: all of them, in order.
        assert_eq!(sample(5, 1_000, 7), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn the_sample_is_uniform_over_the_stream() {
        // 1 000 of 10 000 rows: each decile of the stream holds ~100 kept
        // rows (binomial sd ≈ 9.5) and their mean index is ~5 000 (sd of
        // the mean ≈ 87). Bounds of about 4 sd leave a fixed seed no luck
        // to lean on, and a biased sampler (e.g. first or last rows
        // favoured) far outside them.
        for seed in [0, 1, 2] {
            let kept = sample(10_000, 1_000, seed);
            let mean = kept.iter().sum::<usize>() as f64 / kept.len() as f64;
            assert!((mean - 4_999.5).abs() < 350.0, "seed {seed}: mean {mean}");
            let mut deciles = [0usize; 10];
            for i in &kept {
                deciles[i / 1_000] += 1;
            }
            for (d, n) in deciles.iter().enumerate() {
                assert!((62..=138).contains(n), "seed {seed}: decile {d} has {n}");
            }
        }
    }

    #[test]
    fn settle_finishes_only_rows_since_the_last_settle() {
        for capacity in [None, Some(3)] {
            let mut r = Reservoir::new(capacity, 1);
            for i in 0..10 {
                r.offer((i, false));
            }
            r.settle(|row| row.1 = true);
            for i in 10..1_000 {
                r.offer((i, false));
            }
            // Rows of the first "file" are settled, the later ones not yet.
            let items = r.into_items();
            assert!(
                items.iter().all(|&(i, done)| done == (i < 10)),
                "{capacity:?}: {:?}",
                &items[..3]
            );
        }
    }
}
