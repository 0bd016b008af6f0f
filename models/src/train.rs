//! Local training on one participant's data: Adam on the model's objective (reconstruction MSE
//! for the autoencoder, a [`ClassifierLoss`] for the classifier), optionally with FedProx's
//! proximal term.
//!
//! Every call starts from the given global weights with a *fresh* Adam state (FedAvg-style:
//! optimiser moments are local and never shared), and is bit-for-bit deterministic for a given
//! `(config, global, data, labels, train)` because burn's Flex backend runs single-threaded
//! (rayon is off: it was slower on 2 cores) and shuffling uses a seeded ChaCha8 stream.

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use ndarray::ArrayView2;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::flat::{self, read_f32s};
use crate::input::{check_weights, rows};
use crate::loss::{ClassifierLoss, Objective};
use crate::mlp::Mlp;
use crate::model::ModelConfig;
use crate::proximal::Proximal;

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
    /// FedProx weight `mu` of `(mu/2)·‖w − w_global‖²`, `w_global` being the weights training
    /// started from; 0 (the default) is plain FedAvg local training.
    #[serde(default)]
    pub proximal_mu: f64,
    /// The classifier's loss; ignored by the autoencoder.
    #[serde(default)]
    pub loss: ClassifierLoss,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 1,
            batch_size: 64,
            learning_rate: 1e-3,
            seed: 0,
            proximal_mu: 0.0,
            loss: ClassifierLoss::Bce,
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
        if !(self.proximal_mu.is_finite() && self.proximal_mu >= 0.0) {
            return invalid(format!(
                "proximal_mu is {}, it must be finite and >= 0 (0 turns FedProx off, \
                 0.01 to 1 are usual)",
                self.proximal_mu
            ));
        }
        if let Some(reason) = self.loss.problem() {
            return invalid(reason);
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
    /// The model's own objective only: the FedProx term is left out, so values stay comparable
    /// across `proximal_mu` settings.
    pub mean_loss: f32,
    /// Number of training rows; the FedAvg weight of this update.
    pub samples: usize,
}

