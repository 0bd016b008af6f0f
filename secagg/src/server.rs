//! Server state machine. Each stage collects one kind of client message via
//! `handle_*(&mut self, from, msg)` (an invalid message is refused with an
//! error and the sender simply does not advance) and is ended by its caller
//! with `close(self)` when the stage deadline passes; `close` returns the
//! next stage and the messages to send, or `TooManyDropouts` when the
//! survivors can no longer complete (then retry with a fresh round id).
//!
//! The graph is not known until stage 1 closes: advertisements carry
//! commitments to fresh nonces, the advertisers (U1) are fixed at the close
//! of stage 0, and the graph seed is the hash of all their nonces, revealed
//! in stage 1. Every advertiser must reveal, or the round ends.
//!
//! Threshold rule checked at each close, with N(i) the neighbours of i and
//! U1 ⊇ U2 ⊇ U3 ⊇ U4 ⊇ U5 the senders of each stage's message:
//! * keys (checked when the graph is fixed, at the reveal close):
//!   every i ∈ U1 has |N(i) ∩ U1| ≥ t;
//! * shares:      every i ∈ U2 has |N(i) ∩ U2| ≥ t;
//! * masked:      every i ∈ U2 has |N(i) ∩ U3| ≥ t (survivors need t live
//!   neighbours; dropped j ∈ U2\U3 need t share holders for s_sk_j);
//! * consistency: every i ∈ U4 has |N(i) ∩ U4| ≥ t signers; every i ∈ U3 has
//!   |(N(i) ∪ {i}) ∩ U4| ≥ t; every j ∈ U2\U3 has |N(j) ∩ U4| ≥ t;
//! * unmask:      the same two share counts over U5;
//! * and U1, U2, U3 must be non-empty (a sum of nobody is refused).

use std::collections::{BTreeMap, BTreeSet};

use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::config::{ParticipantId, RoundConfig, Stage};
use crate::crypto;
use crate::error::{Result, SecAggError};
use crate::graph::NeighbourGraph;
use crate::messages::{
    AdvertiseKeys, Committed, ConsistencySignature, EncryptedShare, KeyBundle, MaskedInput,
    SeedCommitments, SeedNonce, SeedReveal, ShareBundle, ShareKeys, SignedSurvivors, SurvivorList,
    SurvivorSignature, UnmaskShares, check_round,
};
use crate::prg::{RingVec, Sign};
use crate::shamir::{self, Share};

/// The result of a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    /// Wrapping sum (mod the ring) of the inputs of `survivors`.
    pub sum: Vec<u64>,
    /// U3: the participants whose inputs are in `sum`.
    pub survivors: Vec<ParticipantId>,
    /// Everyone who failed to deliver some stage's message, with the first
    /// such stage. Members of U3 may appear here (dropped at Consistency or
    /// Unmask) and are still in the sum.
    pub dropped: BTreeMap<ParticipantId, Stage>,
    /// Mask vectors the server expanded to unmask (one self mask per
    /// survivor, one pairwise mask per surviving neighbour of a dropout):
    /// its PRG work, the floor of its cost.
    pub masks_expanded: usize,
    /// The seed the neighbour graph was drawn from (from every
    /// advertiser's revealed nonce), for the audit record.
    pub graph_seed: [u8; 32],
}

/// The round before its graph is known (stages 0 and 1).
struct Opening {
    config: RoundConfig,
    /// [`RoundConfig::binding`]: what the advertisements sign.
    binding: [u8; 32],
}

/// `from` must be a roster member sending in this round under its own id.
fn check_sender(
    config: &RoundConfig,
    from: ParticipantId,
    claimed: ParticipantId,
    round: &[u8; 32],
) -> Result<()> {
    check_round(&config.round_id, round)?;
    if claimed != from {
        return Err(SecAggError::WrongSender {
            claimed,
            actual: from,
        });
    }
    if !config.verifying_keys.contains_key(&from) || !config.participants.contains(&from) {
        return Err(SecAggError::UnknownParticipant(from));
    }
    Ok(())
}

/// The round once its graph is known (stage 2 on).
#[derive(Clone)]
struct Common {
    config: RoundConfig,
    /// [`crypto::sealed_binding`]: what the consistency signatures cover.
    sealed: [u8; 32],
    /// [`crypto::graph_seed`]: what the graph was drawn from.
    graph_seed: [u8; 32],
    graph: NeighbourGraph,
    dropped: BTreeMap<ParticipantId, Stage>,
}

