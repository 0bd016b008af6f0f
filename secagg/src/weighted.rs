//! A weighted model update as one ring vector, so that FedAvg's weights
//! stay secret too.
//!
//! Participant i with weight wᵢ = min(samples, max_samples) sends
//! `[wᵢ·q(Δᵢ) …, wᵢ, wᵢ·q_loss(lossᵢ)]`, where q is the stochastic
//! quantiser. The secure sum then holds Σ wᵢ·q(Δᵢ), the total weight Σ wᵢ
//! and the weighted loss, and nothing about any single wᵢ: the coordinator
//! learns the weighted mean update and the total sample count only.
//!
//! Error: each coordinate of the dequantised weighted mean is within one
//! quantisation step 2c/(2^bits − 1) of the weighted mean of the clipped
//! deltas.

use rand::{CryptoRng, RngCore};

use crate::error::{Result, SecAggError};
use crate::quantize::Quantizer;

/// Losses are carried clipped to [0, LOSS_CLIP].
pub const LOSS_CLIP: f32 = 64.0;

/// How updates are weighted and quantised; all parties must agree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightedEncoding {
    pub quantizer: Quantizer,
    /// A participant's weight is min(samples, max_samples): the cap bounds
    /// the sum, so overflow can be excluded before the round starts.
    pub max_samples: u64,
}

/// What the secure sum decodes to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WeightedTotal {
    /// Σ wᵢ·Δᵢ (of the clipped Δᵢ, up to the quantisation error).
    pub weighted_delta: Vec<f64>,
    /// Σ wᵢ.
    pub total_weight: u64,
    /// Σ wᵢ·lossᵢ.
    pub weighted_loss: f64,
}

impl WeightedEncoding {
    /// SHA-256 of the encoding (clip, bits, ring, weight cap): the
    /// [`crate::RoundConfig::context`] of a round carrying it, so every
    /// member signs the bounds its inputs respect and the coordinator
    /// checks the sum against, and none can be told other bounds.
    pub fn context(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        Sha256::new()
            .chain_update(b"fedsoc-secagg/v1/weighted-encoding")
            .chain_update(self.quantizer.clip.to_bits().to_be_bytes())
            .chain_update(self.quantizer.bits.to_be_bytes())
            .chain_update(self.quantizer.ring.bits().to_be_bytes())
            .chain_update(self.max_samples.to_be_bytes())
            .finalize()
            .into()
    }

    fn loss_quantizer(&self) -> Quantizer {
        Quantizer {
            clip: LOSS_CLIP,
            ..self.quantizer
        }
    }

    /// Ring words for a model of `num_params` values.
    pub fn vector_len(num_params: usize) -> usize {
        num_params + 2
    }

    /// Refuses, before any key is drawn, a federation of `participants`
    /// whose weighted sum could wrap the ring.
    pub fn check_capacity(&self, participants: usize) -> Result<()> {
        if self.max_samples == 0 {
            return Err(SecAggError::UnsafeConfig {
                reason: "max_samples must be at least 1".into(),
            });
        }
        let virtual_inputs = (participants as u128) * u128::from(self.max_samples);
        let virtual_inputs =
            usize::try_from(virtual_inputs).map_err(|_| SecAggError::RingOverflow {
                n: participants,
                bits: self.quantizer.bits,
                ring_bits: self.quantizer.ring.bits(),
            })?;
        self.quantizer
            .check_capacity(virtual_inputs)
            .map_err(|e| match e {
                SecAggError::RingOverflow {
                    bits, ring_bits, ..
                } => SecAggError::RingOverflow {
                    n: participants,
                    bits,
                    ring_bits,
                },
                other => other,
            })
    }

    /// One participant's update as ring words.
    pub fn encode<R: CryptoRng + RngCore + ?Sized>(
        &self,
        delta: &[f32],
        samples: u64,
        loss: f32,
        rng: &mut R,
    ) -> Result<Vec<u64>> {
        if samples == 0 {
            return Err(SecAggError::UnsafeConfig {
                reason: "an update must come from at least one sample".into(),
            });
        }
        if !loss.is_finite() {
            return Err(SecAggError::NotFinite {
                index: delta.len() + 1,
            });
        }
        let weight = samples.min(self.max_samples);
        let mut words = self.quantizer.quantize(delta, rng)?;
        let loss_word = self.loss_quantizer().quantize(&[loss.max(0.0)], rng)?;
        words.push(1);
        words.extend(loss_word);
        let ring = self.quantizer.ring;
        // w·q ≤ max_samples·(2^bits − 1), which check_capacity bounds.
        Ok(words
            .into_iter()
            .map(|q| ring.reduce(q.wrapping_mul(weight)))
            .collect())
    }

