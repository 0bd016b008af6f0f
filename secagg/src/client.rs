//! Client state machine (`ClientAdvertised → ClientRevealed → ClientShared →
//! ClientMasked → ClientConsistent → ClientDone`). Each stage is a type; each `handle_*` consumes the
//! stage and returns the next one plus the message to send, so a message can
//! only be handled in its stage. Any error aborts this client's part in the
//! round (a protocol violation or an impossible round); the caller joins the
//! next round with a fresh `round_id`, which draws fresh keys and masks.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::SigningKey;
use rand::{CryptoRng, RngCore};
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use crate::config::{ParticipantId, RoundConfig, Stage};
use crate::crypto;
use crate::error::{Result, SecAggError};
use crate::graph::NeighbourGraph;
use crate::messages::{
    AdvertiseKeys, ConsistencySignature, EncryptedShare, KeyBundle, MaskedInput, Message,
    RevealedShare, SeedCommitments, SeedNonce, SeedReveal, ShareBundle, ShareKeys, SharePlaintext,
    SignedSurvivors, SurvivorList, UnmaskShares, check_round,
};
use crate::prg::{RingVec, Sign};
use crate::shamir::{self, Share};

/// State common to all client stages.
struct Common {
    config: RoundConfig,
    /// [`RoundConfig::binding`]: what the advertisements sign.
    binding: [u8; 32],
    /// [`crypto::sealed_binding`] of `binding` and the graph seed: what the
    /// consistency signatures cover. Set with `neighbours` once the seed is
    /// known (stage 2).
    sealed: [u8; 32],
    me: ParticipantId,
    signing_key: SigningKey,
    /// My neighbours in the graph; empty until the seed is known.
    neighbours: BTreeSet<ParticipantId>,
}

impl Common {
    fn check_recipient(&self, addressed: ParticipantId) -> Result<()> {
        if addressed != self.me {
            return Err(SecAggError::WrongRecipient {
                me: self.me,
                addressed,
            });
        }
        Ok(())
    }
    fn t(&self) -> usize {
        self.config.threshold
    }
}

fn seed_error(detail: String) -> SecAggError {
    SecAggError::GraphSeed(detail)
}

/// Entry point of the client side.
pub struct Client;

impl Client {
    /// Stage 0: validate the config, draw two fresh X25519 keypairs and a
    /// graph-seed nonce, and sign the advertisement (keys and the nonce's
    /// commitment) with the long-term key.
    pub fn start<R: CryptoRng + RngCore + ?Sized>(
        config: RoundConfig,
        me: ParticipantId,
        signing_key: &SigningKey,
        rng: &mut R,
    ) -> Result<(ClientAdvertised, AdvertiseKeys)> {
        config.validate()?;
        let Some(vk) = config.verifying_keys.get(&me) else {
            return Err(SecAggError::UnknownParticipant(me));
        };
        if !config.participants.contains(&me) {
            return Err(SecAggError::UnknownParticipant(me));
        }
        if *vk != signing_key.verifying_key() {
            return Err(SecAggError::UnsafeConfig {
                reason: format!("signing key does not match the roster's verifying key for {me}"),
            });
        }
        let (c_sk, c_pk) = crypto::x25519_keypair(rng);
        let (s_sk, s_pk) = crypto::x25519_keypair(rng);
        let (c_pk, s_pk) = (c_pk.to_bytes(), s_pk.to_bytes());
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        let binding = config.binding();
        let seed_commitment = crypto::seed_commitment(&binding, me, &nonce);
        let signature = crypto::sign(
            signing_key,
            &crypto::advert_transcript(&binding, me, &c_pk, &s_pk, &seed_commitment),
        );
        let msg = AdvertiseKeys {
            round_id: config.round_id,
            sender: me,
            c_pk,
            s_pk,
            seed_commitment,
            signature,
        };
        let common = Common {
            config,
            binding,
            sealed: binding,
            me,
            signing_key: signing_key.clone(),
            neighbours: BTreeSet::new(),
        };
        Ok((
            ClientAdvertised {
                common,
                c_sk,
                s_sk,
                nonce,
            },
            msg,
        ))
    }
}

