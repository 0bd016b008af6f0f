//! Local-training throughput (samples/s) of the default autoencoder on 40 features.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fedsoc_models::{AutoencoderConfig, TrainConfig, initial_weights, train_local};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const ROWS: usize = 4096;
const DIM: usize = 40;

fn training(c: &mut Criterion) {
    let config = AutoencoderConfig::new(DIM); // 40 → [64, 32, 8] → 40
    let weights = initial_weights(&config, 0).expect("valid config");
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let data = Array2::from_shape_simple_fn((ROWS, DIM), || rng.random_range(-1.0f32..1.0));

    let mut group = c.benchmark_group("train_local_d40_h64-32-8_4096rows_1epoch");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(10);
    for batch_size in [64, 256] {
        let train = TrainConfig {
            epochs: 1,
            batch_size,
            ..TrainConfig::default()
        };
        group.bench_with_input(BenchmarkId::new("batch", batch_size), &train, |b, train| {
            b.iter(|| train_local(&config, &weights, data.view(), train).expect("training"));
        });
    }
    group.finish();
}

criterion_group!(benches, training);
criterion_main!(benches);