impl Common {
    fn t(&self) -> usize {
        self.config.threshold
    }
    fn check_sender(
        &self,
        from: ParticipantId,
        claimed: ParticipantId,
        round: &[u8; 32],
    ) -> Result<()> {
        check_sender(&self.config, from, claimed, round)
    }
    fn live_neighbours(&self, i: ParticipantId, set: &BTreeSet<ParticipantId>) -> usize {
        self.graph
            .neighbours(i)
            .iter()
            .filter(|j| set.contains(j))
            .count()
    }
    /// Record members of `prev` missing from `next` as dropped at `stage`.
    fn record_drops(
        &mut self,
        prev: &BTreeSet<ParticipantId>,
        next: &BTreeSet<ParticipantId>,
        stage: Stage,
    ) {
        for p in prev.difference(next) {
            self.dropped.entry(*p).or_insert(stage);
        }
    }
    /// Require `|N(i) ∩ set| (+1 if self_counts and i ∈ set) ≥ t` for all `who`.
    fn require(
        &self,
        who: &BTreeSet<ParticipantId>,
        set: &BTreeSet<ParticipantId>,
        self_counts: bool,
        stage: Stage,
        what: &str,
    ) -> Result<()> {
        for &i in who {
            let n = self.live_neighbours(i, set) + usize::from(self_counts && set.contains(&i));
            if n < self.t() {
                return Err(SecAggError::TooManyDropouts {
                    stage,
                    detail: format!("participant {i} has {n} {what}, threshold {}", self.t()),
                });
            }
        }
        Ok(())
    }
}

fn not_admitted(from: ParticipantId, stage: &str) -> SecAggError {
    SecAggError::UnexpectedMessage(format!(
        "{from} is not admitted to the {stage} stage (dropped earlier or never joined)"
    ))
}

/// Entry point of the server side.
pub struct Server;

impl Server {
    /// Start a round: validate the config and wait for advertisements.
    #[allow(clippy::new_ret_no_self)] // the server's first stage is its own type
    pub fn new(config: RoundConfig) -> Result<ServerCollectingKeys> {
        config.validate()?;
        Ok(ServerCollectingKeys {
            o: Opening {
                binding: config.binding(),
                config,
            },
            adverts: BTreeMap::new(),
        })
    }
}

/// Stage 0: collecting key advertisements.
pub struct ServerCollectingKeys {
    o: Opening,
    adverts: BTreeMap<ParticipantId, AdvertiseKeys>,
}

impl ServerCollectingKeys {
    /// Accept one advertisement after checking its signature (a bad one is
    /// dropped here so it never reaches the neighbours).
    pub fn handle_advertise(&mut self, from: ParticipantId, msg: AdvertiseKeys) -> Result<()> {
        check_sender(&self.o.config, from, msg.sender, &msg.round_id)?;
        if self.adverts.contains_key(&from) {
            return Err(SecAggError::Duplicate {
                participant: from,
                what: "advertisement",
            });
        }
        // check_sender proved the key exists.
        let vk = &self.o.config.verifying_keys[&from];
        crypto::verify(
            vk,
            &crypto::advert_transcript(
                &self.o.binding,
                from,
                &msg.c_pk,
                &msg.s_pk,
                &msg.seed_commitment,
            ),
            &msg.signature,
            from,
        )?;
        self.adverts.insert(from, msg);
        Ok(())
    }

    /// End of stage 0: the advertisers (U1) are fixed; every one of them is
    /// sent the list of their seed commitments.
    pub fn close(self) -> Result<(ServerCollectingReveals, SeedCommitments)> {
        if self.adverts.is_empty() {
            return Err(SecAggError::TooManyDropouts {
                stage: Stage::AdvertiseKeys,
                detail: "nobody advertised".into(),
            });
        }
        let list = SeedCommitments {
            round_id: self.o.config.round_id,
            commitments: self
                .adverts
                .values()
                .map(|a| Committed {
                    participant: a.sender,
                    commitment: a.seed_commitment,
                })
                .collect(),
        };
        Ok((
            ServerCollectingReveals {
                o: self.o,
                adverts: self.adverts,
                nonces: BTreeMap::new(),
            },
            list,
        ))
    }
}

/// Stage 1: collecting the advertisers' graph-seed nonces.
pub struct ServerCollectingReveals {
    o: Opening,
    adverts: BTreeMap<ParticipantId, AdvertiseKeys>,
    nonces: BTreeMap<ParticipantId, [u8; 32]>,
}

