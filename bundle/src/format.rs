//! The bundle folder and its two JSON documents.
//!
//! ```text
//! <bundle>/model.safetensors  the weights (fedsoc_models::export, safetensors)
//! <bundle>/encoder.json       the feature encoder JSON, byte for byte as the log hashed it
//! <bundle>/threshold.json     optional: the federation's calibrated threshold (ThresholdFile)
//! <bundle>/provenance.json    where all of it came from (Provenance)
//! ```
//!
//! Both JSON documents carry `format` and `format_version`; a reader refuses a newer version
//! rather than misread it. Version 1 is described by the structs below.

use serde::{Deserialize, Serialize};

use crate::error::BundleError;
use crate::records::ThresholdCalibrated;

pub const MODEL_FILE: &str = "model.safetensors";
pub const ENCODER_FILE: &str = "encoder.json";
pub const THRESHOLD_FILE: &str = "threshold.json";
pub const PROVENANCE_FILE: &str = "provenance.json";

/// Every file a bundle folder may hold; anything else means it is not a bundle folder.
pub const FILES: [&str; 4] = [MODEL_FILE, ENCODER_FILE, THRESHOLD_FILE, PROVENANCE_FILE];

/// `format` of `provenance.json`.
pub const PROVENANCE_FORMAT: &str = "fedsoc-bundle";
/// `format` of `threshold.json`.
pub const THRESHOLD_FORMAT: &str = "fedsoc-threshold";
/// The version this build writes and the newest it reads (both documents).
pub const FORMAT_VERSION: u32 = 1;

/// `provenance.json`: the summary a person reads, then the evidence a verifier checks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// [`PROVENANCE_FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    // Summary (checked against the entries, never trusted on its own).
    pub federation: String,
    pub round: u64,
    pub model_sha256: String,
    pub encoder_sha256: String,
    /// The kind of the entry that names the encoder: `encoder.fitted` or `federation.created`.
    pub encoder_origin: String,
    /// The calibrated threshold, when there is one.
    pub threshold: Option<f64>,
    // Evidence.
    /// The coordinator's certificate (PEM): its Ed25519 key signed the checkpoint.
    pub coordinator_certificate: String,
    /// The audit log's signed checkpoint, as its note text (`fedsoc_audit::SignedCheckpoint`).
    pub checkpoint: String,
    /// The entries the bundle rests on, each with its inclusion proof in the checkpoint's tree.
    pub entries: Vec<ProvenanceEntry>,
}

/// One audit-log entry and its inclusion proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenanceEntry {
    /// The entry's kind (for readers; the verifier reads it from `entry`).
    pub kind: String,
    /// Its index (`seq`) in the log.
    pub index: u64,
    /// Its canonical bytes (`fedsoc_audit::Entry::encode`), hex.
    pub entry: String,
    /// The RFC 9162 audit path from its leaf to the checkpoint's root, hex hashes.
    pub inclusion_proof: Vec<String>,
}

/// `threshold.json`: the calibrated threshold, values exactly as logged in
/// `threshold.calibrated`, so other tools read it without the provenance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThresholdFile {
    /// [`THRESHOLD_FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The calibrate round that set it.
    pub round: u64,
    pub score: String,
    /// Flag rows scoring strictly above this.
    pub threshold: f64,
    pub false_alarm_rate: f64,
    pub score_interval: [f64; 2],
    pub false_alarm_interval: [f64; 2],
    pub benign_rows: u64,
}

impl ThresholdFile {
    pub fn from_logged(t: &ThresholdCalibrated) -> Self {
        ThresholdFile {
            format: THRESHOLD_FORMAT.into(),
            format_version: FORMAT_VERSION,
            round: t.round,
            score: t.score.clone(),
            threshold: t.threshold,
            false_alarm_rate: t.false_alarm_rate,
            score_interval: t.score_interval,
            false_alarm_interval: t.false_alarm_interval,
            benign_rows: t.benign_rows,
        }
    }

    /// Parses `threshold.json`, checking format and version.
    pub fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        let file: Self = parse_json(THRESHOLD_FILE, bytes)?;
        check_format(
            THRESHOLD_FILE,
            &file.format,
            THRESHOLD_FORMAT,
            file.format_version,
        )?;
        Ok(file)
    }

    /// The first field whose value differs from the logged entry's, if any.
    pub fn first_difference(&self, logged: &ThresholdCalibrated) -> Option<&'static str> {
        let expected = Self::from_logged(logged);
        // Bit equality: the file must carry exactly the logged numbers.
        let same = |a: f64, b: f64| a.to_bits() == b.to_bits();
        let pair = |a: [f64; 2], b: [f64; 2]| same(a[0], b[0]) && same(a[1], b[1]);
        [
            ("round", self.round == expected.round),
            ("score", self.score == expected.score),
            ("threshold", same(self.threshold, expected.threshold)),
            (
                "false_alarm_rate",
                same(self.false_alarm_rate, expected.false_alarm_rate),
            ),
            (
                "score_interval",
                pair(self.score_interval, expected.score_interval),
            ),
            (
                "false_alarm_interval",
                pair(self.false_alarm_interval, expected.false_alarm_interval),
            ),
            ("benign_rows", self.benign_rows == expected.benign_rows),
        ]
        .into_iter()
        .find(|(_, equal)| !equal)
        .map(|(field, _)| field)
    }
}

impl Provenance {
    /// Parses `provenance.json`, checking format and version.
    pub fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        let p: Self = parse_json(PROVENANCE_FILE, bytes)?;
        check_format(
            PROVENANCE_FILE,
            &p.format,
            PROVENANCE_FORMAT,
            p.format_version,
        )?;
        Ok(p)
    }
}

/// Pretty JSON of a document (serialising these plain structs cannot fail).
pub(crate) fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

fn parse_json<T: serde::de::DeserializeOwned>(
    file: &'static str,
    bytes: &[u8],
) -> Result<T, BundleError> {
    serde_json::from_slice(bytes).map_err(|e| BundleError::Garbled {
        file,
        reason: e.to_string(),
    })
}

fn check_format(
    file: &'static str,
    format: &str,
    expected: &str,
    version: u32,
) -> Result<(), BundleError> {
    if format != expected {
        return Err(BundleError::Garbled {
            file,
            reason: format!("its format is {format:?}, not {expected:?}"),
        });
    }
    if version == 0 || version > FORMAT_VERSION {
        return Err(BundleError::UnsupportedVersion {
            file,
            found: version,
        });
    }
    Ok(())
}
