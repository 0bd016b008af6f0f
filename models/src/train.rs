//! Local training on one participant's data: Adam on the MSE reconstruction loss.
//!
//! Every call starts from the given global weights with a *fresh* Adam state (FedAvg-style:
//! optimiser moments are local and never shared), and is bit-for-bit deterministic for a given
//! `(config, global, data, seed)` because burn's Flex backend runs single-threaded (rayon is
//! off: it was slower on 2 cores) and shuffling uses a seeded ChaCha8 stream.

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use ndarray::ArrayView2;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::autoencoder::{Autoencoder, AutoencoderConfig};
use crate::error::ModelError;
use crate::flat::{self, read_f32s};
use crate::input::{check_weights, rows};

/// Hyper-parameters of one local training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the local data.
    pub epochs: usize,
    /// Rows per Adam step (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// Adam step size.
    pub learning_rate: f64,
    /// Seeds the per-epoch shuffle.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 1,
            batch_size: 64,
            learning_rate: 1e-3,
            seed: 0,
        }
    }
}

impl TrainConfig {
    /// Checks the hyper-parameters make sense.
    pub fn validate(&self) -> Result<(), ModelError> {
        let invalid = |reason: String| Err(ModelError::InvalidTrainConfig { reason });
        if self.epochs == 0 {
            return invalid("epochs is 0, train for at least one epoch".into());
        }
        if self.batch_size == 0 {
            return invalid("batch_size is 0, use at least 1 (64 is a good default)".into());
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return invalid(format!(
                "learning_rate is {}, it must be finite and > 0 (1e-3 is a good default)",
                self.learning_rate
            ));
        }
        Ok(())
    }
}

/// Result of [`train_local`].
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOutcome {
    /// Updated flat weights (same layout as the input, see [`crate::flat`]).
    pub weights: Vec<f32>,
    /// Row-weighted mean of the per-batch losses (measured before each step) in the last epoch.
    pub mean_loss: f32,
    /// Number of training rows; the FedAvg weight of this update.
    pub samples: usize,
}

