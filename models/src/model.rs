//! [`ModelConfig`]: which model a federation trains. Every public entry point takes one, so
//! callers switch model kind by changing configuration, not code.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::autoencoder::AutoencoderConfig;
use crate::classifier::ClassifierConfig;
use crate::error::ModelError;
use crate::mlp::Mlp;

/// A model architecture of either kind.
///
/// Serialised with a `kind` tag next to the architecture's own fields, e.g.
/// `{"kind": "classifier", "input_dim": 40, "hidden": [64, 32]}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelConfig {
    /// Unsupervised: learns benign traffic, scores by reconstruction error.
    Autoencoder(AutoencoderConfig),
    /// Supervised: learns P(attack) from labelled rows.
    Classifier(ClassifierConfig),
}

impl ModelConfig {
    /// Checks the architecture is buildable.
    pub fn validate(&self) -> Result<(), ModelError> {
        match self {
            Self::Autoencoder(c) => c.validate(),
            Self::Classifier(c) => c.validate(),
        }
    }

    /// Length of the flat weight vector (saturates at `usize::MAX` for invalid configs).
    pub fn num_params(&self) -> usize {
        match self {
            Self::Autoencoder(c) => c.num_params(),
            Self::Classifier(c) => c.num_params(),
        }
    }

    /// Number of feature columns the model reads.
    pub fn input_dim(&self) -> usize {
        match self {
            Self::Autoencoder(c) => c.input_dim,
            Self::Classifier(c) => c.input_dim,
        }
    }

    /// The serde tag: `"autoencoder"` or `"classifier"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Autoencoder(_) => "autoencoder",
            Self::Classifier(_) => "classifier",
        }
    }

    /// Whether training needs one label per row.
    pub fn needs_labels(&self) -> bool {
        matches!(self, Self::Classifier(_))
    }

    /// `(d_in, d_out)` of every linear layer, in flat-vector order.
    pub(crate) fn layer_dims(&self) -> Vec<(usize, usize)> {
        match self {
            Self::Autoencoder(c) => c.layer_dims(),
            Self::Classifier(c) => c.layer_dims(),
        }
    }

    /// The zero-valued module skeleton; values are loaded from a flat vector.
    pub(crate) fn skeleton(&self, device: &Device) -> Mlp {
        Mlp::skeleton(&self.layer_dims(), device)
    }
}

impl From<AutoencoderConfig> for ModelConfig {
    fn from(config: AutoencoderConfig) -> Self {
        Self::Autoencoder(config)
    }
}

impl From<ClassifierConfig> for ModelConfig {
    fn from(config: ClassifierConfig) -> Self {
        Self::Classifier(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_uses_a_kind_tag() {
        let c = ModelConfig::from(ClassifierConfig {
            input_dim: 4,
            hidden: vec![3],
        });
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"kind":"classifier","input_dim":4,"hidden":[3]}"#);
        assert_eq!(serde_json::from_str::<ModelConfig>(&json).unwrap(), c);

        let a: ModelConfig =
            serde_json::from_str(r#"{"kind":"autoencoder","input_dim":6,"hidden":[4,2]}"#).unwrap();
        assert_eq!(
            a,
            ModelConfig::Autoencoder(AutoencoderConfig {
                input_dim: 6,
                hidden: vec![4, 2]
            })
        );
        assert!(serde_json::from_str::<ModelConfig>(r#"{"kind":"forest","input_dim":6}"#).is_err());
    }

    #[test]
    fn accessors_dispatch_by_kind() {
        let a = ModelConfig::from(AutoencoderConfig::new(10));
        let c = ModelConfig::from(ClassifierConfig::new(12));
        assert_eq!((a.kind(), c.kind()), ("autoencoder", "classifier"));
        assert_eq!((a.input_dim(), c.input_dim()), (10, 12));
        assert_eq!((a.needs_labels(), c.needs_labels()), (false, true));
        assert_eq!(a.num_params(), AutoencoderConfig::new(10).num_params());
        assert_eq!(c.num_params(), ClassifierConfig::new(12).num_params());
        assert!(a.validate().is_ok() && c.validate().is_ok());
        let bad = ModelConfig::from(ClassifierConfig {
            input_dim: 0,
            hidden: vec![],
        });
        assert!(matches!(
            bad.validate(),
            Err(ModelError::InvalidConfig {
                model: "classifier",
                ..
            })
        ));
    }
}
