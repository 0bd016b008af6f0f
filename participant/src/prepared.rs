//! Our telemetry as the federation's encoder in force sees it, and the
//! answers to the rounds that sum over our rows instead of training.
//!
//! The rows are split once into training rows and benign validation rows
//! ([`telemetry::split_validation`]); they are encoded again only when a
//! task brings another encoder (after a statistics round fitted one).
//! A query our telemetry cannot answer (no value of the vocabulary, a
//! column the encoder names that our data lacks, no validation rows) is
//! refused with the data source and the reason, as the task's failure:
//! the round goes on without us, and its record says why.

use std::sync::Arc;

use fedsoc_datasets::statistics::{CalibrationQuery, MomentsQuery, SpreadQuery, category_counts};
use fedsoc_datasets::{DatasetError, Records};
use fedsoc_models::ModelConfig;
use ndarray::Array2;
use sha2::{Digest, Sha256};

use crate::error::ParticipantError;
use crate::telemetry;

/// The rows a model trains on: the autoencoder learns benign traffic
/// (rows labelled as attacks are left out), the classifier every row with
/// its label.
pub struct TrainingRows {
    pub features: Array2<f32>,
    pub attacks: Vec<bool>,
}

impl TrainingRows {
    fn for_model(
        model: &ModelConfig,
        encoded: telemetry::Encoded,
    ) -> Result<Self, ParticipantError> {
        if model.needs_labels() {
            return Ok(TrainingRows {
                features: encoded.features,
                attacks: encoded.attacks,
            });
        }
        let benign: Vec<usize> = (0..encoded.attacks.len())
            .filter(|&i| !encoded.attacks[i])
            .collect();
        if benign.is_empty() {
            return Err(ParticipantError::Data(DatasetError::EmptyInput));
        }
        Ok(TrainingRows {
            features: encoded.features.select(ndarray::Axis(0), &benign),
            attacks: vec![false; benign.len()],
        })
    }
}

/// Our rows, split and encoded with one version of the encoder.
pub struct Prepared {
    /// SHA-256 (hex) of the encoder JSON they were encoded with.
    pub encoder_sha256: String,
    /// The training rows, raw: what statistics rounds sum over.
    pub training: Arc<Records>,
    /// The training rows, encoded for the model.
    pub rows: Arc<TrainingRows>,
    /// The benign validation rows, raw and encoded: what calibration scores.
    pub validation_records: Arc<Records>,
    pub validation: Arc<Array2<f32>>,
    /// The encoder's columns and vocabularies.
    pub layout: fedsoc_datasets::EncoderSpec,
}

/// SHA-256 (hex) of an encoder's JSON text.
pub fn encoder_sha256(json: &str) -> String {
    fedsoc_bundle::sha256_hex(json.as_bytes())
}

impl Prepared {
    /// Splits `records` and encodes both parts with `encoder_json`.
    pub fn new(
        records: &Records,
        validation_fraction: f64,
        model: &ModelConfig,
        encoder_json: &str,
    ) -> Result<Self, ParticipantError> {
        let layout = telemetry::read_encoder(encoder_json)?;
        let (training, validation) = telemetry::split_validation(records, validation_fraction);
        let rows = TrainingRows::for_model(model, telemetry::encode_with(&training, &layout)?)?;
        if rows.features.ncols() != model.input_dim() {
            return Err(ParticipantError::Protocol(format!(
                "the feature encoding yields {} features but the model expects {}",
                rows.features.ncols(),
                model.input_dim()
            )));
        }
        let encoded = telemetry::encode_with(&validation, &layout)?.features;
        Ok(Prepared {
            encoder_sha256: encoder_sha256(encoder_json),
            training: Arc::new(training),
            rows: Arc::new(rows),
            validation_records: Arc::new(validation),
            validation: Arc::new(encoded),
            layout,
        })
    }
}

/// Whether a task's kind sums over our rows rather than training.
pub fn is_sum(kind: &str) -> bool {
    !matches!(kind, "" | "train")
}

/// The ledger key of a sum task (see [`crate::releases`]): the same query
/// in the same round over the same model is one sum, whatever the attempt;
/// another round is another sum.
pub fn sum_base(round: u64, kind: &str, query_json: &str, global: &[f32]) -> String {
    let mut h = Sha256::new();
    h.update(format!("fedsoc/sum/{round}/{kind}\n").as_bytes());
    h.update(query_json.as_bytes());
    h.update(crate::releases::base_model_sha256(global).as_bytes());
    hex::encode(h.finalize())
}

/// Our vector for a sum round of `kind` with `query_json`, from our rows
/// (and the global model, to score validation rows in a calibration).
pub fn answer(
    kind: &str,
    query_json: &str,
    prepared: &Prepared,
    model: &ModelConfig,
    global: &[f32],
    source: &str,
) -> Result<Vec<u64>, ParticipantError> {
    let unreadable = |e: serde_json::Error| {
        ParticipantError::Protocol(format!("the {kind} round's query does not read: {e}"))
    };
    let refused = |e: DatasetError| ParticipantError::Unanswerable {
        source_name: source.to_string(),
        reason: e.to_string(),
    };
    match kind {
        "moments" => {
            let q: MomentsQuery = serde_json::from_str(query_json).map_err(unreadable)?;
            q.vector(&prepared.training).map_err(refused)
        }
        "spread" => {
            let q: SpreadQuery = serde_json::from_str(query_json).map_err(unreadable)?;
            q.vector(&prepared.training).map_err(refused)
        }
        "calibrate" => {
            let q: CalibrationQuery = serde_json::from_str(query_json).map_err(unreadable)?;
            // Rows the encoder cannot describe would score high and drag
            // the federation's threshold up: refused as in statistics.
            category_counts(&prepared.layout, &prepared.validation_records).map_err(refused)?;
            let scores = fedsoc_models::anomaly_scores(model, global, prepared.validation.view())?;
            q.vector(&scores).map_err(refused)
        }
        other => Err(ParticipantError::Protocol(format!(
            "round kind {other:?} is unknown to this participant (train, moments, spread, \
             calibrate): upgrade it"
        ))),
    }
}
