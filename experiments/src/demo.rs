//! `fedsoc demo`: a federation of N synthetic SOCs on this machine, over
//! real mutual TLS, trained for R rounds. After every round the global
//! model is scored on a held-out synthetic test set with every attack
//! family, as a data scientist would evaluate it.

use std::path::{Path, PathBuf};

use fedsoc_datasets::EncoderSpec;
use fedsoc_datasets::synthetic::{SyntheticConfig, test_set};
use fedsoc_models::{ModelConfig, anomaly_scores, pr_auc, roc_auc};
use ndarray::Array2;
use serde::Serialize;

use crate::error::ExperimentError;
use crate::local::{LocalFederation, LocalFederationSpec};

#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub participants: usize,
    pub rounds: u32,
    pub out: PathBuf,
    pub rows: usize,
    pub epochs: u32,
    pub seed: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            participants: 4,
            rounds: 10,
            out: PathBuf::from("fedsoc-demo"),
            rows: 4000,
            epochs: 1,
            seed: 7,
        }
    }
}

/// One line of the demo's output and of `metrics.json`.
#[derive(Clone, Debug, Serialize)]
pub struct DemoRound {
    pub round: u64,
    pub included: Vec<String>,
    pub dropped: Vec<String>,
    /// Sample-weighted mean local training loss (None for round 0).
    pub train_loss: Option<f32>,
    pub test_roc_auc: f64,
    pub test_pr_auc: f64,
    pub model_sha256: String,
    pub model_file: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct DemoReport {
    pub participants: Vec<String>,
    pub test_rows: usize,
    pub test_attack_rows: usize,
    pub rounds: Vec<DemoRound>,
}

/// The labelled held-out test set, encoded like every participant's data.
struct TestSet {
    features: Array2<f32>,
    labels: Vec<bool>,
}

impl TestSet {
    fn build(seed: u64) -> Result<Self, ExperimentError> {
        let records = test_set(&SyntheticConfig {
            // A stream no participant trains on.
            seed: seed.wrapping_add(0x7e57),
            rows: 5000,
            attack_fraction: 0.2,
        })?;
        let features = EncoderSpec::synthetic_default().encode(&records)?;
        let labels = records.iter().map(|r| r.is_attack()).collect();
        Ok(TestSet { features, labels })
    }

    fn evaluate(
        &self,
        model: &ModelConfig,
        weights: &[f32],
    ) -> Result<(f64, f64), ExperimentError> {
        let scores = anomaly_scores(model, weights, self.features.view())?;
        let roc = roc_auc(&scores, &self.labels).unwrap_or(f64::NAN);
        let pr = pr_auc(&scores, &self.labels).unwrap_or(f64::NAN);
        Ok((roc, pr))
    }
}

/// Prepares `out`: a fresh folder, or one a previous demo wrote (replaced).
fn prepare_out(out: &Path) -> Result<(), ExperimentError> {
    if out.exists() {
        let previous_demo = out.join("metrics.json").exists() || out.join("pki").exists();
        let empty = std::fs::read_dir(out)
            .map_err(|e| ExperimentError::io(out, e))?
            .next()
            .is_none();
        if !previous_demo && !empty {
            return Err(ExperimentError::Setup(format!(
                "{} exists and is not a previous demo's output; choose another --out",
                out.display()
            )));
        }
        std::fs::remove_dir_all(out).map_err(|e| ExperimentError::io(out, e))?;
    }
    std::fs::create_dir_all(out).map_err(|e| ExperimentError::io(out, e))
}

/// Runs the demo, calling `on_round` as each round's metrics are known.
pub async fn run_demo(
    options: &DemoOptions,
    mut on_round: impl FnMut(&DemoRound),
) -> Result<DemoReport, ExperimentError> {
    if options.participants < 3 || options.rounds == 0 {
        return Err(ExperimentError::Setup(
            "--participants must be at least 3 (in a secure sum of two, each member learns \
             the other's update) and --rounds at least 1"
                .into(),
        ));
    }
    prepare_out(&options.out)?;
    let mut spec = LocalFederationSpec::new(&options.out, options.participants);
    spec.rows = options.rows;
    spec.epochs = options.epochs;
    spec.seed = options.seed;
    let test = TestSet::build(options.seed)?;
    let federation = LocalFederation::start(&spec).await?;
    let model = federation.coordinator.spec().model.clone();

    let initial = federation.coordinator.global_model();
    let (roc, pr) = test.evaluate(&model, &initial)?;
    let mut rounds = vec![DemoRound {
        round: 0,
        included: Vec::new(),
        dropped: Vec::new(),
        train_loss: None,
        test_roc_auc: roc,
        test_pr_auc: pr,
        model_sha256: fedsoc_coordinator::model_sha256(&initial),
        model_file: "models/round-000000.f32".into(),
    }];
    on_round(&rounds[0]);

    let outcome = async {
        for _ in 0..options.rounds {
            let report = federation.coordinator.run_next_round().await?;
            let (roc, pr) = test.evaluate(&model, &report.model)?;
            federation.coordinator.record_metrics(
                report.round,
                &report.model_sha256,
                serde_json::json!({
                    "test_set": "synthetic held-out",
                    "test_rows": test.labels.len(),
                    "roc_auc": roc,
                    "pr_auc": pr,
                }),
            )?;
            let line = DemoRound {
                round: report.round,
                included: report.included.clone(),
                dropped: report
                    .dropped
                    .iter()
                    .map(|d| format!("{}: {}", d.participant, d.reason))
                    .collect(),
                train_loss: Some(report.mean_loss),
                test_roc_auc: roc,
                test_pr_auc: pr,
                model_sha256: report.model_sha256.clone(),
                model_file: format!("models/round-{:06}.f32", report.round),
            };
            on_round(&line);
            rounds.push(line);
        }
        Ok::<_, ExperimentError>(())
    }
    .await;
    let participants = federation.participant_ids();
    if outcome.is_ok() {
        // The members' cosignatures of the last checkpoint, into the log.
        federation
            .record_cosignatures(participants.len(), std::time::Duration::from_secs(10))
            .await;
    }
    federation.shutdown().await;
    outcome?;

    let report = DemoReport {
        participants,
        test_rows: test.labels.len(),
        test_attack_rows: test.labels.iter().filter(|&&l| l).count(),
        rounds,
    };
    let path = options.out.join("metrics.json");
    let json = serde_json::to_vec_pretty(&report)
        .map_err(|e| ExperimentError::Setup(format!("metrics to JSON: {e}")))?;
    std::fs::write(&path, json).map_err(|e| ExperimentError::io(&path, e))?;
    Ok(report)
}
