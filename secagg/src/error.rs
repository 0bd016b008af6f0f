//! Every way a round can fail, as one typed error.
//!
//! Variants name the offending participant, index or stage so that the caller
//! can log it and decide: a peer error drops that peer's message, a
//! configuration error must be fixed before the round, and
//! [`SecAggError::TooManyDropouts`] means "retry with a fresh `round_id`".

use crate::config::{ParticipantId, Stage};

/// Errors of the secure-aggregation library.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecAggError {
    /// A message belongs to a different round (replay or stale message).
    #[error("message is for round {got} but this round is {expected}; drop it (stale or replayed)")]
    WrongRound { expected: String, got: String },
    /// A participant id that is not in the round's roster.
    #[error("participant {0} is not in this round's roster; drop its message")]
    UnknownParticipant(ParticipantId),
    /// A peer that is not a neighbour of the receiver in the round's graph.
    #[error("participant {other} is not a neighbour of {me} in this round's graph")]
    NotANeighbour {
        me: ParticipantId,
        other: ParticipantId,
    },
    /// The claimed sender of a message is not who the transport says sent it.
    #[error("message claims sender {claimed} but arrived from {actual}")]
    WrongSender {
        claimed: ParticipantId,
        actual: ParticipantId,
    },
    /// A message addressed to someone else.
    #[error("message addressed to {addressed} delivered to {me}")]
    WrongRecipient {
        me: ParticipantId,
        addressed: ParticipantId,
    },
    /// A signature did not verify under the participant's long-term key.
    #[error(
        "signature by participant {participant} does not verify; treat the sender as malicious"
    )]
    BadSignature { participant: ParticipantId },
    /// Fewer consistency signatures than the threshold requires.
    #[error("only {got} valid neighbour signatures, {needed} required; abort this round")]
    MissingSignature { needed: usize, got: usize },
    /// The same participant (or share) appears twice where once is allowed.
    #[error("duplicate {what} from/for participant {participant}")]
    Duplicate {
        participant: ParticipantId,
        what: &'static str,
    },
    /// A vector with the wrong number of elements.
    #[error("wrong length: expected {expected}, got {got}")]
    WrongLength { expected: usize, got: usize },
    /// The unmasked sum is outside what its survivors could have sent
    /// honestly: a member forged its weight or a value.
    #[error(
        "the unmasked sum of {survivors} members is out of bounds ({detail}): a member sent a \
         forged weight or value; no model is made from it"
    )]
    AggregateOutOfBounds { survivors: usize, detail: String },
    /// A NaN or infinite input to quantisation.
    #[error("input element {index} is NaN or infinite; clean the model update before quantising")]
    NotFinite { index: usize },
    /// The ring is too small for the sum of `n` quantised values.
    #[error(
        "ring overflow: {n} participants x (2^{bits} - 1) does not fit in 2^{ring_bits}; use fewer bits or Ring::U64"
    )]
    RingOverflow { n: usize, bits: u32, ring_bits: u32 },
    /// A configuration that would be insecure or cannot work.
    #[error("unsafe configuration: {reason}")]
    UnsafeConfig { reason: String },
    /// Too few participants remain for the round to complete; retry with a
    /// fresh round id (fresh keys are drawn automatically).
    #[error("too many dropouts at stage {stage:?}: {detail}; retry with a fresh round_id")]
    TooManyDropouts { stage: Stage, detail: String },
    /// An encrypted share did not authenticate.
    #[error("encrypted share from participant {from} failed to decrypt or authenticate")]
    DecryptionFailed { from: ParticipantId },
    /// Bytes that are not a valid message.
    #[error("cannot decode message: {0}")]
    Decode(String),
    /// A message that is valid but not expected now (wrong stage or sender not
    /// admitted to this stage).
    #[error("unexpected message: {0}")]
    UnexpectedMessage(String),
    /// A public key that is invalid (low-order point, or shares that do not
    /// reconstruct the advertised key).
    #[error("invalid key material from participant {participant}: {detail}")]
    BadKey {
        participant: ParticipantId,
        detail: String,
    },
    /// Someone asked this client to reveal both the self-mask share and the
    /// masking-key share of the same participant, which would unmask its input.
    #[error(
        "refusing to reveal both secrets of participant {participant}: the survivor set changed after it was signed"
    )]
    RevealBoth { participant: ParticipantId },
    /// The survivor list signed by peers differs from the one this client signed.
    #[error("inconsistent survivor list: {0}")]
    Inconsistent(String),
    /// The graph seed's commitments and nonces do not agree: a nonce that
    /// differs from its commitment, or a committed advertiser left out.
    #[error("graph seed refused: {0}")]
    GraphSeed(String),
    /// Shamir reconstruction failed (too few, duplicate or malformed shares).
    #[error("secret sharing: {0}")]
    Shamir(String),
}

/// Library result type.
pub type Result<T> = std::result::Result<T, SecAggError>;

/// Hex for round ids in error text (no extra dependency).
pub(crate) fn hex32(b: &[u8; 32]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
