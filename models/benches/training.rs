//! Local-training throughput (samples/s) on 40 features: the default autoencoder, and the
//! default classifier under each loss (the focal loss does the most tensor work per batch).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fedsoc_models::{
    AutoencoderConfig, ClassifierConfig, ClassifierLoss, ModelConfig, TrainConfig, initial_weights,
    train_local,
};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const ROWS: usize = 4096;
const DIM: usize = 40;

fn data() -> (Array2<f32>, Vec<bool>) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let rows = Array2::from_shape_simple_fn((ROWS, DIM), || rng.random_range(-1.0f32..1.0));
    // 5% attacks: the imbalance the balanced and focal losses are for.
    let labels = (0..ROWS).map(|i| i % 20 == 0).collect();
    (rows, labels)
}

fn autoencoder(c: &mut Criterion) {
    let config: ModelConfig = AutoencoderConfig::new(DIM).into(); // 40 → [64, 32, 8] → 40
    let weights = initial_weights(&config, 0).expect("valid config");
    let (rows, _) = data();

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
            b.iter(|| train_local(&config, &weights, rows.view(), None, train).expect("training"));
        });
    }
    group.finish();
}

fn classifier(c: &mut Criterion) {
    let config: ModelConfig = ClassifierConfig::new(DIM).into(); // 40 → [64, 32] → 1
    let weights = initial_weights(&config, 0).expect("valid config");
    let (rows, labels) = data();

    let mut group = c.benchmark_group("train_local_classifier_d40_h64-32_4096rows_1epoch_batch64");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(10);
    let losses = [
        ("bce", ClassifierLoss::Bce, 0.0),
        ("balanced", ClassifierLoss::Balanced, 0.0),
        ("focal", ClassifierLoss::Focal { gamma: 2.0 }, 0.0),
        ("bce_fedprox", ClassifierLoss::Bce, 0.1),
    ];
    for (name, loss, proximal_mu) in losses {
        let train = TrainConfig {
            loss,
            proximal_mu,
            ..TrainConfig::default()
        };
        group.bench_with_input(BenchmarkId::new("loss", name), &train, |b, train| {
            b.iter(|| {
                train_local(&config, &weights, rows.view(), Some(&labels), train).expect("training")
            });
        });
    }
    group.finish();
}

criterion_group!(benches, autoencoder, classifier);
criterion_main!(benches);
