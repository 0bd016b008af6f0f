//! Helpers shared by the protocol and malicious-server tests.

use ed25519_dalek::SigningKey;
use fedsoc_secagg::messages::{Committed, SeedCommitments, SeedNonce};
use fedsoc_secagg::{Client, ClientRevealed, ParticipantId, RoundConfig};
use rand_chacha::ChaCha20Rng;

/// `p` advertised, saw a commitment list with only its own commitment and
/// revealed: a client ready for a (possibly forged) key bundle, and the
/// nonce that bundle must carry for it.
pub fn revealed_alone(
    cfg: &RoundConfig,
    p: ParticipantId,
    key: &SigningKey,
    rng: &mut ChaCha20Rng,
) -> (ClientRevealed, Vec<SeedNonce>) {
    let (st, ad) = Client::start(cfg.clone(), p, key, rng).unwrap();
    let list = SeedCommitments {
        round_id: cfg.round_id,
        commitments: vec![Committed {
            participant: p,
            commitment: ad.seed_commitment,
        }],
    };
    let (st, reveal) = st.handle_commitments(list).unwrap();
    let nonce = SeedNonce {
        participant: p,
        nonce: reveal.nonce,
    };
    (st, vec![nonce])
}
