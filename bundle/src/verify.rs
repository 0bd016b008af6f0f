//! [`Bundle::verify`]: checking a bundle offline against the federation CA alone.
//!
//! In order: the coordinator certificate chains to the CA and carries the coordinator role (as
//! of the checkpoint's time, so a bundle outlives the certificate); the checkpoint is signed by
//! that certificate's Ed25519 key; every provenance entry is canonical, sits at the index it
//! claims and is included in the checkpoint's tree; the entries are one of each kind a bundle
//! uses, of the checkpoint's federation; and each file hashes to, or equals, what they record:
//! the weights to `round.model`, the architecture to `federation.created`, `encoder.json` to the
//! encoder's entry, `threshold.json` to `threshold.calibrated` (which must be for this model and
//! encoder). The first failure is returned, naming what is wrong.
//!
//! What a bundle cannot prove offline: that no later entry superseded these (a newer round, a
//! refitted encoder); a verifier sees the round and checkpoint time and judges freshness.

use fedsoc_audit::{Checkpoint, Entry, SignedCheckpoint, verify_inclusion};
use fedsoc_datasets::EncoderSpec;
use fedsoc_models::export::{flat_sha256, read_safetensors, read_safetensors_unverified};
use fedsoc_models::{ExportMeta, ModelConfig};
use fedsoc_pki::MemberVerifier;
use serde::de::DeserializeOwned;

use crate::assemble::logged_architecture;
use crate::error::BundleError;
use crate::format::{Provenance, ThresholdFile};
use crate::records::{EncoderFitted, FederationCreated, RoundModel, ThresholdCalibrated};
use crate::{Bundle, kind, log_origin, sha256_hex};

/// What a bundle holds, ready to score with.
#[derive(Clone, Debug)]
pub struct BundleContents {
    pub model: ModelConfig,
    /// The flat weights (the coordinator's order).
    pub weights: Vec<f32>,
    /// What model.safetensors says about itself (federation, round, hash, encoder).
    pub meta: ExportMeta,
    pub encoder: EncoderSpec,
    /// `threshold.json`, when present.
    pub threshold: Option<ThresholdFile>,
}

/// Where the bundle's encoder was logged.
#[derive(Clone, Debug, PartialEq)]
pub enum EncoderOrigin {
    /// Fitted by a federated statistics round (`encoder.fitted`).
    Fitted { index: u64, round: u64, rows: u64 },
    /// The federation's initial encoder (`federation.created`).
    Created { index: u64 },
}

/// The threshold as logged, and where.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedThreshold {
    pub index: u64,
    pub calibrated: ThresholdCalibrated,
}

/// A bundle that verified: its contents and the facts the signed log established.
#[derive(Clone, Debug)]
pub struct VerifiedBundle {
    pub contents: BundleContents,
    pub federation: String,
    pub round: u64,
    /// The `round.model` entry's index.
    pub model_index: u64,
    pub model_sha256: String,
    pub encoder_sha256: String,
    pub encoder_origin: EncoderOrigin,
    pub threshold: Option<LoggedThreshold>,
    /// The coordinator certificate's id.
    pub coordinator: String,
    /// The checkpoint the entries are proven against.
    pub checkpoint: Checkpoint,
}

/// One of each entry kind a bundle rests on.
#[derive(Default)]
struct Picked {
    created: Option<(u64, FederationCreated)>,
    model: Option<(u64, RoundModel)>,
    fitted: Option<(u64, EncoderFitted)>,
    threshold: Option<(u64, ThresholdCalibrated)>,
}

impl Bundle {
    /// Reads the bundle's files without verifying anything. Only for an operator's explicit
    /// `--insecure-skip-verify`: use [`Bundle::verify`].
    pub fn contents_unverified(&self) -> Result<BundleContents, BundleError> {
        let (model, weights, meta) = read_safetensors(&self.model_safetensors).map_err(|e| {
            BundleError::ModelUnreadable {
                reason: e.to_string(),
            }
        })?;
        contents(self, model, weights, meta)
    }

