//! [`Detector`]: the model in force, loaded once from a bundle, scoring
//! flows a batch at a time.
//!
//! A flow is flagged when its score is above the threshold, or is not a
//! number (a model that produces NaN on some input is broken, and hiding
//! the flow would be worse than a false alarm).

use std::path::Path;

use fedsoc_bundle::{Bundle, BundleContents, VerifiedBundle, sha256_hex};
use fedsoc_datasets::read::live::LiveFlow;
use fedsoc_datasets::{EncoderSpec, Records};
use fedsoc_models::{ModelConfig, Scorer};

use crate::alert::{ModelStamp, ScoreKind};
use crate::error::WatchError;

/// Where the alarm threshold comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ThresholdChoice {
    /// The one the federation calibrated and logged (`threshold.json`).
    Federation,
    /// The operator's own (`--threshold`), for every bundle.
    Fixed(f64),
}

/// A bundle's model, encoder and threshold, ready to score.
#[derive(Debug)]
pub struct Detector {
    scorer: Scorer,
    encoder: EncoderSpec,
    stamp: ModelStamp,
}

impl Detector {
    /// The detector of a verified bundle read from `path`.
    pub fn verified(
        bundle: VerifiedBundle,
        path: &Path,
        threshold: ThresholdChoice,
    ) -> Result<Self, WatchError> {
        let stamp = |kind, threshold| ModelStamp {
            federation: bundle.federation.clone(),
            round: bundle.round,
            model_sha256: bundle.model_sha256.clone(),
            encoder_sha256: bundle.encoder_sha256.clone(),
            kind,
            threshold,
            bundle: path.display().to_string(),
            verified: true,
        };
        Self::new(bundle.contents.clone(), path, threshold, stamp)
    }

    /// The detector of a bundle nobody verified (`--insecure-skip-verify`):
    /// its own files say what it is.
    pub fn unverified(
        bundle: &Bundle,
        path: &Path,
        threshold: ThresholdChoice,
    ) -> Result<Self, WatchError> {
        let contents = bundle
            .contents_unverified()
            .map_err(|source| WatchError::bundle(path, source))?;
        let meta = contents.meta.clone();
        let encoder_sha256 = sha256_hex(&bundle.encoder_json);
        let stamp = |kind, threshold| ModelStamp {
            federation: meta.federation.clone(),
            round: meta.round,
            model_sha256: meta.model_sha256.clone(),
            encoder_sha256: encoder_sha256.clone(),
            kind,
            threshold,
            bundle: path.display().to_string(),
            verified: false,
        };
        Self::new(contents, path, threshold, stamp)
    }

    fn new(
        contents: BundleContents,
        path: &Path,
        threshold: ThresholdChoice,
        stamp: impl FnOnce(ScoreKind, f64) -> ModelStamp,
    ) -> Result<Self, WatchError> {
        let kind = match contents.model {
            ModelConfig::Autoencoder(_) => ScoreKind::ReconstructionMse,
            ModelConfig::Classifier(_) => ScoreKind::Logit,
        };
        let threshold = match (threshold, &contents.threshold) {
            (ThresholdChoice::Fixed(t), _) => t,
            (ThresholdChoice::Federation, Some(file)) => file.threshold,
            (ThresholdChoice::Federation, None) => {
                return Err(WatchError::Setup(format!(
                    "bundle {} has no threshold.json: the federation calibrated no threshold \
                     for this model; run a calibrate round (`fedsoc round start --kind \
                     calibrate`) and use its bundle, or pass --threshold SCORE",
                    path.display()
                )));
            }
        };
        if !threshold.is_finite() {
            return Err(WatchError::Setup(format!(
                "the threshold {threshold} is not a finite number; pass a finite --threshold"
            )));
        }
        if contents.encoder.dim() != contents.model.input_dim() {
            return Err(WatchError::Setup(format!(
                "bundle {}: its encoder makes {} columns but its model reads {}; the bundle is \
                 inconsistent, export it again",
                path.display(),
                contents.encoder.dim(),
                contents.model.input_dim()
            )));
        }
        Self::from_model(
            &contents.model,
            &contents.weights,
            contents.encoder,
            stamp(kind, threshold),
        )
    }

    /// A detector of a model given directly (the benchmark's); `stamp`
    /// names it in the alerts and gives the threshold.
    pub fn from_model(
        model: &ModelConfig,
        weights: &[f32],
        encoder: EncoderSpec,
        stamp: ModelStamp,
    ) -> Result<Self, WatchError> {
        Ok(Detector {
            scorer: Scorer::new(model, weights)?,
            encoder,
            stamp,
        })
    }

    /// What the alerts say scored them.
    pub fn stamp(&self) -> &ModelStamp {
        &self.stamp
    }

    /// One score per flow.
    pub fn score(&self, flows: &[LiveFlow]) -> Result<Vec<f32>, WatchError> {
        if flows.is_empty() {
            return Ok(Vec::new());
        }
        for (row, flow) in flows.iter().enumerate() {
            flow.record.check_numeric(row)?;
        }
        let records = Records::from_flow_refs(flows.iter().map(|f| &f.record));
        let features = self.encoder.encode(&records)?;
        Ok(self.scorer.scores(features.view())?)
    }

    /// Whether `score` raises an alert: above the threshold, or not a number.
    pub fn flags(&self, score: f32) -> bool {
        fedsoc_models::score::flags(score, self.stamp.threshold)
    }
}
