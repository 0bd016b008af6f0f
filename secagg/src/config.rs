//! Round configuration and its safety checks.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SecAggError};

/// Largest roster accepted (bounds every decoded list).
pub const MAX_PARTICIPANTS: usize = 1 << 16;
/// Largest vector accepted (bounds every decoded masked input: 2^28 words).
pub const MAX_VECTOR_LEN: usize = 1 << 28;

/// A participant (SOC) in a round. Its Shamir x-coordinate is `id + 1`, so
/// that no share is ever evaluated at 0 (the secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ParticipantId(pub u32);

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl ParticipantId {
    /// Shamir evaluation point for this participant (never 0).
    pub fn shamir_x(self) -> u64 {
        u64::from(self.0) + 1
    }
}

/// The protocol stages; used for dropout accounting and errors. A participant
/// recorded as dropped "at" a stage did not deliver that stage's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Stage {
    /// Stage 0: key advertisement (with a graph-seed commitment).
    AdvertiseKeys,
    /// Stage 1: graph-seed nonce revealed, once all commitments are fixed.
    RevealSeed,
    /// Stage 2: encrypted share distribution.
    ShareKeys,
    /// Stage 3: masked input.
    MaskedInput,
    /// Stage 4: consistency signature over the survivor list.
    Consistency,
    /// Stage 5: unmasking shares.
    Unmask,
}

/// The arithmetic ring of the aggregate: Z/2^32 or Z/2^64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ring {
    /// Z/2^32: half the bandwidth and PRG work of U64; enough for
    /// n x (2^bits - 1) < 2^32.
    U32,
    /// Z/2^64.
    U64,
}

impl Ring {
    /// log2 of the modulus.
    pub fn bits(self) -> u32 {
        match self {
            Ring::U32 => 32,
            Ring::U64 => 64,
        }
    }
    /// Bytes per element on the wire.
    pub fn word_bytes(self) -> usize {
        match self {
            Ring::U32 => 4,
            Ring::U64 => 8,
        }
    }
    /// Reduce a u64 into the ring.
    pub fn reduce(self, v: u64) -> u64 {
        match self {
            Ring::U32 => v & 0xffff_ffff,
            Ring::U64 => v,
        }
    }
}

/// Everything all parties must agree on before a round starts. Public.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundConfig {
    /// Fresh, unique per round (a retry gets a new one). Binds every
    /// signature, key derivation and message. (The neighbour graph is seeded
    /// by the members' revealed nonces, not by this id: see [`crate::graph`].)
    pub round_id: [u8; 32],
    /// The roster.
    pub participants: Vec<ParticipantId>,
    /// Long-term Ed25519 keys of the roster (from the PKI).
    pub verifying_keys: BTreeMap<ParticipantId, VerifyingKey>,
    /// k: neighbours per participant. `n - 1` means the complete graph
    /// (original SecAgg); smaller and even means a SecAgg+ Harary graph.
    pub neighbors: usize,
    /// t: Shamir threshold over the k + 1 holders of each secret (the k
    /// neighbours and the owner); at least [`threshold_floor`]`(k, c)`.
    pub threshold: usize,
    /// c: participants that may collude with the coordinator. Any two sets
    /// of t holders share at least c + 1 members, so one of them is honest.
    pub colluders: usize,
    /// Arithmetic ring of the sum.
    pub ring: Ring,
    /// Number of ring elements per input.
    pub vector_len: usize,
    /// What the application signs into the round besides the aggregation
    /// (fedsoc: [`crate::weighted::WeightedEncoding::context`], the clip,
    /// bits and weight cap every honest input respects, which bound the
    /// sum the coordinator accepts). Zero when there is none.
    pub context: [u8; 32],
}

/// The smallest safe threshold for `k` neighbours and `c` colluders.
///
/// Each secret (a participant's self-mask seed `b` and masking key `s_sk`)
/// has k + 1 holders: its k neighbours and its owner. A coordinator that
/// shows two survivor lists to two groups of holders collects `b` from one
/// group and `s_sk` from the other, and with both it unmasks the owner's
/// input, unless the two groups must share an honest member (who signs one
/// list only). Two t-subsets of k + 1 holders share at least 2t - (k + 1)
/// members; that must be at least c + 1, so t >= ceil((k + c + 2) / 2).
/// (A strict majority of the k neighbours, the rule of the original paper,
/// is one short for odd k, where the owner's own share tips the count.)
pub fn threshold_floor(k: usize, c: usize) -> usize {
    (k + c + 2).div_ceil(2)
}