impl ServerCollectingReveals {
    /// Accept one advertiser's nonce if it matches its commitment.
    pub fn handle_reveal(&mut self, from: ParticipantId, msg: SeedReveal) -> Result<()> {
        check_sender(&self.o.config, from, msg.sender, &msg.round_id)?;
        let Some(advert) = self.adverts.get(&from) else {
            return Err(not_admitted(from, "seed reveal"));
        };
        if self.nonces.contains_key(&from) {
            return Err(SecAggError::Duplicate {
                participant: from,
                what: "graph-seed nonce",
            });
        }
        if crypto::seed_commitment(&self.o.binding, from, &msg.nonce) != advert.seed_commitment {
            return Err(SecAggError::GraphSeed(format!(
                "the nonce of {from} does not match its commitment"
            )));
        }
        self.nonces.insert(from, msg.nonce);
        Ok(())
    }

    /// Advertisers whose nonce has not arrived (yet).
    pub fn unrevealed(&self) -> Vec<ParticipantId> {
        self.adverts
            .keys()
            .filter(|p| !self.nonces.contains_key(p))
            .copied()
            .collect()
    }

    /// End of stage 1: every advertiser must have revealed, or the round
    /// ends (a coordinator that could leave revealed nonces out would
    /// choose among seeds). Then the graph is fixed, the stage-0 threshold
    /// rule checked on it, and each advertiser gets every nonce and its
    /// neighbours' advertisements.
    pub fn close(self) -> Result<(ServerCollectingShares, Vec<KeyBundle>)> {
        let missing: Vec<String> = self.unrevealed().iter().map(|p| p.to_string()).collect();
        if !missing.is_empty() {
            return Err(SecAggError::TooManyDropouts {
                stage: Stage::RevealSeed,
                detail: format!(
                    "participant(s) {} advertised but did not reveal their graph-seed nonce; \
                     the graph cannot be fixed without every advertiser's nonce, so the round \
                     must be retried",
                    missing.join(", ")
                ),
            });
        }
        let Opening { config, binding } = self.o;
        let seed = crypto::graph_seed(&binding, &self.nonces);
        let mut c = Common {
            sealed: crypto::sealed_binding(&binding, &seed),
            graph_seed: seed,
            graph: NeighbourGraph::new(&config, &seed),
            config,
            dropped: BTreeMap::new(),
        };
        let all: BTreeSet<_> = c.config.participants.iter().copied().collect();
        let u1: BTreeSet<_> = self.adverts.keys().copied().collect();
        c.record_drops(&all, &u1, Stage::AdvertiseKeys);
        // Counting each participant itself, as Bonawitz et al. do
        // (|U1| ≥ t): a dropout here must not kill a round that can finish.
        c.require(
            &u1,
            &u1,
            true,
            Stage::AdvertiseKeys,
            "advertisers among itself and its neighbours",
        )?;
        let nonces: Vec<SeedNonce> = self
            .nonces
            .iter()
            .map(|(p, nonce)| SeedNonce {
                participant: *p,
                nonce: *nonce,
            })
            .collect();
        let bundles = u1
            .iter()
            .map(|&i| KeyBundle {
                round_id: c.config.round_id,
                recipient: i,
                nonces: nonces.clone(),
                adverts: c
                    .graph
                    .neighbours(i)
                    .iter()
                    .filter_map(|j| self.adverts.get(j).cloned())
                    .collect(),
            })
            .collect();
        Ok((
            ServerCollectingShares {
                c,
                adverts: self.adverts,
                u1,
                shares: BTreeMap::new(),
            },
            bundles,
        ))
    }
}

/// Stage 1: collecting encrypted shares.
pub struct ServerCollectingShares {
    c: Common,
    adverts: BTreeMap<ParticipantId, AdvertiseKeys>,
    u1: BTreeSet<ParticipantId>,
    shares: BTreeMap<ParticipantId, BTreeMap<ParticipantId, Vec<u8>>>,
}

impl ServerCollectingShares {
    /// The seed the round's neighbour graph was drawn from.
    pub fn graph_seed(&self) -> [u8; 32] {
        self.c.graph_seed
    }

