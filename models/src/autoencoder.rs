//! The autoencoder architecture as a plain-Rust config (public). Its burn module is the
//! crate-private `Mlp` shared with the classifier, built from the layer widths listed here, so
//! burn types never leak into the workspace's API.

use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::mlp;

/// Default encoder widths; small enough for CPU federated rounds, with an 8-wide bottleneck.
pub const DEFAULT_HIDDEN: [usize; 3] = [64, 32, 8];

/// Architecture of a symmetric MLP autoencoder.
///
/// `hidden` are the encoder widths, e.g. `[64, 32, 8]`; the decoder mirrors them, giving
/// `d → 64 → 32 → 8 → 32 → 64 → d` with ReLU between layers and a linear output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutoencoderConfig {
    /// Number of input features `d`.
    pub input_dim: usize,
    /// Encoder layer widths; the last one is the bottleneck.
    pub hidden: Vec<usize>,
}

impl AutoencoderConfig {
    /// Config with the default hidden widths [`DEFAULT_HIDDEN`].
    pub fn new(input_dim: usize) -> Self {
        Self {
            input_dim,
            hidden: DEFAULT_HIDDEN.to_vec(),
        }
    }

    /// Checks the architecture is buildable; every other entry point calls this first.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.hidden.is_empty() {
            return Err(ModelError::InvalidConfig {
                model: "autoencoder",
                reason: "hidden is empty, give at least one encoder width".into(),
            });
        }
        mlp::check_widths(
            "autoencoder",
            self.input_dim,
            &self.hidden,
            &self.layer_dims(),
        )
    }

    /// Total number of scalars in the flat weight vector (weights + biases of every layer).
    ///
    /// Saturates at `usize::MAX` for absurd configs; [`validate`](Self::validate) rejects those.
    pub fn num_params(&self) -> usize {
        mlp::checked_num_params(&self.layer_dims()).unwrap_or(usize::MAX)
    }

    /// `(d_in, d_out)` of every linear layer, encoder then decoder.
    pub(crate) fn layer_dims(&self) -> Vec<(usize, usize)> {
        let widths: Vec<usize> = std::iter::once(self.input_dim)
            .chain(self.hidden.iter().copied())
            .chain(self.hidden.iter().rev().skip(1).copied())
            .chain(std::iter::once(self.input_dim))
            .collect();
        widths.windows(2).map(|w| (w[0], w[1])).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_mirrors_encoder() {
        let c = AutoencoderConfig::new(40);
        assert_eq!(c.hidden, vec![64, 32, 8]);
        assert_eq!(
            c.layer_dims(),
            vec![(40, 64), (64, 32), (32, 8), (8, 32), (32, 64), (64, 40)]
        );
        let expected =
            40 * 64 + 64 + 64 * 32 + 32 + 32 * 8 + 8 + 8 * 32 + 32 + 32 * 64 + 64 + 64 * 40 + 40;
        assert_eq!(c.num_params(), expected);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn validate_rejects_degenerate_configs() {
        let bad = [
            AutoencoderConfig {
                input_dim: 0,
                hidden: vec![4],
            },
            AutoencoderConfig {
                input_dim: 4,
                hidden: vec![],
            },
            AutoencoderConfig {
                input_dim: 4,
                hidden: vec![8, 0],
            },
            AutoencoderConfig {
                input_dim: usize::MAX,
                hidden: vec![usize::MAX],
            },
        ];
        for c in bad {
            assert!(
                matches!(c.validate(), Err(ModelError::InvalidConfig { .. })),
                "{c:?} should be rejected"
            );
        }
    }

    #[test]
    fn config_serde_round_trip() {
        let c = AutoencoderConfig {
            input_dim: 7,
            hidden: vec![5, 3],
        };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<AutoencoderConfig>(&json).unwrap(), c);
    }
}
