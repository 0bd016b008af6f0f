//! Anomaly scores, higher = more suspicious: the autoencoder's per-row mean squared
//! reconstruction error (rows off the normal-traffic manifold reconstruct badly), or the
//! classifier's logit `ln(p / (1 − p))`, p = P(attack). The logit ranks rows exactly as p
//! does but never saturates: in f32, p rounds to 1.0 for every logit above ~17, which would
//! tie the most confident rows and leave no threshold for a low false-alarm rate.
//! [`probability`] turns a logit back into P(attack).

use burn::tensor::{Device, Tensor, TensorData};
use ndarray::ArrayView2;

use crate::autoencoder::AutoencoderConfig;
use crate::error::ModelError;
use crate::flat::{self, read_f32s};
use crate::input::{check_weights, rows};
use crate::mlp::Mlp;
use crate::model::ModelConfig;

/// Rows per forward pass: bounds activation memory (≈ rows × widest layer × 4 B per layer)
/// while keeping matmuls large enough to be efficient.
const SCORE_BATCH: usize = 2048;

/// One score per row: reconstruction MSE (mean over the `input_dim` features) for the
/// autoencoder, the logit of P(attack) for the classifier.
///
/// Empty `data` (0 rows, right column count) yields an empty vector.
pub fn anomaly_scores(
    config: &ModelConfig,
    weights: &[f32],
    data: ArrayView2<f32>,
) -> Result<Vec<f32>, ModelError> {
    Scorer::new(config, weights)?.scores(data)
}

/// A model loaded once for scoring many batches, as a live detector does: loading the
/// weights into burn's module costs far more than scoring a small batch.
#[derive(Debug)]
pub struct Scorer {
    config: ModelConfig,
    model: Mlp,
    device: Device,
}

