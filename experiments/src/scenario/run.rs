//! Running a scenario: for every seed and model, the same split trained
//! three ways — each participant alone, federated over the real round
//! machinery (mutual TLS, secure aggregation), and centralized on the
//! pooled rows — then evaluated on every test set.
//!
//! Every choice is made on validation rows: each training keeps the round
//! whose model ranks its labelled validation rows best (ROC-AUC), and its
//! thresholds come from its benign validation rows. The test sets are
//! scored once, at the end; the per-round test curve is kept for a plot
//! and never consulted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fedsoc_datasets::moments::ScoreBins;
use fedsoc_datasets::{EncoderSpec, Records};
use fedsoc_models::{
    AutoencoderConfig, ClassifierConfig, ClassifierLoss, ModelConfig, TrainConfig, anomaly_scores,
    initial_weights, train_local,
};
use ndarray::Array2;
use serde::Serialize;

use super::data::{self, ScenarioData, Split};
use super::evaluate::{Evaluation, TestData, evaluate};
use super::fusion::{FusionRule, TailCalibration, Transform, fuse};
use super::secure_sum::{federated_class_weight, federated_encoder, federated_threshold};
use super::stats::threshold_at_validation_fpr;
use super::{ModelKind, ModelSection, Scenario, TrainOn};
use crate::error::ExperimentError;
use crate::local::{FederationData, LocalFederation, LocalFederationSpec};

/// What `fedsoc experiment run` was asked.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub scenario: PathBuf,
    pub out: PathBuf,
    /// Overrides the scenario's data folder.
    pub data: Option<PathBuf>,
    /// Overrides the scenario's seeds.
    pub seeds: Option<Vec<u64>>,
    /// Overrides the scenario's round count (quick runs).
    pub rounds: Option<u32>,
    /// Trainings run at once (centralized and each SOC's local model are
    /// independent); `None`: one per core. Results do not depend on it.
    pub jobs: Option<usize>,
}

/// Progress events, for a progress bar or a log.
#[derive(Clone, Debug)]
pub enum Progress {
    /// A new phase of `total` steps begins.
    Phase { label: String, total: u64 },
    /// One step of the current phase is done.
    Step { message: String },
}

/// How a model was trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    Local,
    Federated,
    Centralized,
    /// The federated model fine-tuned on one SOC's own rows, its threshold
    /// recalibrated on the SOC's own validation rows.
    Personalized,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Local => "local",
            Variant::Federated => "federated",
            Variant::Centralized => "centralized",
            Variant::Personalized => "personalized",
        }
    }
}

/// One trained model's results.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub seed: u64,
    pub model: String,
    pub variant: Variant,
    /// The participant, for local-only models.
    pub participant: Option<String>,
    /// ROC-AUC on the first test set after each round (round-equivalent
    /// of local epochs when not federated): for a plot only, never used to
    /// choose anything.
    pub auc_per_round: Vec<f64>,
    /// ROC-AUC on the variant's own labelled validation rows after each
    /// round: what [`Outcome::selected_round`] is chosen by.
    pub validation_auc_per_round: Vec<f64>,
    /// The round whose model was kept (1-based).
    pub selected_round: u32,
    pub evaluations: Vec<Evaluation>,
    /// The loss it trained with (a classifier's; the balanced loss carries
    /// the federation-wide attack weight, the same in every variant).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<ClassifierLoss>,
    #[serde(skip)]
    pub test_scores: Vec<Vec<f32>>,
    /// Scores of the benign validation rows the variant calibrated on:
    /// operating-point thresholds and the fusion's tail calibration.
    #[serde(skip)]
    pub benign_validation_scores: Vec<f32>,
}

impl Outcome {
    /// ROC-AUC on the variant's validation rows at the kept round.
    pub fn validation_auc(&self) -> f64 {
        let first = u32::from(self.variant != Variant::Personalized);
        self.selected_round
            .checked_sub(first)
            .and_then(|i| self.validation_auc_per_round.get(i as usize))
            .copied()
            .unwrap_or(f64::NAN)
    }
}

/// Everything a run produced.
#[derive(Clone, Debug, Serialize)]
pub struct RunResults {
    pub scenario: Scenario,
    pub participants: Vec<String>,
    /// Rows per family of each participant's training data (first seed).
    pub participant_families: Vec<BTreeMap<String, usize>>,
    pub tests: Vec<String>,
    pub outcomes: Vec<Outcome>,
    pub read_reports: Vec<fedsoc_datasets::ReadReport>,
    /// What each searched model's variants chose, and from what.
    pub chosen: Vec<Chosen>,
    /// Every label in the participants' training rows (any seed): a test
    /// label outside it is a novel attack.
    pub train_labels: BTreeSet<String>,
    /// Each test set's rows, for the report's intervals.
    #[serde(skip)]
    pub test_rows: Vec<TestRowsOwned>,
}

/// A test set's labels, row by row.
#[derive(Clone, Debug, Default)]
pub struct TestRowsOwned {
    pub attacks: Vec<bool>,
    pub families: Vec<String>,
    pub labels: Vec<String>,
}

