//! The participant's side of secure aggregation, sans-IO: the client state
//! machine of fedsoc-secagg, fed with the coordinator's messages by stage.
//!
//! Before any key is drawn, every member certificate the coordinator
//! forwarded is checked against the federation CA and against the CRL that
//! came with the task (already verified, see [`crate::revocation`]), so the
//! round's roster of signing keys cannot contain anyone the CA did not
//! certify, or anyone it has since revoked.

use std::collections::BTreeMap;

use ed25519_dalek::{SigningKey, VerifyingKey};
use fedsoc_proto::secagg_stage as stage;
use fedsoc_proto::v1::SecureAggregation;
use fedsoc_secagg::messages::{
    KeyBundle, SeedCommitments, ShareBundle, SignedSurvivors, SurvivorList,
};
use fedsoc_secagg::weighted::WeightedEncoding;
use fedsoc_secagg::{
    Client, ClientAdvertised, ClientConsistent, ClientMasked, ClientRevealed, ClientShared,
    Message, ParticipantId, Quantizer, Ring, RoundConfig,
};
use sha2::{Digest, Sha256};

use crate::config::SecureFloor;
use crate::error::ParticipantError;

/// The client's current stage.
enum State {
    Advertised(ClientAdvertised),
    Revealed(ClientRevealed),
    Shared(ClientShared),
    Masked(ClientMasked),
    Consistent(ClientConsistent),
    Done,
}

/// What we put into a secure sum.
pub enum Contribution<'a> {
    /// A training round's model update, weighted by its samples.
    Update {
        delta: &'a [f32],
        samples: u64,
        loss: f32,
    },
    /// A sum round's integer words, and the context its query defines
    /// ([`fedsoc_secagg::query_context`]).
    Words { words: Vec<u64>, context: [u8; 32] },
}

/// One secure-aggregation attempt, from our advertisement to our shares.
pub struct SecureTask {
    state: Option<State>,
    /// Hex of the secure round id (one per attempt).
    round_id_hex: String,
    /// Member ids by secure-round index.
    members: Vec<String>,
    /// The only survivor list we may sign: set when our update from this
    /// base model already entered a sum over these members (sorted ids).
    pinned: Option<Vec<String>>,
    /// The survivor list we signed (sorted ids).
    signed: Option<Vec<String>>,
    input: Vec<u64>,
    /// SHA-256 (hex) of each message we sent, by stage number: what the
    /// coordinator's audit receipts must record.
    sent: BTreeMap<u32, String>,
}

fn protocol(e: impl std::fmt::Display) -> ParticipantError {
    ParticipantError::Protocol(format!("secure aggregation: {e}"))
}

/// The weighting and quantisation the task's parameters describe.
pub fn encoding(params: &SecureAggregation) -> Result<WeightedEncoding, ParticipantError> {
    let ring = match params.ring_bits {
        32 => Ring::U32,
        64 => Ring::U64,
        other => return Err(protocol(format!("ring of {other} bits is not supported"))),
    };
    Ok(WeightedEncoding {
        quantizer: Quantizer {
            clip: params.clip,
            bits: params.quant_bits,
            ring,
        },
        max_samples: params.max_samples,
    })
}

