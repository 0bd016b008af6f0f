//! The entry envelope and its canonical byte encoding.
//!
//! An [`Entry`] is what the Merkle tree commits to: its leaf hash is
//! `SHA-256(0x00 ‖ encode(entry))`, over the whole encoding below.
//!
//! # Encoding, version 1
//!
//! All integers are unsigned, fixed width, little-endian.
//!
//! | bytes | field |
//! |---|---|
//! | 2 | `version` = 1 |
//! | 8 | `seq`: the entry's index in the log, 0, 1, 2, … |
//! | 8 | `timestamp_ms`: milliseconds since the Unix epoch |
//! | 2 | `k`: length of `kind`, 1..=[`MAX_KIND_LEN`] |
//! | k | `kind`: ASCII letters, digits and `.` `_` `-` `:` `/` (e.g. `round.opened`) |
//! | 4 | `b`: length of `body`, 0..=[`MAX_BODY_LEN`] |
//! | b | `body`: opaque bytes; by convention canonical JSON ([`Entry::json`]) |
//!
//! There is exactly one encoding of each entry: the decoder rejects unknown
//! versions, lengths beyond the limits, an invalid kind, and trailing bytes.
use serde::{Serialize, de::DeserializeOwned};
use thiserror::Error;

use crate::merkle::{Hash, leaf_hash};

/// The only envelope version this build writes and reads.
pub const ENTRY_VERSION: u16 = 1;
/// Longest `kind`, in bytes.
pub const MAX_KIND_LEN: usize = 128;
/// Largest `body`, in bytes. Larger data belongs in the blob store.
pub const MAX_BODY_LEN: usize = 16 << 20;
/// Largest encoded entry.
pub const MAX_ENCODED_LEN: usize = 2 + 8 + 8 + 2 + MAX_KIND_LEN + 4 + MAX_BODY_LEN;

/// One log entry. Build it with [`Entry::new`] or [`Entry::json`]; the
/// fields are public for reading, and [`Entry::encode`] re-checks them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub version: u16,
    pub seq: u64,
    pub timestamp_ms: u64,
    pub kind: String,
    pub body: Vec<u8>,
}

/// An entry that cannot be built, encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EntryError {
    #[error(
        "entry envelope version {found} is not supported (this build reads version {ENTRY_VERSION}): use a fedsoc release that knows it"
    )]
    UnsupportedVersion { found: u16 },
    #[error(
        "entry is cut short: {field} needs {needed} bytes at byte {offset}, {available} remain"
    )]
    Truncated {
        field: &'static str,
        offset: usize,
        needed: usize,
        available: usize,
    },
    #[error(
        "entry has {extra} unexpected bytes after its body (at byte {offset}): it is not a canonical version-1 entry"
    )]
    TrailingBytes { extra: usize, offset: usize },
    #[error("entry kind is empty: give every entry a kind such as \"round.opened\"")]
    KindEmpty,
    #[error("entry kind is {len} bytes long; the limit is {MAX_KIND_LEN}: use a shorter kind")]
    KindTooLong { len: usize },
    #[error(
        "entry kind {kind:?} contains {bad:?}: kinds use ASCII letters, digits and . _ - : / only"
    )]
    KindInvalid { kind: String, bad: char },
    #[error(
        "entry body is {len} bytes; the limit is {MAX_BODY_LEN}: store large data in the blob store and log its BlobId"
    )]
    BodyTooLarge { len: usize },
    #[error("entry body of kind {kind:?} is not the expected JSON: {detail}")]
    Json { kind: String, detail: String },
}