    /// Verifies the bundle against the federation CA (PEM); see the module documentation.
    pub fn verify(&self, ca_pem: &str) -> Result<VerifiedBundle, BundleError> {
        let provenance = self.provenance()?;
        let signed = SignedCheckpoint::from_note(&provenance.checkpoint).map_err(|e| {
            BundleError::CheckpointUnreadable {
                reason: e.to_string(),
            }
        })?;
        let coordinator = coordinator_key(&provenance, &signed, ca_pem)?;
        signed
            .verify(&coordinator.1)
            .map_err(|e| BundleError::CheckpointSignature {
                reason: e.to_string(),
            })?;
        let checkpoint = signed.checkpoint;
        let picked = included_entries(&provenance, &checkpoint)?;

        let (created_index, created) = picked.created.ok_or(BundleError::EntryMissing {
            kind: kind::FEDERATION_CREATED,
        })?;
        let (model_index, logged_model) = picked.model.ok_or(BundleError::EntryMissing {
            kind: kind::ROUND_MODEL,
        })?;
        let expected_origin = log_origin(&created.federation);
        if checkpoint.origin != expected_origin {
            return Err(BundleError::OriginMismatch {
                origin: checkpoint.origin,
                federation: created.federation,
                expected: expected_origin,
            });
        }

        // The weights and their architecture.
        let (model, weights, meta) =
            read_safetensors_unverified(&self.model_safetensors).map_err(|e| {
                BundleError::ModelUnreadable {
                    reason: e.to_string(),
                }
            })?;
        let logged_config = logged_architecture(&created).map_err(|e| BundleError::EntryBody {
            index: created_index,
            kind: kind::FEDERATION_CREATED,
            reason: e.to_string(),
        })?;
        if model != logged_config {
            return Err(BundleError::ArchitectureMismatch {
                index: created_index,
                logged: architecture(&logged_config),
                found: architecture(&model),
            });
        }
        let actual = flat_sha256(&weights);
        if actual != logged_model.model_sha256 {
            return Err(BundleError::ModelHashMismatch {
                round: logged_model.round,
                index: model_index,
                logged: logged_model.model_sha256,
                actual,
            });
        }

        // The encoder.
        let encoder_sha256 = sha256_hex(&self.encoder_json);
        let (encoder_origin, logged_encoder, encoder_kind, encoder_index) = match &picked.fitted {
            Some((index, f)) => {
                if f.round > logged_model.round {
                    return Err(BundleError::EncoderAfterModel {
                        index: *index,
                        encoder_round: f.round,
                        model_round: logged_model.round,
                    });
                }
                (
                    EncoderOrigin::Fitted {
                        index: *index,
                        round: f.round,
                        rows: f.rows,
                    },
                    &f.encoder_sha256,
                    kind::ENCODER_FITTED,
                    *index,
                )
            }
            None => (
                EncoderOrigin::Created {
                    index: created_index,
                },
                &created.encoder_sha256,
                kind::FEDERATION_CREATED,
                created_index,
            ),
        };
        if encoder_sha256 != *logged_encoder {
            return Err(BundleError::EncoderHashMismatch {
                kind: encoder_kind,
                index: encoder_index,
                logged: logged_encoder.clone(),
                actual: encoder_sha256,
            });
        }

        // What model.safetensors says about itself must agree with the log too.
        let encoder_text = String::from_utf8_lossy(&self.encoder_json);
        if let Some((field, found, logged)) = first_mismatch([
            (
                "federation",
                meta.federation.clone(),
                created.federation.clone(),
            ),
            (
                "round",
                meta.round.to_string(),
                logged_model.round.to_string(),
            ),
            (
                "model_sha256",
                meta.model_sha256.clone(),
                logged_model.model_sha256.clone(),
            ),
            (
                "encoder",
                meta.encoder_json.clone(),
                encoder_text.into_owned(),
            ),
        ]) {
            return Err(BundleError::ModelMetadataMismatch {
                field,
                found,
                logged,
            });
        }

        let threshold = check_threshold(
            self,
            picked.threshold,
            &logged_model.model_sha256,
            &encoder_sha256,
        )?;

        // The summary a person reads must say what the entries say.
        let origin_kind = encoder_kind.to_string();
        let stated_threshold = provenance.threshold.map(|t| t.to_string());
        let logged_threshold = threshold
            .as_ref()
            .map(|t| t.calibrated.threshold.to_string());
        if let Some((field, stated, logged)) = first_mismatch([
            (
                "federation",
                provenance.federation.clone(),
                created.federation.clone(),
            ),
            (
                "round",
                provenance.round.to_string(),
                logged_model.round.to_string(),
            ),
            (
                "model_sha256",
                provenance.model_sha256.clone(),
                logged_model.model_sha256.clone(),
            ),
            (
                "encoder_sha256",
                provenance.encoder_sha256.clone(),
                encoder_sha256.clone(),
            ),
            (
                "encoder_origin",
                provenance.encoder_origin.clone(),
                origin_kind,
            ),
            (
                "threshold",
                format!("{stated_threshold:?}"),
                format!("{logged_threshold:?}"),
            ),
        ]) {
            return Err(BundleError::SummaryMismatch {
                field,
                stated,
                logged,
            });
        }

        let contents = contents(self, model, weights, meta)?;
        Ok(VerifiedBundle {
            contents,
            federation: created.federation,
            round: logged_model.round,
            model_index,
            model_sha256: logged_model.model_sha256,
            encoder_sha256,
            encoder_origin,
            threshold,
            coordinator: coordinator.0,
            checkpoint,
        })
    }
}