/// Stage 0 done: waiting for the advertisers' seed commitments.
pub struct ClientAdvertised {
    common: Common,
    c_sk: StaticSecret,
    s_sk: StaticSecret,
    nonce: [u8; 32],
}

impl ClientAdvertised {
    /// My participant id.
    pub fn me(&self) -> ParticipantId {
        self.common.me
    }

    /// Stage 1: once every advertiser's commitment is fixed (and mine is
    /// among them, unchanged), reveal my nonce.
    pub fn handle_commitments(self, list: SeedCommitments) -> Result<(ClientRevealed, SeedReveal)> {
        let c = &self.common;
        check_round(&c.config.round_id, &list.round_id)?;
        let ids: Vec<ParticipantId> = list.commitments.iter().map(|x| x.participant).collect();
        check_sorted_roster(c, &ids)?;
        let mine = crypto::seed_commitment(&c.binding, c.me, &self.nonce);
        match list.commitments.iter().find(|x| x.participant == c.me) {
            Some(x) if x.commitment == mine => {}
            Some(_) => {
                return Err(seed_error(format!(
                    "the commitment list shows a commitment for me ({}) that I did not make",
                    c.me
                )));
            }
            None => {
                return Err(seed_error(format!(
                    "the commitment list leaves me ({}) out",
                    c.me
                )));
            }
        }
        let msg = SeedReveal {
            round_id: c.config.round_id,
            sender: c.me,
            nonce: self.nonce,
        };
        let commitments = list
            .commitments
            .into_iter()
            .map(|x| (x.participant, x.commitment))
            .collect();
        Ok((
            ClientRevealed {
                common: self.common,
                c_sk: self.c_sk,
                s_sk: self.s_sk,
                commitments,
            },
            msg,
        ))
    }
}

/// Stage 1 done: waiting for the nonces and my neighbours' keys.
pub struct ClientRevealed {
    common: Common,
    c_sk: StaticSecret,
    s_sk: StaticSecret,
    /// The commitments I saw before revealing: the nonces must match them.
    commitments: BTreeMap<ParticipantId, [u8; 32]>,
}

#[derive(Clone, Copy)]
struct PeerKeys {
    c_pk: [u8; 32],
    s_pk: [u8; 32],
}

impl ClientRevealed {
    /// My participant id.
    pub fn me(&self) -> ParticipantId {
        self.common.me
    }

    /// The graph seed from the nonces of exactly the committed advertisers,
    /// each matching the commitment I saw before I revealed mine.
    fn graph_seed(&self, nonces: &[SeedNonce]) -> Result<[u8; 32]> {
        let c = &self.common;
        let mut revealed = BTreeMap::new();
        for x in nonces {
            let Some(commitment) = self.commitments.get(&x.participant) else {
                return Err(seed_error(format!(
                    "a nonce for {}, who made no commitment I saw",
                    x.participant
                )));
            };
            if crypto::seed_commitment(&c.binding, x.participant, &x.nonce) != *commitment {
                return Err(seed_error(format!(
                    "the nonce of {} does not match its commitment",
                    x.participant
                )));
            }
            if revealed.insert(x.participant, x.nonce).is_some() {
                return Err(SecAggError::Duplicate {
                    participant: x.participant,
                    what: "graph-seed nonce",
                });
            }
        }
        if let Some(missing) = self.commitments.keys().find(|p| !revealed.contains_key(p)) {
            return Err(seed_error(format!(
                "no nonce for {missing}, who committed: a seed without it could have been \
                 chosen by whoever left it out"
            )));
        }
        Ok(crypto::graph_seed(&c.binding, &revealed))
    }