impl TestRowsOwned {
    fn of(records: &Records) -> Self {
        TestRowsOwned {
            attacks: records.attack_flags(),
            families: records.families().to_vec(),
            labels: (0..records.len())
                .map(|i| records.label(i).to_string())
                .collect(),
        }
    }
}

/// The participant names of a scenario: soc-1, soc-2, …
pub fn participant_names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("soc-{i}")).collect()
}

fn model_config(section: &ModelSection, input_dim: usize) -> ModelConfig {
    match section.kind {
        ModelKind::Autoencoder => ModelConfig::Autoencoder(AutoencoderConfig {
            input_dim,
            hidden: section.hidden.clone(),
        }),
        ModelKind::Classifier => ModelConfig::Classifier(ClassifierConfig {
            input_dim,
            hidden: section.hidden.clone(),
        }),
    }
}

/// The classifier loss a scenario's model section names.
pub fn classifier_loss(section: &ModelSection) -> ClassifierLoss {
    // The name was checked when the scenario was loaded.
    ClassifierLoss::from_name(&section.loss, section.focal_gamma).unwrap_or_default()
}

/// The loss a variant trains with: a "balanced" loss weights attacks by
/// the federation-wide `class_weight` when there is one, in every variant.
pub fn variant_loss(section: &ModelSection, class_weight: Option<f64>) -> ClassifierLoss {
    match (classifier_loss(section), class_weight) {
        (ClassifierLoss::Balanced, Some(pos_weight)) => ClassifierLoss::Weighted { pos_weight },
        (loss, _) => loss,
    }
}

fn train_config(section: &ModelSection, seed: u64, class_weight: Option<f64>) -> TrainConfig {
    TrainConfig {
        epochs: section.epochs as usize,
        batch_size: section.batch_size as usize,
        learning_rate: section.learning_rate,
        seed,
        proximal_mu: 0.0,
        loss: variant_loss(section, class_weight),
    }
}

/// Bins for the threshold histogram: log-spaced for reconstruction
/// errors (2.3% wide), 0.01 wide for classifier logits.
pub fn score_bins(kind: ModelKind) -> ScoreBins {
    match kind {
        ModelKind::Autoencoder => ScoreBins::logarithmic(1e-6, 1e6, 100),
        ModelKind::Classifier => ScoreBins::linear(-60.0, 60.0, 12_000),
    }
}

/// One participant's (or the pool's) encoded rows.
struct Encoded {
    features: Array2<f32>,
    attacks: Vec<bool>,
}

impl Encoded {
    fn new(encoder: &EncoderSpec, records: &Records) -> Result<Self, ExperimentError> {
        Ok(Encoded {
            features: encoder.encode(records)?,
            attacks: records.attack_flags(),
        })
    }

    /// Several participants' rows, one after another.
    fn pooled(encoder: &EncoderSpec, parts: &[Records]) -> Result<Self, ExperimentError> {
        let mut pooled = parts[0].clone();
        for p in &parts[1..] {
            pooled.append(p)?;
        }
        Encoded::new(encoder, &pooled)
    }

    /// The benign rows only.
    fn benign(&self) -> Array2<f32> {
        self.training_rows(TrainOn::Benign).0
    }

    /// The rows a model trains on, with labels where it needs them.
    fn training_rows(&self, on: TrainOn) -> (Array2<f32>, Vec<bool>) {
        match on {
            TrainOn::All => (self.features.clone(), self.attacks.clone()),
            TrainOn::Benign => {
                let keep: Vec<usize> = (0..self.attacks.len())
                    .filter(|&i| !self.attacks[i])
                    .collect();
                (
                    self.features.select(ndarray::Axis(0), &keep),
                    vec![false; keep.len()],
                )
            }
        }
    }
}

fn encode_tests(
    encoder: &EncoderSpec,
    data: &ScenarioData,
) -> Result<Vec<TestData>, ExperimentError> {
    data.tests
        .iter()
        .map(|(name, records)| {
            Ok(TestData {
                name: name.clone(),
                features: encoder.encode(records)?,
                attacks: records.attack_flags(),
                families: records.families().to_vec(),
                labels: (0..records.len())
                    .map(|i| records.label(i).to_string())
                    .collect(),
            })
        })
        .collect()
}

/// A per-(seed, purpose, round) training seed.
fn round_seed(seed: u64, salt: u64, round: u32) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.rotate_left(17) ^ u64::from(round)
}

/// How a model trains alone: `rounds` round-equivalents, seeded by `seed`
/// and `salt`, with the federation-wide class weight.
#[derive(Clone, Copy)]
struct Schedule {
    rounds: u32,
    seed: u64,
    salt: u64,
    class_weight: Option<f64>,
}

