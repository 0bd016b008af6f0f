//! [`Bundle::from_log`]: what a bundle is made of, picked from the coordinator's audit log.
//!
//! The model is the `round.model` of the round asked for (default: the newest). The encoder is
//! the newest `encoder.fitted` at or before that round, else the one `federation.created`
//! names. The threshold is the newest `threshold.calibrated` for exactly that model and
//! encoder. The checkpoint is the newest signed one, which must cover all of these entries.

use fedsoc_audit::{AuditLog, Entry};
use fedsoc_models::export::{export_safetensors, flat_sha256, model_config};
use fedsoc_models::{ExportMeta, ModelConfig};
use serde::de::DeserializeOwned;

use crate::error::BundleError;
use crate::format::{
    self, FORMAT_VERSION, PROVENANCE_FORMAT, Provenance, ProvenanceEntry, ThresholdFile,
};
use crate::records::{EncoderFitted, FederationCreated, RoundModel, ThresholdCalibrated};
use crate::{Bundle, kind, sha256_hex};

/// A decoded entry of interest and where it sits.
struct Found<T> {
    index: u64,
    entry: Entry,
    body: T,
}

fn body<T: DeserializeOwned>(entry: Entry, kind: &'static str) -> Result<Found<T>, BundleError> {
    let body = entry.body_json().map_err(|e| BundleError::EntryBody {
        index: entry.seq,
        kind,
        reason: e.to_string(),
    })?;
    Ok(Found {
        index: entry.seq,
        entry,
        body,
    })
}

/// The architecture `federation.created` records.
pub(crate) fn logged_architecture(
    created: &FederationCreated,
) -> Result<ModelConfig, fedsoc_models::ModelError> {
    model_config(
        &created.model_kind,
        created.model_input_dim,
        created.model_hidden.clone(),
    )
}

