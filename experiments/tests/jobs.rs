//! Trainings run in parallel (`--jobs`) give exactly the results of a
//! sequential run: every score of every centralized and local model on the
//! test set, bit for bit, and every per-round curve.
//!
//! The federated models are left out of the comparison: secure aggregation
//! quantises each update with stochastic rounding from the operating
//! system's randomness (and masks it likewise), so two federated runs differ
//! in the last bits whatever `--jobs` says. `--jobs` does not touch them.

use fedsoc_experiments::scenario::run::{RunOptions, Variant, run};

const SCENARIO: &str = r#"
name = "jobs"
seeds = [7]

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
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_trainings_give_the_sequential_results_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("jobs.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let mut runs = Vec::new();
    for jobs in [1, 3] {
        let results = run(
            &RunOptions {
                scenario: scenario.clone(),
                out: dir.path().join(format!("out-{jobs}")),
                data: None,
                seeds: None,
                rounds: None,
                jobs: Some(jobs),
            },
            &|_| {},
        )
        .await
        .unwrap();
        runs.push(results.outcomes);
    }
    let (sequential, parallel) = (&runs[0], &runs[1]);
    // centralized + 3 local + federated, for each model, and the combined.
    assert!(sequential.len() >= 10, "{}", sequential.len());
    assert_eq!(sequential.len(), parallel.len());
    let mut compared = 0;
    for (a, b) in sequential.iter().zip(parallel) {
        let what = format!("{} {:?} {:?}", a.model, a.variant, a.participant);
        assert_eq!(
            (&a.model, a.variant, &a.participant),
            (&b.model, b.variant, &b.participant),
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
    assert!(compared >= 8, "{compared} outcomes compared");
}
