//! The autoencoder architecture: a plain-Rust config (public) and the burn module (crate-private,
//! so burn types never leak into the workspace's API).

use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::ModelError;

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
        let invalid = |reason: String| Err(ModelError::InvalidConfig { reason });
        if self.input_dim == 0 {
            return invalid("input_dim is 0, it must be the number of features (> 0)".into());
        }
        if self.hidden.is_empty() {
            return invalid("hidden is empty, give at least one encoder width".into());
        }
        if let Some(pos) = self.hidden.iter().position(|&w| w == 0) {
            return invalid(format!("hidden[{pos}] is 0, every width must be > 0"));
        }
        if self.checked_num_params().is_none() {
            return invalid("the parameter count overflows usize, use smaller widths".into());
        }
        Ok(())
    }

    /// Total number of scalars in the flat weight vector (weights + biases of every layer).
    ///
    /// Saturates at `usize::MAX` for absurd configs; [`validate`](Self::validate) rejects those.
    pub fn num_params(&self) -> usize {
        self.checked_num_params().unwrap_or(usize::MAX)
    }

    fn checked_num_params(&self) -> Option<usize> {
        self.layer_dims()
            .into_iter()
            .try_fold(0usize, |acc, (i, o)| {
                i.checked_mul(o)?.checked_add(o)?.checked_add(acc)
            })
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

/// The burn module. Fields are visited in declaration order, `layers` in index order, and each
/// `Linear` visits `weight` (`[d_in, d_out]`, row-major) before `bias` (`[d_out]`).
#[derive(Module, Debug)]
pub(crate) struct Autoencoder {
    layers: Vec<Linear>,
}

impl Autoencoder {
    /// Builds the layer skeleton on `device` with lazy zero initialisers: the real values always
    /// come from a flat vector (see [`crate::flat`]), so burn's global-RNG initialiser is never run.
    pub(crate) fn skeleton(config: &AutoencoderConfig, device: &Device) -> Self {
        let layers = config
            .layer_dims()
            .into_iter()
            .map(|(i, o)| {
                LinearConfig::new(i, o)
                    .with_initializer(Initializer::Zeros)
                    .init(device)
            })
            .collect();
        Self { layers }
    }

    /// Reconstruction of `x` (`[batch, d]` → `[batch, d]`): ReLU between layers, linear output.
    pub(crate) fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len().saturating_sub(1);
        self.layers.iter().enumerate().fold(x, |h, (i, layer)| {
            let h = layer.forward(h);
            if i < last { relu(h) } else { h }
        })
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
