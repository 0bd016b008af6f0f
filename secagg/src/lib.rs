//! fedsoc-secagg: secure aggregation for federated learning across SOCs.
//!
//! The coordinator learns only the SUM of the participants' quantised model
//! updates (Bonawitz et al. 2017, "Practical Secure Aggregation"), with the
//! sparse O(log n) neighbour graph of Bell et al. 2020 ("SecAgg+"). Each
//! input is masked with a self-mask `PRG(b_i)` and pairwise masks
//! `±PRG(s_ij)` that cancel in the sum; `b_i` and the masking key `s_sk_i`
//! are Shamir-shared among the neighbours so the server can remove the masks
//! of survivors (`b_i`) and of participants that dropped after sharing
//! (`s_sk_j`), but never both for the same participant.
//!
//! The library is sans-IO: no sockets, files, threads or clocks. Client and
//! server are state machines whose stages are distinct types consumed by
//! each step; randomness is passed in; the caller decides when a stage's
//! deadline has passed (`close()` on the server stage).
//!
//! # Layout
//! - [`config`]: `RoundConfig`, `ParticipantId`, `Ring`, `Stage`, safety
//!   validation and the recommended `(k, t)`.
//! - [`graph`]: the public neighbour graph derived from the round id
//!   (complete, or a k-regular Harary ring over a seeded permutation).
//! - [`quantize`]: float ↔ ring quantisation (unbiased stochastic rounding,
//!   overflow checks, documented error bound).
//! - [`prg`]: AES-256-CTR mask expansion added/subtracted in place; `RingVec`.
//! - [`shamir`]: t-of-n sharing of 32-byte secrets over GF(2^61 - 1).
//! - [`crypto`]: X25519, HKDF-SHA256 key derivation with full context
//!   binding, ChaCha20-Poly1305 share encryption, Ed25519 signatures.
//! - [`messages`]: every wire message, postcard encode/decode with bounds.
//! - [`client`]: client stages `ClientAdvertised → ClientShared →
//!   ClientMasked → ClientConsistent → ClientDone`.
//! - [`server`]: server stages `ServerCollectingKeys → …Shares → …Masked →
//!   …Signatures → …Unmask → Aggregate`, with the dropout threshold rule.
//! - [`error`](mod@error) — `SecAggError`, one variant per failure.
//! - [`simulate`] (this file): an in-memory driver running every client and
//!   the server, passing each message through its byte encoding.

#![forbid(unsafe_code)]

pub mod client;
pub mod config;
pub mod crypto;
pub mod error;
pub mod graph;
pub mod messages;
pub mod prg;
pub mod quantize;
pub mod server;
pub mod shamir;
pub mod weighted;

use std::collections::BTreeMap;

use rand::{CryptoRng, RngCore};

pub use client::{
    Client, ClientAdvertised, ClientConsistent, ClientDone, ClientMasked, ClientShared, Revealed,
};
pub use config::{ParticipantId, Ring, RoundConfig, Stage, recommended_neighbours};
pub use error::{Result, SecAggError};
pub use messages::Message;
pub use quantize::Quantizer;
pub use server::{
    Aggregate, Server, ServerCollectingKeys, ServerCollectingMasked, ServerCollectingShares,
    ServerCollectingSignatures, ServerCollectingUnmask,
};

/// Who stops talking when: `drops[p] = s` means participant `p` never
/// delivers its message of stage `s` or of any later stage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropoutPlan {
    /// Participant → first stage whose message it does not send.
    pub drops: BTreeMap<ParticipantId, Stage>,
}

impl DropoutPlan {
    /// Nobody drops.
    pub fn none() -> Self {
        Self::default()
    }
    fn sends(&self, p: ParticipantId, stage: Stage) -> bool {
        self.drops.get(&p).is_none_or(|s| *s > stage)
    }
}

/// Encode then decode, as a real transport would.
fn wire<M: Message>(m: &M) -> Result<M> {
    M::decode(&m.encode())
}

/// Run a whole round in memory: every client and the server, every message
/// through bytes. Fresh long-term identities are drawn from `rng` and
/// replace `config.verifying_keys` (this is a test/benchmark driver; real
/// identities come from the PKI). Any client or server error is returned.
pub fn simulate<R: CryptoRng + RngCore + ?Sized>(
    config: &RoundConfig,
    inputs: &BTreeMap<ParticipantId, Vec<u64>>,
    dropouts: &DropoutPlan,
    rng: &mut R,
) -> Result<Aggregate> {
    let mut config = config.clone();
    let keys: BTreeMap<ParticipantId, ed25519_dalek::SigningKey> = config
        .participants
        .iter()
        .map(|&p| (p, crypto::ed25519_keypair(rng)))
        .collect();
    config.verifying_keys = keys.iter().map(|(p, k)| (*p, k.verifying_key())).collect();
    let server = Server::new(config.clone())?;
    run_round(&config, &keys, server, inputs, dropouts, rng)
}

fn run_round<R: CryptoRng + RngCore + ?Sized>(
    config: &RoundConfig,
    keys: &BTreeMap<ParticipantId, ed25519_dalek::SigningKey>,
    mut server: ServerCollectingKeys,
    inputs: &BTreeMap<ParticipantId, Vec<u64>>,
    plan: &DropoutPlan,
    rng: &mut R,
) -> Result<Aggregate> {
    let mut c0 = BTreeMap::new();
    for (&p, key) in keys {
        if plan.sends(p, Stage::AdvertiseKeys) {
            let (st, msg) = Client::start(config.clone(), p, key, rng)?;
            server.handle_advertise(p, wire(&msg)?)?;
            c0.insert(p, st);
        }
    }
    let (mut server, bundles) = server.close()?;
    let mut c1 = BTreeMap::new();
    for b in bundles {
        let p = b.recipient;
        if let Some(st) = c0.remove(&p).filter(|_| plan.sends(p, Stage::ShareKeys)) {
            let (st, msg) = st.handle_key_bundle(wire(&b)?, rng)?;
            server.handle_share_keys(p, wire(&msg)?)?;
            c1.insert(p, st);
        }
    }
    let (mut server, bundles) = server.close()?;
    let mut c2 = BTreeMap::new();
    for b in bundles {
        let p = b.recipient;
        if let Some(st) = c1.remove(&p).filter(|_| plan.sends(p, Stage::MaskedInput)) {
            let input = inputs.get(&p).ok_or_else(|| {
                SecAggError::UnexpectedMessage(format!("simulate: no input for participant {p}"))
            })?;
            let (st, msg) = st.handle_shares(wire(&b)?, input, rng)?;
            server.handle_masked_input(p, wire(&msg)?)?;
            c2.insert(p, st);
        }
    }
    let (mut server, list) = server.close()?;
    let mut c3 = BTreeMap::new();
    for (p, st) in c2 {
        if plan.sends(p, Stage::Consistency) {
            let (st, msg) = st.handle_survivors(wire(&list)?)?;
            server.handle_consistency(p, wire(&msg)?)?;
            c3.insert(p, st);
        }
    }
    let (mut server, signed) = server.close()?;
    for (p, st) in c3 {
        if plan.sends(p, Stage::Unmask) {
            let (_done, msg) = st.handle_consistency(wire(&signed)?)?;
            server.handle_unmask(p, wire(&msg)?)?;
        }
    }
    server.close()
}