/// Keeps, round after round, the model that ranks the validation rows
/// best, and the curves for the report.
struct RoundPicker<'a> {
    model: &'a ModelConfig,
    /// The first test set, scored after each round for the plot only
    /// (absent in a selection run, which never sees a test set).
    probe: Option<&'a TestData>,
    validation: &'a Encoded,
    test_curve: Vec<f64>,
    validation_curve: Vec<f64>,
    best: Option<(f64, u32, Vec<f32>)>,
    last: Vec<f32>,
    /// The number the first recorded model gets (0 when it is the
    /// starting model, as in personalisation).
    first_round: u32,
}

impl<'a> RoundPicker<'a> {
    fn new(model: &'a ModelConfig, probe: Option<&'a TestData>, validation: &'a Encoded) -> Self {
        RoundPicker {
            model,
            probe,
            validation,
            test_curve: Vec::new(),
            validation_curve: Vec::new(),
            best: None,
            last: Vec::new(),
            first_round: 1,
        }
    }

    /// A picker whose first recorded model is the starting one (round 0),
    /// so it is kept when no later round ranks better.
    fn from_start(
        model: &'a ModelConfig,
        probe: Option<&'a TestData>,
        validation: &'a Encoded,
    ) -> Self {
        RoundPicker {
            first_round: 0,
            ..RoundPicker::new(model, probe, validation)
        }
    }

    /// Scores the model after a round; it becomes the pick when it ranks
    /// the validation rows strictly better than every earlier round.
    fn record(&mut self, weights: &[f32]) -> Result<(), ExperimentError> {
        let auc = |features: &Array2<f32>, attacks: &[bool]| -> Result<f64, ExperimentError> {
            let scores = anomaly_scores(self.model, weights, features.view())?;
            Ok(fedsoc_models::roc_auc(&scores, attacks).unwrap_or(f64::NAN))
        };
        if let Some(probe) = self.probe {
            self.test_curve.push(auc(&probe.features, &probe.attacks)?);
        }
        let v = auc(&self.validation.features, &self.validation.attacks)?;
        self.validation_curve.push(v);
        let round = self.validation_curve.len() as u32 - 1 + self.first_round;
        if !v.is_nan() && self.best.as_ref().is_none_or(|(b, _, _)| v > *b) {
            self.best = Some((v, round, weights.to_vec()));
        }
        self.last = weights.to_vec();
        Ok(())
    }

    /// The picked weights and round; the last round's when no round could
    /// be ranked (validation rows of one class only).
    fn finish(self) -> Picked {
        let last = (self.validation_curve.len() as u32 + self.first_round).saturating_sub(1);
        let (selected_round, weights) = match self.best {
            Some((_, round, weights)) => (round, weights),
            None => (last, self.last),
        };
        Picked {
            weights,
            selected_round,
            test_curve: self.test_curve,
            validation_curve: self.validation_curve,
        }
    }
}

/// A training's kept model and its curves.
struct Picked {
    weights: Vec<f32>,
    selected_round: u32,
    test_curve: Vec<f64>,
    validation_curve: Vec<f64>,
}

/// Trains `rounds` round-equivalents alone and keeps the round the
/// validation rows pick.
fn train_alone(
    model: &ModelConfig,
    section: &ModelSection,
    rows: &(Array2<f32>, Vec<bool>),
    schedule: Schedule,
    picker: RoundPicker<'_>,
) -> Result<Picked, ExperimentError> {
    let Schedule {
        rounds,
        seed,
        salt,
        class_weight,
    } = schedule;
    let mut picker = picker;
    let mut weights = initial_weights(model, seed)?;
    for round in 1..=rounds {
        let cfg = train_config(section, round_seed(seed, salt, round), class_weight);
        weights = train_local(model, &weights, rows.0.view(), Some(&rows.1), &cfg)?.weights;
        picker.record(&weights)?;
    }
    Ok(picker.finish())
}

/// A trained model: where it came from and how it did per round.
struct Trained<'a> {
    model: &'a ModelConfig,
    name: &'a str,
    seed: u64,
    variant: Variant,
    participant: Option<String>,
    picked: Picked,
    loss: Option<ClassifierLoss>,
}

/// How a trained model is calibrated: its threshold and the benign
/// validation scores behind it.
struct Calibrated {
    threshold: f64,
    benign_validation_scores: Vec<f32>,
}

/// Scores the tests once, at the calibrated threshold and at the
/// operating points the validation scores give, and evaluates.
fn finish(
    trained: Trained<'_>,
    calibrated: Calibrated,
    tests: &[TestData],
    matched_fpr: f64,
) -> Result<Outcome, ExperimentError> {
    let Trained {
        model,
        name,
        seed,
        variant,
        participant,
        picked,
        loss,
    } = trained;
    let weights = picked.weights.as_slice();
    let mut evaluations = Vec::new();
    let mut test_scores = Vec::new();
    for test in tests {
        let scores = anomaly_scores(model, weights, test.features.view())?;
        evaluations.push(evaluate(
            test,
            &scores,
            calibrated.threshold,
            &calibrated.benign_validation_scores,
            matched_fpr,
        )?);
        test_scores.push(scores);
    }
    Ok(Outcome {
        seed,
        model: name.to_string(),
        variant,
        participant,
        auc_per_round: picked.test_curve,
        validation_auc_per_round: picked.validation_curve,
        selected_round: picked.selected_round,
        evaluations,
        loss,
        test_scores,
        benign_validation_scores: calibrated.benign_validation_scores,
    })
}

