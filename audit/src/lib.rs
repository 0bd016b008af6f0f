//! The auditors' log: an append-only, verifiable record of every
//! aggregation (RFC 9162 Merkle hashing, signed checkpoints, inclusion and
//! consistency proofs, replay of each round).
//!
//! # Layout
//!
//! - [`merkle`]: RFC 9162 hashes, tree heads, inclusion and consistency proofs and their verification.
//! - [`entry`]: the versioned entry envelope and its canonical byte encoding.
//! - [`blob`]: the content-addressed blob store (`blobs/ab/cdef…`, SHA-256, atomic writes, checked reads).
//! - `frame` (private): the framed record files `entries.log` and `checkpoints.log`, torn-tail detection.
//! - [`log`]: the log directory and the [`AuditLog`] facade (append, checkpoint, proofs, replay, [`repair`]).
//! - [`checkpoint`]: Ed25519-signed checkpoints (origin, size, root, time) and their text note form.
//! - [`cosignature`]: witness cosignatures over checkpoints (C2SP tlog-cosignature style) and the entry that records one.
//! - [`verify`]: offline verification of a log directory against the audit public key.
//! - [`error`]: [`AuditError`], which says what is wrong and what to do.
//!
//! What the entries mean (round configs, rosters, aggregates) is the
//! caller's business: this crate stores `kind` + opaque (JSON) body.
#![forbid(unsafe_code)]

pub mod blob;
pub mod checkpoint;
pub mod cosignature;
pub mod entry;
pub mod error;
mod frame;
mod hexfmt;
pub mod log;
pub mod merkle;
pub mod verify;

pub use blob::{BlobId, BlobStore};
pub use checkpoint::{Checkpoint, CheckpointError, KeyId, SignedCheckpoint};
pub use cosignature::{Cosignature, CosignatureError, CosignatureRecord};
pub use entry::{Entry, EntryError};
pub use error::AuditError;
pub use log::{AppendReceipt, AuditLog, Entries, RepairedFile, now_ms, repair};
pub use merkle::{Hash, MerkleTree, ProofError, verify_consistency, verify_inclusion};
pub use verify::{Verifier, VerifyReport, verify_dir};
