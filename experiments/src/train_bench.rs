//! `fedsoc bench train`: local training throughput of the autoencoder, the
//! work a participant does every round, in samples per second.
//!
//! The architecture, loss, optimiser, batch size and data shape match
//! `experiments/pytorch/autoencoder_throughput.py`, so the two figures
//! compare one framework with the other on the same machine. The data is
//! the encoded NSL-KDD training set when `--data` finds it, else
//! standard-normal rows of the same shape (throughput does not depend on
//! the values).

use std::path::Path;
use std::time::Instant;

use fedsoc_datasets::read::nsl_kdd;
use fedsoc_datasets::{EncoderSpec, ReadOptions};
use fedsoc_models::{AutoencoderConfig, ModelConfig, TrainConfig, initial_weights, train_local};
use ndarray::Array2;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;

use crate::error::ExperimentError;

/// What to measure.
#[derive(Clone, Debug)]
pub struct TrainBenchOptions {
    /// Rows of random data when no NSL-KDD folder is given.
    pub rows: usize,
    /// Columns of random data when no NSL-KDD folder is given.
    pub dim: usize,
    pub batch_size: usize,
    /// Timed epochs, after one warm-up epoch.
    pub epochs: usize,
    /// A folder with KDDTrain+ to encode and train on.
    pub nsl_kdd: Option<std::path::PathBuf>,
    /// Write the encoded rows as raw little-endian f32 for the PyTorch script.
    pub dump: Option<std::path::PathBuf>,
}

/// The measurement.
#[derive(Clone, Debug, Serialize)]
pub struct TrainBenchReport {
    pub framework: &'static str,
    pub data: String,
    pub rows: usize,
    pub dim: usize,
    pub batch: usize,
    pub threads: usize,
    pub epoch_s_median: f64,
    pub samples_per_s: f64,
}

fn load(options: &TrainBenchOptions) -> Result<(Array2<f32>, String), ExperimentError> {
    if let Some(dir) = &options.nsl_kdd {
        let loaded = nsl_kdd::read(&nsl_kdd::find(dir, "KDDTrain+")?, &ReadOptions::default())?;
        let spec = EncoderSpec::fit(&loaded.records, &nsl_kdd::encoder_layout()?)?;
        return Ok((spec.encode(&loaded.records)?, "KDDTrain+ (encoded)".into()));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let x = Array2::from_shape_simple_fn((options.rows, options.dim), || {
        StandardNormal.sample(&mut rng)
    });
    Ok((x, "standard normal".into()))
}

fn dump(path: &Path, x: &Array2<f32>) -> Result<(), ExperimentError> {
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).map_err(|e| ExperimentError::io(path, e))
}

/// Trains one warm-up epoch and `epochs` timed ones; reports the median.
pub fn run_train_bench(options: &TrainBenchOptions) -> Result<TrainBenchReport, ExperimentError> {
    if options.epochs == 0 || options.batch_size == 0 {
        return Err(ExperimentError::Setup(
            "--epochs and --batch must be at least 1".into(),
        ));
    }
    let (x, data) = load(options)?;
    if let Some(path) = &options.dump {
        dump(path, &x)?;
    }
    let model = ModelConfig::Autoencoder(AutoencoderConfig::new(x.ncols()));
    let mut weights = initial_weights(&model, 0)?;
    let mut times = Vec::with_capacity(options.epochs);
    for epoch in 0..=options.epochs {
        let config = TrainConfig {
            epochs: 1,
            batch_size: options.batch_size,
            learning_rate: 1e-3,
            seed: epoch as u64,
            ..TrainConfig::default()
        };
        let start = Instant::now();
        weights = train_local(&model, &weights, x.view(), None, &config)?.weights;
        if epoch > 0 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    Ok(TrainBenchReport {
        framework: "fedsoc (burn flex)",
        data,
        rows: x.nrows(),
        dim: x.ncols(),
        batch: options.batch_size,
        threads: 1,
        epoch_s_median: median,
        samples_per_s: x.nrows() as f64 / median,
    })
}