/// The recommended `(k, t)` for `n` participants and `c` colluders.
///
/// * `n <= 16`: complete graph, `k = n - 1` (cheap at this size and
///   tolerates the most dropouts).
/// * `n > 16`: `k = min(n - 1, 2 * ceil(log2 n))`. This is the O(log n) degree of Bell et al. 2020: client
///   cost grows with log n instead of n. n = 100 gives k = 14.
/// * `t = `[`threshold_floor`]`(k, c)`; up to `k + 1 - t` holders of any
///   secret may drop out. A roster too small for `c` (k < c + 2) gets a
///   `t` above `k`, which [`RoundConfig::validate`] refuses.
pub fn recommended_neighbours(n: usize, c: usize) -> (usize, usize) {
    let k = if n <= 16 {
        n.saturating_sub(1)
    } else {
        let log2 = usize::BITS - (n - 1).leading_zeros(); // ceil(log2 n) for n >= 2
        (n - 1).min(2 * log2 as usize)
    };
    (k, threshold_floor(k, c))
}

impl RoundConfig {
    /// A config with the recommended `(k, t)` for the roster given by
    /// `verifying_keys` and no colluders. Call [`RoundConfig::validate`]
    /// (the client and server constructors do).
    pub fn recommended(
        round_id: [u8; 32],
        verifying_keys: BTreeMap<ParticipantId, VerifyingKey>,
        ring: Ring,
        vector_len: usize,
    ) -> Self {
        let participants: Vec<ParticipantId> = verifying_keys.keys().copied().collect();
        let (k, t) = recommended_neighbours(participants.len(), 0);
        RoundConfig {
            round_id,
            participants,
            verifying_keys,
            neighbors: k,
            threshold: t,
            colluders: 0,
            ring,
            vector_len,
            context: [0; 32],
        }
    }

    /// SHA-256 of everything the parties must agree on: round id, roster
    /// with keys, k, t, c, ring, vector length and the application context. Every signature of the
    /// round covers it, so a coordinator that tells two members different
    /// parameters makes their signatures fail at each other.
    pub fn binding(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"fedsoc-secagg/v2/round-parameters");
        h.update(self.round_id);
        h.update((self.participants.len() as u64).to_be_bytes());
        for p in &self.participants {
            h.update(p.0.to_be_bytes());
            if let Some(vk) = self.verifying_keys.get(p) {
                h.update(vk.as_bytes());
            }
        }
        for v in [
            self.neighbors,
            self.threshold,
            self.colluders,
            self.vector_len,
        ] {
            h.update((v as u64).to_be_bytes());
        }
        h.update(self.ring.bits().to_be_bytes());
        h.update(self.context);
        h.finalize().into()
    }

    /// Refuse configurations that are insecure or cannot complete.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(SecAggError::UnsafeConfig { reason });
        let n = self.participants.len();
        let (k, t) = (self.neighbors, self.threshold);
        if n < 2 {
            return bad(format!("{n} participants: a sum needs at least 2"));
        }
        if n > MAX_PARTICIPANTS {
            return bad(format!(
                "{n} participants exceeds the maximum {MAX_PARTICIPANTS}"
            ));
        }
        let mut seen = BTreeSet::new();
        for p in &self.participants {
            if !seen.insert(*p) {
                return bad(format!("participant {p} listed twice"));
            }
            if !self.verifying_keys.contains_key(p) {
                return bad(format!("participant {p} has no verifying key"));
            }
        }
        if k == 0 || k > n - 1 {
            return bad(format!(
                "neighbours k = {k} must be in 1..={} for n = {n}",
                n - 1
            ));
        }
        if k < n - 1 && k < 2 {
            return bad(format!(
                "neighbours k = {k} < 2: a participant's masks would involve a single neighbour; use k >= 2"
            ));
        }
        let c = self.colluders;
        let floor = threshold_floor(k, c);
        if t < floor {
            return bad(format!(
                "threshold t = {t} is below {floor} for k = {k} neighbours and c = {c} colluders: \
                 two groups of t of the k + 1 holders of a secret could share no honest member, \
                 so a coordinator showing them different survivor lists would learn both secrets \
                 of a participant (t must be at least (k + c + 2) / 2)"
            ));
        }
        if t > k {
            return bad(format!(
                "threshold t = {t} exceeds the neighbour count k = {k}: with c = {c} colluders \
                 the round needs k >= c + 2 neighbours (n >= {} for the complete graph)",
                c + 3
            ));
        }
        if self.vector_len == 0 {
            return bad("vector_len is 0".into());
        }
        if self.vector_len > MAX_VECTOR_LEN {
            return bad(format!(
                "vector_len {} exceeds {MAX_VECTOR_LEN}",
                self.vector_len
            ));
        }
        Ok(())
    }
}

