//! The supervised classifier architecture as a plain-Rust config (public). Its burn module is
//! the crate-private `Mlp` shared with the autoencoder, ending in one logit; the score is
//! `sigmoid(logit)` = P(attack).

use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::mlp;

/// Default hidden widths: enough capacity for tabular flow features, cheap on a CPU.
pub const DEFAULT_HIDDEN: [usize; 2] = [64, 32];

/// Architecture of an MLP binary classifier.
///
/// `hidden` are the hidden widths, e.g. `[64, 32]`, giving `d → 64 → 32 → 1` with ReLU between
/// layers and a linear output (the logit). An empty `hidden` is logistic regression (`d → 1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassifierConfig {
    /// Number of input features `d`.
    pub input_dim: usize,
    /// Hidden layer widths, input side first.
    pub hidden: Vec<usize>,
}

impl ClassifierConfig {
    /// Config with the default hidden widths [`DEFAULT_HIDDEN`].
    pub fn new(input_dim: usize) -> Self {
        Self {
            input_dim,
            hidden: DEFAULT_HIDDEN.to_vec(),
        }
    }

    /// Checks the architecture is buildable; every other entry point calls this first.
    pub fn validate(&self) -> Result<(), ModelError> {
        mlp::check_widths(
            "classifier",
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

    /// `(d_in, d_out)` of every linear layer, input side first; the last one has `d_out = 1`.
    pub(crate) fn layer_dims(&self) -> Vec<(usize, usize)> {
        let widths: Vec<usize> = std::iter::once(self.input_dim)
            .chain(self.hidden.iter().copied())
            .chain(std::iter::once(1))
            .collect();
        widths.windows(2).map(|w| (w[0], w[1])).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_ends_in_one_logit() {
        let c = ClassifierConfig::new(40);
        assert_eq!(c.hidden, vec![64, 32]);
        assert_eq!(c.layer_dims(), vec![(40, 64), (64, 32), (32, 1)]);
        assert_eq!(c.num_params(), 40 * 64 + 64 + 64 * 32 + 32 + 32 + 1);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn empty_hidden_is_logistic_regression() {
        let c = ClassifierConfig {
            input_dim: 5,
            hidden: vec![],
        };
        assert!(c.validate().is_ok());
        assert_eq!(c.layer_dims(), vec![(5, 1)]);
        assert_eq!(c.num_params(), 6);
    }

    #[test]
    fn validate_rejects_degenerate_configs() {
        let bad = [
            ClassifierConfig {
                input_dim: 0,
                hidden: vec![4],
            },
            ClassifierConfig {
                input_dim: 4,
                hidden: vec![8, 0],
            },
            ClassifierConfig {
                input_dim: usize::MAX,
                hidden: vec![usize::MAX],
            },
        ];
        for c in bad {
            let err = c.validate().unwrap_err();
            assert!(
                matches!(
                    err,
                    ModelError::InvalidConfig {
                        model: "classifier",
                        ..
                    }
                ),
                "{c:?} should be rejected, got {err:?}"
            );
            assert!(err.to_string().starts_with("invalid classifier config"));
        }
    }

    #[test]
    fn config_serde_round_trip() {
        let c = ClassifierConfig {
            input_dim: 7,
            hidden: vec![5, 3],
        };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<ClassifierConfig>(&json).unwrap(), c);
    }
}