impl Scorer {
    /// Loads `weights` (the flat vector of `config`).
    pub fn new(config: &ModelConfig, weights: &[f32]) -> Result<Self, ModelError> {
        check_weights(config, weights)?;
        // Inference needs no autodiff graph.
        let device = Device::flex();
        let model = flat::load(config, weights, &device)?;
        Ok(Scorer {
            config: config.clone(),
            model,
            device,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// One score per row of `data`, as [`anomaly_scores`].
    pub fn scores(&self, data: ArrayView2<f32>) -> Result<Vec<f32>, ModelError> {
        let rows = rows(&self.config, &data)?;
        let d = self.config.input_dim();
        let mut scores = Vec::with_capacity(data.nrows());
        for chunk in rows.chunks(SCORE_BATCH * d) {
            let x = Tensor::<2>::from_data(
                TensorData::new(chunk.to_vec(), [chunk.len() / d, d]),
                &self.device,
            );
            scores.extend(read_f32s(score_batch(&self.config, &self.model, x))?);
        }
        Ok(scores)
    }
}

/// Mean reconstruction loss over all rows (the MSE the training loop minimises), for
/// evaluating a global autoencoder. Accumulates in f64 so large sets do not lose precision.
pub fn reconstruction_loss(
    config: &AutoencoderConfig,
    weights: &[f32],
    data: ArrayView2<f32>,
) -> Result<f32, ModelError> {
    let scores = anomaly_scores(&ModelConfig::Autoencoder(config.clone()), weights, data)?;
    if scores.is_empty() {
        return Err(ModelError::EmptyData);
    }
    let sum: f64 = scores.iter().map(|&s| f64::from(s)).sum();
    Ok((sum / scores.len() as f64) as f32)
}

/// `[n, 1]` scores of a block of whole rows `x` (`[n, d]`).
fn score_batch(config: &ModelConfig, model: &Mlp, x: Tensor<2>) -> Tensor<2> {
    match config {
        ModelConfig::Autoencoder(_) => (model.forward(x.clone()) - x).square().mean_dim(1),
        ModelConfig::Classifier(_) => model.forward(x),
    }
}

/// The flag rule, one definition for every use (experiment reports, `fedsoc score`,
/// `fedsoc watch`): a row raises an alarm when its score is strictly above the threshold, or is
/// not a number (a model that produces NaN is broken, and hiding the row would be worse than a
/// false alarm). A threshold is therefore the highest score that does *not* alarm.
pub fn flags(score: f32, threshold: f64) -> bool {
    score.is_nan() || f64::from(score) > threshold
}

/// P(attack) of a classifier score (a logit).
pub fn probability(logit: f32) -> f64 {
    1.0 / (1.0 + (-f64::from(logit)).exp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classifier::ClassifierConfig;
    use crate::flat::initial_weights;
    use crate::metrics::roc_auc;
    use crate::testutil::{DIM, anomalous_rows, normal_rows};
    use crate::train::{TrainConfig, train_local};
    // Not `s![]`: the macro expands to `#[allow(unsafe_code)]`, which `forbid` rejects.
    use ndarray::{Array2, Axis, Slice, concatenate};

    fn ae() -> AutoencoderConfig {
        AutoencoderConfig {
            input_dim: DIM,
            hidden: vec![16, 2],
        }
    }

    fn config() -> ModelConfig {
        ae().into()
    }

    #[test]
    fn scores_match_hand_computed_mse() {
        // With all-zero weights the reconstruction is 0, so the score is mean(x²).
        let c = config();
        let zeros = vec![0.0; c.num_params()];
        let data = normal_rows(5, 9);
        let scores = anomaly_scores(&c, &zeros, data.view()).unwrap();
        for (row, s) in data.rows().into_iter().zip(&scores) {
            let want = row.iter().map(|v| v * v).sum::<f32>() / DIM as f32;
            assert!((s - want).abs() <= 1e-6 * want.max(1.0), "{s} vs {want}");
        }
        let loss = reconstruction_loss(&ae(), &zeros, data.view()).unwrap();
        let mean = scores.iter().sum::<f32>() / 5.0;
        assert!((loss - mean).abs() < 1e-6);
    }

    #[test]
    fn classifier_scores_are_the_logit() {
        // Logistic regression (no hidden layer): flat = weight [DIM, 1] then bias [1].
        let c: ModelConfig = ClassifierConfig {
            input_dim: DIM,
            hidden: vec![],
        }
        .into();
        let data = normal_rows(6, 3);
        let zeros = vec![0.0; c.num_params()];
        assert_eq!(
            anomaly_scores(&c, &zeros, data.view()).unwrap(),
            vec![0.0; 6]
        );
        assert_eq!(probability(0.0), 0.5);
        // logit = 2·x₀ − x₃ − 1.
        let mut w = vec![0.0; DIM + 1];
        w[0] = 2.0;
        w[3] = -1.0;
        w[DIM] = -1.0;
        let scores = anomaly_scores(&c, &w, data.view()).unwrap();
        for (row, s) in data.rows().into_iter().zip(&scores) {
            let z = 2.0 * f64::from(row[0]) - f64::from(row[3]) - 1.0;
            assert!((f64::from(*s) - z).abs() < 1e-5, "{s} vs {z}");
            assert!((probability(*s) - 1.0 / (1.0 + (-z).exp())).abs() < 1e-6);
        }
    }

    #[test]
    fn batching_does_not_change_scores() {
        let c = config();
        let w = initial_weights(&c, 4).unwrap();
        let data = normal_rows(SCORE_BATCH + 17, 5);
        let all = anomaly_scores(&c, &w, data.view()).unwrap();
        assert_eq!(all.len(), SCORE_BATCH + 17);
        let tail =
            anomaly_scores(&c, &w, data.slice_axis(Axis(0), Slice::from(SCORE_BATCH..))).unwrap();
        assert_eq!(&all[SCORE_BATCH..], &tail[..]);
    }

    #[test]
    fn off_distribution_rows_score_higher() {
        let c = config();
        let w0 = initial_weights(&c, 0).unwrap();
        let train = normal_rows(1024, 10);
        let t = TrainConfig {
            epochs: 30,
            batch_size: 32,
            learning_rate: 1e-2,
            ..TrainConfig::default()
        };
        let w = train_local(&c, &w0, train.view(), None, &t)
            .unwrap()
            .weights;
        let normal = normal_rows(200, 11);
        let attacks = anomalous_rows(200, 12);
        let test: Array2<f32> = concatenate(Axis(0), &[normal.view(), attacks.view()]).unwrap();
        let labels: Vec<bool> = (0..400).map(|i| i >= 200).collect();
        let scores = anomaly_scores(&c, &w, test.view()).unwrap();
        let auc = roc_auc(&scores, &labels).unwrap();
        assert!(auc > 0.9, "ROC-AUC {auc}");
    }

    #[test]
    fn errors_and_empty_input() {
        let c = config();
        let w = initial_weights(&c, 0).unwrap();
        let empty = Array2::<f32>::zeros((0, DIM));
        assert_eq!(
            anomaly_scores(&c, &w, empty.view()).unwrap(),
            Vec::<f32>::new()
        );
        assert_eq!(
            reconstruction_loss(&ae(), &w, empty.view()).unwrap_err(),
            ModelError::EmptyData
        );
        let wide = Array2::<f32>::zeros((3, DIM + 2));
        assert_eq!(
            anomaly_scores(&c, &w, wide.view()).unwrap_err(),
            ModelError::ColumnMismatch {
                expected: DIM,
                actual: DIM + 2
            }
        );
        assert_eq!(
            anomaly_scores(&c, &w[1..], normal_rows(2, 0).view()).unwrap_err(),
            ModelError::WeightLength {
                expected: c.num_params(),
                actual: c.num_params() - 1
            }
        );
        let mut nan = normal_rows(3, 0);
        nan[[2, 0]] = f32::NAN;
        assert_eq!(
            reconstruction_loss(&ae(), &w, nan.view()).unwrap_err(),
            ModelError::NonFiniteData { row: 2, col: 0 }
        );
    }
}