/// The quantile threshold of `scores` through the histogram bins (the
/// same estimator the federation uses, without the secure sum).
fn local_threshold(bins: &ScoreBins, scores: &[f32], q: f64) -> Result<f64, ExperimentError> {
    bins.quantile(&bins.histogram(scores)?, q)
        .ok_or_else(|| ExperimentError::Setup("no validation rows to calibrate on".into()))
}

/// Runs the scenario and returns every outcome; `progress` hears about
/// each step.
pub async fn run(
    options: &RunOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<RunResults, ExperimentError> {
    let mut scenario = Scenario::load(&options.scenario)?;
    if let Some(seeds) = &options.seeds {
        scenario.seeds = seeds.clone();
    }
    if let Some(rounds) = options.rounds {
        scenario.federation.rounds = rounds;
    }
    let data = data::load(&scenario, &options.scenario, options.data.as_deref())?;
    let jobs = options.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    if jobs == 0 {
        return Err(ExperimentError::Setup(
            "--jobs 0 runs nothing; give at least 1 (default: one per core)".into(),
        ));
    }
    let names = participant_names(scenario.federation.participants);
    let variants = &scenario.variants;
    let per_model = u64::from(variants.local) * names.len() as u64
        + u64::from(variants.federated)
        + u64::from(variants.centralized)
        + u64::from(variants.federated && variants.personalized) * names.len() as u64;
    progress(Progress::Phase {
        label: format!("{}: training", scenario.name),
        total: scenario.seeds.len() as u64 * scenario.models.len() as u64 * per_model,
    });
    // Seeds are independent: up to `jobs` of them run at once, each on a
    // thread with its own async runtime (its federation runs there), and
    // each gets an equal share of the remaining cores for its trainings.
    let at_once = jobs.min(scenario.seeds.len()).max(1);
    let inner = (jobs / at_once).max(1);
    let choices = search(&scenario, &data, &names, (options, jobs), progress).await?;
    let (scenario_ref, data_ref, names_ref) = (&scenario, &data, &names);
    let choices_ref = choices.as_slice();
    let one_seed = move |k: usize| async move {
        let seed = scenario_ref.seeds[k];
        let split = data::split(data_ref, scenario_ref, seed)?;
        let families: Vec<BTreeMap<String, usize>> = split
            .participants
            .iter()
            .map(Records::family_counts)
            .collect();
        let labels: BTreeSet<String> = split
            .participants
            .iter()
            .flat_map(|p| (0..p.len()).map(|i| p.label(i).to_string()))
            .collect();
        let place = Workplace {
            out: &options.out,
            jobs: inner,
            choices: choices_ref,
            score_tests: true,
        };
        let outcomes = run_seed(
            scenario_ref,
            data_ref,
            &split,
            seed,
            names_ref,
            place,
            progress,
        )
        .await?;
        Ok::<_, ExperimentError>((families, labels, outcomes))
    };
    let mut done = Vec::new();
    if at_once == 1 {
        for k in 0..scenario.seeds.len() {
            done.push(one_seed(k).await?);
        }
    } else {
        // Each seed on a thread of the pool, with a runtime of its own for
        // its federation.
        let work: Vec<Task<'_, SeedOutcomes>> = (0..scenario.seeds.len())
            .map(|k| {
                Box::new(move || {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                        .map_err(|e| {
                            ExperimentError::Setup(format!(
                                "cannot start a runtime for seed {}: {e}",
                                scenario_ref.seeds[k]
                            ))
                        })?
                        .block_on(one_seed(k))
                }) as Task<'_, SeedOutcomes>
            })
            .collect();
        // The first failed seed's error, in the scenario's order.
        for result in run_jobs(at_once, work) {
            done.push(result?);
        }
    }
    let participant_families = done.first().map(|(f, _, _)| f.clone()).unwrap_or_default();
    let train_labels: BTreeSet<String> = done.iter().flat_map(|(_, l, _)| l.clone()).collect();
    let outcomes: Vec<Outcome> = done.into_iter().flat_map(|(_, _, o)| o).collect();
    Ok(RunResults {
        chosen: choices
            .into_iter()
            .filter(|c| !c.candidates.is_empty())
            .collect(),
        train_labels,
        test_rows: data
            .tests
            .iter()
            .map(|(_, r)| TestRowsOwned::of(r))
            .collect(),
        tests: data.tests.iter().map(|(n, _)| n.clone()).collect(),
        scenario,
        participants: names,
        participant_families,
        outcomes,
        read_reports: data.reports.clone(),
    })
}

/// For every model with a `search`, trains each candidate on the
/// selection seed — validation rows only, the test sets never scored —
/// and keeps, per variant, the candidate with the best mean validation
/// ROC-AUC (over SOCs for the local variant). Models without a search
/// keep their settings.
async fn search(
    scenario: &Scenario,
    data: &ScenarioData,
    names: &[String],
    (options, jobs): (&RunOptions, usize),
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Vec<Chosen>, ExperimentError> {
    let mut out = Vec::with_capacity(scenario.models.len());
    for model in &scenario.models {
        let Some(space) = &model.search else {
            out.push(Chosen {
                model: model.name().to_string(),
                local: model.clone(),
                federated: model.clone(),
                centralized: model.clone(),
                candidates: Vec::new(),
            });
            continue;
        };
        let candidates = space.candidates(model);
        progress(Progress::Phase {
            label: format!(
                "{}: choosing {} settings on validation",
                scenario.name,
                model.name()
            ),
            total: candidates.len() as u64,
        });
        let seed = scenario.selection_seed;
        let mut one = scenario.clone();
        one.seeds = vec![seed];
        one.variants.personalized = false;
        let split = data::split(data, scenario, seed)?;
        let mut scored: Vec<(ModelSection, [f64; 3])> = Vec::new();
        for candidate in candidates {
            one.models = vec![candidate.clone()];
            let place = Workplace {
                out: &options.out.join("selection"),
                jobs,
                choices: &[],
                score_tests: false,
            };
            let outcomes = run_seed(&one, data, &split, seed, names, place, &|_| {}).await?;
            let mean = |v: Variant| {
                let aucs: Vec<f64> = outcomes
                    .iter()
                    .filter(|o| o.variant == v)
                    .map(Outcome::validation_auc)
                    .collect();
                if aucs.is_empty() {
                    f64::NAN
                } else {
                    aucs.iter().sum::<f64>() / aucs.len() as f64
                }
            };
            progress(Progress::Step {
                message: format!("{}: {}", model.name(), candidate.settings()),
            });
            scored.push((
                candidate,
                [
                    mean(Variant::Local),
                    mean(Variant::Federated),
                    mean(Variant::Centralized),
                ],
            ));
        }
        // The first candidate with the best score (NaN never wins).
        let best = |k: usize| {
            let mut pick = &scored[0].0;
            let mut top = f64::NEG_INFINITY;
            for (c, v) in &scored {
                if v[k] > top {
                    top = v[k];
                    pick = c;
                }
            }
            pick.clone()
        };
        out.push(Chosen {
            model: model.name().to_string(),
            local: best(0),
            federated: best(1),
            centralized: best(2),
            candidates: scored
                .iter()
                .map(|(c, v)| (c.settings(), v[0], v[1], v[2]))
                .collect(),
        });
    }
    Ok(out)
}

/// One seed's participant family counts, training labels and outcomes.
type SeedOutcomes = (Vec<BTreeMap<String, usize>>, BTreeSet<String>, Vec<Outcome>);

/// Where a run writes its federations, how many trainings it runs at
/// once, which settings each variant trains with, and whether the test
/// sets are scored (never in a selection run).
#[derive(Clone, Copy)]
struct Workplace<'a> {
    out: &'a Path,
    jobs: usize,
    choices: &'a [Chosen],
    score_tests: bool,
}

/// The settings each variant of one model trains with, as its search on
/// the selection seed chose them.
#[derive(Clone, Debug, Serialize)]
pub struct Chosen {
    pub model: String,
    pub local: ModelSection,
    pub federated: ModelSection,
    pub centralized: ModelSection,
    /// Every candidate's mean validation ROC-AUC per variant, in the
    /// search's order: (settings, local, federated, centralized).
    pub candidates: Vec<(String, f64, f64, f64)>,
}

impl Chosen {
    /// The settings of `variant` (personalisation fine-tunes the
    /// federated model with the federated settings).
    fn for_variant(&self, variant: Variant) -> &ModelSection {
        match variant {
            Variant::Local => &self.local,
            Variant::Centralized => &self.centralized,
            Variant::Federated | Variant::Personalized => &self.federated,
        }
    }
}

async fn run_seed(
    scenario: &Scenario,
    data: &ScenarioData,
    split: &Split,
    seed: u64,
    names: &[String],
    place: Workplace<'_>,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Vec<Outcome>, ExperimentError> {
    let Workplace {
        out,
        jobs,
        choices,
        score_tests,
    } = place;
    let rounds = scenario.federation.rounds;
    let cal = &scenario.calibration;
    // The federation's encoder, from secure sums (equal to the pooled fit).
    let encoder = federated_encoder(&data.layout, &split.participants, seed)?;
    let class_weight = federated_class_weight(&split.participants, seed ^ 0xc1a5)?;
    let tests = if score_tests {
        encode_tests(&encoder, data)?
    } else {
        Vec::new()
    };
    let probe = tests.first();
    // Every participant's validation rows, for what the federation and the
    // pool choose; the benign ones per participant, for thresholds.
    let pooled_validation = Encoded::pooled(&encoder, &split.validation)?;
    let benign_validation: Vec<Array2<f32>> = (0..split.validation.len())
        .map(|p| encoder.encode(&split.benign_validation(p)))
        .collect::<Result<_, _>>()?;
    let mut outcomes = Vec::new();
    for (m, base) in scenario.models.iter().enumerate() {
        let model = model_config(base, encoder.dim());
        let bins = score_bins(base.kind);
        let salt = m as u64;
        // Each variant trains with the settings its own search chose.
        let section = base;
        let settings = |v: Variant| choices.get(m).map_or(base, |c| c.for_variant(v));
        let trained_loss = |section: &ModelSection| {
            (section.kind == ModelKind::Classifier).then(|| variant_loss(section, class_weight))
        };
        let step = |variant: &str| {
            progress(Progress::Step {
                message: format!("seed {seed} · {} · {variant}", section.name()),
            })
        };

        // Centralized and every SOC's local model train independently, so
        // they run in parallel; each is deterministic by its own seed, and
        // the outcomes keep this order whatever finishes first.
        let mut alone: Vec<Job<'_>> = Vec::new();
        let (model, benign_validation, tests) = (&model, &benign_validation, &tests);
        let (encoder, bins, pooled_validation) = (&encoder, &bins, &pooled_validation);
        if scenario.variants.centralized {
            alone.push((
                "centralized".to_string(),
                Box::new(move || {
                    let section = settings(Variant::Centralized);
                    let rows = Encoded::pooled(encoder, &split.participants)?
                        .training_rows(section.train_on());
                    let schedule = Schedule {
                        rounds,
                        seed,
                        salt,
                        class_weight,
                    };
                    let picker = RoundPicker::new(model, probe, pooled_validation);
                    let picked = train_alone(model, section, &rows, schedule, picker)?;
                    let mut val_scores = Vec::new();
                    for v in benign_validation {
                        val_scores.extend(anomaly_scores(model, &picked.weights, v.view())?);
                    }
                    let threshold = local_threshold(bins, &val_scores, cal.quantile)?;
                    finish(
                        Trained {
                            model,
                            name: section.name(),
                            seed,
                            variant: Variant::Centralized,
                            participant: None,
                            picked,
                            loss: trained_loss(section),
                        },
                        Calibrated {
                            threshold,
                            benign_validation_scores: val_scores,
                        },
                        tests,
                        cal.matched_fpr,
                    )
                }),
            ));
        }
        if scenario.variants.local {
            for (p, name) in names.iter().enumerate() {
                alone.push((
                    format!("local {name}"),
                    Box::new(move || {
                        let section = settings(Variant::Local);
                        // Alone, a SOC standardises with its own statistics
                        // and chooses on its own validation rows.
                        let own = EncoderSpec::fit(&split.participants[p], &data.layout)?;
                        let own_tests = encode_tests(&own, data)?;
                        let own_validation = Encoded::new(&own, &split.validation[p])?;
                        let rows = Encoded::new(&own, &split.participants[p])?
                            .training_rows(section.train_on());
                        let schedule = Schedule {
                            rounds,
                            seed,
                            salt: salt + 100 * (p as u64 + 1),
                            class_weight,
                        };
                        let picker = RoundPicker::new(model, own_tests.first(), &own_validation);
                        let picked = train_alone(model, section, &rows, schedule, picker)?;
                        let val_scores =
                            anomaly_scores(model, &picked.weights, own_validation.benign().view())?;
                        let threshold = local_threshold(bins, &val_scores, cal.quantile)?;
                        finish(
                            Trained {
                                model,
                                name: section.name(),
                                seed,
                                variant: Variant::Local,
                                participant: Some(name.clone()),
                                picked,
                                loss: trained_loss(section),
                            },
                            Calibrated {
                                threshold,
                                benign_validation_scores: val_scores,
                            },
                            &own_tests,
                            cal.matched_fpr,
                        )
                    }),
                ));
            }
        }
        let labels: Vec<String> = alone.iter().map(|(label, _)| label.clone()).collect();
        let results = run_jobs(jobs, alone.into_iter().map(|(_, job)| job).collect());
        for (label, result) in labels.iter().zip(results) {
            outcomes.push(result?);
            step(label);
        }

        if scenario.variants.federated {
            let section = settings(Variant::Federated);
            let dir = out
                .join("federations")
                .join(format!("seed-{seed}-{}", section.name()));
            let stats = FederationStats {
                encoder,
                class_weight,
            };
            let picker = RoundPicker::new(model, probe, pooled_validation);
            let picked =
                train_federated(scenario, section, stats, split, seed, &dir, picker).await?;
            let val_scores: Vec<Vec<f32>> = benign_validation
                .iter()
                .map(|v| anomaly_scores(model, &picked.weights, v.view()))
                .collect::<Result<_, _>>()?;
            let threshold = federated_threshold(bins, &val_scores, cal.quantile, seed ^ 0x7e)?;
            let global = picked.weights.clone();
            outcomes.push(finish(
                Trained {
                    model,
                    name: section.name(),
                    seed,
                    variant: Variant::Federated,
                    participant: None,
                    picked,
                    loss: trained_loss(section),
                },
                Calibrated {
                    threshold,
                    benign_validation_scores: val_scores.concat(),
                },
                tests,
                cal.matched_fpr,
            )?);
            step("federated");
            if scenario.variants.personalized {
                let global = &global;
                let work: Vec<Task<'_, Outcome>> = (0..names.len())
                    .map(|p| {
                        Box::new(move || {
                            personalize(
                                Personal {
                                    model,
                                    section,
                                    global,
                                    encoder,
                                    split,
                                    p,
                                    name: &names[p],
                                    bins,
                                },
                                Schedule {
                                    rounds: scenario.variants.personal_rounds,
                                    seed,
                                    salt: salt + 1000 * (p as u64 + 1),
                                    class_weight,
                                },
                                (tests, cal.quantile, cal.matched_fpr),
                                trained_loss(section),
                            )
                        }) as Task<'_, Outcome>
                    })
                    .collect();
                for (p, result) in run_jobs(jobs, work).into_iter().enumerate() {
                    outcomes.push(result?);
                    step(&format!("personalized {}", names[p]));
                }
            }
        }
    }
    outcomes.extend(combined_outcomes(scenario, &outcomes, &tests, seed)?);
    Ok(outcomes)
}

/// What personalising the federated model for one SOC starts from.
struct Personal<'a> {
    model: &'a ModelConfig,
    section: &'a ModelSection,
    global: &'a [f32],
    encoder: &'a EncoderSpec,
    split: &'a Split,
    p: usize,
    name: &'a str,
    bins: &'a ScoreBins,
}

