//! What the agent computes for a task. In production that is always local
//! training on the telemetry `participant.toml` names; benchmarks of the
//! aggregation path swap in random updates so that what they time is the
//! protocol, not the model. Random updates cannot be chosen from a
//! configuration file, only by code that builds an [`crate::Agent`].

use std::sync::Arc;

use fedsoc_datasets::Records;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The work behind each update.
#[derive(Clone, Debug)]
pub enum Workload {
    /// Train the federation's model on local telemetry.
    Train(Arc<Records>),
    /// Answer every task with a random update, without data or training.
    Random(RandomUpdates),
}

/// Random updates for benchmarks of the aggregation path.
#[derive(Clone, Debug, PartialEq)]
pub struct RandomUpdates {
    /// Sample count reported with each update.
    pub samples: u64,
    /// Each coordinate is drawn uniformly from [-scale, scale].
    pub scale: f32,
    /// Vanish (drop the connection, as a crashed machine would) right
    /// after sharing keys in a secure round, or instead of sending the
    /// update in a plaintext one: the costly dropout for the coordinator.
    pub vanish_after_sharing_keys: bool,
}

impl RandomUpdates {
    /// An update of `len` values, deterministic given the task seed.
    pub fn delta(&self, len: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let scale = self.scale.abs();
        (0..len).map(|_| rng.random_range(-scale..=scale)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_deltas_are_bounded_deterministic_and_seed_dependent() {
        let w = RandomUpdates {
            samples: 10,
            scale: 0.5,
            vanish_after_sharing_keys: false,
        };
        let a = w.delta(1000, 1);
        assert_eq!(a, w.delta(1000, 1));
        assert_ne!(a, w.delta(1000, 2));
        assert!(a.iter().all(|v| v.abs() <= 0.5));
        assert!(a.iter().any(|v| *v > 0.25) && a.iter().any(|v| *v < -0.25));
    }
}
