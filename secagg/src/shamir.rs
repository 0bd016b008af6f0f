//! t-of-n Shamir sharing of 32-byte secrets over GF(p), p = 2^61 - 1.
//!
//! The secret is cut into 5 limbs of at most 7 bytes (56 bits < 61), each
//! shared with its own random polynomial of degree t - 1; all limbs of one
//! share use the same evaluation point x = participant id + 1. The Mersenne
//! prime gives a cheap reduction. Malformed input (x = 0, x >= p, limbs >= p,
//! duplicate x, too few shares, limbs of the result >= 2^56) is an error,
//! never a panic. Not constant-time (acceptable: shares are combined only by
//! the server, from values it is entitled to).

use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::error::{Result, SecAggError};

/// The field modulus 2^61 - 1.
pub const P: u64 = (1 << 61) - 1;
/// Limbs per 32-byte secret.
pub const LIMBS: usize = 5;
const LIMB_BYTES: usize = 7;

/// One share: evaluation point and one field element per limb.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize)]
pub struct Share {
    /// Evaluation point (participant id + 1), never 0.
    pub x: u64,
    /// Polynomial values at `x`, one per limb.
    pub y: [u64; LIMBS],
}

#[inline]
fn reduce128(v: u128) -> u64 {
    // v < 2^122: fold twice.
    let lo = (v as u64) & P;
    let hi = (v >> 61) as u64;
    let r = (lo & P) + (hi & P) + (hi >> 61);
    let r = (r & P) + (r >> 61);
    if r >= P { r - P } else { r }
}
#[inline]
fn mul(a: u64, b: u64) -> u64 {
    reduce128(u128::from(a) * u128::from(b))
}
#[inline]
fn add(a: u64, b: u64) -> u64 {
    let s = a + b; // both < 2^61, no overflow
    if s >= P { s - P } else { s }
}
#[inline]
fn sub(a: u64, b: u64) -> u64 {
    if a >= b { a - b } else { a + P - b }
}
fn inv(a: u64) -> u64 {
    // Fermat: a^(p-2); caller guarantees a != 0.
    let (mut base, mut e, mut acc) = (a, P - 2, 1u64);
    while e > 0 {
        if e & 1 == 1 {
            acc = mul(acc, base);
        }
        base = mul(base, base);
        e >>= 1;
    }
    acc
}

fn random_field<R: CryptoRng + RngCore + ?Sized>(rng: &mut R) -> u64 {
    loop {
        let v = rng.next_u64() >> 3; // 61 bits, uniform
        if v < P {
            return v;
        }
    }
}

fn limbs(secret: &[u8; 32]) -> [u64; LIMBS] {
    let mut out = [0u64; LIMBS];
    for (i, chunk) in secret.chunks(LIMB_BYTES).enumerate() {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        out[i] = u64::from_le_bytes(b);
    }
    out
}

/// Split `secret` into shares for the evaluation points `xs` (distinct,
/// non-zero, < p) such that any `t` reconstruct it and `t - 1` reveal nothing.
pub fn share<R: CryptoRng + RngCore + ?Sized>(
    secret: &[u8; 32],
    t: usize,
    xs: &[u64],
    rng: &mut R,
) -> Result<Vec<Share>> {
    if t == 0 || t > xs.len() {
        return Err(SecAggError::Shamir(format!(
            "threshold {t} not in 1..={}",
            xs.len()
        )));
    }
    check_points(xs.iter().copied())?;
    let secret_limbs = limbs(secret);
    // coeffs[l][d]: coefficient of x^d of limb l's polynomial.
    let mut coeffs = vec![[0u64; LIMBS]; t];
    coeffs[0] = secret_limbs;
    for c in coeffs.iter_mut().skip(1) {
        for v in c.iter_mut() {
            *v = random_field(rng);
        }
    }
    let shares = xs
        .iter()
        .map(|&x| {
            let mut y = [0u64; LIMBS];
            for (l, yl) in y.iter_mut().enumerate() {
                // Horner
                let mut acc = 0u64;
                for c in coeffs.iter().rev() {
                    acc = add(mul(acc, x), c[l]);
                }
                *yl = acc;
            }
            Share { x, y }
        })
        .collect();
    coeffs.zeroize();
    Ok(shares)
}