    /// Accept one client's ciphertexts: exactly one for each of its
    /// neighbours that advertised.
    pub fn handle_share_keys(&mut self, from: ParticipantId, msg: ShareKeys) -> Result<()> {
        self.c.check_sender(from, msg.sender, &msg.round_id)?;
        if !self.u1.contains(&from) {
            return Err(not_admitted(from, "share"));
        }
        if self.shares.contains_key(&from) {
            return Err(SecAggError::Duplicate {
                participant: from,
                what: "share message",
            });
        }
        let mut map = BTreeMap::new();
        for EncryptedShare { peer, ciphertext } in msg.shares {
            if !self.c.graph.are_neighbours(from, peer) || !self.u1.contains(&peer) {
                return Err(SecAggError::NotANeighbour {
                    me: from,
                    other: peer,
                });
            }
            if map.insert(peer, ciphertext).is_some() {
                return Err(SecAggError::Duplicate {
                    participant: peer,
                    what: "share recipient",
                });
            }
        }
        let expected = self.c.live_neighbours(from, &self.u1);
        if map.len() != expected {
            return Err(SecAggError::WrongLength {
                expected,
                got: map.len(),
            });
        }
        self.shares.insert(from, map);
        Ok(())
    }

    /// End of stage 1: route to each sender the ciphertexts addressed to it
    /// by its neighbours that also sent.
    pub fn close(mut self) -> Result<(ServerCollectingMasked, Vec<ShareBundle>)> {
        let u2: BTreeSet<_> = self.shares.keys().copied().collect();
        self.c.record_drops(&self.u1, &u2, Stage::ShareKeys);
        // Counting itself, as at every stage: whether a participant that
        // later drops leaves enough holders of its key is checked then.
        self.c.require(
            &u2,
            &u2,
            true,
            Stage::ShareKeys,
            "share senders among itself and its neighbours",
        )?;
        if u2.is_empty() {
            return Err(SecAggError::TooManyDropouts {
                stage: Stage::ShareKeys,
                detail: "nobody sent shares".into(),
            });
        }
        let mut bundles = Vec::with_capacity(u2.len());
        for &i in &u2 {
            let mut v = Vec::new();
            for j in self.c.graph.neighbours(i) {
                // Every j in U2 sent a ciphertext to each advertised neighbour, and i ∈ U1.
                if let Some(ct) = self.shares.get(j).and_then(|m| m.get(&i)) {
                    v.push(EncryptedShare {
                        peer: *j,
                        ciphertext: ct.clone(),
                    });
                }
            }
            bundles.push(ShareBundle {
                round_id: self.c.config.round_id,
                recipient: i,
                shares: v,
            });
        }
        let sum = RingVec::zeros(self.c.config.ring, self.c.config.vector_len);
        Ok((
            ServerCollectingMasked {
                c: self.c,
                adverts: self.adverts,
                u2,
                sum,
                u3: BTreeSet::new(),
            },
            bundles,
        ))
    }
}

/// Stage 2: collecting masked inputs (summed on arrival; no copies kept).
pub struct ServerCollectingMasked {
    c: Common,
    adverts: BTreeMap<ParticipantId, AdvertiseKeys>,
    u2: BTreeSet<ParticipantId>,
    sum: RingVec,
    u3: BTreeSet<ParticipantId>,
}

impl ServerCollectingMasked {
    /// Add one masked input into the running sum.
    pub fn handle_masked_input(&mut self, from: ParticipantId, msg: MaskedInput) -> Result<()> {
        self.c.check_sender(from, msg.sender, &msg.round_id)?;
        if !self.u2.contains(&from) {
            return Err(not_admitted(from, "masked-input"));
        }
        if self.u3.contains(&from) {
            return Err(SecAggError::Duplicate {
                participant: from,
                what: "masked input",
            });
        }
        if msg.ring != self.c.config.ring {
            return Err(SecAggError::UnexpectedMessage(format!(
                "masked input from {from} uses ring {:?}",
                msg.ring
            )));
        }
        let wb = self.c.config.ring.word_bytes();
        if msg.data.len() != self.c.config.vector_len * wb {
            return Err(SecAggError::WrongLength {
                expected: self.c.config.vector_len,
                got: msg.data.len() / wb,
            });
        }
        self.sum.add_le_bytes(&msg.data)?;
        self.u3.insert(from);
        Ok(())
    }

