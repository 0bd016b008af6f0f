//! The one burn module both models are made of: a stack of `Linear` layers with ReLU between
//! them and a linear output. The model kinds differ only in their layer widths (see
//! [`crate::ModelConfig`]) and in how the output is turned into a loss or a score, so sharing
//! the module keeps the flat-vector order identical in kind and documented once.

use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::error::ModelError;

/// The burn module. Fields are visited in declaration order, `layers` in index order, and each
/// `Linear` visits `weight` (`[d_in, d_out]`, row-major) before `bias` (`[d_out]`).
#[derive(Module, Debug)]
pub(crate) struct Mlp {
    layers: Vec<Linear>,
}

impl Mlp {
    /// Builds the layer skeleton on `device` with lazy zero initialisers: the real values always
    /// come from a flat vector (see [`crate::flat`]), so burn's global-RNG initialiser is never run.
    pub(crate) fn skeleton(dims: &[(usize, usize)], device: &Device) -> Self {
        let layers = dims
            .iter()
            .map(|&(i, o)| {
                LinearConfig::new(i, o)
                    .with_initializer(Initializer::Zeros)
                    .init(device)
            })
            .collect();
        Self { layers }
    }

    /// `[batch, d_in]` → `[batch, d_out]`: ReLU between layers, linear output.
    pub(crate) fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len().saturating_sub(1);
        self.layers.iter().enumerate().fold(x, |h, (i, layer)| {
            let h = layer.forward(h);
            if i < last { relu(h) } else { h }
        })
    }
}

/// Weights plus biases of every layer, `None` on `usize` overflow.
pub(crate) fn checked_num_params(dims: &[(usize, usize)]) -> Option<usize> {
    dims.iter().try_fold(0usize, |acc, &(i, o)| {
        i.checked_mul(o)?.checked_add(o)?.checked_add(acc)
    })
}

/// Checks shared by every model kind: a non-zero input, non-zero widths, a countable size.
/// `hidden` may be empty here; a model that needs a hidden layer checks that itself.
pub(crate) fn check_widths(
    model: &'static str,
    input_dim: usize,
    hidden: &[usize],
    dims: &[(usize, usize)],
) -> Result<(), ModelError> {
    let invalid = |reason: String| Err(ModelError::InvalidConfig { model, reason });
    if input_dim == 0 {
        return invalid("input_dim is 0, it must be the number of features (> 0)".into());
    }
    if let Some(pos) = hidden.iter().position(|&w| w == 0) {
        return invalid(format!("hidden[{pos}] is 0, every width must be > 0"));
    }
    if checked_num_params(dims).is_none() {
        return invalid("the parameter count overflows usize, use smaller widths".into());
    }
    Ok(())
}