fn check_points(xs: impl Iterator<Item = u64>) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for x in xs {
        if x == 0 || x >= P {
            return Err(SecAggError::Shamir(format!(
                "evaluation point {x} outside 1..p"
            )));
        }
        if !seen.insert(x) {
            return Err(SecAggError::Shamir(format!(
                "duplicate evaluation point {x}"
            )));
        }
    }
    Ok(())
}

/// Reconstruct from at least `t` shares (the first `t` by x are used).
pub fn reconstruct(shares: &[Share], t: usize) -> Result<[u8; 32]> {
    if t == 0 || shares.len() < t {
        return Err(SecAggError::Shamir(format!(
            "{} shares given, {t} required",
            shares.len()
        )));
    }
    check_points(shares.iter().map(|s| s.x))?;
    if shares.iter().any(|s| s.y.iter().any(|&v| v >= P)) {
        return Err(SecAggError::Shamir("share value outside the field".into()));
    }
    let mut used: Vec<&Share> = shares.iter().collect();
    used.sort_by_key(|s| s.x);
    used.truncate(t);
    let mut out = [0u64; LIMBS];
    for (i, si) in used.iter().enumerate() {
        // Lagrange basis at 0: prod_{j != i} x_j / (x_j - x_i)
        let (mut num, mut den) = (1u64, 1u64);
        for (j, sj) in used.iter().enumerate() {
            if i != j {
                num = mul(num, sj.x);
                den = mul(den, sub(sj.x, si.x)); // non-zero: points distinct
            }
        }
        let li = mul(num, inv(den));
        for (o, &y) in out.iter_mut().zip(si.y.iter()) {
            *o = add(*o, mul(li, y));
        }
    }
    let mut secret = [0u8; 32];
    for (l, chunk) in secret.chunks_mut(LIMB_BYTES).enumerate() {
        let bytes = out[l].to_le_bytes();
        if out[l] >> (8 * chunk.len()) != 0 {
            return Err(SecAggError::Shamir(
                "shares are inconsistent (limb out of range)".into(),
            ));
        }
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    out.zeroize();
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn field_ops() {
        assert_eq!(mul(P - 1, P - 1), 1);
        assert_eq!(mul(inv(12345), 12345), 1);
        assert_eq!(add(P - 1, 1), 0);
        assert_eq!(sub(0, 1), P - 1);
    }

    proptest! {
        #[test]
        fn any_t_subset_reconstructs(secret: [u8; 32], n in 1usize..12, tfrac in 0.0f64..1.0, seed: u64, pick: u64) {
            let t = 1 + ((n - 1) as f64 * tfrac) as usize;
            let xs: Vec<u64> = (0..n as u64).map(|i| i * 7 + 1).collect();
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let sh = share(&secret, t, &xs, &mut rng).unwrap();
            // A pseudo-random subset of size >= t.
            let mut sub: Vec<Share> = sh.iter().enumerate().filter(|(i, _)| (pick >> i) & 1 == 1).map(|(_, s)| s.clone()).collect();
            for s in &sh {
                if sub.len() >= t {
                    break;
                }
                if !sub.contains(s) {
                    sub.push(s.clone());
                }
            }
            prop_assert_eq!(reconstruct(&sub, t).unwrap(), secret);
            if t > 1 {
                // t-1 shares do not suffice (and are refused).
                prop_assert!(reconstruct(&sub[..t - 1], t).is_err());
            }
        }
    }

    #[test]
    fn refuses_bad_input() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let sh = share(&[7; 32], 3, &[1, 2, 3, 4], &mut rng).unwrap();
        assert!(reconstruct(&sh[..2], 3).is_err());
        let dup = vec![sh[0].clone(), sh[0].clone(), sh[1].clone()];
        assert!(reconstruct(&dup, 3).is_err());
        let mut bad = sh.clone();
        bad[0].y[0] = u64::MAX;
        assert!(reconstruct(&bad, 3).is_err());
        bad[0].x = 0;
        assert!(reconstruct(&bad, 3).is_err());
        assert!(share(&[7; 32], 5, &[1, 2, 3, 4], &mut rng).is_err());
        assert!(share(&[7; 32], 2, &[1, 1], &mut rng).is_err());
        // Wrong shares never panic.
        let garbage = vec![
            Share {
                x: 5,
                y: [P - 1; LIMBS],
            },
            Share {
                x: 9,
                y: [3; LIMBS],
            },
        ];
        let _ = reconstruct(&garbage, 2);
    }
}