    /// Stage 2: compute the graph from the revealed nonces, verify every
    /// neighbour advertisement, share `s_sk` and a fresh self-mask seed `b`
    /// t-of-(neighbours + me), and encrypt each neighbour's shares to it.
    pub fn handle_key_bundle<R: CryptoRng + RngCore + ?Sized>(
        mut self,
        bundle: KeyBundle,
        rng: &mut R,
    ) -> Result<(ClientShared, ShareKeys)> {
        check_round(&self.common.config.round_id, &bundle.round_id)?;
        self.common.check_recipient(bundle.recipient)?;
        let seed = self.graph_seed(&bundle.nonces)?;
        self.common.neighbours = NeighbourGraph::new(&self.common.config, &seed)
            .neighbours(self.common.me)
            .clone();
        self.common.sealed = crypto::sealed_binding(&self.common.binding, &seed);
        let c = &self.common;
        let mut peers = BTreeMap::new();
        for ad in &bundle.adverts {
            check_round(&c.config.round_id, &ad.round_id)?;
            let Some(vk) = c.config.verifying_keys.get(&ad.sender) else {
                return Err(SecAggError::UnknownParticipant(ad.sender));
            };
            if !c.neighbours.contains(&ad.sender) {
                return Err(SecAggError::NotANeighbour {
                    me: c.me,
                    other: ad.sender,
                });
            }
            crypto::verify(
                vk,
                &crypto::advert_transcript(
                    &c.binding,
                    ad.sender,
                    &ad.c_pk,
                    &ad.s_pk,
                    &ad.seed_commitment,
                ),
                &ad.signature,
                ad.sender,
            )?;
            if self.commitments.get(&ad.sender) != Some(&ad.seed_commitment) {
                return Err(seed_error(format!(
                    "neighbour {}'s signed advertisement commits to another nonce than the \
                     commitment list showed",
                    ad.sender
                )));
            }
            if peers
                .insert(
                    ad.sender,
                    PeerKeys {
                        c_pk: ad.c_pk,
                        s_pk: ad.s_pk,
                    },
                )
                .is_some()
            {
                return Err(SecAggError::Duplicate {
                    participant: ad.sender,
                    what: "advertisement",
                });
            }
        }
        // I hold a share of my own secrets too, so I count towards t.
        if peers.len() + 1 < c.t() {
            return Err(SecAggError::TooManyDropouts {
                stage: Stage::AdvertiseKeys,
                detail: format!(
                    "{} of my neighbours advertised, threshold {} counting me",
                    peers.len(),
                    c.t()
                ),
            });
        }
        let mut b = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(b.as_mut());
        let holders: Vec<ParticipantId> =
            peers.keys().copied().chain(std::iter::once(c.me)).collect();
        let xs: Vec<u64> = holders.iter().map(|p| p.shamir_x()).collect();
        let s_sk_bytes = Zeroizing::new(self.s_sk.to_bytes());
        let sk_shares = shamir::share(&s_sk_bytes, c.t(), &xs, rng)?;
        let b_shares = shamir::share(&b, c.t(), &xs, rng)?;
        let mut out = Vec::with_capacity(peers.len());
        let mut c_shared = BTreeMap::new();
        let mut own_b_share = None;
        for ((holder, sk_share), b_share) in holders.iter().zip(sk_shares).zip(b_shares) {
            if *holder == c.me {
                own_b_share = Some(b_share);
                continue;
            }
            // `holder` came from `peers`, so the lookup cannot fail.
            let pk = peers[holder];
            let shared = crypto::agree(&self.c_sk, &pk.c_pk, *holder)?;
            let key = crypto::share_key_from(&shared, &c.config.round_id, c.me, *holder);
            c_shared.insert(*holder, shared);
            let pt = Zeroizing::new(
                SharePlaintext {
                    round_id: c.config.round_id,
                    sender: c.me,
                    receiver: *holder,
                    sk_share,
                    b_share,
                }
                .encode(),
            );
            out.push(EncryptedShare {
                peer: *holder,
                ciphertext: crypto::encrypt(&key, &c.config.round_id, c.me, *holder, &pt),
            });
        }
        // `me` is the last holder, so its share was set in the loop.
        let own_b_share = own_b_share.expect("own share is always produced");
        let msg = ShareKeys {
            round_id: c.config.round_id,
            sender: c.me,
            shares: out,
        };
        Ok((
            ClientShared {
                common: self.common,
                c_sk: self.c_sk,
                s_sk: self.s_sk,
                b,
                peers,
                c_shared,
                own_b_share,
            },
            msg,
        ))
    }
}