/// The federated model fine-tuned on SOC `p`'s own training rows for up
/// to `schedule.rounds` round-equivalents (the round its own validation
/// rows rank best is kept, the federated model itself included), with
/// the federation's encoder and a threshold from its own benign
/// validation rows.
fn personalize(
    start: Personal<'_>,
    schedule: Schedule,
    (tests, quantile, matched_fpr): (&[TestData], f64, f64),
    loss: Option<ClassifierLoss>,
) -> Result<Outcome, ExperimentError> {
    let Personal {
        model,
        section,
        global,
        encoder,
        split,
        p,
        name,
        bins,
    } = start;
    let own_validation = Encoded::new(encoder, &split.validation[p])?;
    let rows = Encoded::new(encoder, &split.participants[p])?.training_rows(section.train_on());
    let mut picker = RoundPicker::from_start(model, tests.first(), &own_validation);
    picker.record(global)?;
    let mut weights = global.to_vec();
    for round in 1..=schedule.rounds {
        let cfg = train_config(
            section,
            round_seed(schedule.seed, schedule.salt, round),
            schedule.class_weight,
        );
        weights = train_local(model, &weights, rows.0.view(), Some(&rows.1), &cfg)?.weights;
        picker.record(&weights)?;
    }
    let picked = picker.finish();
    let val_scores = anomaly_scores(model, &picked.weights, own_validation.benign().view())?;
    let threshold = local_threshold(bins, &val_scores, quantile)?;
    finish(
        Trained {
            model,
            name: section.name(),
            seed: schedule.seed,
            variant: Variant::Personalized,
            participant: Some(name.to_string()),
            picked,
            loss,
        },
        Calibrated {
            threshold,
            benign_validation_scores: val_scores,
        },
        tests,
        matched_fpr,
    )
}

