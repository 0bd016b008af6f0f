//! What every participant of a federation shares: the model architecture,
//! the feature encoding and the training settings, derived once from the
//! configuration.

use fedsoc_datasets::EncoderSpec;
use fedsoc_models::{AutoencoderConfig, TrainConfig};
use fedsoc_proto::v1::ModelSpec;

use crate::config::{CoordinatorConfig, FeaturePreset, TrainingSection};
use crate::error::CoordinatorError;

/// The kind string of the dense autoencoder on the wire.
pub const AUTOENCODER: &str = "autoencoder";

#[derive(Clone, Debug)]
pub struct FederationSpec {
    pub federation: String,
    pub model: AutoencoderConfig,
    pub encoder: EncoderSpec,
    /// The encoder as sent in every Welcome.
    pub encoder_json: String,
    pub seed: u64,
    pub training: TrainingSection,
}

impl FederationSpec {
    pub fn from_config(config: &CoordinatorConfig) -> Result<Self, CoordinatorError> {
        let encoder = match config.features.preset {
            FeaturePreset::Synthetic => EncoderSpec::synthetic_default(),
        };
        let model = AutoencoderConfig {
            input_dim: encoder.dim(),
            hidden: config.model.hidden.clone(),
        };
        model.validate()?;
        let encoder_json = serde_json::to_string(&encoder)
            .map_err(|e| CoordinatorError::Internal(format!("encoder spec to JSON: {e}")))?;
        Ok(FederationSpec {
            federation: config.federation.clone(),
            model,
            encoder,
            encoder_json,
            seed: config.model.seed,
            training: config.training.clone(),
        })
    }

    pub fn model_spec(&self) -> ModelSpec {
        ModelSpec {
            kind: AUTOENCODER.to_string(),
            input_dim: self.model.input_dim as u32,
            hidden: self.model.hidden.iter().map(|&h| h as u32).collect(),
        }
    }

    /// The model every federation starts from: deterministic by seed.
    pub fn initial_model(&self) -> Result<Vec<f32>, CoordinatorError> {
        Ok(fedsoc_models::initial_weights(&self.model, self.seed)?)
    }

    /// The training settings of `participant`'s task in `round`.
    pub fn train_config(&self, round: u64, participant: &str) -> TrainConfig {
        TrainConfig {
            epochs: self.training.epochs as usize,
            batch_size: self.training.batch_size as usize,
            learning_rate: self.training.learning_rate,
            seed: training_seed(self.seed, round, participant),
        }
    }
}

/// A per-(round, participant) seed, so local training is reproducible by
/// anyone who knows the federation seed, yet differs between participants.
pub fn training_seed(federation_seed: u64, round: u64, participant: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"fedsoc/training-seed/v1");
    h.update(federation_seed.to_le_bytes());
    h.update(round.to_le_bytes());
    h.update(participant.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}