/// Stage 1 done: waiting for the shares addressed to me.
pub struct ClientShared {
    common: Common,
    c_sk: StaticSecret,
    s_sk: StaticSecret,
    b: Zeroizing<[u8; 32]>,
    peers: BTreeMap<ParticipantId, PeerKeys>,
    /// The X25519 secret agreed with each neighbour's `c_pk` in stage 1.
    c_shared: BTreeMap<ParticipantId, Zeroizing<[u8; 32]>>,
    own_b_share: Share,
}

/// Shares I hold for one neighbour.
struct HeldShares {
    sk: Share,
    b: Share,
}

impl ClientShared {
    /// Stage 2: decrypt the neighbours' shares; mask my input with my
    /// self-mask and a pairwise mask for every neighbour that sent me shares
    /// (`+` towards higher ids, `-` towards lower).
    ///
    /// `input` holds ring values (reduced mod 2^32 for `Ring::U32`).
    /// The RNG is unused today; it is part of the API so that future
    /// hardening (e.g. noise) does not change the signature.
    pub fn handle_shares<R: CryptoRng + RngCore + ?Sized>(
        self,
        incoming: ShareBundle,
        input: &[u64],
        _rng: &mut R,
    ) -> Result<(ClientMasked, MaskedInput)> {
        let c = &self.common;
        let round = c.config.round_id;
        check_round(&round, &incoming.round_id)?;
        c.check_recipient(incoming.recipient)?;
        if input.len() != c.config.vector_len {
            return Err(SecAggError::WrongLength {
                expected: c.config.vector_len,
                got: input.len(),
            });
        }
        let mut held = BTreeMap::new();
        for es in &incoming.shares {
            let from = es.peer;
            let Some(pk) = self.peers.get(&from) else {
                return Err(SecAggError::NotANeighbour {
                    me: c.me,
                    other: from,
                });
            };
            if held.contains_key(&from) {
                return Err(SecAggError::Duplicate {
                    participant: from,
                    what: "encrypted share",
                });
            }
            let key = match self.c_shared.get(&from) {
                Some(shared) => crypto::share_key_from(shared, &round, from, c.me),
                None => crypto::share_key(&self.c_sk, &pk.c_pk, &round, from, c.me, from)?,
            };
            let pt = crypto::decrypt(&key, &round, from, c.me, &es.ciphertext)?;
            let p =
                SharePlaintext::decode(&pt).map_err(|_| SecAggError::DecryptionFailed { from })?;
            let x = c.me.shamir_x();
            if p.round_id != round
                || p.sender != from
                || p.receiver != c.me
                || p.sk_share.x != x
                || p.b_share.x != x
            {
                return Err(SecAggError::DecryptionFailed { from });
            }
            held.insert(
                from,
                HeldShares {
                    sk: p.sk_share,
                    b: p.b_share,
                },
            );
        }
        if held.len() + 1 < c.t() {
            return Err(SecAggError::TooManyDropouts {
                stage: Stage::ShareKeys,
                detail: format!(
                    "{} of my neighbours sent shares, threshold {} counting me",
                    held.len(),
                    c.t()
                ),
            });
        }
        let mut y = RingVec::from_u64s(c.config.ring, input);
        y.expand(&self.b, Sign::Add);
        for j in held.keys() {
            let pk = self.peers[j]; // held ⊆ peers, checked above
            let seed = crypto::mask_seed(&self.s_sk, &pk.s_pk, &round, c.me, *j)?;
            y.expand(&seed, if c.me < *j { Sign::Add } else { Sign::Sub });
        }
        let msg = MaskedInput {
            round_id: round,
            sender: c.me,
            ring: c.config.ring,
            data: y.to_le_bytes(),
        };
        Ok((
            ClientMasked {
                common: self.common,
                held,
                own_b_share: self.own_b_share,
            },
            msg,
        ))
    }
}

