//! Signed checkpoints: the log's origin, size and root, signed with the
//! coordinator's Ed25519 audit key.
//!
//! # Text form (what is signed)
//!
//! ```text
//! fedsoc-audit checkpoint v1
//! origin <origin>
//! size <tree_size, decimal>
//! root <root, 64 lowercase hex digits>
//! time <timestamp_ms, decimal>
//! ```
//!
//! Every line ends with `\n`; numbers have no sign and no leading zeros;
//! the origin is 1..=255 bytes of UTF-8 without control characters or
//! surrounding spaces. The Ed25519 signature covers exactly these bytes; the
//! first line keeps it from being mistaken for any other signed message.
//!
//! # Signed note (how it is stored and sent)
//!
//! The text form, an empty line, then one signature line:
//!
//! ```text
//! sig <key_id, 16 hex digits> <signature, 128 hex digits>
//! ```
//!
//! [`SignedCheckpoint::to_bytes`] / [`SignedCheckpoint::from_bytes`] produce
//! and parse this note strictly (one encoding per checkpoint); the serde
//! form carries the same fields with hex strings, for JSON or other formats.
use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::hexfmt;
use crate::merkle::{Hash, ProofError, verify_consistency as verify_tree_consistency};

const HEADER: &str = "fedsoc-audit checkpoint v1";
/// Longest origin, in bytes.
pub const MAX_ORIGIN_LEN: usize = 255;

/// The first 8 bytes of SHA-256 of the 32-byte Ed25519 public key: names
/// the key that signed a checkpoint.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(#[serde(with = "hexfmt")] pub [u8; 8]);

impl KeyId {
    pub fn of(key: &VerifyingKey) -> Self {
        let digest = Sha256::digest(key.as_bytes());
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        Self(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A statement about the log: "the first `tree_size` entries of `origin`
/// have head `root`", made at `timestamp_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub origin: String,
    pub tree_size: u64,
    #[serde(with = "hexfmt")]
    pub root: Hash,
    pub timestamp_ms: u64,
}

/// A checkpoint with the signature of one audit key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    pub key_id: KeyId,
    #[serde(with = "hexfmt")]
    pub signature: [u8; 64],
}

/// A checkpoint that is malformed, not signed by the expected key, or not
/// consistent with another.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CheckpointError {
    #[error("checkpoint origin {origin:?} is invalid: {reason}")]
    OriginInvalid {
        origin: String,
        reason: &'static str,
    },
    #[error(
        "malformed signed checkpoint: {detail}; it was damaged in transit or storage, or is not a fedsoc checkpoint"
    )]
    Malformed { detail: String },
    #[error(
        "checkpoint (origin {origin:?}, size {tree_size}) is signed by key {found}, but the verifying key is {expected}: use the coordinator's audit public key for this federation, or treat the checkpoint as forged"
    )]
    WrongKey {
        origin: String,
        tree_size: u64,
        expected: KeyId,
        found: KeyId,
    },
    #[error(
        "the signature on checkpoint (origin {origin:?}, size {tree_size}) by key {key_id} does not verify: the checkpoint was altered after signing, or forged"
    )]
    BadSignature {
        origin: String,
        tree_size: u64,
        key_id: KeyId,
    },
    #[error(
        "checkpoints come from different logs ({old:?} then {new:?}): compare checkpoints of the same origin only"
    )]
    OriginMismatch { old: String, new: String },
    #[error(
        "the log at size {new_size} does not extend the checkpoint held at size {old_size}: {source} — keep both checkpoints as evidence"
    )]
    Inconsistent {
        old_size: u64,
        new_size: u64,
        #[source]
        source: ProofError,
    },
}