/// The [`RoundConfig::context`] of a round that sums a public query's
/// integer vectors (fedsoc's statistics and calibrate rounds): binds the
/// query's kind and text, so a member's signatures cover what it summed.
pub fn query_context(kind: &str, query: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"fedsoc/sum-round/v1\n");
    h.update(kind.as_bytes());
    h.update(b"\n");
    h.update(query.as_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn keys(n: u32) -> BTreeMap<ParticipantId, VerifyingKey> {
        (0..n)
            .map(|i| {
                let mut b = [0u8; 32];
                b[..4].copy_from_slice(&i.to_le_bytes());
                (ParticipantId(i), SigningKey::from_bytes(&b).verifying_key())
            })
            .collect()
    }

    #[test]
    fn recommended_is_valid_for_all_sizes() {
        for n in 3..300u32 {
            let c = RoundConfig::recommended([1; 32], keys(n), Ring::U32, 4);
            c.validate().unwrap_or_else(|e| panic!("n={n}: {e}"));
        }
        assert_eq!(recommended_neighbours(100, 0), (14, 8));
        assert_eq!(recommended_neighbours(16, 0), (15, 9));
        assert_eq!(recommended_neighbours(4, 0), (3, 3));
        assert_eq!(recommended_neighbours(3, 0), (2, 2));
        assert_eq!(recommended_neighbours(100, 2), (14, 9));
        // Two participants cannot hide one update from the other.
        let two = RoundConfig::recommended([1; 32], keys(2), Ring::U32, 4);
        assert!(unsafe_reason(&two).contains("exceeds"));
    }

    #[test]
    fn any_two_threshold_sets_of_holders_share_an_honest_member() {
        for k in 2..40usize {
            for c in 0..k.saturating_sub(1) {
                let t = threshold_floor(k, c);
                if t > k {
                    continue;
                }
                // Two t-subsets of the k + 1 holders overlap in >= c + 1.
                assert!(2 * t - (k + 1) > c, "k={k} c={c} t={t}");
                // And t is the smallest such: one less would not be.
                assert!(2 * (t - 1) < k + 1 + c + 1, "k={k} c={c} t={t} not tight");
            }
        }
    }

    fn unsafe_reason(c: &RoundConfig) -> String {
        match c.validate() {
            Err(SecAggError::UnsafeConfig { reason }) => reason,
            other => panic!("expected UnsafeConfig, got {other:?}"),
        }
    }

    #[test]
    fn refuses_unsafe_choices() {
        let base = RoundConfig::recommended([1; 32], keys(10), Ring::U32, 4);
        let mut c = base.clone();
        c.threshold = 5; // k = 9, t must be >= 6
        assert!(unsafe_reason(&c).contains("below 6"));
        let mut c = base.clone();
        c.colluders = 2; // t must be >= 7
        assert!(unsafe_reason(&c).contains("c = 2 colluders"));
        c.threshold = 7;
        c.validate().unwrap();
        let mut c = base.clone();
        c.neighbors = 10;
        assert!(unsafe_reason(&c).contains("neighbours"));
        let mut c = base.clone();
        c.neighbors = 2;
        c.threshold = 1;
        assert!(unsafe_reason(&c).contains("below 2"));
        let mut c = base.clone();
        c.vector_len = 0;
        assert!(unsafe_reason(&c).contains("vector_len"));
        let mut c = base.clone();
        c.participants.push(ParticipantId(3));
        assert!(unsafe_reason(&c).contains("twice"));
        let mut c = base.clone();
        c.verifying_keys.remove(&ParticipantId(5));
        assert!(unsafe_reason(&c).contains("no verifying key"));
        let mut c = base.clone();
        c.neighbors = 1;
        c.threshold = 1;
        assert!(unsafe_reason(&c).contains("k = 1 < 2"));
        // Odd k is a Harary graph with the diameter added: accepted with
        // t = 4 (3 would let two groups of 3 of the 6 holders be disjoint).
        let mut c = base.clone();
        c.neighbors = 5;
        c.threshold = 3;
        assert!(unsafe_reason(&c).contains("below 4"));
        c.threshold = 4;
        c.validate().unwrap();
    }
}