/// Stage 2 done: waiting for the survivor list U3.
pub struct ClientMasked {
    common: Common,
    held: BTreeMap<ParticipantId, HeldShares>,
    own_b_share: Share,
}

fn check_sorted_roster(c: &Common, list: &[ParticipantId]) -> Result<()> {
    for w in list.windows(2) {
        if w[0] >= w[1] {
            return Err(SecAggError::Inconsistent(
                "survivor list is not strictly sorted".into(),
            ));
        }
    }
    for p in list {
        if !c.config.verifying_keys.contains_key(p) {
            return Err(SecAggError::UnknownParticipant(*p));
        }
    }
    Ok(())
}

impl ClientMasked {
    /// Stage 3: sign (round_id, U3) after checking that I am in it, that every
    /// neighbour in it sent me shares, and that at least t neighbours remain.
    pub fn handle_survivors(
        self,
        list: SurvivorList,
    ) -> Result<(ClientConsistent, ConsistencySignature)> {
        let c = &self.common;
        check_round(&c.config.round_id, &list.round_id)?;
        check_sorted_roster(c, &list.survivors)?;
        if list.survivors.binary_search(&c.me).is_err() {
            return Err(SecAggError::UnexpectedMessage(format!(
                "survivor list does not include me ({})",
                c.me
            )));
        }
        let mut live = 0;
        for p in &list.survivors {
            if c.neighbours.contains(p) {
                if !self.held.contains_key(p) {
                    return Err(SecAggError::Inconsistent(format!(
                        "neighbour {p} is listed as survivor but sent me no shares"
                    )));
                }
                live += 1;
            }
        }
        // Our own share of our self-mask counts towards t (we are in U3).
        let live = live + usize::from(list.survivors.contains(&c.me));
        if live < c.t() {
            return Err(SecAggError::TooManyDropouts {
                stage: Stage::MaskedInput,
                detail: format!(
                    "{live} survivors among me and my neighbours, threshold {}",
                    c.t()
                ),
            });
        }
        let signature = crypto::sign(
            &c.signing_key,
            &crypto::survivors_transcript(&c.sealed, &list.survivors),
        );
        let msg = ConsistencySignature {
            round_id: c.config.round_id,
            sender: c.me,
            signature,
        };
        Ok((
            ClientConsistent {
                common: self.common,
                held: self.held,
                own_b_share: self.own_b_share,
                u3: list.survivors,
            },
            msg,
        ))
    }
}

/// Stage 3 done: waiting for the signed survivor list.
pub struct ClientConsistent {
    common: Common,
    held: BTreeMap<ParticipantId, HeldShares>,
    own_b_share: Share,
    u3: Vec<ParticipantId>,
}

/// Which secret of a participant this client revealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revealed {
    /// Share of the self-mask seed b (participant survived).
    SelfMask,
    /// Share of the masking key s_sk (participant dropped after sharing).
    MaskingKey,
}

