//! `fedsoc demo`: a federation of N synthetic SOCs on this machine, over
//! real mutual TLS, through its whole life: a statistics round fits the
//! feature encoder from secure sums, R training rounds, a calibrate round
//! sets the threshold, and the signed model bundle is written and
//! verified. After every training round the global model is scored on a
//! held-out synthetic test set with every attack family, as a data
//! scientist would evaluate it.

use std::path::{Path, PathBuf};

use fedsoc_coordinator::kind::RoundKind;
use fedsoc_coordinator::trail::{EncoderFitted, ThresholdCalibrated};
use fedsoc_datasets::synthetic::{SyntheticConfig, test_set};
use fedsoc_datasets::{EncoderSpec, Records};
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
    /// The encoder the statistics round fitted (its round and hash).
    pub encoder: DemoEncoder,
    pub rounds: Vec<DemoRound>,
    /// The calibrate round's federation threshold.
    pub threshold: ThresholdCalibrated,
    /// The verified model bundle.
    pub bundle: PathBuf,
}

/// Where the federation's encoder came from.
#[derive(Clone, Debug, Serialize)]
pub struct DemoEncoder {
    pub round: u64,
    pub sha256: String,
    pub rows: u64,
    pub other_share: std::collections::BTreeMap<String, f64>,
}

impl From<&EncoderFitted> for DemoEncoder {
    fn from(e: &EncoderFitted) -> Self {
        DemoEncoder {
            round: e.round,
            sha256: e.encoder_sha256.clone(),
            rows: e.rows,
            other_share: e.other_share.clone(),
        }
    }
}

/// The labelled held-out test set, encoded like every participant's data.
struct TestSet {
    records: Records,
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
        let labels = records.iter().map(|r| r.is_attack()).collect();
        let records = Records::from_flows(&records);
        let features = EncoderSpec::synthetic_default().encode(&records)?;
        Ok(TestSet {
            records,
            features,
            labels,
        })
    }

    /// Encodes the test set as the federation's encoder in force does.
    fn encode_with(&mut self, encoder_json: &str) -> Result<(), ExperimentError> {
        let encoder: EncoderSpec = serde_json::from_str(encoder_json)
            .map_err(|e| ExperimentError::Setup(format!("the fitted encoder: {e}")))?;
        self.features = encoder.encode(&self.records)?;
        Ok(())
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
    // The federation starts from the feature layout alone: its statistics
    // are fitted from the members' rows by the first (statistics) round.
    spec.encoder = Some(EncoderSpec::synthetic_layout());
    // Every SOC keeps each round's verified bundle, as a deployment would.
    spec.keep_bundles = true;
    let mut test = TestSet::build(options.seed)?;
    let federation = LocalFederation::start(&spec).await?;
    let model = federation.coordinator.spec().model.clone();
    let config_encoder = federation.coordinator.spec().encoder_json.clone();
    let shared = federation.coordinator.shared().clone();
    let mut plan = vec![RoundKind::Moments, RoundKind::Spread];
    plan.extend(vec![RoundKind::Train; options.rounds as usize]);
    plan.push(RoundKind::Calibrate);

    let mut rounds = Vec::new();
    let outcome = async {
        shared.queue_kinds(&plan)?;
        let mut fitted = None;
        for kind in &plan {
            let report = federation.coordinator.run_next_round().await?;
            match kind {
                RoundKind::Moments | RoundKind::Calibrate => continue,
                RoundKind::Spread => {
                    let state = shared.sum_state();
                    test.encode_with(&state.encoder.json)?;
                    if let Some((fedsoc_coordinator::kind::Conclusion::Encoder(e), _)) =
                        &report.conclusion
                    {
                        fitted = Some(DemoEncoder::from(e));
                    }
                    // The initial model under the fitted encoder.
                    let initial = federation.coordinator.global_model();
                    let (roc, pr) = test.evaluate(&model, &initial)?;
                    let line = DemoRound {
                        round: report.round,
                        included: report.included.clone(),
                        dropped: Vec::new(),
                        train_loss: None,
                        test_roc_auc: roc,
                        test_pr_auc: pr,
                        model_sha256: fedsoc_coordinator::model_sha256(&initial),
                        model_file: format!("models/round-{:06}.f32", report.round),
                    };
                    on_round(&line);
                    rounds.push(line);
                    continue;
                }
                RoundKind::Train => {}
            }
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
        let threshold = shared.sum_state().calibration;
        Ok::<_, ExperimentError>((fitted, threshold))
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
    let (encoder, threshold) = match outcome? {
        (Some(encoder), Some(threshold)) => (encoder, threshold),
        _ => {
            return Err(ExperimentError::Setup(
                "the statistics or calibrate round concluded nothing".into(),
            ));
        }
    };
    let bundle = write_bundle(&options.out, &config_encoder)?;

    let report = DemoReport {
        participants,
        test_rows: test.labels.len(),
        test_attack_rows: test.labels.iter().filter(|&&l| l).count(),
        encoder,
        rounds,
        threshold,
        bundle,
    };
    let path = options.out.join("metrics.json");
    let json = serde_json::to_vec_pretty(&report)
        .map_err(|e| ExperimentError::Setup(format!("metrics to JSON: {e}")))?;
    std::fs::write(&path, json).map_err(|e| ExperimentError::io(&path, e))?;
    Ok(report)
}

/// Writes the latest round's bundle to `out/bundle` from the audit log and
/// verifies it against the federation CA, as a SOC would before use.
fn write_bundle(out: &Path, config_encoder: &str) -> Result<PathBuf, ExperimentError> {
    let failed = |e: fedsoc_bundle::BundleError| ExperimentError::Setup(format!("bundle: {e}"));
    let read = |name: &str| {
        let path = out.join("pki").join(name);
        std::fs::read_to_string(&path).map_err(|e| ExperimentError::io(&path, e))
    };
    let log = fedsoc_audit::AuditLog::open_read_only(out.join("audit"))
        .map_err(|e| ExperimentError::Setup(format!("the audit log: {e}")))?;
    let bundle =
        fedsoc_bundle::Bundle::from_log(&log, None, &read("coordinator.pem")?, config_encoder)
            .map_err(failed)?;
    bundle.verify(&read("ca.pem")?).map_err(failed)?;
    let dir = out.join("bundle");
    bundle.write(&dir).map_err(failed)?;
    Ok(dir)
}