impl Bundle {
    /// Builds the bundle of `round` (default: the newest round with a model) from `log`.
    /// `coordinator_certificate_pem` is the certificate whose key signs the log's checkpoints;
    /// `config_encoder_json` is the encoder of coordinator.toml, used (and checked against
    /// `federation.created`) only when no `encoder.fitted` applies.
    pub fn from_log(
        log: &AuditLog,
        round: Option<u64>,
        coordinator_certificate_pem: &str,
        config_encoder_json: &str,
    ) -> Result<Bundle, BundleError> {
        if round == Some(0) {
            return Err(BundleError::InitialModel);
        }
        let mut created: Option<Found<FederationCreated>> = None;
        let mut models: Vec<Found<RoundModel>> = Vec::new();
        let mut encoders: Vec<Found<EncoderFitted>> = Vec::new();
        let mut thresholds: Vec<Found<ThresholdCalibrated>> = Vec::new();
        for entry in log.entries() {
            let entry = entry?;
            match entry.kind.as_str() {
                kind::FEDERATION_CREATED if created.is_none() => {
                    created = Some(body(entry, kind::FEDERATION_CREATED)?);
                }
                kind::ROUND_MODEL => models.push(body(entry, kind::ROUND_MODEL)?),
                kind::ENCODER_FITTED => encoders.push(body(entry, kind::ENCODER_FITTED)?),
                kind::THRESHOLD_CALIBRATED => {
                    thresholds.push(body(entry, kind::THRESHOLD_CALIBRATED)?);
                }
                _ => {}
            }
        }
        let created = created.ok_or(BundleError::NoFederation)?;
        let model = match round {
            Some(r) => models.into_iter().rfind(|m| m.body.round == r),
            None => models.into_iter().max_by_key(|m| (m.body.round, m.index)),
        }
        .ok_or_else(|| BundleError::NoRoundModel {
            which: round.map_or("any round".into(), |r| format!("round {r}")),
        })?;
        let model_round = model.body.round;

        // The encoder: the newest fitted at or before the model's round, else the initial one.
        let fitted = encoders
            .into_iter()
            .filter(|e| e.body.round <= model_round)
            .max_by_key(|e| e.index);
        let (encoder_json, encoder_sha256, encoder_entry) = match fitted {
            Some(f) => {
                let actual = sha256_hex(f.body.encoder_json.as_bytes());
                if actual != f.body.encoder_sha256 {
                    return Err(BundleError::FittedEncoderInconsistent {
                        index: f.index,
                        logged: f.body.encoder_sha256,
                        actual,
                    });
                }
                (f.body.encoder_json.clone(), actual, Some(f))
            }
            None => {
                let actual = sha256_hex(config_encoder_json.as_bytes());
                if actual != created.body.encoder_sha256 {
                    return Err(BundleError::ConfigEncoder {
                        index: created.index,
                        config_sha256: actual,
                        logged_sha256: created.body.encoder_sha256.clone(),
                    });
                }
                (config_encoder_json.to_owned(), actual, None)
            }
        };
        let threshold = thresholds
            .into_iter()
            .filter(|t| {
                t.body.model_sha256 == model.body.model_sha256
                    && t.body.encoder_sha256 == encoder_sha256
            })
            .max_by_key(|t| t.index);

        // The weights, from the blob store, checked against the logged hash.
        let config = logged_architecture(&created.body)?;
        let blob_error = |reason: String| BundleError::ModelBlob {
            round: model_round,
            index: model.index,
            reason,
        };
        let bytes = log
            .blobs()
            .get(&model.body.model)
            .map_err(|e| blob_error(format!("cannot be read: {e}")))?;
        if bytes.len() % 4 != 0 {
            return Err(blob_error(format!(
                "holds {} bytes, not whole f32 values",
                bytes.len()
            )));
        }
        let flat: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let actual = flat_sha256(&flat);
        if actual != model.body.model_sha256 {
            return Err(blob_error(format!(
                "hashes to {actual}, not the logged model_sha256 {}",
                model.body.model_sha256
            )));
        }
        let meta = ExportMeta {
            federation: created.body.federation.clone(),
            round: model_round,
            model_sha256: actual,
            encoder_json: encoder_json.clone(),
        };
        let model_safetensors = export_safetensors(&config, &flat, &meta)?;

        // The checkpoint covering every entry, and the proofs.
        let mut picked: Vec<(u64, &Entry)> =
            vec![(created.index, &created.entry), (model.index, &model.entry)];
        if let Some(f) = &encoder_entry {
            picked.push((f.index, &f.entry));
        }
        if let Some(t) = &threshold {
            picked.push((t.index, &t.entry));
        }
        picked.sort_by_key(|(index, _)| *index);
        let last = picked.last().map_or(0, |(index, _)| *index);
        let checkpoint = log
            .latest_checkpoint()
            .filter(|c| c.checkpoint.tree_size > last)
            .ok_or_else(|| BundleError::NoCheckpoint {
                index: last,
                newest: log.latest_checkpoint().map_or("none".into(), |c| {
                    format!("size {}", c.checkpoint.tree_size)
                }),
            })?;
        let tree_size = checkpoint.checkpoint.tree_size;
        let mut entries = Vec::with_capacity(picked.len());
        for (index, entry) in picked {
            let proof = log.inclusion_proof(index, tree_size)?;
            let bytes = entry.encode().map_err(|e| BundleError::EntryBody {
                index,
                kind: "entry",
                reason: e.to_string(),
            })?;
            entries.push(ProvenanceEntry {
                kind: entry.kind.clone(),
                index,
                entry: hex::encode(bytes),
                inclusion_proof: proof.iter().map(hex::encode).collect(),
            });
        }
        let note = checkpoint
            .to_note()
            .map_err(|e| BundleError::CheckpointUnreadable {
                reason: e.to_string(),
            })?;

        let provenance = Provenance {
            format: PROVENANCE_FORMAT.into(),
            format_version: FORMAT_VERSION,
            federation: created.body.federation.clone(),
            round: model_round,
            model_sha256: model.body.model_sha256.clone(),
            encoder_sha256,
            encoder_origin: if encoder_entry.is_some() {
                kind::ENCODER_FITTED
            } else {
                kind::FEDERATION_CREATED
            }
            .into(),
            threshold: threshold.as_ref().map(|t| t.body.threshold),
            coordinator_certificate: coordinator_certificate_pem.to_owned(),
            checkpoint: note,
            entries,
        };
        Ok(Bundle {
            model_safetensors,
            encoder_json: encoder_json.into_bytes(),
            threshold_json: threshold
                .as_ref()
                .map(|t| format::to_json(&ThresholdFile::from_logged(&t.body))),
            provenance_json: format::to_json(&provenance),
        })
    }
}