impl ClientConsistent {
    /// Stage 4: check that at least t neighbours (counting me) validly
    /// signed the same U3 I signed; other members' signatures are not my
    /// concern and are not checked,
    /// then reveal, per neighbour j that sent me shares, b_j's share if j
    /// survived else s_sk_j's share, plus my own b share. Never both for one j:
    /// a signed list that differs from the one I signed is refused with
    /// `RevealBoth` (naming a neighbour whose fate it would flip).
    pub fn handle_consistency(self, signed: SignedSurvivors) -> Result<(ClientDone, UnmaskShares)> {
        let c = &self.common;
        check_round(&c.config.round_id, &signed.round_id)?;
        if signed.survivors != self.u3 {
            let a: BTreeSet<_> = self.u3.iter().copied().collect();
            let b: BTreeSet<_> = signed.survivors.iter().copied().collect();
            if let Some(p) = a
                .symmetric_difference(&b)
                .find(|p| self.held.contains_key(p))
            {
                return Err(SecAggError::RevealBoth { participant: *p });
            }
            return Err(SecAggError::Inconsistent(
                "signed survivor list differs from the one I signed".into(),
            ));
        }
        let transcript = crypto::survivors_transcript(&c.sealed, &self.u3);
        let mut signers = BTreeSet::new();
        for s in &signed.signatures {
            if self.u3.binary_search(&s.signer).is_err() {
                return Err(SecAggError::Inconsistent(format!(
                    "signature by {} who is not a survivor",
                    s.signer
                )));
            }
            if !signers.insert(s.signer) {
                return Err(SecAggError::Duplicate {
                    participant: s.signer,
                    what: "consistency signature",
                });
            }
            // Only neighbours' signatures (and our own) decide what we
            // reveal, so only theirs are checked: k checks, not n.
            if !(c.neighbours.contains(&s.signer) || s.signer == c.me) {
                continue;
            }
            // Survivors are roster members (checked in stage 3).
            let Some(vk) = c.config.verifying_keys.get(&s.signer) else {
                return Err(SecAggError::UnknownParticipant(s.signer));
            };
            crypto::verify(vk, &transcript, &s.signature, s.signer)?;
        }
        let got = signers
            .iter()
            .filter(|p| c.neighbours.contains(p) || **p == c.me)
            .count();
        if got < c.t() {
            return Err(SecAggError::MissingSignature { needed: c.t(), got });
        }
        let mut ledger = BTreeMap::new();
        let mut b_shares = vec![RevealedShare {
            owner: c.me,
            share: self.own_b_share.clone(),
        }];
        let mut sk_shares = Vec::new();
        ledger.insert(c.me, Revealed::SelfMask);
        for (j, h) in &self.held {
            let kind = if self.u3.binary_search(j).is_ok() {
                Revealed::SelfMask
            } else {
                Revealed::MaskingKey
            };
            if let Some(prev) = ledger.insert(*j, kind) {
                if prev != kind {
                    return Err(SecAggError::RevealBoth { participant: *j });
                }
                continue;
            }
            match kind {
                Revealed::SelfMask => b_shares.push(RevealedShare {
                    owner: *j,
                    share: h.b.clone(),
                }),
                Revealed::MaskingKey => sk_shares.push(RevealedShare {
                    owner: *j,
                    share: h.sk.clone(),
                }),
            }
        }
        let msg = UnmaskShares {
            round_id: c.config.round_id,
            sender: c.me,
            b_shares,
            sk_shares,
        };
        Ok((
            ClientDone {
                me: c.me,
                revealed: ledger,
            },
            msg,
        ))
    }
}

/// Final client state: records what was revealed (for audit).
#[derive(Debug, Clone)]
pub struct ClientDone {
    me: ParticipantId,
    revealed: BTreeMap<ParticipantId, Revealed>,
}

impl ClientDone {
    /// My id.
    pub fn me(&self) -> ParticipantId {
        self.me
    }
    /// For each participant, which of its secrets I revealed a share of.
    pub fn revealed(&self) -> &BTreeMap<ParticipantId, Revealed> {
        &self.revealed
    }
}
