//! The entry bodies a bundle reads (JSON in the audit log).
//!
//! For the coordinator's existing kinds only the fields a bundle needs are read, and unknown
//! fields are ignored, so this crate does not depend on the coordinator and keeps reading its
//! logs as they grow fields. The two kinds new with bundles, [`EncoderFitted`] and
//! [`ThresholdCalibrated`], are defined here in full for the coordinator to write.

use std::collections::BTreeMap;

use fedsoc_audit::BlobId;
use serde::{Deserialize, Serialize};

fn autoencoder() -> String {
    "autoencoder".into()
}

/// `federation.created`, the fields a bundle needs.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct FederationCreated {
    pub federation: String,
    /// "autoencoder" or "classifier" (absent in logs from before classifiers).
    #[serde(default = "autoencoder")]
    pub model_kind: String,
    pub model_input_dim: usize,
    pub model_hidden: Vec<usize>,
    /// SHA-256 (hex) of the encoder JSON the federation started with.
    pub encoder_sha256: String,
}

/// `round.model`, the fields a bundle needs.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct RoundModel {
    pub round: u64,
    pub attempt: u32,
    /// SHA-256 (hex) of the flat model's f32 little-endian bytes.
    pub model_sha256: String,
    /// The same bytes in the log's blob store.
    pub model: BlobId,
}

/// `encoder.fitted`: a federated `statistics` round fitted the feature encoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EncoderFitted {
    pub round: u64,
    pub attempt: u32,
    /// SHA-256 (hex) of `encoder_json`'s bytes.
    pub encoder_sha256: String,
    /// The fitted `fedsoc_datasets::EncoderSpec`, as JSON.
    pub encoder_json: String,
    /// Rows the statistics were computed over, federation-wide.
    pub rows: u64,
    /// Per categorical column, the share of rows outside its vocabulary.
    pub other_share: BTreeMap<String, f64>,
    /// Rows per attack family (benign included), federation-wide.
    pub label_counts: BTreeMap<String, u64>,
}

/// `threshold.calibrated`: a federated `calibrate` round set one model's alarm threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThresholdCalibrated {
    pub round: u64,
    pub attempt: u32,
    /// The model (SHA-256 hex of its flat f32 LE bytes) and encoder the threshold is for.
    pub model_sha256: String,
    pub encoder_sha256: String,
    /// What is thresholded, e.g. "reconstruction_mse" or "p_attack".
    pub score: String,
    /// The false-alarm rate the threshold was set for.
    pub false_alarm_rate: f64,
    pub threshold: f64,
    pub score_interval: [f64; 2],
    pub false_alarm_interval: [f64; 2],
    pub benign_rows: u64,
}
