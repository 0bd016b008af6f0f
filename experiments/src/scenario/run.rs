//! Running a scenario: for every seed and model, the same split trained
//! three ways — each participant alone, federated over the real round
//! machinery (mutual TLS, secure aggregation), and centralized on the
//! pooled rows — then evaluated on every test set.

use std::collections::BTreeMap;
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
use super::evaluate::{Evaluation, TestData, combine, evaluate};
use super::secure_sum::{federated_class_weight, federated_encoder, federated_threshold};
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
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Local => "local",
            Variant::Federated => "federated",
            Variant::Centralized => "centralized",
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
    /// of local epochs when not federated).
    pub auc_per_round: Vec<f64>,
    pub evaluations: Vec<Evaluation>,
    /// The loss it trained with (a classifier's; the balanced loss carries
    /// the federation-wide attack weight, the same in every variant).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<ClassifierLoss>,
    #[serde(skip)]
    pub test_scores: Vec<Vec<f32>>,
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

/// Trains `rounds` round-equivalents alone, scoring the first test set
/// after each; returns the final weights and the AUC curve.
fn train_alone(
    model: &ModelConfig,
    section: &ModelSection,
    rows: &(Array2<f32>, Vec<bool>),
    schedule: Schedule,
    probe: &TestData,
) -> Result<(Vec<f32>, Vec<f64>), ExperimentError> {
    let Schedule {
        rounds,
        seed,
        salt,
        class_weight,
    } = schedule;
    let mut weights = initial_weights(model, seed)?;
    let mut curve = Vec::with_capacity(rounds as usize);
    for round in 1..=rounds {
        let cfg = train_config(section, round_seed(seed, salt, round), class_weight);
        weights = train_local(model, &weights, rows.0.view(), Some(&rows.1), &cfg)?.weights;
        let scores = anomaly_scores(model, &weights, probe.features.view())?;
        curve.push(fedsoc_models::roc_auc(&scores, &probe.attacks).unwrap_or(f64::NAN));
    }
    Ok((weights, curve))
}

/// A trained model: where it came from and how it did per round.
struct Trained<'a> {
    model: &'a ModelConfig,
    name: &'a str,
    seed: u64,
    variant: Variant,
    participant: Option<String>,
    weights: Vec<f32>,
    curve: Vec<f64>,
    loss: Option<ClassifierLoss>,
}