    /// End of stage 2: broadcast U3.
    pub fn close(mut self) -> Result<(ServerCollectingSignatures, SurvivorList)> {
        let u3 = std::mem::take(&mut self.u3);
        self.c.record_drops(&self.u2, &u3, Stage::MaskedInput);
        // A survivor's own share of its self-mask counts (Bonawitz et al.:
        // |U3| ≥ t with the user itself in U3); a dropout's does not.
        self.c.require(
            &self.u2,
            &u3,
            true,
            Stage::MaskedInput,
            "live holders among itself and its neighbours that sent masked inputs",
        )?;
        if u3.is_empty() {
            return Err(SecAggError::TooManyDropouts {
                stage: Stage::MaskedInput,
                detail: "nobody sent a masked input".into(),
            });
        }
        let list = SurvivorList {
            round_id: self.c.config.round_id,
            survivors: u3.iter().copied().collect(),
        };
        let transcript = crypto::survivors_transcript(&self.c.sealed, &list.survivors);
        let next = ServerCollectingSignatures {
            c: self.c,
            adverts: self.adverts,
            u2: self.u2,
            u3,
            sum: self.sum,
            transcript,
            sigs: BTreeMap::new(),
        };
        Ok((next, list))
    }
}

/// Stage 3: collecting consistency signatures.
pub struct ServerCollectingSignatures {
    c: Common,
    adverts: BTreeMap<ParticipantId, AdvertiseKeys>,
    u2: BTreeSet<ParticipantId>,
    u3: BTreeSet<ParticipantId>,
    sum: RingVec,
    transcript: Vec<u8>,
    sigs: BTreeMap<ParticipantId, [u8; 64]>,
}

impl ServerCollectingSignatures {
    /// Accept one signature over (round_id, U3).
    pub fn handle_consistency(
        &mut self,
        from: ParticipantId,
        msg: ConsistencySignature,
    ) -> Result<()> {
        self.c.check_sender(from, msg.sender, &msg.round_id)?;
        if !self.u3.contains(&from) {
            return Err(not_admitted(from, "consistency"));
        }
        if self.sigs.contains_key(&from) {
            return Err(SecAggError::Duplicate {
                participant: from,
                what: "consistency signature",
            });
        }
        crypto::verify(
            &self.c.config.verifying_keys[&from],
            &self.transcript,
            &msg.signature,
            from,
        )?;
        self.sigs.insert(from, msg.signature);
        Ok(())
    }

    /// End of stage 3: broadcast U3 with the signatures to the signers.
    pub fn close(mut self) -> Result<(ServerCollectingUnmask, SignedSurvivors)> {
        let u4: BTreeSet<_> = self.sigs.keys().copied().collect();
        self.c.record_drops(&self.u3, &u4, Stage::Consistency);
        let st = Stage::Consistency;
        // As in the paper, |U4| ≥ t counts the signer itself.
        self.c.require(
            &u4,
            &u4,
            true,
            st,
            "signers among itself and its neighbours",
        )?;
        self.c.require(
            &self.u3,
            &u4,
            true,
            st,
            "live holders of its self-mask shares",
        )?;
        let gone: BTreeSet<_> = self.u2.difference(&self.u3).copied().collect();
        self.c
            .require(&gone, &u4, false, st, "live holders of its key shares")?;
        let msg = SignedSurvivors {
            round_id: self.c.config.round_id,
            survivors: self.u3.iter().copied().collect(),
            signatures: self
                .sigs
                .iter()
                .map(|(s, sig)| SurvivorSignature {
                    signer: *s,
                    signature: *sig,
                })
                .collect(),
        };
        let next = ServerCollectingUnmask {
            c: self.c,
            adverts: self.adverts,
            u3: self.u3,
            gone,
            u4,
            sum: self.sum,
            b_shares: BTreeMap::new(),
            sk_shares: BTreeMap::new(),
            u5: BTreeSet::new(),
        };
        Ok((next, msg))
    }
}

/// Stage 4: collecting unmasking shares. `Clone` so a caller (or a
/// benchmark) can retry `close`; it holds only what the server may know.
#[derive(Clone)]
pub struct ServerCollectingUnmask {
    c: Common,
    adverts: BTreeMap<ParticipantId, AdvertiseKeys>,
    u3: BTreeSet<ParticipantId>,
    /// U2 \ U3: shared keys, then dropped before sending a masked input.
    gone: BTreeSet<ParticipantId>,
    u4: BTreeSet<ParticipantId>,
    sum: RingVec,
    b_shares: BTreeMap<ParticipantId, Vec<Share>>,
    sk_shares: BTreeMap<ParticipantId, Vec<Share>>,
    u5: BTreeSet<ParticipantId>,
}

