//! Trainings run in parallel (`--jobs`: seeds at once, and within a seed
//! the centralized and local models at once) give exactly the results of a
//! sequential run: every score of every centralized and local model on the
//! test set, bit for bit, and every per-round curve, in the same order.
//!
//! The federated models are left out of the comparison: secure aggregation
//! quantises each update with stochastic rounding from the operating
//! system's randomness (and masks it likewise), so two federated runs differ
//! in the last bits whatever `--jobs` says. `--jobs` does not touch them.

use fedsoc_experiments::scenario::run::{Outcome, RunOptions, Variant, run};
use fedsoc_models::ClassifierLoss;

const SCENARIO: &str = r#"
name = "jobs"
seeds = [7, 8]

[data]
format = "synthetic"
rows = 600
contamination = 0.05

[federation]
participants = 3
rounds = 2

[[model]]
kind = "autoencoder"
hidden = [8, 4]
batch_size = 64

[[model]]
kind = "classifier"
hidden = [8]
batch_size = 64
loss = "balanced"
"#;

/// The tiny scenario's outcomes with `jobs` trainings at once.
async fn outcomes(dir: &std::path::Path, jobs: usize) -> Vec<Outcome> {
    let scenario = dir.join("jobs.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    run(
        &RunOptions {
            scenario,
            out: dir.join(format!("out-{jobs}")),
            data: None,
            seeds: None,
            rounds: None,
            jobs: Some(jobs),
        },
        &|_| {},
    )
    .await
    .unwrap()
    .outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_trainings_give_the_sequential_results_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let runs = [outcomes(dir.path(), 1).await, outcomes(dir.path(), 3).await];
    let (sequential, parallel) = (&runs[0], &runs[1]);
    // centralized + 3 local + federated, for each model, and the combined,
    // for each of the two seeds.
    assert!(sequential.len() >= 20, "{}", sequential.len());
    assert_eq!(sequential.len(), parallel.len());
    let mut compared = 0;
    for (a, b) in sequential.iter().zip(parallel) {
        let what = format!("{} {:?} {:?}", a.model, a.variant, a.participant);
        assert_eq!(
            (a.seed, &a.model, a.variant, &a.participant),
            (b.seed, &b.model, b.variant, &b.participant),
            "the outcomes keep their order"
        );
        if a.variant == Variant::Federated {
            continue;
        }
        compared += 1;
        let bits = |scores: &[Vec<f32>]| -> Vec<Vec<u32>> {
            scores
                .iter()
                .map(|s| s.iter().map(|v| v.to_bits()).collect())
                .collect()
        };
        assert_eq!(bits(&a.test_scores), bits(&b.test_scores), "{what}");
        let curve = |c: &[f64]| c.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(curve(&a.auc_per_round), curve(&b.auc_per_round), "{what}");
    }
    assert!(compared >= 16, "{compared} outcomes compared");
}

/// The balanced loss weights attacks by one federation-wide ratio (from a
/// secure sum of each SOC's counts) in every variant: centralized, each
/// SOC alone, and federated, so the comparison is not confounded by each
/// SOC's own ratio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_variant_trains_with_the_same_federation_wide_class_weight() {
    let dir = tempfile::tempdir().unwrap();
    let outcomes = outcomes(dir.path(), 2).await;
    let classifiers: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.model == "classifier" && o.seed == 7)
        .collect();
    assert_eq!(classifiers.len(), 5, "centralized, 3 local, federated");
    let weights: Vec<f64> = classifiers
        .iter()
        .map(|o| match o.loss {
            Some(ClassifierLoss::Weighted { pos_weight }) => pos_weight,
            ref other => panic!("{:?} {:?} trained with {other:?}", o.variant, o.participant),
        })
        .collect();
    assert!(weights.iter().all(|&w| w == weights[0]), "{weights:?}");
    // About 5 % attacks: some 19 benign rows per attack row.
    assert!((10.0..40.0).contains(&weights[0]), "{weights:?}");
    // The federation was told the same weight.
    let config = std::fs::read_to_string(
        dir.path()
            .join("out-2/federations/seed-7-classifier/coordinator.toml"),
    )
    .unwrap();
    assert!(
        config.contains(&format!("class_weight = {:?}", weights[0])),
        "{config}"
    );
    assert!(
        outcomes
            .iter()
            .any(|o| o.variant == Variant::Federated && o.model == "classifier")
    );
}
