//! A deployable model bundle: the federation's global model, its feature encoder and (when the
//! federation calibrated one) its alarm threshold, with the audit-log records that prove where
//! each came from. A SOC verifies a bundle offline against the federation CA alone, before it
//! scores a single row with it.
//!
//! # Layout
//!
//! - [`kind`]: the audit-log entry kinds a bundle's provenance is made of (the coordinator
//!   writes them under these names).
//! - [`records`]: the bodies of those entries, read through small structs of the fields a
//!   bundle needs (unknown fields ignored), and written in full for the two new kinds.
//! - [`format`]: the files of a bundle folder, `provenance.json` and `threshold.json`, and
//!   their format versions.
//! - `assemble` (private): [`Bundle::from_log`], picking the entries, the checkpoint and the
//!   proofs out of an audit log.
//! - `folder` (private): [`Bundle::write`] (atomic) and [`Bundle::read`].
//! - `container` (private): [`Bundle::to_bytes`] / [`Bundle::from_bytes`], one framed blob for
//!   sending a bundle over the wire.
//! - [`verify`]: [`Bundle::verify`] and what it yields, [`VerifiedBundle`]; also the
//!   unverified [`BundleContents`] for an explicit `--insecure-skip-verify`.
//! - [`error`]: [`BundleError`], one variant per thing that can be wrong, each naming it and
//!   what to do.
//!
//! # Trust
//!
//! Nothing in a bundle is taken on its word: the coordinator certificate must chain to the CA
//! given to [`Bundle::verify`] and carry the coordinator role, the checkpoint must be signed by
//! that certificate's key, every entry must be included in that checkpoint's tree, and every
//! file must hash to what those entries record. The summary fields of `provenance.json` are
//! checked against the entries, never used instead of them.
#![forbid(unsafe_code)]

mod assemble;
mod container;
pub mod error;
mod folder;
pub mod format;
pub mod kind;
pub mod records;
pub mod verify;

pub use error::BundleError;
pub use format::{Provenance, ProvenanceEntry, ThresholdFile};
pub use verify::{BundleContents, EncoderOrigin, LoggedThreshold, VerifiedBundle};

/// A bundle: the bytes of its files, exactly as they sit in a bundle folder. Build one with
/// [`Bundle::from_log`], [`Bundle::read`] or [`Bundle::from_bytes`]; trust it only through
/// [`Bundle::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// `model.safetensors`: the weights as `fedsoc model export --format safetensors` writes them.
    pub model_safetensors: Vec<u8>,
    /// `encoder.json`: the feature encoder JSON whose SHA-256 the log records.
    pub encoder_json: Vec<u8>,
    /// `threshold.json`, when the federation calibrated a threshold for this model.
    pub threshold_json: Option<Vec<u8>>,
    /// `provenance.json`: see [`Provenance`].
    pub provenance_json: Vec<u8>,
}

impl Bundle {
    /// The parsed `provenance.json` (format and version checked, nothing verified).
    pub fn provenance(&self) -> Result<Provenance, BundleError> {
        Provenance::parse(&self.provenance_json)
    }
}

/// SHA-256 of `bytes`, lowercase hex: how the log names encoders and blobs.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The audit log's origin for a federation, as the coordinator opens its log.
pub fn log_origin(federation: &str) -> String {
    format!("fedsoc/{federation}")
}