/// Checks an origin against the rules in the module documentation.
pub fn check_origin(origin: &str) -> Result<(), CheckpointError> {
    let reason = if origin.is_empty() {
        Some("it is empty")
    } else if origin.len() > MAX_ORIGIN_LEN {
        Some("it is longer than 255 bytes")
    } else if origin.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if origin.trim() != origin {
        Some("it starts or ends with whitespace")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(CheckpointError::OriginInvalid {
            origin: origin.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

impl Checkpoint {
    /// The canonical text that is signed.
    pub fn to_text(&self) -> Result<String, CheckpointError> {
        check_origin(&self.origin)?;
        Ok(format!(
            "{HEADER}\norigin {}\nsize {}\nroot {}\ntime {}\n",
            self.origin,
            self.tree_size,
            hex::encode(self.root),
            self.timestamp_ms
        ))
    }

    /// Parses the canonical text, and only it.
    pub fn from_text(text: &str) -> Result<Self, CheckpointError> {
        let malformed = |detail: String| CheckpointError::Malformed { detail };
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| malformed("the text does not end with a newline".into()))?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [header, origin, size, root, time] = lines[..] else {
            return Err(malformed(format!(
                "expected 5 lines, found {}",
                lines.len()
            )));
        };
        if header != HEADER {
            return Err(malformed(format!(
                "first line is {header:?}, expected {HEADER:?}"
            )));
        }
        let field = |line: &'static str, value: &str| -> Result<String, CheckpointError> {
            value
                .strip_prefix(line)
                .and_then(|v| v.strip_prefix(' '))
                .map(str::to_owned)
                .ok_or_else(|| CheckpointError::Malformed {
                    detail: format!("expected a line starting {line:?}, found {value:?}"),
                })
        };
        let number = |name: &'static str, value: String| -> Result<u64, CheckpointError> {
            value.parse().map_err(|e| CheckpointError::Malformed {
                detail: format!("{name} {value:?} is not a decimal number: {e}"),
            })
        };
        let checkpoint = Self {
            origin: field("origin", origin)?,
            tree_size: number("size", field("size", size)?)?,
            root: hexfmt::parse(&field("root", root)?)
                .map_err(|e| malformed(format!("root: {e}")))?,
            timestamp_ms: number("time", field("time", time)?)?,
        };
        // One encoding only: "+5", "05" and the like are refused here.
        if checkpoint.to_text()? != text {
            return Err(malformed("the text is not in canonical form".into()));
        }
        Ok(checkpoint)
    }

    /// Signs the canonical text.
    pub fn sign(&self, key: &SigningKey) -> Result<SignedCheckpoint, CheckpointError> {
        let text = self.to_text()?;
        Ok(SignedCheckpoint {
            checkpoint: self.clone(),
            key_id: KeyId::of(&key.verifying_key()),
            signature: key.sign(text.as_bytes()).to_bytes(),
        })
    }
}

impl SignedCheckpoint {
    /// Checks that `key` made the signature over this checkpoint.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), CheckpointError> {
        let c = &self.checkpoint;
        let expected = KeyId::of(key);
        if self.key_id != expected {
            return Err(CheckpointError::WrongKey {
                origin: c.origin.clone(),
                tree_size: c.tree_size,
                expected,
                found: self.key_id,
            });
        }
        let text = c.to_text()?;
        key.verify_strict(text.as_bytes(), &Signature::from_bytes(&self.signature))
            .map_err(|_| CheckpointError::BadSignature {
                origin: c.origin.clone(),
                tree_size: c.tree_size,
                key_id: self.key_id,
            })
    }

    /// The signed note (see the module documentation).
    pub fn to_note(&self) -> Result<String, CheckpointError> {
        Ok(format!(
            "{}\nsig {} {}\n",
            self.checkpoint.to_text()?,
            self.key_id,
            hex::encode(self.signature)
        ))
    }

    /// The signed note as bytes, e.g. for a gRPC `bytes` field.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CheckpointError> {
        self.to_note().map(String::into_bytes)
    }

    /// Parses a signed note. The signature is not checked: call
    /// [`SignedCheckpoint::verify`].
    pub fn from_note(note: &str) -> Result<Self, CheckpointError> {
        let malformed = |detail: String| CheckpointError::Malformed { detail };
        let (text, sig) = note
            .split_once("\n\n")
            .ok_or_else(|| malformed("no empty line before the signature".into()))?;
        let checkpoint = Checkpoint::from_text(&format!("{text}\n"))?;
        let sig = sig
            .strip_prefix("sig ")
            .and_then(|s| s.strip_suffix('\n'))
            .ok_or_else(|| malformed("the last line is not \"sig <key id> <signature>\"".into()))?;
        let (key_id, signature) = sig
            .split_once(' ')
            .ok_or_else(|| malformed("the signature line has no key id".into()))?;
        Ok(Self {
            checkpoint,
            key_id: KeyId(hexfmt::parse(key_id).map_err(|e| malformed(format!("key id: {e}")))?),
            signature: hexfmt::parse(signature)
                .map_err(|e| malformed(format!("signature: {e}")))?,
        })
    }

    /// Parses a signed note from bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CheckpointError> {
        let note = std::str::from_utf8(bytes).map_err(|e| CheckpointError::Malformed {
            detail: format!("not UTF-8: {e}"),
        })?;
        Self::from_note(note)
    }
}