/// Trains from `global` on the rows of `data` and returns the new flat weights.
pub fn train_local(
    config: &AutoencoderConfig,
    global: &[f32],
    data: ArrayView2<f32>,
    train: &TrainConfig,
) -> Result<TrainOutcome, ModelError> {
    train.validate()?;
    check_weights(config, global)?;
    let rows = rows(config, &data)?;
    let n = data.nrows();
    if n == 0 {
        return Err(ModelError::EmptyData);
    }

    // Nothing here draws from burn's RNG (weights come from the flat vector, no dropout), so the
    // backend is not seeded: `Device::seed` may be process-global on Flex, and parallel
    // participants in one process would race on it. Add it if a stochastic layer is introduced.
    let device = Device::flex().autodiff();
    let mut model = flat::load(config, global, &device)?;
    let mut optim = AdamConfig::new().init();
    let mut rng = ChaCha8Rng::seed_from_u64(train.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let d = config.input_dim;
    let mut mean_loss = f64::NAN;

    for epoch in 0..train.epochs {
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0f64;
        for chunk in order.chunks(train.batch_size) {
            let x = gather(&rows, chunk, d, &device);
            let (next, loss) = step(model, x, &mut optim, train.learning_rate)?;
            model = next;
            loss_sum += f64::from(loss) * chunk.len() as f64;
        }
        mean_loss = loss_sum / n as f64;
        tracing::debug!(epoch, mean_loss, "local epoch done");
        if !mean_loss.is_finite() {
            return Err(ModelError::Diverged { epoch });
        }
    }

    let weights = flat::to_flat(&model)?;
    if weights.iter().any(|w| !w.is_finite()) {
        return Err(ModelError::Diverged {
            epoch: train.epochs - 1,
        });
    }
    Ok(TrainOutcome {
        weights,
        mean_loss: mean_loss as f32,
        samples: n,
    })
}

/// One `[batch, d]` tensor from the selected rows: a single host buffer, a single upload.
fn gather(rows: &[f32], idx: &[usize], d: usize, device: &Device) -> Tensor<2> {
    let mut buf = Vec::with_capacity(idx.len() * d);
    for &r in idx {
        // `r < n` and `rows.len() == n * d` (checked by `input::rows`), so this is in bounds.
        buf.extend_from_slice(&rows[r * d..(r + 1) * d]);
    }
    Tensor::from_data(TensorData::new(buf, [idx.len(), d]), device)
}

/// Forward, MSE loss, backward and one Adam update; returns the pre-step loss.
fn step(
    model: Autoencoder,
    x: Tensor<2>,
    optim: &mut burn::optim::ModuleOptimizer,
    lr: f64,
) -> Result<(Autoencoder, f32), ModelError> {
    let loss = (model.forward(x.clone()) - x).square().mean();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let model = optim.step(lr, model, grads);
    let value = read_f32s(loss.detach())?
        .first()
        .copied()
        .ok_or_else(|| ModelError::Backend("loss tensor is empty".into()))?;
    Ok((model, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flat::initial_weights;
    use crate::score::reconstruction_loss;
    use crate::testutil::{DIM, normal_rows};

    fn config() -> AutoencoderConfig {
        AutoencoderConfig {
            input_dim: DIM,
            hidden: vec![16, 2],
        }
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn training_is_deterministic_per_seed() {
        let data = normal_rows(300, 1);
        let c = config();
        let w0 = initial_weights(&c, 0).unwrap();
        let t = TrainConfig {
            epochs: 2,
            batch_size: 32,
            ..TrainConfig::default()
        };
        let a = train_local(&c, &w0, data.view(), &t).unwrap();
        let b = train_local(&c, &w0, data.view(), &t).unwrap();
        assert_eq!(bits(&a.weights), bits(&b.weights));
        assert_eq!(a.mean_loss.to_bits(), b.mean_loss.to_bits());
        assert_eq!(a.samples, 300);
        assert_eq!(a.weights.len(), c.num_params());

        let other = train_local(&c, &w0, data.view(), &TrainConfig { seed: 1, ..t }).unwrap();
        assert_ne!(bits(&a.weights), bits(&other.weights));
        assert_ne!(bits(&a.weights), bits(&w0));
    }

    #[test]
    fn non_contiguous_input_trains_like_contiguous() {
        let data = normal_rows(100, 2);
        let fortran = data.t().as_standard_layout().t().to_owned(); // same values, column-major
        assert!(fortran.as_slice().is_none());
        let c = config();
        let w0 = initial_weights(&c, 0).unwrap();
        let t = TrainConfig::default();
        let a = train_local(&c, &w0, data.view(), &t).unwrap();
        let b = train_local(&c, &w0, fortran.view(), &t).unwrap();
        assert_eq!(bits(&a.weights), bits(&b.weights));
    }

    #[test]
    fn training_reduces_loss_over_epochs() {
        let data = normal_rows(512, 3);
        let c = config();
        let w0 = initial_weights(&c, 0).unwrap();
        let before = reconstruction_loss(&c, &w0, data.view()).unwrap();
        let t = |epochs| TrainConfig {
            epochs,
            batch_size: 32,
            learning_rate: 1e-2,
            seed: 0,
        };
        let one = train_local(&c, &w0, data.view(), &t(1)).unwrap();
        let many = train_local(&c, &w0, data.view(), &t(30)).unwrap();
        let after_one = reconstruction_loss(&c, &one.weights, data.view()).unwrap();
        let after_many = reconstruction_loss(&c, &many.weights, data.view()).unwrap();
        assert!(after_one < before, "{after_one} !< {before}");
        assert!(after_many < 0.2 * before, "{after_many} !< 0.2 * {before}");
        assert!(many.mean_loss < one.mean_loss);
        // The reported training loss tracks the evaluated loss.
        assert!((many.mean_loss - after_many).abs() < 0.5 * many.mean_loss.max(after_many));
    }

    #[test]
    fn bad_inputs_return_specific_errors() {
        let c = config();
        let w0 = initial_weights(&c, 0).unwrap();
        let data = normal_rows(10, 0);
        let t = TrainConfig::default();

        let short = &w0[..w0.len() - 3];
        assert_eq!(
            train_local(&c, short, data.view(), &t).unwrap_err(),
            ModelError::WeightLength {
                expected: c.num_params(),
                actual: c.num_params() - 3
            }
        );

        let narrow = data.slice_axis(ndarray::Axis(1), ndarray::Slice::from(..DIM - 1));
        assert_eq!(
            train_local(&c, &w0, narrow, &t).unwrap_err(),
            ModelError::ColumnMismatch {
                expected: DIM,
                actual: DIM - 1
            }
        );

        let mut nan = data.clone();
        nan[[4, 2]] = f32::NAN;
        assert_eq!(
            train_local(&c, &w0, nan.view(), &t).unwrap_err(),
            ModelError::NonFiniteData { row: 4, col: 2 }
        );
        let mut inf = data.clone();
        inf[[0, 7]] = f32::INFINITY;
        assert_eq!(
            train_local(&c, &w0, inf.view(), &t).unwrap_err(),
            ModelError::NonFiniteData { row: 0, col: 7 }
        );

        let empty = ndarray::Array2::<f32>::zeros((0, DIM));
        assert_eq!(
            train_local(&c, &w0, empty.view(), &t).unwrap_err(),
            ModelError::EmptyData
        );

        let mut bad_w = w0.clone();
        bad_w[5] = f32::NEG_INFINITY;
        assert_eq!(
            train_local(&c, &bad_w, data.view(), &t).unwrap_err(),
            ModelError::NonFiniteWeights { index: 5 }
        );

        for bad in [
            TrainConfig {
                epochs: 0,
                ..t.clone()
            },
            TrainConfig {
                batch_size: 0,
                ..t.clone()
            },
            TrainConfig {
                learning_rate: f64::NAN,
                ..t.clone()
            },
            TrainConfig {
                learning_rate: -1.0,
                ..t.clone()
            },
        ] {
            assert!(matches!(
                train_local(&c, &w0, data.view(), &bad),
                Err(ModelError::InvalidTrainConfig { .. })
            ));
        }

        let bad_c = AutoencoderConfig {
            input_dim: DIM,
            hidden: vec![],
        };
        assert!(matches!(
            train_local(&bad_c, &w0, data.view(), &t),
            Err(ModelError::InvalidConfig { .. })
        ));
    }

    #[test]
    fn divergence_is_an_error_not_nan_weights() {
        let c = config();
        let w0 = initial_weights(&c, 0).unwrap();
        let data = normal_rows(256, 0);
        let t = TrainConfig {
            epochs: 3,
            batch_size: 16,
            learning_rate: 1e30,
            seed: 0,
        };
        assert!(matches!(
            train_local(&c, &w0, data.view(), &t),
            Err(ModelError::Diverged { .. })
        ));
    }

    #[test]
    fn batch_larger_than_data_is_fine() {
        let c = config();
        let w0 = initial_weights(&c, 0).unwrap();
        let data = normal_rows(5, 0);
        let t = TrainConfig {
            batch_size: 1000,
            ..TrainConfig::default()
        };
        let out = train_local(&c, &w0, data.view(), &t).unwrap();
        assert_eq!(out.samples, 5);
        assert!(out.mean_loss.is_finite());
    }
}
