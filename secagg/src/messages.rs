//! Wire messages (postcard-encoded serde structs).
//!
//! Client messages carry `round_id` and `sender`; server messages carry
//! `round_id` and, when addressed to one client, `recipient` (the server is
//! the implicit sender; the transport authenticates it). Receivers check
//! these fields: a message of another round is `WrongRound`. `decode` never
//! panics: postcard is bounds-checked against the input, trailing bytes are
//! refused, and every list/byte length is bounded afterwards.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::{MAX_PARTICIPANTS, MAX_VECTOR_LEN, ParticipantId, Ring};
use crate::error::{Result, SecAggError, hex32};
use crate::shamir::Share;

/// Upper bound on one encrypted share ciphertext (plaintext is ~130 bytes).
pub const MAX_CIPHERTEXT: usize = 512;

/// Encoding and bounded decoding, shared by all messages.
pub trait Message: Serialize + DeserializeOwned {
    /// Check the length bounds after decoding.
    fn check_bounds(&self) -> Result<()>;

    /// Serialise to bytes.
    fn encode(&self) -> Vec<u8> {
        // postcard serialisation into a Vec only fails on allocation failure
        // or unsupported serde types, neither of which our structs contain.
        postcard::to_allocvec(self).expect("postcard encoding of plain structs cannot fail")
    }

    /// Parse bytes from an untrusted peer.
    fn decode(bytes: &[u8]) -> Result<Self> {
        let (msg, rest) = postcard::take_from_bytes::<Self>(bytes)
            .map_err(|e| SecAggError::Decode(e.to_string()))?;
        if !rest.is_empty() {
            return Err(SecAggError::Decode(format!(
                "{} trailing bytes",
                rest.len()
            )));
        }
        msg.check_bounds()?;
        Ok(msg)
    }
}

fn bound(what: &str, len: usize, max: usize) -> Result<()> {
    if len > max {
        return Err(SecAggError::Decode(format!(
            "{what}: length {len} exceeds {max}"
        )));
    }
    Ok(())
}

/// `WrongRound` unless `got == expected`.
pub fn check_round(expected: &[u8; 32], got: &[u8; 32]) -> Result<()> {
    if expected != got {
        return Err(SecAggError::WrongRound {
            expected: hex32(expected),
            got: hex32(got),
        });
    }
    Ok(())
}

/// Stage 0, client -> server: fresh public keys, signed with the long-term key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvertiseKeys {
    pub round_id: [u8; 32],
    pub sender: ParticipantId,
    /// X25519 key for share encryption.
    pub c_pk: [u8; 32],
    /// X25519 key for pairwise masks.
    pub s_pk: [u8; 32],
    /// Commitment to this participant's graph-seed nonce
    /// ([`crate::crypto::seed_commitment`]).
    pub seed_commitment: [u8; 32],
    /// Ed25519 over (label, binding, sender, c_pk, s_pk, seed_commitment).
    #[serde(with = "serde_bytes")]
    pub signature: [u8; 64],
}

/// One advertiser's graph-seed commitment, as the server lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    pub participant: ParticipantId,
    pub commitment: [u8; 32],
}

/// Stage 0 -> 1, server -> every advertiser: the commitments of all
/// advertisers (U1), sorted by id. Once a client has seen it, it reveals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedCommitments {
    pub round_id: [u8; 32],
    pub commitments: Vec<Committed>,
}

/// Stage 1, client -> server: the nonce behind my commitment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedReveal {
    pub round_id: [u8; 32],
    pub sender: ParticipantId,
    pub nonce: [u8; 32],
}

/// One advertiser's revealed nonce, as the server forwards it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedNonce {
    pub participant: ParticipantId,
    pub nonce: [u8; 32],
}

/// Stage 1 -> 2, server -> one client: every advertiser's nonce (from which
/// the client computes the graph itself) and the advertisements of its
/// neighbours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyBundle {
    pub round_id: [u8; 32],
    pub recipient: ParticipantId,
    pub nonces: Vec<SeedNonce>,
    pub adverts: Vec<AdvertiseKeys>,
}

/// One encrypted share; `peer` is the receiver in [`ShareKeys`] and the
/// sender in [`ShareBundle`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedShare {
    pub peer: ParticipantId,
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

