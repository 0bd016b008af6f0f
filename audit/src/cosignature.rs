//! Witness cosignatures over checkpoints, in the style of C2SP
//! tlog-cosignature (<https://c2sp.org/tlog-cosignature>, `cosignature/v1`).
//!
//! A witness (here: a federation member that verified a checkpoint:
//! consistency with the one it held, the coordinator's signature, its
//! receipts) signs, with its Ed25519 key, exactly these bytes:
//!
//! ```text
//! cosignature/v1
//! time <timestamp, seconds since the Unix epoch, decimal>
//! <the checkpoint's text form, see crate::checkpoint>
//! ```
//!
//! As in C2SP, the cosignature is the timestamp and the signature; its key
//! id is the first 4 bytes of SHA-256(name ‖ "\n" ‖ 0x04 ‖ public key),
//! and its note line is `— <name> <base64(key id ‖ timestamp u64 BE ‖
//! signature)>`. The difference from C2SP: the signed body is fedsoc's
//! checkpoint text, not the C2SP checkpoint format.
//!
//! In the log a cosignature is an entry of kind [`KIND`] whose JSON body
//! is a [`CosignatureRecord`]: the checkpoint, the witness's name and
//! certificate blob, and the cosignature. Entries commit to it like any
//! other, and the cosignature verifies on its own, without trusting the
//! coordinator that logged it. Who may witness (a participant certified by
//! the federation CA) is the caller's rule: this crate knows no certificates.
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::blob::BlobId;
use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::entry::Entry;
use crate::hexfmt;

/// The entry kind that records one cosignature.
pub const KIND: &str = "checkpoint.cosigned";
/// First line of the signed message.
pub const HEADER: &str = "cosignature/v1";
/// The C2SP signature type byte of cosignature/v1 keys.
const SIG_TYPE: u8 = 0x04;

/// A witness's cosignature over one checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cosignature {
    /// The witness's name (a participant id).
    pub name: String,
    /// First 4 bytes of SHA-256(name ‖ "\n" ‖ 0x04 ‖ public key).
    #[serde(with = "hexfmt")]
    pub key_id: [u8; 4],
    /// Seconds since the Unix epoch when it cosigned.
    pub timestamp: u64,
    #[serde(with = "hexfmt")]
    pub signature: [u8; 64],
}

/// The body of a [`KIND`] entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CosignatureRecord {
    /// The checkpoint cosigned (one the coordinator signed and stored).
    pub checkpoint: Checkpoint,
    /// The witness's certificate (PEM blob), whose Ed25519 key signed.
    pub certificate: BlobId,
    pub cosignature: Cosignature,
}

/// The C2SP key id of a witness key under `name`.
pub fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([SIG_TYPE]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// The bytes a witness signs for `checkpoint` at `timestamp`.
pub fn signed_message(checkpoint: &Checkpoint, timestamp: u64) -> Result<String, CheckpointError> {
    Ok(format!(
        "{HEADER}\ntime {timestamp}\n{}",
        checkpoint.to_text()?
    ))
}

impl Checkpoint {
    /// Cosigns this checkpoint as witness `name` at `timestamp` (seconds).
    pub fn cosign(
        &self,
        name: &str,
        key: &SigningKey,
        timestamp: u64,
    ) -> Result<Cosignature, CheckpointError> {
        let message = signed_message(self, timestamp)?;
        Ok(Cosignature {
            name: name.to_owned(),
            key_id: key_id(name, &key.verifying_key()),
            timestamp,
            signature: key.sign(message.as_bytes()).to_bytes(),
        })
    }
}

/// Why a cosignature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CosignatureError {
    #[error(
        "the cosignature by {name:?} names key id {found}, but that witness's key has id {expected}: it was made with another key"
    )]
    WrongKey {
        name: String,
        expected: String,
        found: String,
    },
    #[error(
        "the cosignature by {name:?} on the checkpoint of size {tree_size} does not verify: it was altered, or made over another checkpoint"
    )]
    BadSignature { name: String, tree_size: u64 },
    #[error("malformed cosignature: {0}")]
    Malformed(String),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

impl Cosignature {
    /// Checks that `key` (the witness's) made this cosignature over
    /// `checkpoint`.
    pub fn verify(
        &self,
        checkpoint: &Checkpoint,
        key: &VerifyingKey,
    ) -> Result<(), CosignatureError> {
        let expected = key_id(&self.name, key);
        if expected != self.key_id {
            return Err(CosignatureError::WrongKey {
                name: self.name.clone(),
                expected: hex::encode(expected),
                found: hex::encode(self.key_id),
            });
        }
        let message = signed_message(checkpoint, self.timestamp)?;
        key.verify_strict(message.as_bytes(), &Signature::from_bytes(&self.signature))
            .map_err(|_| CosignatureError::BadSignature {
                name: self.name.clone(),
                tree_size: checkpoint.tree_size,
            })
    }

    /// The C2SP note signature line: `— <name> <base64>` and a newline.
    pub fn to_line(&self) -> String {
        let mut blob = Vec::with_capacity(76);
        blob.extend_from_slice(&self.key_id);
        blob.extend_from_slice(&self.timestamp.to_be_bytes());
        blob.extend_from_slice(&self.signature);
        format!("\u{2014} {} {}\n", self.name, base64_encode(&blob))
    }

    /// Parses what [`Cosignature::to_line`] wrote.
    pub fn from_line(line: &str) -> Result<Self, CosignatureError> {
        let malformed = |d: &str| CosignatureError::Malformed(d.to_owned());
        let rest = line
            .strip_suffix('\n')
            .and_then(|l| l.strip_prefix("\u{2014} "))
            .ok_or_else(|| malformed("a cosignature line is \"— <name> <base64>\\n\""))?;
        let (name, b64) = rest
            .rsplit_once(' ')
            .ok_or_else(|| malformed("no space between name and signature"))?;
        let blob = base64_decode(b64).ok_or_else(|| malformed("the signature is not base64"))?;
        if blob.len() != 76 || name.is_empty() {
            return Err(malformed(
                "a cosignature/v1 signature is 4 + 8 + 64 bytes after a name",
            ));
        }
        let mut key_id = [0u8; 4];
        key_id.copy_from_slice(&blob[..4]);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&blob[4..12]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&blob[12..]);
        Ok(Cosignature {
            name: name.to_owned(),
            key_id,
            timestamp: u64::from_be_bytes(ts),
            signature,
        })
    }
}

impl CosignatureRecord {
    /// The record an entry of kind [`KIND`] holds; `None` for other kinds.
    pub fn from_entry(entry: &Entry) -> Option<Result<Self, crate::entry::EntryError>> {
        (entry.kind == KIND).then(|| entry.body_json())
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (q, quad) in bytes.chunks(4).enumerate() {
        let last = q == bytes.len() / 4 - 1;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            let v = ALPHABET.iter().position(|&a| a == c)? as u32;
            n = (n << 6) | v;
        }
        n <<= 6 * pad as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    // One encoding only.
    (base64_encode(&out) == text).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for n in 0..80usize {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(base64_decode(&base64_encode(&bytes)).unwrap(), bytes);
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert!(base64_decode("Zm8").is_none());
    }
}