    /// Decodes the secure sum of `survivors` members' vectors, refusing a
    /// sum no `survivors` honest members could produce: a total weight
    /// outside 1..=survivors·max_samples, or a word above total weight ×
    /// (2^bits − 1). Within those bounds one hostile member can still claim
    /// max_samples and send any update inside [-clip, clip].
    pub fn decode(&self, sum: &[u64], survivors: usize) -> Result<WeightedTotal> {
        let Some((&loss_word, rest)) = sum.split_last() else {
            return Err(SecAggError::WrongLength {
                expected: 2,
                got: 0,
            });
        };
        let Some((&weight_word, delta_words)) = rest.split_last() else {
            return Err(SecAggError::WrongLength {
                expected: 2,
                got: 1,
            });
        };
        let total_weight = self.quantizer.ring.reduce(weight_word);
        let out = |detail: String| SecAggError::AggregateOutOfBounds { survivors, detail };
        let most = (survivors as u128) * u128::from(self.max_samples);
        if total_weight == 0 || u128::from(total_weight) > most {
            return Err(out(format!(
                "total weight {total_weight}, expected 1..={most} (max_samples {} each)",
                self.max_samples
            )));
        }
        let top = u128::from(total_weight) * u128::from(self.quantizer.levels());
        let words = delta_words.iter().chain(std::iter::once(&loss_word));
        if let Some((j, &word)) = words
            .enumerate()
            .find(|(_, w)| u128::from(self.quantizer.ring.reduce(**w)) > top)
        {
            return Err(out(format!(
                "word {j} is {word}, above total weight × (2^bits − 1) = {top}"
            )));
        }
        let w = usize::try_from(total_weight).map_err(|_| SecAggError::UnsafeConfig {
            reason: "total weight does not fit this platform".into(),
        })?;
        let weighted_delta = self.quantizer.dequantize_sum(delta_words, w);
        let weighted_loss = self.loss_quantizer().dequantize_sum(&[loss_word], w)[0];
        Ok(WeightedTotal {
            weighted_delta,
            total_weight,
            weighted_loss,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Ring;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn encoding(ring: Ring) -> WeightedEncoding {
        WeightedEncoding {
            quantizer: Quantizer {
                clip: 1.0,
                bits: 16,
                ring,
            },
            max_samples: 1 << 20,
        }
    }

    #[test]
    fn sum_of_encodings_decodes_to_weighted_sum() {
        let enc = encoding(Ring::U64);
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let updates = [
            (vec![0.5f32, -0.25, 0.0], 100u64, 0.5f32),
            (vec![-0.1, 0.2, 0.9], 300, 1.5),
        ];
        let mut sum = vec![0u64; WeightedEncoding::vector_len(3)];
        for (delta, n, loss) in &updates {
            let words = enc.encode(delta, *n, *loss, &mut rng).unwrap();
            for (s, w) in sum.iter_mut().zip(words) {
                *s = s.wrapping_add(w);
            }
        }
        let total = enc.decode(&sum, 2).unwrap();
        assert_eq!(total.total_weight, 400);
        let step = 2.0 / 65535.0;
        for j in 0..3 {
            let want: f64 = updates
                .iter()
                .map(|(d, n, _)| *n as f64 * f64::from(d[j]))
                .sum();
            let mean_err = (total.weighted_delta[j] - want).abs() / 400.0;
            assert!(mean_err <= step, "coordinate {j}: {mean_err}");
        }
        let loss = total.weighted_loss / 400.0;
        assert!((loss - 1.25).abs() <= 2.0 * 64.0 / 65535.0, "{loss}");
    }

    #[test]
    fn capacity_accounts_for_weights() {
        let mut enc = encoding(Ring::U32);
        assert!(matches!(
            enc.check_capacity(4),
            Err(SecAggError::RingOverflow { n: 4, .. })
        ));
        enc.quantizer.bits = 8;
        enc.max_samples = 1 << 16;
        enc.check_capacity(200).unwrap();
        assert!(enc.check_capacity(300).is_err());
        encoding(Ring::U64).check_capacity(10_000).unwrap();
    }

    #[test]
    fn nan_update_is_refused_with_its_index() {
        let enc = encoding(Ring::U64);
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        assert_eq!(
            enc.encode(&[0.0, f32::NAN], 1, 0.0, &mut rng),
            Err(SecAggError::NotFinite { index: 1 })
        );
    }
}
