//! FedProx's proximal term `(μ/2)·‖w − w_global‖²` (Li et al., 2020): added to every batch loss,
//! it pulls local training back towards the weights the round started from, which limits client
//! drift when participants' data differ (non-IID SOCs see different attack mixes).

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor, TensorData};

use crate::mlp::Mlp;

/// The proximal term of one training run: `mu` and the starting weights, uploaded once.
pub(crate) struct Proximal {
    mu: f64,
    /// `w_global` as one constant (untracked) vector, in flat-vector order.
    global: Tensor<1>,
}

impl Proximal {
    /// The term for `mu`, or `None` when `mu` is 0 (plain FedAvg, no extra work per step).
    pub(crate) fn new(mu: f64, global: &[f32], device: &Device) -> Option<Self> {
        (mu > 0.0).then(|| Self {
            mu,
            global: Tensor::from_data(TensorData::new(global.to_vec(), [global.len()]), device),
        })
    }

    /// `(mu/2)·‖w − w_global‖²` for the current `model`, differentiable in its parameters.
    pub(crate) fn term(&self, model: &Mlp) -> Tensor<1> {
        // Visitor order is flat-vector order (see `crate::flat`), so the concatenation lines up
        // with `global` element by element.
        let mut params = Collect(Vec::new());
        model.visit(&mut params);
        let w = Tensor::cat(params.0, 0);
        (w - self.global.clone())
            .square()
            .sum()
            .mul_scalar(self.mu / 2.0)
    }
}

/// Every float parameter, flattened to 1-D, in visitor order.
struct Collect(Vec<Tensor<1>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        let len = value.shape().num_elements();
        self.0.push(value.reshape([len]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classifier::ClassifierConfig;
    use crate::flat::{self, initial_weights, read_f32s};
    use crate::model::ModelConfig;

    #[test]
    fn zero_mu_is_off() {
        assert!(Proximal::new(0.0, &[1.0, 2.0], &Device::flex()).is_none());
    }

    #[test]
    fn term_is_half_mu_squared_distance() {
        let config: ModelConfig = ClassifierConfig {
            input_dim: 3,
            hidden: vec![2],
        }
        .into();
        let device = Device::flex();
        let global = initial_weights(&config, 1).unwrap();
        // Move every weight by +0.5, except the first by −1: ‖Δ‖² = (n − 1)·0.25 + 1.
        let mut w = global.iter().map(|g| g + 0.5).collect::<Vec<_>>();
        w[0] = global[0] - 1.0;
        let n = global.len() as f64;
        let model = flat::load(&config, &w, &device).unwrap();
        let prox = Proximal::new(4.0, &global, &device).unwrap();
        let got = f64::from(read_f32s(prox.term(&model)).unwrap()[0]);
        let want = 2.0 * ((n - 1.0) * 0.25 + 1.0);
        assert!((got - want).abs() < 1e-4 * want, "{got} vs {want}");

        let at_start = flat::load(&config, &global, &device).unwrap();
        assert_eq!(read_f32s(prox.term(&at_start)).unwrap(), vec![0.0]);
    }
}