/// Rebuilds the round configuration from the task, verifying each member
/// (signed by the CA, not on the CRL `revoked`) and holding the round to
/// this participant's own `floor` (the threshold rule itself, for the
/// round's c, is `RoundConfig::validate`'s).
fn round_config(
    params: &SecureAggregation,
    me: &str,
    members: &fedsoc_pki::MemberVerifier,
    revoked: &fedsoc_pki::RevocationList,
    contribution: &Contribution<'_>,
    floor: &SecureFloor,
) -> Result<(RoundConfig, ParticipantId), ParticipantError> {
    if params.members.len() < floor.min_members {
        return Err(protocol(format!(
            "the secure round has {} members, fewer than the {} this participant requires \
             ([secure_aggregation] min_members): a small sum reveals too much of each update",
            params.members.len(),
            floor.min_members
        )));
    }
    if (params.colluders as usize) < floor.colluders {
        return Err(protocol(format!(
            "the secure round tolerates {} colluding members, fewer than the {} this \
             participant requires ([secure_aggregation] colluders)",
            params.colluders, floor.colluders
        )));
    }
    let round_id: [u8; 32] = params
        .round_id
        .as_slice()
        .try_into()
        .map_err(|_| protocol("round id must be 32 bytes"))?;
    let encoding = encoding(params)?;
    let mut verifying_keys = BTreeMap::new();
    let mut my_index = None;
    for (i, member) in params.members.iter().enumerate() {
        let verified = members.verify(&member.certificate_der).map_err(|e| {
            ParticipantError::Protocol(format!(
                "member {:?} of the secure round: {e}; the coordinator may be compromised",
                member.participant_id
            ))
        })?;
        revoked
            .check_certificate(&member.certificate_der)
            .map_err(|e| {
                ParticipantError::Protocol(format!(
                    "member {:?} of the secure round is revoked on CRL #{}: {e}. The \
                     coordinator put a revoked member in the round and may be compromised; \
                     refusing the round",
                    member.participant_id, revoked.number
                ))
            })?;
        if verified.identity.role != fedsoc_pki::Role::Participant
            || verified.identity.id != member.participant_id
        {
            return Err(protocol(format!(
                "member {:?} presents a certificate for {}",
                member.participant_id, verified.identity
            )));
        }
        let key = VerifyingKey::from_bytes(&verified.ed25519_public).map_err(protocol)?;
        let id = ParticipantId(i as u32);
        if verifying_keys.values().any(|k| *k == key) {
            return Err(protocol(format!(
                "{:?} appears twice",
                member.participant_id
            )));
        }
        verifying_keys.insert(id, key);
        if member.participant_id == me {
            my_index = Some(id);
        }
    }
    let me = my_index.ok_or_else(|| protocol("we are not a member of this secure round"))?;
    let (ring, vector_len, context) = match contribution {
        Contribution::Update { delta, .. } => {
            encoding
                .check_capacity(params.members.len())
                .map_err(protocol)?;
            (
                encoding.quantizer.ring,
                WeightedEncoding::vector_len(delta.len()),
                encoding.context(),
            )
        }
        Contribution::Words { words, context } => {
            if encoding.quantizer.ring != Ring::U64 {
                return Err(protocol("a sum round must add in the 64-bit ring"));
            }
            (Ring::U64, words.len(), *context)
        }
    };
    let config = RoundConfig {
        round_id,
        participants: verifying_keys.keys().copied().collect(),
        verifying_keys,
        neighbors: params.neighbors as usize,
        threshold: params.threshold as usize,
        colluders: params.colluders as usize,
        ring,
        vector_len,
        context,
    };
    Ok((config, me))
}

