//! The "sum of updates" seam.
//!
//! FedAvg needs only Σ nᵢ·Δᵢ and Σ nᵢ over the participants whose updates
//! arrived. [`PlaintextSum`] computes them from updates it sees in the
//! clear; secure aggregation replaces it with a protocol that yields the
//! same [`WeightedSum`] while the coordinator never sees a single Δᵢ.

/// What a round's aggregation hands to the strategy.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightedSum {
    /// Σ nᵢ·Δᵢ, accumulated in f64 so the order of arrival does not matter
    /// to the f32 result.
    pub weighted_delta: Vec<f64>,
    /// Σ nᵢ.
    pub total_samples: u64,
    /// Σ nᵢ·lossᵢ, for the sample-weighted mean training loss.
    pub weighted_loss: f64,
}

/// Why an update cannot be added to the sum.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UpdateRejected {
    #[error("update has {got} values, the model has {expected}")]
    WrongLength { expected: usize, got: usize },
    #[error("update value {index} is {value}: updates must be finite")]
    NotFinite { index: usize, value: f32 },
    #[error("update claims {0} training samples; it must be at least 1")]
    NoSamples(u64),
    #[error("training loss {0} is not a finite number")]
    BadLoss(f32),
}

/// Plaintext aggregation: the coordinator sees every update. Used until
/// secure aggregation takes over this seam, and kept as the reference the
/// secure sum must equal.
#[derive(Debug)]
pub struct PlaintextSum {
    sum: WeightedSum,
}

impl PlaintextSum {
    pub fn new(num_params: usize) -> Self {
        PlaintextSum {
            sum: WeightedSum {
                weighted_delta: vec![0.0; num_params],
                total_samples: 0,
                weighted_loss: 0.0,
            },
        }
    }

    /// Adds nᵢ·Δᵢ after checking the update in full, so a bad update
    /// leaves the sum untouched.
    pub fn add(
        &mut self,
        samples: u64,
        mean_loss: f32,
        delta: &[f32],
    ) -> Result<(), UpdateRejected> {
        let expected = self.sum.weighted_delta.len();
        if delta.len() != expected {
            return Err(UpdateRejected::WrongLength {
                expected,
                got: delta.len(),
            });
        }
        if let Some((index, &value)) = delta.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(UpdateRejected::NotFinite { index, value });
        }
        if samples == 0 {
            return Err(UpdateRejected::NoSamples(samples));
        }
        if !mean_loss.is_finite() {
            return Err(UpdateRejected::BadLoss(mean_loss));
        }
        let n = samples as f64;
        for (acc, &d) in self.sum.weighted_delta.iter_mut().zip(delta) {
            *acc += n * f64::from(d);
        }
        self.sum.total_samples += samples;
        self.sum.weighted_loss += n * f64::from(mean_loss);
        Ok(())
    }

    pub fn finish(self) -> WeightedSum {
        self.sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_sum_and_rejections() {
        let mut sum = PlaintextSum::new(2);
        sum.add(1, 1.0, &[1.0, 2.0]).unwrap();
        sum.add(3, 2.0, &[-1.0, 0.5]).unwrap();
        assert_eq!(
            sum.add(1, 0.0, &[1.0]),
            Err(UpdateRejected::WrongLength {
                expected: 2,
                got: 1
            })
        );
        assert!(matches!(
            sum.add(1, 0.0, &[1.0, f32::NAN]),
            Err(UpdateRejected::NotFinite { index: 1, .. })
        ));
        assert_eq!(
            sum.add(0, 0.0, &[1.0, 1.0]),
            Err(UpdateRejected::NoSamples(0))
        );
        let out = sum.finish();
        assert_eq!(out.weighted_delta, vec![-2.0, 3.5]);
        assert_eq!(out.total_samples, 4);
        assert_eq!(out.weighted_loss, 7.0);
    }
}