/// Stage 1, client -> server: one ciphertext per advertised neighbour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareKeys {
    pub round_id: [u8; 32],
    pub sender: ParticipantId,
    pub shares: Vec<EncryptedShare>,
}

/// Stage 1 -> 2, server -> one client: the ciphertexts addressed to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareBundle {
    pub round_id: [u8; 32],
    pub recipient: ParticipantId,
    pub shares: Vec<EncryptedShare>,
}

/// Stage 2, client -> server: the masked input, little-endian ring words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskedInput {
    pub round_id: [u8; 32],
    pub sender: ParticipantId,
    pub ring: Ring,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// Stage 2 -> 3, server -> every survivor: U3, sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurvivorList {
    pub round_id: [u8; 32],
    pub survivors: Vec<ParticipantId>,
}

/// Stage 3, client -> server: signature over (round_id, sorted U3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencySignature {
    pub round_id: [u8; 32],
    pub sender: ParticipantId,
    #[serde(with = "serde_bytes")]
    pub signature: [u8; 64],
}

/// One participant's consistency signature, forwarded by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurvivorSignature {
    pub signer: ParticipantId,
    #[serde(with = "serde_bytes")]
    pub signature: [u8; 64],
}

/// Stage 3 -> 4, server -> every signer: U3 and the signatures received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedSurvivors {
    pub round_id: [u8; 32],
    pub survivors: Vec<ParticipantId>,
    pub signatures: Vec<SurvivorSignature>,
}

/// A revealed share of participant `owner`'s secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevealedShare {
    pub owner: ParticipantId,
    pub share: Share,
}

/// Stage 4, client -> server: shares of b for survivors, of s_sk for
/// neighbours that dropped after sharing. Never both for one owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmaskShares {
    pub round_id: [u8; 32],
    pub sender: ParticipantId,
    pub b_shares: Vec<RevealedShare>,
    pub sk_shares: Vec<RevealedShare>,
}

/// Plaintext inside an [`EncryptedShare`] (never on the wire unencrypted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SharePlaintext {
    pub round_id: [u8; 32],
    pub sender: ParticipantId,
    pub receiver: ParticipantId,
    pub sk_share: Share,
    pub b_share: Share,
}