/// Checks that `new` extends `old` (same origin, and `proof` is a valid
/// consistency proof between their roots). Check both signatures first.
pub fn verify_consistency(
    old: &Checkpoint,
    new: &Checkpoint,
    proof: &[Hash],
) -> Result<(), CheckpointError> {
    if old.origin != new.origin {
        return Err(CheckpointError::OriginMismatch {
            old: old.origin.clone(),
            new: new.origin.clone(),
        });
    }
    verify_tree_consistency(old.tree_size, new.tree_size, &old.root, &new.root, proof).map_err(
        |source| CheckpointError::Inconsistent {
            old_size: old.tree_size,
            new_size: new.tree_size,
            source,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "fedsoc.example/eu-soc".into(),
            tree_size: 12,
            root: [0xab; 32],
            timestamp_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn text_form_is_exact() {
        assert_eq!(
            checkpoint().to_text().unwrap(),
            format!(
                "fedsoc-audit checkpoint v1\norigin fedsoc.example/eu-soc\nsize 12\nroot {}\ntime 1700000000000\n",
                "ab".repeat(32)
            )
        );
    }

    #[test]
    fn signed_notes_round_trip_and_verify() {
        let signed = checkpoint().sign(&key(1)).unwrap();
        let bytes = signed.to_bytes().unwrap();
        let back = SignedCheckpoint::from_bytes(&bytes).unwrap();
        assert_eq!(back, signed);
        assert_eq!(back.verify(&key(1).verifying_key()), Ok(()));
        let json = serde_json::to_string(&signed).unwrap();
        assert_eq!(
            serde_json::from_str::<SignedCheckpoint>(&json).unwrap(),
            signed
        );
    }

    #[test]
    fn wrong_key_and_altered_checkpoints_are_named() {
        let signed = checkpoint().sign(&key(1)).unwrap();
        assert!(matches!(
            signed.verify(&key(2).verifying_key()),
            Err(CheckpointError::WrongKey { .. })
        ));
        let mut altered = signed.clone();
        altered.checkpoint.tree_size += 1;
        assert!(matches!(
            altered.verify(&key(1).verifying_key()),
            Err(CheckpointError::BadSignature { tree_size: 13, .. })
        ));
        let mut bad_sig = signed.clone();
        bad_sig.signature[5] ^= 1;
        assert!(matches!(
            bad_sig.verify(&key(1).verifying_key()),
            Err(CheckpointError::BadSignature { .. })
        ));
    }

    #[test]
    fn non_canonical_notes_are_refused() {
        let note = checkpoint().sign(&key(1)).unwrap().to_note().unwrap();
        for bad in [
            note.replace("size 12", "size 012"),
            note.replace("size 12", "size +12"),
            note.replace("root ab", "root AB"),
            note.replace("\nsig ", "\n\nsig "),
            note.replacen("origin ", "origin  ", 1),
            format!("{note}\n"),
            note.trim_end().to_owned(),
            note.replace("v1", "v2"),
        ] {
            assert!(
                matches!(
                    SignedCheckpoint::from_note(&bad),
                    Err(CheckpointError::Malformed { .. } | CheckpointError::OriginInvalid { .. })
                ),
                "accepted {bad:?}"
            );
        }
        for origin in ["", " x", "a\nb", &"o".repeat(256)] {
            let mut c = checkpoint();
            c.origin = origin.to_owned();
            assert!(c.sign(&key(1)).is_err(), "origin {origin:?}");
        }
    }
}