/// A piece of independent work: one training alone, or one seed.
pub(crate) type Task<'a, T> = Box<dyn FnOnce() -> Result<T, ExperimentError> + Send + 'a>;

/// One training run alone (centralized, or one SOC's local model), named.
type Job<'a> = (String, Task<'a, Outcome>);

/// Runs `work` on up to `jobs` threads; the results in `work`'s order.
pub(crate) fn run_jobs<T: Send>(
    jobs: usize,
    work: Vec<Task<'_, T>>,
) -> Vec<Result<T, ExperimentError>> {
    if jobs <= 1 || work.len() <= 1 {
        return work.into_iter().map(|job| job()).collect();
    }
    let n = work.len();
    let queue = std::sync::Mutex::new(work.into_iter().enumerate());
    let results = std::sync::Mutex::new((0..n).map(|_| None).collect::<Vec<_>>());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(n) {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().map(|mut q| q.next());
                    let Ok(Some((i, job))) = next else {
                        return;
                    };
                    let result = job();
                    if let Ok(mut results) = results.lock() {
                        results[i] = Some(result);
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(ExperimentError::Setup(
                    "a worker thread stopped without a result".into(),
                ))
            })
        })
        .collect()
}

/// The first autoencoder fused with each classifier, per variant (and
/// participant), on one calibrated scale: each model's score becomes a
/// p-value against the benign validation scores it was calibrated on
/// (see [`super::fusion`]), and the p-values are fused by min-p and by
/// Fisher's method. Named "autoencoder+classifier (min-p)" and
/// "autoencoder+classifier (fisher)". Thresholds come from the fused
/// scores of the same benign validation rows, like any model's.
fn combined_outcomes(
    scenario: &Scenario,
    outcomes: &[Outcome],
    tests: &[TestData],
    seed: u64,
) -> Result<Vec<Outcome>, ExperimentError> {
    let Some(ae) = scenario
        .models
        .iter()
        .find(|m| m.kind == ModelKind::Autoencoder)
    else {
        return Ok(Vec::new());
    };
    let cal = &scenario.calibration;
    let mut out = Vec::new();
    for clf in scenario
        .models
        .iter()
        .filter(|m| m.kind == ModelKind::Classifier)
    {
        for a in outcomes.iter().filter(|o| o.model == ae.name()) {
            let Some(c) = outcomes.iter().find(|o| {
                o.model == clf.name() && o.variant == a.variant && o.participant == a.participant
            }) else {
                continue;
            };
            // Both models scored the same benign validation rows in the
            // same order (the variant's own), and the same test rows.
            let fit_a = TailCalibration::fit(&a.benign_validation_scores, Transform::Log)?;
            let fit_c = TailCalibration::fit(&c.benign_validation_scores, Transform::Identity)?;
            let val = [
                fit_a.p_values(&a.benign_validation_scores),
                fit_c.p_values(&c.benign_validation_scores),
            ];
            let per_test: Vec<[Vec<f64>; 2]> = tests
                .iter()
                .enumerate()
                .map(|(i, _)| {
                    [
                        fit_a.p_values(&a.test_scores[i]),
                        fit_c.p_values(&c.test_scores[i]),
                    ]
                })
                .collect();
            for rule in [FusionRule::MinP, FusionRule::Fisher] {
                let validation = fuse(rule, &[&val[0], &val[1]])?;
                let threshold =
                    f64::from(threshold_at_validation_fpr(&validation, 1.0 - cal.quantile));
                let mut evaluations = Vec::new();
                let mut test_scores = Vec::new();
                for (test, p) in tests.iter().zip(&per_test) {
                    let scores = fuse(rule, &[&p[0], &p[1]])?;
                    evaluations.push(evaluate(
                        test,
                        &scores,
                        threshold,
                        &validation,
                        cal.matched_fpr,
                    )?);
                    test_scores.push(scores);
                }
                out.push(Outcome {
                    seed,
                    model: fused_name(ae.name(), clf.name(), rule),
                    variant: a.variant,
                    participant: a.participant.clone(),
                    auc_per_round: Vec::new(),
                    validation_auc_per_round: Vec::new(),
                    selected_round: 0,
                    evaluations,
                    loss: None,
                    test_scores,
                    benign_validation_scores: validation,
                });
            }
        }
    }
    Ok(out)
}