/// The coordinator's id and checkpoint key: its certificate checked against the CA as of the
/// checkpoint's time.
fn coordinator_key(
    provenance: &Provenance,
    signed: &SignedCheckpoint,
    ca_pem: &str,
) -> Result<(String, ed25519_dalek::VerifyingKey), BundleError> {
    let untrusted = |reason: String| BundleError::Certificate { reason };
    let der = fedsoc_pki::first_certificate_der(&provenance.coordinator_certificate)
        .ok_or_else(|| untrusted("provenance.json holds no PEM certificate".into()))?;
    let verifier = MemberVerifier::new(ca_pem).map_err(|e| untrusted(format!("the CA: {e}")))?;
    let at_s = i64::try_from(signed.checkpoint.timestamp_ms / 1000).unwrap_or(i64::MAX);
    let key = verifier
        .coordinator_key_at(&der, at_s)
        .map_err(|e| untrusted(e.to_string()))?;
    let id = fedsoc_pki::identity_from_der(&der)
        .map(|i| i.id)
        .map_err(|e| untrusted(e.to_string()))?;
    Ok((id, key))
}

/// Decodes every provenance entry, checks its index and inclusion in `checkpoint`, and keeps
/// one of each kind a bundle uses.
fn included_entries(
    provenance: &Provenance,
    checkpoint: &Checkpoint,
) -> Result<Picked, BundleError> {
    let mut picked = Picked::default();
    for (position, p) in provenance.entries.iter().enumerate() {
        let undecodable = |reason: String| BundleError::EntryUndecodable {
            position,
            index: p.index,
            reason,
        };
        let bytes = hex::decode(&p.entry).map_err(|e| undecodable(format!("not hex: {e}")))?;
        let entry = Entry::decode(&bytes).map_err(|e| undecodable(e.to_string()))?;
        if entry.seq != p.index {
            return Err(BundleError::EntryIndexMismatch {
                position,
                index: p.index,
                seq: entry.seq,
            });
        }
        let proof = p
            .inclusion_proof
            .iter()
            .map(|h| {
                hex::decode(h)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| undecodable(format!("proof hash {h:?} is not 64 hex digits")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let leaf = fedsoc_audit::merkle::leaf_hash(&bytes);
        verify_inclusion(
            &leaf,
            entry.seq,
            checkpoint.tree_size,
            &proof,
            &checkpoint.root,
        )
        .map_err(|e| BundleError::NotIncluded {
            index: entry.seq,
            kind: entry.kind.clone(),
            tree_size: checkpoint.tree_size,
            reason: e.to_string(),
        })?;
        match entry.kind.as_str() {
            kind::FEDERATION_CREATED => {
                keep(&mut picked.created, &entry, kind::FEDERATION_CREATED)?
            }
            kind::ROUND_MODEL => keep(&mut picked.model, &entry, kind::ROUND_MODEL)?,
            kind::ENCODER_FITTED => keep(&mut picked.fitted, &entry, kind::ENCODER_FITTED)?,
            kind::THRESHOLD_CALIBRATED => {
                keep(&mut picked.threshold, &entry, kind::THRESHOLD_CALIBRATED)?;
            }
            other => {
                return Err(BundleError::EntryUnexpected {
                    index: entry.seq,
                    kind: other.to_owned(),
                });
            }
        }
    }
    Ok(picked)
}

/// Stores `entry`'s body in `slot`, refusing a second entry of the same kind.
fn keep<T: DeserializeOwned>(
    slot: &mut Option<(u64, T)>,
    entry: &Entry,
    kind: &'static str,
) -> Result<(), BundleError> {
    if let Some((first, _)) = slot {
        return Err(BundleError::EntryDuplicate {
            kind: kind.into(),
            first: *first,
            second: entry.seq,
        });
    }
    let body = entry.body_json().map_err(|e| BundleError::EntryBody {
        index: entry.seq,
        kind,
        reason: e.to_string(),
    })?;
    *slot = Some((entry.seq, body));
    Ok(())
}

/// `threshold.json` against `threshold.calibrated`, which must be for this model and encoder.
fn check_threshold(
    bundle: &Bundle,
    logged: Option<(u64, ThresholdCalibrated)>,
    model_sha256: &str,
    encoder_sha256: &str,
) -> Result<Option<LoggedThreshold>, BundleError> {
    let (index, calibrated) = match (logged, &bundle.threshold_json) {
        (None, None) => return Ok(None),
        (None, Some(_)) => return Err(BundleError::ThresholdUnlogged),
        (Some((index, _)), None) => return Err(BundleError::ThresholdFileMissing { index }),
        (Some(logged), Some(_)) => logged,
    };
    for (which, logged, actual) in [
        ("model", &calibrated.model_sha256, model_sha256),
        ("encoder", &calibrated.encoder_sha256, encoder_sha256),
    ] {
        if logged != actual {
            return Err(BundleError::ThresholdForOther {
                round: calibrated.round,
                index,
                which,
                logged: logged.clone(),
                actual: actual.to_owned(),
            });
        }
    }
    let file = ThresholdFile::parse(bundle.threshold_json.as_deref().unwrap_or_default())?;
    if let Some(field) = file.first_difference(&calibrated) {
        return Err(BundleError::ThresholdMismatch {
            field,
            round: calibrated.round,
            index,
        });
    }
    Ok(Some(LoggedThreshold { index, calibrated }))
}

/// The contents, with the encoder parsed and checked to fit the model.
fn contents(
    bundle: &Bundle,
    model: ModelConfig,
    weights: Vec<f32>,
    meta: ExportMeta,
) -> Result<BundleContents, BundleError> {
    let encoder: EncoderSpec =
        serde_json::from_slice(&bundle.encoder_json).map_err(|e| BundleError::Garbled {
            file: crate::format::ENCODER_FILE,
            reason: e.to_string(),
        })?;
    encoder
        .validate()
        .map_err(|e| BundleError::EncoderUnusable {
            reason: e.to_string(),
        })?;
    if encoder.dim() != model.input_dim() {
        return Err(BundleError::EncoderUnusable {
            reason: format!(
                "it makes {} columns but the model reads {}",
                encoder.dim(),
                model.input_dim()
            ),
        });
    }
    let threshold = bundle
        .threshold_json
        .as_deref()
        .map(ThresholdFile::parse)
        .transpose()?;
    Ok(BundleContents {
        model,
        weights,
        meta,
        encoder,
        threshold,
    })
}

/// The first `(field, stated, logged)` whose two values differ.
fn first_mismatch<const N: usize>(
    pairs: [(&'static str, String, String); N],
) -> Option<(&'static str, String, String)> {
    pairs
        .into_iter()
        .find(|(_, stated, logged)| stated != logged)
}

/// "autoencoder 41→[32, 16]" for messages.
fn architecture(config: &ModelConfig) -> String {
    let hidden = match config {
        ModelConfig::Autoencoder(c) => &c.hidden,
        ModelConfig::Classifier(c) => &c.hidden,
    };
    format!(
        "{} input {} hidden {hidden:?}",
        config.kind(),
        config.input_dim()
    )
}
