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
//! - [`graph`]: the public neighbour graph, drawn from a seed every
//!   advertiser contributes to by commit-then-reveal (complete, or a
//!   k-regular Harary ring over a seeded permutation).
//! - [`quantize`]: float ↔ ring quantisation (unbiased stochastic rounding,
//!   overflow checks, documented error bound).
//! - [`prg`]: AES-256-CTR mask expansion added/subtracted in place; `RingVec`.
//! - [`shamir`]: t-of-n sharing of 32-byte secrets over GF(2^61 - 1).
//! - [`crypto`]: X25519, HKDF-SHA256 key derivation with full context
//!   binding, ChaCha20-Poly1305 share encryption, Ed25519 signatures.
//! - [`messages`]: every wire message, postcard encode/decode with bounds.
//! - [`client`]: client stages `ClientAdvertised → ClientRevealed → ClientShared →
//!   ClientMasked → ClientConsistent → ClientDone`.
//! - [`server`]: server stages `ServerCollectingKeys → …Reveals → …Shares → …Masked →
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
    Client, ClientAdvertised, ClientConsistent, ClientDone, ClientMasked, ClientRevealed,
    ClientShared, Revealed,
};
pub use config::{ParticipantId, Ring, RoundConfig, Stage, query_context, recommended_neighbours};
pub use error::{Result, SecAggError};
pub use messages::Message;
pub use quantize::Quantizer;
pub use server::{
    Aggregate, Server, ServerCollectingKeys, ServerCollectingMasked, ServerCollectingReveals,
    ServerCollectingShares, ServerCollectingSignatures, ServerCollectingUnmask,
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

/// Stages 0 and 1 for clients that all advertised and all reveal: closes
/// the advertisements, has every client reveal its graph-seed nonce and
/// closes the reveals. For in-memory drivers (benches, tests) that script
/// the later stages themselves.
#[allow(clippy::type_complexity)]
pub fn fix_graph(
    mut server: ServerCollectingKeys,
    clients: BTreeMap<ParticipantId, (ClientAdvertised, messages::AdvertiseKeys)>,
) -> Result<(
    ServerCollectingShares,
    Vec<messages::KeyBundle>,
    BTreeMap<ParticipantId, ClientRevealed>,
)> {
    let mut advertised = BTreeMap::new();
    for (p, (st, ad)) in clients {
        server.handle_advertise(p, wire(&ad)?)?;
        advertised.insert(p, st);
    }
    let (mut server, commitments) = server.close()?;
    let mut revealed = BTreeMap::new();
    for (p, st) in advertised {
        let (st, msg) = st.handle_commitments(wire(&commitments)?)?;
        server.handle_reveal(p, wire(&msg)?)?;
        revealed.insert(p, st);
    }
    let (server, bundles) = server.close()?;
    Ok((server, bundles, revealed))
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
    simulate_observed(config, inputs, dropouts, rng).0
}

/// [`simulate`], also returning the graph seed once the round fixed it
/// (`None` if it ended before), so tests can state which graph the
/// dropout rule was applied to.
pub fn simulate_observed<R: CryptoRng + RngCore + ?Sized>(
    config: &RoundConfig,
    inputs: &BTreeMap<ParticipantId, Vec<u64>>,
    dropouts: &DropoutPlan,
    rng: &mut R,
) -> (Result<Aggregate>, Option<[u8; 32]>) {
    let mut config = config.clone();
    let keys: BTreeMap<ParticipantId, ed25519_dalek::SigningKey> = config
        .participants
        .iter()
        .map(|&p| (p, crypto::ed25519_keypair(rng)))
        .collect();
    config.verifying_keys = keys.iter().map(|(p, k)| (*p, k.verifying_key())).collect();
    let mut seed = None;
    let result = Server::new(config.clone())
        .and_then(|server| run_round(&config, &keys, server, inputs, dropouts, &mut seed, rng));
    (result, seed)
}

fn run_round<R: CryptoRng + RngCore + ?Sized>(
    config: &RoundConfig,
    keys: &BTreeMap<ParticipantId, ed25519_dalek::SigningKey>,
    mut server: ServerCollectingKeys,
    inputs: &BTreeMap<ParticipantId, Vec<u64>>,
    plan: &DropoutPlan,
    seed: &mut Option<[u8; 32]>,
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
    let (mut server, commitments) = server.close()?;
    let mut revealed = BTreeMap::new();
    let mut nonces = BTreeMap::new();
    for (p, st) in c0 {
        if plan.sends(p, Stage::RevealSeed) {
            let (st, msg) = st.handle_commitments(wire(&commitments)?)?;
            nonces.insert(p, msg.nonce);
            server.handle_reveal(p, wire(&msg)?)?;
            revealed.insert(p, st);
        }
    }
    // The seed the server draws the graph from, known even if it then
    // finds too few advertisers around someone.
    if nonces.len() == commitments.commitments.len() {
        *seed = Some(crypto::graph_seed(&config.binding(), &nonces));
    }
    let (mut server, bundles) = server.close()?;
    let mut c1 = BTreeMap::new();
    for b in bundles {
        let p = b.recipient;
        if let Some(st) = revealed
            .remove(&p)
            .filter(|_| plan.sends(p, Stage::ShareKeys))
        {
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