/// Trains from `global` on the rows of `data` and returns the new flat weights.
///
/// `labels` (true = attack, one per row) are required by the classifier and ignored by the
/// autoencoder, which trains on whatever rows it is given.
pub fn train_local(
    config: &ModelConfig,
    global: &[f32],
    data: ArrayView2<f32>,
    labels: Option<&[bool]>,
    train: &TrainConfig,
) -> Result<TrainOutcome, ModelError> {
    train.validate()?;
    check_weights(config, global)?;
    let rows = rows(config, &data)?;
    let n = data.nrows();
    if n == 0 {
        return Err(ModelError::EmptyData);
    }
    let objective = Objective::new(config, labels, n, train.loss)?;

    // Nothing here draws from burn's RNG (weights come from the flat vector, no dropout), so the
    // backend is not seeded: `Device::seed` may be process-global on Flex, and parallel
    // participants in one process would race on it. Add it if a stochastic layer is introduced.
    let device = Device::flex().autodiff();
    let mut model = flat::load(config, global, &device)?;
    let proximal = Proximal::new(train.proximal_mu, global, &device);
    let mut optim = AdamConfig::new().init();
    let mut rng = ChaCha8Rng::seed_from_u64(train.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let d = config.input_dim();
    let mut mean_loss = f64::NAN;

    for epoch in 0..train.epochs {
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0f64;
        for chunk in order.chunks(train.batch_size) {
            let x = gather(&rows, chunk, d, &device);
            let loss = objective.batch_loss(&model, x, chunk, &device);
            let (next, loss) = step(
                model,
                loss,
                proximal.as_ref(),
                &mut optim,
                train.learning_rate,
            )?;
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

/// Backward through `loss` (plus the proximal term, if any) and one Adam update; returns the
/// pre-step value of `loss` alone.
fn step(
    model: Mlp,
    loss: Tensor<1>,
    proximal: Option<&Proximal>,
    optim: &mut burn::optim::ModuleOptimizer,
    lr: f64,
) -> Result<(Mlp, f32), ModelError> {
    let total = match proximal {
        Some(p) => loss.clone() + p.term(&model),
        None => loss.clone(),
    };
    let grads = GradientsParams::from_grads(total.backward(), &model);
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
    use crate::autoencoder::AutoencoderConfig;
    use crate::flat::initial_weights;
    use crate::score::reconstruction_loss;
    use crate::testutil::{DIM, normal_rows};

    fn ae() -> AutoencoderConfig {
        AutoencoderConfig {
            input_dim: DIM,
            hidden: vec![16, 2],
        }
    }

    fn config() -> ModelConfig {
        ae().into()
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
        let a = train_local(&c, &w0, data.view(), None, &t).unwrap();
        let b = train_local(&c, &w0, data.view(), None, &t).unwrap();
        assert_eq!(bits(&a.weights), bits(&b.weights));
        assert_eq!(a.mean_loss.to_bits(), b.mean_loss.to_bits());
        assert_eq!(a.samples, 300);
        assert_eq!(a.weights.len(), c.num_params());

        let other = train_local(&c, &w0, data.view(), None, &TrainConfig { seed: 1, ..t }).unwrap();
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
        let a = train_local(&c, &w0, data.view(), None, &t).unwrap();
        let b = train_local(&c, &w0, fortran.view(), None, &t).unwrap();
        assert_eq!(bits(&a.weights), bits(&b.weights));
    }

    #[test]
    fn training_reduces_loss_over_epochs() {
        let data = normal_rows(512, 3);
        let c = config();
        let w0 = initial_weights(&c, 0).unwrap();
        let before = reconstruction_loss(&ae(), &w0, data.view()).unwrap();
        let t = |epochs| TrainConfig {
            epochs,
            batch_size: 32,
            learning_rate: 1e-2,
            ..TrainConfig::default()
        };
        let one = train_local(&c, &w0, data.view(), None, &t(1)).unwrap();
        let many = train_local(&c, &w0, data.view(), None, &t(30)).unwrap();
        let after_one = reconstruction_loss(&ae(), &one.weights, data.view()).unwrap();
        let after_many = reconstruction_loss(&ae(), &many.weights, data.view()).unwrap();
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
            train_local(&c, short, data.view(), None, &t).unwrap_err(),
            ModelError::WeightLength {
                expected: c.num_params(),
                actual: c.num_params() - 3
            }
        );

        let narrow = data.slice_axis(ndarray::Axis(1), ndarray::Slice::from(..DIM - 1));
        assert_eq!(
            train_local(&c, &w0, narrow, None, &t).unwrap_err(),
            ModelError::ColumnMismatch {
                expected: DIM,
                actual: DIM - 1
            }
        );

        let mut nan = data.clone();
        nan[[4, 2]] = f32::NAN;
        assert_eq!(
            train_local(&c, &w0, nan.view(), None, &t).unwrap_err(),
            ModelError::NonFiniteData { row: 4, col: 2 }
        );
        let mut inf = data.clone();
        inf[[0, 7]] = f32::INFINITY;
        assert_eq!(
            train_local(&c, &w0, inf.view(), None, &t).unwrap_err(),
            ModelError::NonFiniteData { row: 0, col: 7 }
        );

        let empty = ndarray::Array2::<f32>::zeros((0, DIM));
        assert_eq!(
            train_local(&c, &w0, empty.view(), None, &t).unwrap_err(),
            ModelError::EmptyData
        );

        let mut bad_w = w0.clone();
        bad_w[5] = f32::NEG_INFINITY;
        assert_eq!(
            train_local(&c, &bad_w, data.view(), None, &t).unwrap_err(),
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
            TrainConfig {
                proximal_mu: -0.5,
                ..t.clone()
            },
            TrainConfig {
                proximal_mu: f64::INFINITY,
                ..t.clone()
            },
            TrainConfig {
                loss: ClassifierLoss::Focal { gamma: -1.0 },
                ..t.clone()
            },
        ] {
            assert!(matches!(
                train_local(&c, &w0, data.view(), None, &bad),
                Err(ModelError::InvalidTrainConfig { .. })
            ));
        }

        let bad_c: ModelConfig = AutoencoderConfig {
            input_dim: DIM,
            hidden: vec![],
        }
        .into();
        assert!(matches!(
            train_local(&bad_c, &w0, data.view(), None, &t),
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
            ..TrainConfig::default()
        };
        assert!(matches!(
            train_local(&c, &w0, data.view(), None, &t),
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
        let out = train_local(&c, &w0, data.view(), None, &t).unwrap();
        assert_eq!(out.samples, 5);
        assert!(out.mean_loss.is_finite());
    }

    #[test]
    fn old_train_config_json_still_parses() {
        let old = r#"{"epochs":2,"batch_size":8,"learning_rate":0.01,"seed":3}"#;
        let t: TrainConfig = serde_json::from_str(old).unwrap();
        assert_eq!(t.proximal_mu, 0.0);
        assert_eq!(t.loss, ClassifierLoss::Bce);
        let full = TrainConfig {
            proximal_mu: 0.1,
            loss: ClassifierLoss::Focal { gamma: 2.0 },
            ..t
        };
        let json = serde_json::to_string(&full).unwrap();
        assert_eq!(serde_json::from_str::<TrainConfig>(&json).unwrap(), full);
    }
}

/// The classifier, its losses and FedProx.
#[cfg(test)]
mod supervised_tests {
    use super::*;
    use crate::autoencoder::AutoencoderConfig;
    use crate::classifier::ClassifierConfig;
    use crate::flat::initial_weights;
    use crate::metrics::{confusion_at, roc_auc};
    use crate::score::anomaly_scores;
    use crate::testutil::{DIM, labelled_blobs, normal_rows};

    fn classifier(hidden: Vec<usize>) -> ModelConfig {
        ClassifierConfig {
            input_dim: DIM,
            hidden,
        }
        .into()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    fn distance(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
            .sum::<f64>()
            .sqrt()
    }

    fn fit(c: &ModelConfig, data: &(ndarray::Array2<f32>, Vec<bool>), t: &TrainConfig) -> Vec<f32> {
        let w0 = initial_weights(c, 0).unwrap();
        train_local(c, &w0, data.0.view(), Some(&data.1), t)
            .unwrap()
            .weights
    }

    fn train(epochs: usize, loss: ClassifierLoss) -> TrainConfig {
        TrainConfig {
            epochs,
            batch_size: 32,
            learning_rate: 1e-2,
            loss,
            ..TrainConfig::default()
        }
    }

    #[test]
    fn classifier_needs_one_label_per_row() {
        let c = classifier(vec![4]);
        let w0 = initial_weights(&c, 0).unwrap();
        let data = normal_rows(10, 0);
        let t = TrainConfig::default();
        let err = train_local(&c, &w0, data.view(), None, &t).unwrap_err();
        assert_eq!(
            err,
            ModelError::MissingLabels {
                model: "classifier"
            }
        );
        assert!(err.to_string().contains("label"), "{err}");
        assert_eq!(
            train_local(&c, &w0, data.view(), Some(&[true; 9]), &t).unwrap_err(),
            ModelError::LabelLength {
                expected: 10,
                actual: 9
            }
        );
    }

    #[test]
    fn autoencoder_ignores_labels() {
        let c: ModelConfig = AutoencoderConfig {
            input_dim: DIM,
            hidden: vec![4],
        }
        .into();
        let w0 = initial_weights(&c, 0).unwrap();
        let data = normal_rows(50, 0);
        let t = TrainConfig::default();
        let plain = train_local(&c, &w0, data.view(), None, &t).unwrap();
        let labelled = train_local(&c, &w0, data.view(), Some(&[true; 3]), &t).unwrap();
        assert_eq!(bits(&plain.weights), bits(&labelled.weights));
    }

    #[test]
    fn classifier_separates_gaussian_classes() {
        // Classes 5σ apart: the Bayes ROC-AUC is Φ(5/√2) ≈ 0.9998.
        let c = classifier(vec![16, 8]);
        let data = labelled_blobs(600, 600, 5.0, 1);
        let w = fit(&c, &data, &train(10, ClassifierLoss::Bce));
        let (test, labels) = labelled_blobs(300, 300, 5.0, 2);
        let scores = anomaly_scores(&c, &w, test.view()).unwrap();
        assert!(scores.iter().all(|z| z.is_finite()));
        let auc = roc_auc(&scores, &labels).unwrap();
        assert!(auc > 0.99, "ROC-AUC {auc}");
        // P(attack) is calibrated enough that 0.5 (logit 0) is a sensible threshold here.
        let at_half = confusion_at(&scores, &labels, 0.0);
        assert!(at_half.recall() > 0.9 && at_half.false_positive_rate() < 0.1);
    }

    #[test]
    fn classifier_training_is_deterministic_per_seed() {
        let c = classifier(vec![8]);
        let data = labelled_blobs(150, 50, 2.0, 3);
        let w0 = initial_weights(&c, 0).unwrap();
        for loss in [
            ClassifierLoss::Bce,
            ClassifierLoss::Balanced,
            ClassifierLoss::Focal { gamma: 2.0 },
        ] {
            let t = TrainConfig {
                proximal_mu: 0.1,
                ..train(2, loss)
            };
            let run =
                |t: &TrainConfig| train_local(&c, &w0, data.0.view(), Some(&data.1), t).unwrap();
            let (a, b) = (run(&t), run(&t));
            assert_eq!(bits(&a.weights), bits(&b.weights), "{loss:?}");
            assert_eq!(a.mean_loss.to_bits(), b.mean_loss.to_bits(), "{loss:?}");
            let other = run(&TrainConfig { seed: 1, ..t });
            assert_ne!(bits(&a.weights), bits(&other.weights), "{loss:?}");
        }
    }

    #[test]
    fn focal_loss_trains() {
        let c = classifier(vec![16, 8]);
        let data = labelled_blobs(600, 600, 5.0, 1);
        let focal = ClassifierLoss::Focal { gamma: 2.0 };
        let w0 = initial_weights(&c, 0).unwrap();
        let one = train_local(&c, &w0, data.0.view(), Some(&data.1), &train(1, focal)).unwrap();
        let many = train_local(&c, &w0, data.0.view(), Some(&data.1), &train(10, focal)).unwrap();
        assert!(many.mean_loss < one.mean_loss);
        let (test, labels) = labelled_blobs(300, 300, 5.0, 2);
        let auc = roc_auc(
            &anomaly_scores(&c, &many.weights, test.view()).unwrap(),
            &labels,
        );
        assert!(auc.unwrap() > 0.99, "ROC-AUC {auc:?}");

        // γ = 0 is cross-entropy: the same run up to rounding.
        let bce = fit(&c, &data, &train(2, ClassifierLoss::Bce));
        let flat = fit(&c, &data, &train(2, ClassifierLoss::Focal { gamma: 0.0 }));
        assert!(distance(&bce, &flat) < 1e-4, "{}", distance(&bce, &flat));
    }

    #[test]
    fn balanced_loss_raises_recall_of_rare_attacks() {
        // 1% attacks, 2σ from the benign mean. Cross-entropy learns the 1:99 prior, so
        // P(attack) passes 0.5 only ~3.3σ out (Bayes recall ≈ 10%); weighting attacks by 99
        // moves the boundary to the midpoint (Bayes recall ≈ 84%, false alarms ≈ 16%). Other
        // data seeds give 64–78% against 0%.
        let c = classifier(vec![16]);
        let data = labelled_blobs(4000, 40, 2.0, 5);
        let (test, labels) = labelled_blobs(1000, 1000, 2.0, 6);
        let at_half = |loss| {
            let w = fit(&c, &data, &train(15, loss));
            confusion_at(&anomaly_scores(&c, &w, test.view()).unwrap(), &labels, 0.0)
        };
        let bce = at_half(ClassifierLoss::Bce);
        let balanced = at_half(ClassifierLoss::Balanced);
        assert!(
            balanced.recall() > 0.5 && balanced.recall() > bce.recall() + 0.4,
            "recall: balanced {} vs bce {}",
            balanced.recall(),
            bce.recall()
        );
        assert!(balanced.false_positive_rate() < 0.3, "{balanced:?}");
    }

    #[test]
    fn fedprox_keeps_weights_near_the_start() {
        let blobs = labelled_blobs(300, 300, 2.0, 7);
        let rows = normal_rows(600, 7);
        let cases: [(ModelConfig, ndarray::ArrayView2<f32>); 2] = [
            (classifier(vec![16]), blobs.0.view()),
            (
                AutoencoderConfig {
                    input_dim: DIM,
                    hidden: vec![16, 2],
                }
                .into(),
                rows.view(),
            ),
        ];
        for (c, data) in cases {
            let w0 = initial_weights(&c, 0).unwrap();
            let moved = |mu| {
                let t = TrainConfig {
                    proximal_mu: mu,
                    ..train(5, ClassifierLoss::Bce)
                };
                let w = train_local(&c, &w0, data, Some(&blobs.1), &t)
                    .unwrap()
                    .weights;
                distance(&w, &w0)
            };
            let (plain, mild, strong) = (moved(0.0), moved(1.0), moved(10.0));
            assert!(
                strong < 0.5 * plain,
                "{}: {strong} !< 0.5 * {plain}",
                c.kind()
            );
            assert!(
                strong < mild && mild < plain,
                "{}: not monotone in mu",
                c.kind()
            );
        }
    }

    #[test]
    fn reported_loss_leaves_out_the_proximal_term() {
        // One full batch per epoch: step 1 starts at w0, where the proximal gradient is 0, so
        // both runs reach the same w1; the epoch-2 loss at w1 differs only by the term.
        let c = classifier(vec![8]);
        let data = labelled_blobs(60, 40, 2.0, 8);
        let w0 = initial_weights(&c, 0).unwrap();
        let run = |mu| {
            let t = TrainConfig {
                epochs: 2,
                batch_size: 1000,
                learning_rate: 1e-2,
                proximal_mu: mu,
                ..TrainConfig::default()
            };
            train_local(&c, &w0, data.0.view(), Some(&data.1), &t).unwrap()
        };
        let (plain, prox) = (run(0.0), run(100.0));
        assert_eq!(plain.mean_loss.to_bits(), prox.mean_loss.to_bits());
        assert_ne!(bits(&plain.weights), bits(&prox.weights));
    }
}