/// The name of a fused detector: "autoencoder+classifier (min-p)".
pub fn fused_name(autoencoder: &str, classifier: &str, rule: FusionRule) -> String {
    let rule = match rule {
        FusionRule::MinP => "min-p",
        FusionRule::Fisher => "fisher",
    };
    format!("{autoencoder}+{classifier} ({rule})")
}

/// Federated training over a local federation: coordinator and one agent
/// per participant, mutual TLS, secure aggregation (unless the scenario
/// asks for plaintext), FedProx where configured.
/// What the federation's secure sums established before training: the
/// encoder and the class weight.
#[derive(Clone, Copy)]
struct FederationStats<'a> {
    encoder: &'a EncoderSpec,
    class_weight: Option<f64>,
}

async fn train_federated(
    scenario: &Scenario,
    section: &ModelSection,
    stats: FederationStats<'_>,
    split: &Split,
    seed: u64,
    dir: &Path,
    picker: RoundPicker<'_>,
) -> Result<Picked, ExperimentError> {
    let FederationStats {
        encoder,
        class_weight,
    } = stats;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| ExperimentError::io(dir, e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| ExperimentError::io(dir, e))?;
    let n = split.participants.len();
    let mut spec = LocalFederationSpec::new(dir, n);
    spec.seed = seed;
    spec.epochs = section.epochs;
    spec.batch_size = section.batch_size;
    spec.learning_rate = section.learning_rate;
    spec.hidden = section.hidden.clone();
    spec.min_participants = n;
    spec.secure = scenario.federation.secure;
    spec.strategy = scenario.federation.strategy.clone();
    spec.stage_timeout_s = 600;
    spec.data = Some(FederationData {
        encoder: encoder.clone(),
        records: split.participants.iter().cloned().map(Arc::new).collect(),
        model_kind: section.kind.name().to_string(),
        loss: section.loss.clone(),
        focal_gamma: section.focal_gamma,
        proximal_mu: section.proximal_mu,
        class_weight,
    });
    let federation = LocalFederation::start(&spec).await?;
    let outcome = async {
        let mut picker = picker;
        for _ in 0..scenario.federation.rounds {
            let report = federation.coordinator.run_next_round().await?;
            picker.record(&report.model)?;
        }
        Ok::<_, ExperimentError>(picker.finish())
    }
    .await;
    federation.shutdown().await;
    outcome
}
