//! Anomaly scores: per-row mean squared reconstruction error. Rows the autoencoder has not
//! learned to reproduce (off the normal-traffic manifold) score high.

use burn::tensor::{Device, Tensor, TensorData};
use ndarray::ArrayView2;

use crate::autoencoder::{Autoencoder, AutoencoderConfig};
use crate::error::ModelError;
use crate::flat::{self, read_f32s};
use crate::input::{check_weights, rows};

/// Rows per forward pass: bounds activation memory (≈ rows × widest layer × 4 B per layer)
/// while keeping matmuls large enough to be efficient.
const SCORE_BATCH: usize = 2048;

/// Per-row mean squared reconstruction error (mean over the `input_dim` features).
///
/// Empty `data` (0 rows, right column count) yields an empty vector.
pub fn anomaly_scores(
    config: &AutoencoderConfig,
    weights: &[f32],
    data: ArrayView2<f32>,
) -> Result<Vec<f32>, ModelError> {
    check_weights(config, weights)?;
    let rows = rows(config, &data)?;
    // Inference needs no autodiff graph.
    let device = Device::flex();
    let model = flat::load(config, weights, &device)?;
    let d = config.input_dim;
    let mut scores = Vec::with_capacity(data.nrows());
    for chunk in rows.chunks(SCORE_BATCH * d) {
        scores.extend(score_batch(&model, chunk, d, &device)?);
    }
    Ok(scores)
}

/// Mean reconstruction loss over all rows (the MSE the training loop minimises), for
/// evaluating a global model. Accumulates in f64 so large sets do not lose precision.
pub fn reconstruction_loss(
    config: &AutoencoderConfig,
    weights: &[f32],
    data: ArrayView2<f32>,
) -> Result<f32, ModelError> {
    let scores = anomaly_scores(config, weights, data)?;
    if scores.is_empty() {
        return Err(ModelError::EmptyData);
    }
    let sum: f64 = scores.iter().map(|&s| f64::from(s)).sum();
    Ok((sum / scores.len() as f64) as f32)
}

/// Scores one contiguous block of whole rows (`chunk.len()` is a multiple of `d`).
fn score_batch(
    model: &Autoencoder,
    chunk: &[f32],
    d: usize,
    device: &Device,
) -> Result<Vec<f32>, ModelError> {
    let n = chunk.len() / d;
    let x = Tensor::<2>::from_data(TensorData::new(chunk.to_vec(), [n, d]), device);
    let err = (model.forward(x.clone()) - x).square().mean_dim(1);
    read_f32s(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flat::initial_weights;
    use crate::metrics::roc_auc;
    use crate::testutil::{DIM, anomalous_rows, normal_rows};
    use crate::train::{TrainConfig, train_local};
    // Not `s![]`: the macro expands to `#[allow(unsafe_code)]`, which `forbid` rejects.
    use ndarray::{Array2, Axis, Slice, concatenate};

    fn config() -> AutoencoderConfig {
        AutoencoderConfig {
            input_dim: DIM,
            hidden: vec![16, 2],
        }
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
        let loss = reconstruction_loss(&c, &zeros, data.view()).unwrap();
        let mean = scores.iter().sum::<f32>() / 5.0;
        assert!((loss - mean).abs() < 1e-6);
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
            seed: 0,
        };
        let w = train_local(&c, &w0, train.view(), &t).unwrap().weights;
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
            reconstruction_loss(&c, &w, empty.view()).unwrap_err(),
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
            reconstruction_loss(&c, &w, nan.view()).unwrap_err(),
            ModelError::NonFiniteData { row: 2, col: 0 }
        );
    }
}