fn check_kind(kind: &str) -> Result<(), EntryError> {
    if kind.is_empty() {
        return Err(EntryError::KindEmpty);
    }
    if kind.len() > MAX_KIND_LEN {
        return Err(EntryError::KindTooLong { len: kind.len() });
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/');
    if let Some(bad) = kind.chars().find(|c| !allowed(*c)) {
        return Err(EntryError::KindInvalid {
            kind: kind.to_owned(),
            bad,
        });
    }
    Ok(())
}

impl Entry {
    /// A version-1 entry, checked against the limits.
    pub fn new(
        seq: u64,
        timestamp_ms: u64,
        kind: impl Into<String>,
        body: Vec<u8>,
    ) -> Result<Self, EntryError> {
        let entry = Self {
            version: ENTRY_VERSION,
            seq,
            timestamp_ms,
            kind: kind.into(),
            body,
        };
        entry.check()?;
        Ok(entry)
    }

    /// An entry whose body is `value` as JSON (serde_json, fields in struct
    /// declaration order, no whitespace). `seq` and `timestamp_ms` are 0:
    /// give the real ones with [`Entry::at`] before
    /// [`AuditLog::append_entry`](crate::AuditLog::append_entry), or pass
    /// kind and body to [`AuditLog::append`](crate::AuditLog::append), which
    /// assigns them.
    pub fn json<T: Serialize + ?Sized>(kind: &str, value: &T) -> Result<Self, EntryError> {
        let body = serde_json::to_vec(value).map_err(|e| EntryError::Json {
            kind: kind.to_owned(),
            detail: e.to_string(),
        })?;
        Self::new(0, 0, kind, body)
    }

    /// The same entry with the given sequence number and timestamp.
    pub fn at(mut self, seq: u64, timestamp_ms: u64) -> Self {
        self.seq = seq;
        self.timestamp_ms = timestamp_ms;
        self
    }

    /// Decodes the JSON body.
    pub fn body_json<T: DeserializeOwned>(&self) -> Result<T, EntryError> {
        serde_json::from_slice(&self.body).map_err(|e| EntryError::Json {
            kind: self.kind.clone(),
            detail: e.to_string(),
        })
    }

    /// Checks version, kind and body size.
    pub fn check(&self) -> Result<(), EntryError> {
        if self.version != ENTRY_VERSION {
            return Err(EntryError::UnsupportedVersion {
                found: self.version,
            });
        }
        check_kind(&self.kind)?;
        if self.body.len() > MAX_BODY_LEN {
            return Err(EntryError::BodyTooLarge {
                len: self.body.len(),
            });
        }
        Ok(())
    }

    /// The canonical encoding (see the module documentation).
    pub fn encode(&self) -> Result<Vec<u8>, EntryError> {
        self.check()?;
        let mut out = Vec::with_capacity(24 + self.kind.len() + self.body.len());
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.timestamp_ms.to_le_bytes());
        // Both lengths fit: checked above against limits far below the widths.
        out.extend_from_slice(&(self.kind.len() as u16).to_le_bytes());
        out.extend_from_slice(self.kind.as_bytes());
        out.extend_from_slice(&(self.body.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.body);
        Ok(out)
    }

    /// The RFC 9162 leaf hash of the encoding.
    pub fn leaf_hash(&self) -> Result<Hash, EntryError> {
        Ok(leaf_hash(&self.encode()?))
    }

    /// Decodes exactly one canonical entry.
    pub fn decode(bytes: &[u8]) -> Result<Self, EntryError> {
        let mut r = Reader { bytes, pos: 0 };
        let version = u16::from_le_bytes(r.array("version")?);
        if version != ENTRY_VERSION {
            return Err(EntryError::UnsupportedVersion { found: version });
        }
        let seq = u64::from_le_bytes(r.array("seq")?);
        let timestamp_ms = u64::from_le_bytes(r.array("timestamp_ms")?);
        let kind_len = usize::from(u16::from_le_bytes(r.array("kind length")?));
        if kind_len > MAX_KIND_LEN {
            return Err(EntryError::KindTooLong { len: kind_len });
        }
        let kind_bytes = r.take("kind", kind_len)?;
        let kind = match std::str::from_utf8(kind_bytes) {
            Ok(k) => k.to_owned(),
            Err(_) => {
                return Err(EntryError::KindInvalid {
                    kind: String::from_utf8_lossy(kind_bytes).into_owned(),
                    bad: char::REPLACEMENT_CHARACTER,
                });
            }
        };
        check_kind(&kind)?;
        let body_len = u32::from_le_bytes(r.array("body length")?) as usize;
        if body_len > MAX_BODY_LEN {
            return Err(EntryError::BodyTooLarge { len: body_len });
        }
        let body = r.take("body", body_len)?.to_vec();
        if r.pos != bytes.len() {
            return Err(EntryError::TrailingBytes {
                extra: bytes.len() - r.pos,
                offset: r.pos,
            });
        }
        Ok(Self {
            version,
            seq,
            timestamp_ms,
            kind,
            body,
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], EntryError> {
        let available = self.bytes.len() - self.pos;
        if n > available {
            return Err(EntryError::Truncated {
                field,
                offset: self.pos,
                needed: n,
                available,
            });
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], EntryError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(field, N)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Opened {
        round: u64,
        participants: Vec<String>,
    }

    #[test]
    fn encoding_is_the_documented_layout() {
        let e = Entry::new(3, 0x0102, "a.b", vec![9, 8]).unwrap();
        let bytes = e.encode().unwrap();
        let expected: Vec<u8> = [
            &[1u8, 0][..],
            &[3, 0, 0, 0, 0, 0, 0, 0],
            &[2, 1, 0, 0, 0, 0, 0, 0],
            &[3, 0],
            b"a.b",
            &[2, 0, 0, 0],
            &[9, 8],
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert_eq!(Entry::decode(&bytes).unwrap(), e);
        assert_eq!(e.leaf_hash().unwrap(), leaf_hash(&expected));
    }

    #[test]
    fn json_bodies_round_trip_in_field_order() {
        let value = Opened {
            round: 7,
            participants: vec!["fr".into(), "de".into()],
        };
        let e = Entry::json("round.opened", &value).unwrap().at(4, 99);
        assert_eq!(e.body, br#"{"round":7,"participants":["fr","de"]}"#);
        assert_eq!((e.seq, e.timestamp_ms), (4, 99));
        assert_eq!(e.body_json::<Opened>().unwrap(), value);
        assert!(matches!(e.body_json::<u64>(), Err(EntryError::Json { .. })));
    }

    #[test]
    fn decoder_rejects_non_canonical_input() {
        let good = Entry::new(1, 2, "k", b"body".to_vec())
            .unwrap()
            .encode()
            .unwrap();

        let mut trailing = good.clone();
        trailing.push(0);
        assert!(matches!(
            Entry::decode(&trailing),
            Err(EntryError::TrailingBytes { extra: 1, .. })
        ));

        let mut v2 = good.clone();
        v2[0] = 2;
        assert_eq!(
            Entry::decode(&v2),
            Err(EntryError::UnsupportedVersion { found: 2 })
        );

        for cut in 0..good.len() {
            assert!(
                matches!(
                    Entry::decode(&good[..cut]),
                    Err(EntryError::Truncated { .. })
                ),
                "cut at {cut}"
            );
        }

        let mut huge_body = good.clone();
        huge_body[21..25].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Entry::decode(&huge_body),
            Err(EntryError::BodyTooLarge { .. })
        ));

        let mut huge_kind = good.clone();
        huge_kind[18..20].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(matches!(
            Entry::decode(&huge_kind),
            Err(EntryError::KindTooLong { .. })
        ));

        let mut bad_kind = good.clone();
        bad_kind[20] = b' ';
        assert!(matches!(
            Entry::decode(&bad_kind),
            Err(EntryError::KindInvalid { bad: ' ', .. })
        ));
        bad_kind[20] = 0xff;
        assert!(matches!(
            Entry::decode(&bad_kind),
            Err(EntryError::KindInvalid { .. })
        ));
    }

    #[test]
    fn builders_enforce_the_limits() {
        assert_eq!(Entry::new(0, 0, "", vec![]), Err(EntryError::KindEmpty));
        assert!(Entry::new(0, 0, "x".repeat(MAX_KIND_LEN + 1), vec![]).is_err());
        assert!(Entry::new(0, 0, "x".repeat(MAX_KIND_LEN), vec![]).is_ok());
        assert!(Entry::new(0, 0, "a b", vec![]).is_err());
        assert!(Entry::new(0, 0, "k", vec![0; MAX_BODY_LEN + 1]).is_err());
        let mut e = Entry::new(0, 0, "k", vec![]).unwrap();
        e.version = 9;
        assert!(e.encode().is_err());
    }

    proptest! {
        #[test]
        fn every_valid_entry_round_trips(
            seq in any::<u64>(), ts in any::<u64>(),
            kind in "[a-z0-9._:/-]{1,128}",
            body in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let e = Entry::new(seq, ts, kind, body).unwrap();
            let bytes = e.encode().unwrap();
            prop_assert_eq!(Entry::decode(&bytes).unwrap(), e);
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(e) = Entry::decode(&bytes) {
                prop_assert_eq!(e.encode().unwrap(), bytes);
            }
        }
    }
}
