//! Float <-> ring quantisation with unbiased stochastic rounding.
//!
//! `x` is clipped to `[-c, c]`, mapped affinely to `v = (x + c) / (2c) * L`
//! with `L = 2^bits - 1`, and rounded up with probability `frac(v)` (else
//! down), so `E[q] = v` exactly: the sum stays unbiased however many
//! participants there are. Each quantised value is within one step
//! `2c / L` of its clipped float, so the dequantised sum of `n` inputs is
//! within `n * 2c / L` per coordinate of the sum of the clipped floats
//! (plus f64 rounding, negligible for bits <= 40).

use rand::{CryptoRng, RngCore};

use crate::config::Ring;
use crate::error::{Result, SecAggError};

/// Quantiser parameters; all parties of a round must use the same.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantizer {
    /// Clip bound c > 0.
    pub clip: f32,
    /// Bits per quantised value (1..=62).
    pub bits: u32,
    /// Ring of the aggregate.
    pub ring: Ring,
}

impl Quantizer {
    /// `L = 2^bits - 1`, the largest quantised value.
    /// The largest quantised value, 2^bits − 1.
    pub fn levels(&self) -> u64 {
        (1u64 << self.bits) - 1
    }

    fn check_params(&self) -> Result<()> {
        if !(self.clip.is_finite() && self.clip > 0.0) {
            return Err(SecAggError::UnsafeConfig {
                reason: format!("clip {} must be finite and > 0", self.clip),
            });
        }
        if self.bits == 0 || self.bits > 62 || self.bits > self.ring.bits() {
            return Err(SecAggError::UnsafeConfig {
                reason: format!(
                    "bits {} must be in 1..=min(62, ring bits {})",
                    self.bits,
                    self.ring.bits()
                ),
            });
        }
        Ok(())
    }

    /// Refuse any configuration where the sum of `n` values of up to
    /// `2^bits - 1` could wrap the ring (the sum would then be garbage).
    pub fn check_capacity(&self, n_participants: usize) -> Result<()> {
        self.check_params()?;
        let max_sum = (n_participants as u128) * u128::from(self.levels());
        if max_sum >= 1u128 << self.ring.bits() {
            return Err(SecAggError::RingOverflow {
                n: n_participants,
                bits: self.bits,
                ring_bits: self.ring.bits(),
            });
        }
        Ok(())
    }

    /// Quantise one participant's update. NaN/inf are refused (not clipped:
    /// they signal a training bug the caller must see).
    pub fn quantize<R: CryptoRng + RngCore + ?Sized>(
        &self,
        x: &[f32],
        rng: &mut R,
    ) -> Result<Vec<u64>> {
        self.check_params()?;
        let c = f64::from(self.clip);
        let scale = self.levels() as f64 / (2.0 * c);
        let mut out = Vec::with_capacity(x.len());
        for (index, &v) in x.iter().enumerate() {
            if !v.is_finite() {
                return Err(SecAggError::NotFinite { index });
            }
            let v = (f64::from(v).clamp(-c, c) + c) * scale;
            let lo = v.floor();
            let frac = v - lo;
            // 53 random bits -> uniform in [0, 1).
            let u = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
            let q = lo as u64 + u64::from(u < frac);
            out.push(q.min(self.levels()));
        }
        Ok(out)
    }

    /// Map a ring sum of `n_summed` quantised vectors back to the sum of the
    /// clipped floats (error bound in the module docs).
    pub fn dequantize_sum(&self, sum: &[u64], n_summed: usize) -> Vec<f64> {
        let c = f64::from(self.clip);
        let step = 2.0 * c / self.levels() as f64;
        let offset = n_summed as f64 * c;
        sum.iter()
            .map(|&s| self.ring.reduce(s) as f64 * step - offset)
            .collect()
    }

    /// The documented per-coordinate error bound for `n` summed inputs.
    pub fn error_bound(&self, n: usize) -> f64 {
        n as f64 * 2.0 * f64::from(self.clip) / self.levels() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{RngCore, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn capacity() {
        let q = Quantizer {
            clip: 1.0,
            bits: 16,
            ring: Ring::U32,
        };
        q.check_capacity(65536).unwrap();
        assert_eq!(
            q.check_capacity(65538),
            Err(SecAggError::RingOverflow {
                n: 65538,
                bits: 16,
                ring_bits: 32
            })
        );
        let q = Quantizer {
            clip: 1.0,
            bits: 33,
            ring: Ring::U32,
        };
        assert!(matches!(
            q.check_capacity(1),
            Err(SecAggError::UnsafeConfig { .. })
        ));
        let q = Quantizer {
            clip: 1.0,
            bits: 40,
            ring: Ring::U64,
        };
        q.check_capacity(1 << 23).unwrap();
        assert!(matches!(
            q.check_capacity((1 << 24) + 1),
            Err(SecAggError::RingOverflow { .. })
        ));
    }

    #[test]
    fn not_finite_names_index() {
        let q = Quantizer {
            clip: 1.0,
            bits: 8,
            ring: Ring::U32,
        };
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        assert_eq!(
            q.quantize(&[0.0, 1.0, f32::NAN], &mut rng),
            Err(SecAggError::NotFinite { index: 2 })
        );
        assert_eq!(
            q.quantize(&[f32::INFINITY], &mut rng),
            Err(SecAggError::NotFinite { index: 0 })
        );
    }

    #[test]
    fn unbiased() {
        // 0.3 sits between grid points with bits = 2; the mean of many
        // roundings must converge to it (SE ~ 0.67/sqrt(2e5) ~ 0.0015).
        let q = Quantizer {
            clip: 1.0,
            bits: 2,
            ring: Ring::U32,
        };
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let n = 200_000;
        let v = q.quantize(&vec![0.3f32; n], &mut rng).unwrap();
        let s: u64 = v.iter().sum();
        let mean = q.dequantize_sum(&[s], n)[0] / n as f64;
        assert!((mean - 0.3).abs() < 0.01, "mean {mean}");
    }

    proptest! {
        #[test]
        fn sum_within_bound(
            n in 1usize..20,
            d in 1usize..32,
            bits in 1u32..24,
            clip in 0.01f32..100.0,
            seed: u64,
            u64ring: bool,
        ) {
            let ring = if u64ring { Ring::U64 } else { Ring::U32 };
            let q = Quantizer { clip, bits, ring };
            q.check_capacity(n).unwrap();
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let mut sum = vec![0u64; d];
            let mut fsum = vec![0f64; d];
            for _ in 0..n {
                let x: Vec<f32> = (0..d).map(|_| (rng.next_u32() as f32 / u32::MAX as f32 - 0.5) * 3.0 * clip).collect();
                let qx = q.quantize(&x, &mut rng).unwrap();
                for i in 0..d {
                    prop_assert!(qx[i] < (1u64 << bits));
                    sum[i] = ring.reduce(sum[i].wrapping_add(qx[i]));
                    fsum[i] += f64::from(x[i].clamp(-clip, clip));
                }
            }
            let back = q.dequantize_sum(&sum, n);
            let bound = q.error_bound(n) * (1.0 + 1e-9) + 1e-6 * f64::from(clip) * n as f64;
            for i in 0..d {
                prop_assert!((back[i] - fsum[i]).abs() <= bound, "i={} err={} bound={}", i, (back[i] - fsum[i]).abs(), bound);
            }
        }
    }
}