/// Scores the tests at the calibrated `threshold` and evaluates.
fn finish(
    trained: Trained<'_>,
    threshold: f64,
    tests: &[TestData],
    matched_fpr: f64,
) -> Result<Outcome, ExperimentError> {
    let Trained {
        model,
        name,
        seed,
        variant,
        participant,
        weights,
        curve,
        loss,
    } = trained;
    let weights = weights.as_slice();
    let mut evaluations = Vec::new();
    let mut test_scores = Vec::new();
    for test in tests {
        let scores = anomaly_scores(model, weights, test.features.view())?;
        evaluations.push(evaluate(test, &scores, threshold, matched_fpr)?);
        test_scores.push(scores);
    }
    Ok(Outcome {
        seed,
        model: name.to_string(),
        variant,
        participant,
        auc_per_round: curve,
        evaluations,
        loss,
        test_scores,
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
        + u64::from(variants.centralized);
    progress(Progress::Phase {
        label: format!("{}: training", scenario.name),
        total: scenario.seeds.len() as u64 * scenario.models.len() as u64 * per_model,
    });
    // Seeds are independent: up to `jobs` of them run at once, each on a
    // thread with its own async runtime (its federation runs there), and
    // each gets an equal share of the remaining cores for its trainings.
    let at_once = jobs.min(scenario.seeds.len()).max(1);
    let inner = (jobs / at_once).max(1);
    let (scenario_ref, data_ref, names_ref) = (&scenario, &data, &names);
    let one_seed = move |k: usize| async move {
        let seed = scenario_ref.seeds[k];
        let split = data::split(data_ref, scenario_ref, seed)?;
        let families: Vec<BTreeMap<String, usize>> = split
            .participants
            .iter()
            .map(Records::family_counts)
            .collect();
        let place = Workplace {
            out: &options.out,
            jobs: inner,
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
        Ok::<_, ExperimentError>((families, outcomes))
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
    let participant_families = done.first().map(|(f, _)| f.clone()).unwrap_or_default();
    let outcomes: Vec<Outcome> = done.into_iter().flat_map(|(_, o)| o).collect();
    Ok(RunResults {
        tests: data.tests.iter().map(|(n, _)| n.clone()).collect(),
        scenario,
        participants: names,
        participant_families,
        outcomes,
        read_reports: data.reports.clone(),
    })
}

/// One seed's participant family counts and outcomes.
type SeedOutcomes = (Vec<BTreeMap<String, usize>>, Vec<Outcome>);

/// Where a run writes its federations, and how many trainings it runs at
/// once.
#[derive(Clone, Copy)]
struct Workplace<'a> {
    out: &'a Path,
    jobs: usize,
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
    let Workplace { out, jobs } = place;
    let rounds = scenario.federation.rounds;
    let cal = &scenario.calibration;
    // The federation's encoder, from secure sums (equal to the pooled fit).
    let encoder = federated_encoder(&data.layout, &split.participants, seed)?;
    let class_weight = federated_class_weight(&split.participants, seed ^ 0xc1a5)?;
    let tests = encode_tests(&encoder, data)?;
    let probe = &tests[0];
    let validation: Vec<Array2<f32>> = split
        .validation
        .iter()
        .map(|r| encoder.encode(r))
        .collect::<Result<_, _>>()?;
    let mut outcomes = Vec::new();
    for (m, section) in scenario.models.iter().enumerate() {
        let model = model_config(section, encoder.dim());
        let bins = score_bins(section.kind);
        let salt = m as u64;
        let trained_loss =
            (section.kind == ModelKind::Classifier).then(|| variant_loss(section, class_weight));
        let step = |variant: &str| {
            progress(Progress::Step {
                message: format!("seed {seed} · {} · {variant}", section.name()),
            })
        };

        // Centralized and every SOC's local model train independently, so
        // they run in parallel; each is deterministic by its own seed, and
        // the outcomes keep this order whatever finishes first.
        let mut alone: Vec<Job<'_>> = Vec::new();
        let (model, validation, tests) = (&model, &validation, &tests);
        let (encoder, bins) = (&encoder, &bins);
        if scenario.variants.centralized {
            alone.push((
                "centralized".to_string(),
                Box::new(move || {
                    let mut pooled = split.participants[0].clone();
                    for p in &split.participants[1..] {
                        pooled.append(p)?;
                    }
                    let rows = Encoded::new(encoder, &pooled)?.training_rows(section.train_on());
                    let schedule = Schedule {
                        rounds,
                        seed,
                        salt,
                        class_weight,
                    };
                    let (weights, curve) = train_alone(model, section, &rows, schedule, probe)?;
                    let mut val_scores = Vec::new();
                    for v in validation {
                        val_scores.extend(anomaly_scores(model, &weights, v.view())?);
                    }
                    let threshold = local_threshold(bins, &val_scores, cal.quantile)?;
                    finish(
                        Trained {
                            model,
                            name: section.name(),
                            seed,
                            variant: Variant::Centralized,
                            participant: None,
                            weights,
                            curve,
                            loss: trained_loss,
                        },
                        threshold,
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
                        // Alone, a SOC standardises with its own statistics.
                        let own = EncoderSpec::fit(&split.participants[p], &data.layout)?;
                        let own_tests = encode_tests(&own, data)?;
                        let rows = Encoded::new(&own, &split.participants[p])?
                            .training_rows(section.train_on());
                        let schedule = Schedule {
                            rounds,
                            seed,
                            salt: salt + 100 * (p as u64 + 1),
                            class_weight,
                        };
                        let (weights, curve) =
                            train_alone(model, section, &rows, schedule, &own_tests[0])?;
                        let val = own.encode(&split.validation[p])?;
                        let threshold = local_threshold(
                            bins,
                            &anomaly_scores(model, &weights, val.view())?,
                            cal.quantile,
                        )?;
                        finish(
                            Trained {
                                model,
                                name: section.name(),
                                seed,
                                variant: Variant::Local,
                                participant: Some(name.clone()),
                                weights,
                                curve,
                                loss: trained_loss,
                            },
                            threshold,
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
            let dir = out
                .join("federations")
                .join(format!("seed-{seed}-{}", section.name()));
            let stats = FederationStats {
                encoder,
                class_weight,
            };
            let (weights, curve) =
                train_federated(scenario, section, stats, split, seed, &dir, probe).await?;
            let val_scores: Vec<Vec<f32>> = validation
                .iter()
                .map(|v| anomaly_scores(model, &weights, v.view()))
                .collect::<Result<_, _>>()?;
            let threshold = federated_threshold(bins, &val_scores, cal.quantile, seed ^ 0x7e)?;
            outcomes.push(finish(
                Trained {
                    model,
                    name: section.name(),
                    seed,
                    variant: Variant::Federated,
                    participant: None,
                    weights,
                    curve,
                    loss: trained_loss,
                },
                threshold,
                tests,
                cal.matched_fpr,
            )?);
            step("federated");
        }
    }
    outcomes.extend(combined_outcomes(scenario, &outcomes, &tests, seed)?);
    Ok(outcomes)
}

/// A piece of independent work: one training alone, or one seed.
type Task<'a, T> = Box<dyn FnOnce() -> Result<T, ExperimentError> + Send + 'a>;

/// One training run alone (centralized, or one SOC's local model), named.
type Job<'a> = (String, Task<'a, Outcome>);

/// Runs `work` on up to `jobs` threads; the results in `work`'s order.
fn run_jobs<T: Send>(jobs: usize, work: Vec<Task<'_, T>>) -> Vec<Result<T, ExperimentError>> {
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

/// The first autoencoder combined with each classifier, per variant
/// (and participant): a row is flagged when either model flags it at its
/// calibrated threshold. Named "autoencoder+classifier".
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
            // Local models scored their own encoding of the same rows;
            // labels and families are the same.
            let mut evaluations = Vec::new();
            for (i, test) in tests.iter().enumerate() {
                let (ea, ec) = (&a.evaluations[i], &c.evaluations[i]);
                let scores = combine(
                    &a.test_scores[i],
                    ea.threshold,
                    &c.test_scores[i],
                    ec.threshold,
                );
                evaluations.push(evaluate(
                    test,
                    &scores,
                    0.0,
                    scenario.calibration.matched_fpr,
                )?);
            }
            out.push(Outcome {
                seed,
                model: format!("{}+{}", ae.name(), clf.name()),
                variant: a.variant,
                participant: a.participant.clone(),
                auc_per_round: Vec::new(),
                evaluations,
                loss: None,
                test_scores: Vec::new(),
            });
        }
    }
    Ok(out)
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
    probe: &TestData,
) -> Result<(Vec<f32>, Vec<f64>), ExperimentError> {
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
    let model = federation.coordinator.spec().model.clone();
    let outcome = async {
        let mut curve = Vec::new();
        let mut weights = federation.coordinator.global_model();
        for _ in 0..scenario.federation.rounds {
            let report = federation.coordinator.run_next_round().await?;
            weights = report.model;
            let scores = anomaly_scores(&model, &weights, probe.features.view())?;
            curve.push(fedsoc_models::roc_auc(&scores, &probe.attacks).unwrap_or(f64::NAN));
        }
        Ok::<_, ExperimentError>((weights.to_vec(), curve))
    }
    .await;
    federation.shutdown().await;
    outcome
}