impl SecureTask {
    /// Encodes our update and advertises fresh keys: returns the task and
    /// the bytes of our stage-0 message. `revoked` is the task's CRL,
    /// already checked against the CA, its nextUpdate and our floor.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        params: &SecureAggregation,
        me: &str,
        members: &fedsoc_pki::MemberVerifier,
        revoked: &fedsoc_pki::RevocationList,
        signing_key: &SigningKey,
        contribution: Contribution<'_>,
        floor: &SecureFloor,
        pinned: Option<Vec<String>>,
    ) -> Result<(Self, Vec<u8>), ParticipantError> {
        let (config, my_id) = round_config(params, me, members, revoked, &contribution, floor)?;
        let mut rng = rand::rng();
        let input = match contribution {
            Contribution::Update {
                delta,
                samples,
                loss,
            } => encoding(params)?
                .encode(delta, samples, loss, &mut rng)
                .map_err(protocol)?,
            Contribution::Words { words, .. } => words,
        };
        let (client, advert) =
            Client::start(config, my_id, signing_key, &mut rng).map_err(protocol)?;
        let advert = advert.encode();
        Ok((
            SecureTask {
                state: Some(State::Advertised(client)),
                round_id_hex: hex::encode(&params.round_id),
                members: params
                    .members
                    .iter()
                    .map(|m| m.participant_id.clone())
                    .collect(),
                pinned,
                signed: None,
                input,
                sent: BTreeMap::from([(stage::ADVERTISE_KEYS, sha256_hex(&advert))]),
            },
            advert,
        ))
    }

    /// Our quantised, weighted update: the vector the masks hide.
    pub fn input(&self) -> &[u64] {
        &self.input
    }

    /// The survivor list we signed, as sorted participant ids.
    pub fn signed_survivors(&self) -> Option<Vec<String>> {
        self.signed.clone()
    }

    /// The survivor list as sorted participant ids; refused if it is not
    /// the list our update's earlier sum was over.
    fn check_survivors(&self, list: &SurvivorList) -> Result<Vec<String>, ParticipantError> {
        let mut ids = Vec::with_capacity(list.survivors.len());
        for p in &list.survivors {
            let id = self
                .members
                .get(p.0 as usize)
                .ok_or_else(|| protocol(format!("survivor {p} is not a member")))?;
            ids.push(id.clone());
        }
        ids.sort();
        match &self.pinned {
            Some(pinned) if *pinned != ids => Err(protocol(format!(
                "refusing to sign survivors [{}]: our update from this base model already went \
                 into a sum over [{}], and a second sum over other members would let the \
                 coordinator subtract the two",
                ids.join(", "),
                pinned.join(", ")
            ))),
            _ => Ok(ids),
        }
    }

    /// Hex of the secure round id of this attempt.
    pub fn round_id_hex(&self) -> String {
        self.round_id_hex.clone()
    }

    pub fn masked_input_sha256(&self) -> Option<String> {
        self.sent.get(&stage::MASKED_INPUT).cloned()
    }

    /// SHA-256 (hex) of every message we sent so far, by stage.
    pub fn sent(&self) -> &BTreeMap<u32, String> {
        &self.sent
    }

    /// Handles the coordinator's message starting `stage`; returns our
    /// answer for that stage (bytes), or an error that ends our part.
    pub fn handle(&mut self, stage_no: u32, bytes: &[u8]) -> Result<Vec<u8>, ParticipantError> {
        let mut rng = rand::rng();
        let state = self
            .state
            .take()
            .ok_or_else(|| protocol("the secure round already failed"))?;
        let (next, reply) = match (stage_no, state) {
            (stage::REVEAL_SEED, State::Advertised(c)) => {
                let list = SeedCommitments::decode(bytes).map_err(protocol)?;
                let (c, m) = c.handle_commitments(list).map_err(protocol)?;
                (State::Revealed(c), m.encode())
            }
            (stage::SHARE_KEYS, State::Revealed(c)) => {
                let bundle = KeyBundle::decode(bytes).map_err(protocol)?;
                let (c, m) = c.handle_key_bundle(bundle, &mut rng).map_err(protocol)?;
                (State::Shared(c), m.encode())
            }
            (stage::MASKED_INPUT, State::Shared(c)) => {
                let bundle = ShareBundle::decode(bytes).map_err(protocol)?;
                let (c, m) = c
                    .handle_shares(bundle, &self.input, &mut rng)
                    .map_err(protocol)?;
                (State::Masked(c), m.encode())
            }
            (stage::CONSISTENCY, State::Masked(c)) => {
                let list = SurvivorList::decode(bytes).map_err(protocol)?;
                let ids = self.check_survivors(&list)?;
                let (c, m) = c.handle_survivors(list).map_err(protocol)?;
                self.signed = Some(ids);
                (State::Consistent(c), m.encode())
            }
            (stage::UNMASK, State::Consistent(c)) => {
                let signed = SignedSurvivors::decode(bytes).map_err(protocol)?;
                let (_, m) = c.handle_consistency(signed).map_err(protocol)?;
                (State::Done, m.encode())
            }
            (other, _) => {
                return Err(protocol(format!(
                    "message for stage {other} is out of order"
                )));
            }
        };
        self.state = Some(next);
        self.sent.insert(stage_no, sha256_hex(&reply));
        Ok(reply)
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