impl Message for AdvertiseKeys {
    fn check_bounds(&self) -> Result<()> {
        Ok(())
    }
}
impl Message for SeedCommitments {
    fn check_bounds(&self) -> Result<()> {
        bound("commitments", self.commitments.len(), MAX_PARTICIPANTS)
    }
}
impl Message for SeedReveal {
    fn check_bounds(&self) -> Result<()> {
        Ok(())
    }
}
impl Message for KeyBundle {
    fn check_bounds(&self) -> Result<()> {
        bound("nonces", self.nonces.len(), MAX_PARTICIPANTS)?;
        bound("adverts", self.adverts.len(), MAX_PARTICIPANTS)
    }
}
fn check_shares(v: &[EncryptedShare]) -> Result<()> {
    bound("shares", v.len(), MAX_PARTICIPANTS)?;
    for s in v {
        bound("ciphertext", s.ciphertext.len(), MAX_CIPHERTEXT)?;
    }
    Ok(())
}
impl Message for ShareKeys {
    fn check_bounds(&self) -> Result<()> {
        check_shares(&self.shares)
    }
}
impl Message for ShareBundle {
    fn check_bounds(&self) -> Result<()> {
        check_shares(&self.shares)
    }
}
impl Message for MaskedInput {
    fn check_bounds(&self) -> Result<()> {
        bound("masked input bytes", self.data.len(), MAX_VECTOR_LEN * 8)
    }
}
impl Message for SurvivorList {
    fn check_bounds(&self) -> Result<()> {
        bound("survivors", self.survivors.len(), MAX_PARTICIPANTS)
    }
}
impl Message for ConsistencySignature {
    fn check_bounds(&self) -> Result<()> {
        Ok(())
    }
}
impl Message for SignedSurvivors {
    fn check_bounds(&self) -> Result<()> {
        bound("survivors", self.survivors.len(), MAX_PARTICIPANTS)?;
        bound("signatures", self.signatures.len(), MAX_PARTICIPANTS)
    }
}
impl Message for UnmaskShares {
    fn check_bounds(&self) -> Result<()> {
        bound("b shares", self.b_shares.len(), MAX_PARTICIPANTS)?;
        bound("sk shares", self.sk_shares.len(), MAX_PARTICIPANTS)
    }
}
impl Message for SharePlaintext {
    fn check_bounds(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngCore, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    fn garbage_never_panics<M: Message + std::fmt::Debug + PartialEq>(sample: &M) {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let good = sample.encode();
        assert_eq!(&M::decode(&good).unwrap(), sample);
        // Truncations, trailing bytes, bit flips and random bytes.
        for cut in 0..good.len() {
            assert!(M::decode(&good[..cut]).is_err() || cut == good.len());
        }
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(M::decode(&long), Err(SecAggError::Decode(_))));
        for _ in 0..2000 {
            let mut b = good.clone();
            let i = rng.next_u32() as usize % b.len().max(1);
            if !b.is_empty() {
                b[i] ^= 1 << (rng.next_u32() % 8);
            }
            let _ = M::decode(&b);
            let len = rng.next_u32() as usize % 300;
            let mut r = vec![0u8; len];
            rng.fill_bytes(&mut r);
            let _ = M::decode(&r);
        }
        // Huge length prefixes must not allocate or panic.
        let _ = M::decode(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(M::decode(&[]).is_err());
    }

    #[test]
    fn every_message_survives_garbage() {
        let r = [1u8; 32];
        let p = ParticipantId(4);
        let sh = Share {
            x: 5,
            y: [1, 2, 3, 4, 5],
        };
        let advert = AdvertiseKeys {
            round_id: r,
            sender: p,
            c_pk: [2; 32],
            s_pk: [3; 32],
            seed_commitment: [5; 32],
            signature: [4; 64],
        };
        garbage_never_panics(&advert);
        garbage_never_panics(&SeedCommitments {
            round_id: r,
            commitments: vec![Committed {
                participant: p,
                commitment: [6; 32],
            }],
        });
        garbage_never_panics(&SeedReveal {
            round_id: r,
            sender: p,
            nonce: [7; 32],
        });
        garbage_never_panics(&KeyBundle {
            round_id: r,
            recipient: p,
            nonces: vec![SeedNonce {
                participant: p,
                nonce: [7; 32],
            }],
            adverts: vec![advert],
        });
        let es = vec![EncryptedShare {
            peer: p,
            ciphertext: vec![9; 40],
        }];
        garbage_never_panics(&ShareKeys {
            round_id: r,
            sender: p,
            shares: es.clone(),
        });
        garbage_never_panics(&ShareBundle {
            round_id: r,
            recipient: p,
            shares: es,
        });
        garbage_never_panics(&MaskedInput {
            round_id: r,
            sender: p,
            ring: Ring::U64,
            data: vec![7; 24],
        });
        garbage_never_panics(&SurvivorList {
            round_id: r,
            survivors: vec![p, ParticipantId(9)],
        });
        garbage_never_panics(&ConsistencySignature {
            round_id: r,
            sender: p,
            signature: [8; 64],
        });
        garbage_never_panics(&SignedSurvivors {
            round_id: r,
            survivors: vec![p],
            signatures: vec![SurvivorSignature {
                signer: p,
                signature: [8; 64],
            }],
        });
        garbage_never_panics(&UnmaskShares {
            round_id: r,
            sender: p,
            b_shares: vec![RevealedShare {
                owner: p,
                share: sh.clone(),
            }],
            sk_shares: vec![RevealedShare {
                owner: ParticipantId(1),
                share: sh.clone(),
            }],
        });
        garbage_never_panics(&SharePlaintext {
            round_id: r,
            sender: p,
            receiver: p,
            sk_share: sh.clone(),
            b_share: sh,
        });
    }

    #[test]
    fn oversized_lists_refused() {
        let big = SurvivorList {
            round_id: [0; 32],
            survivors: vec![ParticipantId(0); MAX_PARTICIPANTS + 1],
        };
        assert!(matches!(
            SurvivorList::decode(&big.encode()),
            Err(SecAggError::Decode(_))
        ));
    }
}
