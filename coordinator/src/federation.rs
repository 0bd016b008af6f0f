//! What every participant of a federation shares: the model architecture,
//! the feature encoding and the training settings, derived once from the
//! configuration.

use fedsoc_datasets::EncoderSpec;
use fedsoc_datasets::read::nsl_kdd;
use fedsoc_models::{
    AutoencoderConfig, ClassifierConfig, ClassifierLoss, ModelConfig, TrainConfig,
};
use fedsoc_proto::v1::{ModelSpec, SecureAggregation, TrainTask};

use crate::config::{CoordinatorConfig, FeaturePreset, ModelKind, TrainingSection};
use crate::error::CoordinatorError;

#[derive(Clone, Debug)]
pub struct FederationSpec {
    pub federation: String,
    pub model: ModelConfig,
    pub encoder: EncoderSpec,
    /// The encoder the configuration names (the federation's first).
    pub encoder_json: String,
    /// The encoder in force: the configuration's until a statistics round
    /// fits one. Sent in every Welcome and task.
    pub in_force: EncoderInForce,
    pub seed: u64,
    pub training: TrainingSection,
}

/// The federation's current encoder, shared by the sessions and the round
/// loop (a statistics round replaces it).
#[derive(Clone, Debug, Default)]
pub struct EncoderInForce(std::sync::Arc<std::sync::RwLock<InForce>>);

/// One version of the federation's encoder.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InForce {
    pub json: std::sync::Arc<String>,
    pub sha256: String,
    /// The statistics round that fitted it; 0: the configuration's.
    pub round: u64,
}

impl InForce {
    pub fn new(json: String, round: u64) -> Self {
        InForce {
            sha256: crate::trail::sha256_hex(json.as_bytes()),
            json: std::sync::Arc::new(json),
            round,
        }
    }
}

impl EncoderInForce {
    pub fn get(&self) -> InForce {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, encoder: InForce) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = encoder;
    }

    /// The layout (columns, vocabularies) of the encoder in force.
    pub fn spec(&self) -> Result<EncoderSpec, CoordinatorError> {
        serde_json::from_str(&self.get().json)
            .map_err(|e| CoordinatorError::Internal(format!("the encoder in force: {e}")))
    }
}

/// The federation's encoder: the file the config names, else the preset.
fn load_encoder(config: &CoordinatorConfig) -> Result<EncoderSpec, CoordinatorError> {
    if let Some(path) = &config.features.encoder {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CoordinatorError::Encoder(format!("features.encoder {}: {e}", path.display()))
        })?;
        let encoder: EncoderSpec = serde_json::from_str(&text).map_err(|e| {
            CoordinatorError::Encoder(format!(
                "features.encoder {}: not an encoder spec: {e}",
                path.display()
            ))
        })?;
        encoder.validate().map_err(|e| {
            CoordinatorError::Encoder(format!("features.encoder {}: {e}", path.display()))
        })?;
        return Ok(encoder);
    }
    Ok(match config.features.preset {
        FeaturePreset::Synthetic => EncoderSpec::synthetic_default(),
        FeaturePreset::NslKdd => nsl_kdd::encoder_layout()?,
    })
}

impl FederationSpec {
    pub fn from_config(config: &CoordinatorConfig) -> Result<Self, CoordinatorError> {
        let encoder = load_encoder(config)?;
        let hidden = config.model.hidden.clone();
        let model = match config.model.kind {
            ModelKind::Autoencoder => ModelConfig::Autoencoder(AutoencoderConfig {
                input_dim: encoder.dim(),
                hidden,
            }),
            ModelKind::Classifier => ModelConfig::Classifier(ClassifierConfig {
                input_dim: encoder.dim(),
                hidden,
            }),
        };
        model.validate()?;
        let encoder_json = serde_json::to_string(&encoder)
            .map_err(|e| CoordinatorError::Internal(format!("encoder spec to JSON: {e}")))?;
        Ok(FederationSpec {
            federation: config.federation.clone(),
            model,
            encoder,
            in_force: EncoderInForce(std::sync::Arc::new(std::sync::RwLock::new(InForce::new(
                encoder_json.clone(),
                0,
            )))),
            encoder_json,
            seed: config.model.seed,
            training: config.training.clone(),
        })
    }

    /// The hidden widths of either model kind.
    pub fn hidden(&self) -> &[usize] {
        match &self.model {
            ModelConfig::Autoencoder(c) => &c.hidden,
            ModelConfig::Classifier(c) => &c.hidden,
        }
    }

    pub fn model_spec(&self) -> ModelSpec {
        ModelSpec {
            kind: self.model.kind().to_string(),
            input_dim: self.model.input_dim() as u32,
            hidden: self.hidden().iter().map(|&h| h as u32).collect(),
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
            proximal_mu: self.training.proximal_mu,
            // The name was checked when the configuration was loaded.
            loss: ClassifierLoss::from_name(&self.training.loss, self.training.focal_gamma)
                .unwrap_or_default(),
        }
    }

    /// `participant`'s task in `round`, as sent, carrying the CA-signed
    /// CRL in force (`crl_der`) for the participant to check.
    #[allow(clippy::too_many_arguments)]
    pub fn train_task(
        &self,
        round: u64,
        participant: &str,
        task_id: u64,
        num_params: usize,
        deadline: std::time::Duration,
        secure: Option<SecureAggregation>,
        crl_der: &[u8],
    ) -> TrainTask {
        let train = self.train_config(round, participant);
        TrainTask {
            round,
            task_id,
            epochs: train.epochs as u32,
            batch_size: train.batch_size as u32,
            learning_rate: train.learning_rate,
            seed: train.seed,
            num_params: num_params as u64,
            deadline_ms: deadline.as_millis() as u64,
            secure,
            proximal_mu: train.proximal_mu,
            loss: self.training.loss.clone(),
            focal_gamma: self.training.focal_gamma,
            crl_der: crl_der.to_vec(),
            kind: String::new(),
            query_json: String::new(),
            encoder_spec_json: self.in_force.get().json.to_string(),
            class_weight: self.training.class_weight.unwrap_or(0.0),
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
