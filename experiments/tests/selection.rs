//! What a scenario chooses, it chooses on validation rows: the searched
//! settings on the selection seed, the round each training keeps, the
//! personalised model's fine-tuning length. Synthetic data, small enough
//! for CI.

use fedsoc_experiments::scenario::run::{RunOptions, Variant, run};

const SCENARIO: &str = r#"
name = "selection"
seeds = [1, 2]
selection_seed = 7
[data]
format = "synthetic"
rows = 500
contamination = 0.1
[federation]
participants = 3
rounds = 3
[variants]
personalized = true
personal_rounds = 2
[[model]]
kind = "autoencoder"
hidden = [16, 4]
batch_size = 64
[model.search]
epochs = [1, 2]
learning_rate = [0.001, 0.01]
[[model]]
kind = "classifier"
hidden = [16]
batch_size = 64
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn choices_are_made_on_validation_rows_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("selection.toml");
    std::fs::write(&path, SCENARIO).unwrap();
    let results = run(
        &RunOptions {
            scenario: path,
            out: dir.path().join("out"),
            data: None,
            seeds: None,
            rounds: None,
            jobs: Some(2),
        },
        &|_| {},
    )
    .await
    .unwrap();

    // The searched model: four candidates, each variant keeps the one with
    // the best validation score in its column (the first on ties).
    assert_eq!(results.chosen.len(), 1, "only the autoencoder searched");
    let chosen = &results.chosen[0];
    assert_eq!(chosen.model, "autoencoder");
    assert_eq!(chosen.candidates.len(), 4);
    let argmax = |column: fn(&(String, f64, f64, f64)) -> f64| {
        let mut best = &chosen.candidates[0];
        for c in &chosen.candidates {
            if column(c) > column(best) {
                best = c;
            }
        }
        best.0.clone()
    };
    assert_eq!(chosen.local.settings(), argmax(|c| c.1));
    assert_eq!(chosen.federated.settings(), argmax(|c| c.2));
    assert_eq!(chosen.centralized.settings(), argmax(|c| c.3));
    // The selection seed's federations ran apart from the reported ones.
    assert!(dir.path().join("out/selection/federations").is_dir());

    // Every training kept the round its validation rows ranked best.
    let trained: Vec<_> = results
        .outcomes
        .iter()
        .filter(|o| !o.validation_auc_per_round.is_empty())
        .collect();
    assert!(!trained.is_empty());
    for o in &trained {
        let curve = &o.validation_auc_per_round;
        let first = u32::from(o.variant != Variant::Personalized);
        let mut best = 0;
        for (i, v) in curve.iter().enumerate() {
            if *v > curve[best] {
                best = i;
            }
        }
        assert_eq!(
            o.selected_round,
            best as u32 + first,
            "{} {:?} {:?}: {curve:?}",
            o.model,
            o.variant,
            o.participant
        );
        assert_eq!(o.validation_auc(), curve[best]);
    }
    // Personalised models: one per SOC and seed, fine-tuned 0 to 2 rounds,
    // the federated model itself being round 0.
    let personal: Vec<_> = results
        .outcomes
        .iter()
        .filter(|o| o.variant == Variant::Personalized && o.model == "autoencoder")
        .collect();
    assert_eq!(personal.len(), 2 * 3);
    for o in personal {
        assert_eq!(o.validation_auc_per_round.len(), 3);
        assert!(o.selected_round <= 2);
        assert!(o.participant.is_some());
    }
}