impl ServerCollectingUnmask {
    /// Accept one client's revealed shares (validated as a whole first).
    pub fn handle_unmask(&mut self, from: ParticipantId, msg: UnmaskShares) -> Result<()> {
        self.c.check_sender(from, msg.sender, &msg.round_id)?;
        if !self.u4.contains(&from) {
            return Err(not_admitted(from, "unmask"));
        }
        if self.u5.contains(&from) {
            return Err(SecAggError::Duplicate {
                participant: from,
                what: "unmask message",
            });
        }
        let x = from.shamir_x();
        let mut owners = BTreeSet::new();
        for r in &msg.b_shares {
            let holder_ok = r.owner == from || self.c.graph.are_neighbours(from, r.owner);
            if !self.u3.contains(&r.owner) || !holder_ok || r.share.x != x {
                return Err(SecAggError::UnexpectedMessage(format!(
                    "{from} sent a self-mask share it cannot hold for {}",
                    r.owner
                )));
            }
            if !owners.insert(r.owner) {
                return Err(SecAggError::Duplicate {
                    participant: r.owner,
                    what: "revealed share",
                });
            }
        }
        for r in &msg.sk_shares {
            if !self.gone.contains(&r.owner)
                || !self.c.graph.are_neighbours(from, r.owner)
                || r.share.x != x
            {
                return Err(SecAggError::UnexpectedMessage(format!(
                    "{from} sent a key share it cannot hold for {}",
                    r.owner
                )));
            }
            if !owners.insert(r.owner) {
                return Err(SecAggError::Duplicate {
                    participant: r.owner,
                    what: "revealed share",
                });
            }
        }
        for r in msg.b_shares {
            self.b_shares.entry(r.owner).or_default().push(r.share);
        }
        for r in msg.sk_shares {
            self.sk_shares.entry(r.owner).or_default().push(r.share);
        }
        self.u5.insert(from);
        Ok(())
    }

    /// End of the round: reconstruct the self-mask seeds of U3 and the mask
    /// keys of U2\U3, strip every mask left in the sum and return it.
    pub fn close(mut self) -> Result<Aggregate> {
        let st = Stage::Unmask;
        self.c.record_drops(&self.u4, &self.u5, st);
        let t = self.c.t();
        let round = self.c.config.round_id;
        let empty = Vec::new();
        let mut masks_expanded = 0;
        for &i in &self.u3 {
            let shares = self.b_shares.get(&i).unwrap_or(&empty);
            if shares.len() < t {
                return Err(SecAggError::TooManyDropouts {
                    stage: st,
                    detail: format!(
                        "{} self-mask shares of {i} arrived, threshold {t}",
                        shares.len()
                    ),
                });
            }
            let b = Zeroizing::new(shamir::reconstruct(shares, t)?);
            self.sum.expand(&b, Sign::Sub);
            masks_expanded += 1;
        }
        for &j in &self.gone {
            let shares = self.sk_shares.get(&j).unwrap_or(&empty);
            if shares.len() < t {
                return Err(SecAggError::TooManyDropouts {
                    stage: st,
                    detail: format!(
                        "{} key shares of dropped {j} arrived, threshold {t}",
                        shares.len()
                    ),
                });
            }
            let sk = StaticSecret::from(shamir::reconstruct(shares, t)?);
            // gone ⊆ U2 ⊆ U1 = adverts' keys.
            let advert = &self.adverts[&j];
            if PublicKey::from(&sk).to_bytes() != advert.s_pk {
                return Err(SecAggError::BadKey {
                    participant: j,
                    detail:
                        "reconstructed masking key does not match the advertised one (bad shares)"
                            .into(),
                });
            }
            for &i in self.c.graph.neighbours(j) {
                if self.u3.contains(&i) {
                    let seed = crypto::mask_seed(&sk, &self.adverts[&i].s_pk, &round, j, i)?;
                    // i added +PRG if i < j else -PRG; remove it.
                    let added = if i < j { Sign::Add } else { Sign::Sub };
                    self.sum.expand(&seed, added.flip());
                    masks_expanded += 1;
                }
            }
        }
        Ok(Aggregate {
            graph_seed: self.c.graph_seed,
            sum: self.sum.to_u64s(),
            survivors: self.u3.into_iter().collect(),
            dropped: self.c.dropped,
            masks_expanded,
        })
    }
}
