//! `coordinator.toml`: who may join, what is trained, how rounds run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use fedsoc_conf::{ConfError, invalid};
use fedsoc_pki::TlsFiles;
use serde::{Deserialize, Serialize};

/// The coordinator's whole configuration. Paths are relative to the file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorConfig {
    /// Name of the federation, shown to participants and in logs.
    pub federation: String,
    /// Address to listen on, e.g. "0.0.0.0:7443".
    pub listen: SocketAddr,
    pub tls: TlsSection,
    pub roster: Roster,
    #[serde(default)]
    pub model: ModelSection,
    #[serde(default)]
    pub features: FeaturesSection,
    #[serde(default)]
    pub training: TrainingSection,
    /// The server optimiser; absent: FedAvg (and left out when written
    /// back, so the configuration hash of a FedAvg federation is as before).
    #[serde(default, skip_serializing_if = "StrategySection::is_default")]
    pub strategy: StrategySection,
    #[serde(default)]
    pub rounds: RoundsSection,
    #[serde(default)]
    pub aggregation: AggregationSection,
    #[serde(default)]
    pub limits: LimitsSection,
    pub storage: StorageSection,
    /// The rounds a new federation queues, by kind; absent: `rounds.count`
    /// training rounds.
    #[serde(default)]
    pub plan: Option<PlanSection>,
    #[serde(default)]
    pub statistics: StatisticsSection,
    #[serde(default)]
    pub calibration: CalibrationSection,
    /// Where Prometheus metrics are served; absent: not served (and left
    /// out when written back, so the configuration hash is as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<fedsoc_conf::MetricsSection>,
}

/// A federation's life as its first queue: fit the encoder, train, then
/// calibrate the threshold.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSection {
    /// Start with a statistics round (two secure sums).
    #[serde(default)]
    pub statistics: bool,
    pub train_rounds: u32,
    /// End with a calibrate round.
    #[serde(default)]
    pub calibrate: bool,
}

/// What a statistics round counts besides the feature moments.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatisticsSection {
    /// Attack families whose rows are counted federation-wide (the benign
    /// family "normal" included); other families share one count.
    pub families: Vec<String>,
}

impl Default for StatisticsSection {
    fn default() -> Self {
        StatisticsSection {
            families: ["normal", "dos", "probe", "r2l", "u2r"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// How a calibrate round sets the federation threshold.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationSection {
    /// Share of benign rows allowed above the threshold.
    pub false_alarm_rate: f64,
    /// Histogram resolution: bins per factor of 10 of reconstruction error
    /// (autoencoder, 1e-6 to 1e6), or per unit of logit (classifier, -60
    /// to 60). Finer bins tighten the stated quantile error.
    pub bins_per_unit: u32,
}

impl Default for CalibrationSection {
    fn default() -> Self {
        CalibrationSection {
            false_alarm_rate: 0.01,
            bins_per_unit: 100,
        }
    }
}

/// What one participant session may send. Messages are also capped at
/// 8 MiB each (vectors travel in 1 MiB chunks) and each stage's total at
/// what the model size needs.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Messages per second a session may keep sending.
    pub messages_per_s: f64,
    /// Messages a session may send in a burst above that rate.
    pub message_burst: u32,
}

impl Default for LimitsSection {
    fn default() -> Self {
        let rate = crate::session::RateLimit::default();
        LimitsSection {
            messages_per_s: rate.per_second,
            message_burst: rate.burst as u32,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// The federation CA certificate: clients must present a certificate it signed.
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA's revocation list (`fedsoc pki init` writes it, `pki revoke`
    /// and `pki crl` re-sign it); required, re-read when it changes, no
    /// restart needed. Default: `crl.pem` beside the CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl: Option<PathBuf>,
}

/// Who may connect, by the id in their certificate.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Roster {
    pub participants: Vec<String>,
    #[serde(default)]
    pub data_scientists: Vec<String>,
    #[serde(default)]
    pub auditors: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// What the federation trains.
    #[serde(default)]
    pub kind: ModelKind,
    /// Hidden widths: the autoencoder's encoder (the decoder mirrors
    /// them), or the classifier's layers.
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// Seed of the initial global model and of every training task.
    #[serde(default)]
    pub seed: u64,
}

impl Default for ModelSection {
    fn default() -> Self {
        ModelSection {
            kind: ModelKind::default(),
            hidden: default_hidden(),
            seed: 0,
        }
    }
}

/// Model kinds a federation can train.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Anomaly detection: learns benign traffic, scores by reconstruction
    /// error. Needs no labels.
    #[default]
    Autoencoder,
    /// Supervised: learns P(attack) from labelled incidents.
    Classifier,
}

fn default_hidden() -> Vec<usize> {
    vec![64, 32, 8]
}

/// The federation-wide feature encoding: a preset, or an encoder file
/// (JSON, as `fedsoc experiment` and the federated preprocessing write it)
/// that fixes columns, vocabularies and statistics for every participant.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturesSection {
    #[serde(default)]
    pub preset: FeaturePreset,
    /// An encoder file; replaces the preset.
    #[serde(default)]
    pub encoder: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeaturePreset {
    /// The flow features of the built-in synthetic telemetry (also what
    /// the Zeek and Suricata readers produce).
    #[default]
    Synthetic,
    /// The 41 NSL-KDD features with public unit statistics; use an
    /// encoder file with federated statistics for real training.
    NslKdd,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSection {
    pub epochs: u32,
    pub batch_size: u32,
    pub learning_rate: f64,
    /// Classifier loss: "bce", "balanced" (positives weighted by the local
    /// class ratio) or "focal".
    #[serde(default = "default_loss")]
    pub loss: String,
    /// Focal loss gamma.
    #[serde(default = "default_focal_gamma")]
    pub focal_gamma: f64,
    /// FedProx proximal weight mu (0 = plain FedAvg).
    #[serde(default)]
    pub proximal_mu: f64,
    /// The weight of attack rows for the "balanced" loss, the same for
    /// every member: benign rows per attack row over the whole federation.
    /// A statistics round's own count overrides it; without either, each
    /// member weights by its own ratio, which differs wildly between SOCs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_weight: Option<f64>,
}

fn default_loss() -> String {
    "bce".into()
}

fn default_focal_gamma() -> f64 {
    2.0
}

impl Default for TrainingSection {
    fn default() -> Self {
        TrainingSection {
            epochs: 1,
            batch_size: 64,
            learning_rate: 1e-3,
            loss: default_loss(),
            focal_gamma: default_focal_gamma(),
            proximal_mu: 0.0,
            class_weight: None,
        }
    }
}

/// `[strategy]`: how the coordinator turns the aggregate into the next
/// global model. Fixed for the life of a federation: the audit replay
/// recomputes every round with the optimiser and hyperparameters it logged,
/// and a coordinator refuses to start on a log that used others.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategySection {
    /// "fedavg" (the default), "fedavgm" (server momentum, Hsu et al.
    /// 2019) or "fedadam" (Reddi et al. 2021).
    #[serde(default)]
    pub name: StrategyName,
    /// η: FedAvgM default 1.0, FedAdam default 0.01 (Reddi et al. tune it
    /// per task over powers of ten; it is the first value to tune).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_learning_rate: Option<f64>,
    /// FedAvgM's β, default 0.9.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f64>,
    /// FedAdam's β₁, default 0.9 (Reddi et al.).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta1: Option<f64>,
    /// FedAdam's β₂, default 0.99 (Reddi et al.).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta2: Option<f64>,
    /// FedAdam's τ (adaptivity), default 1e-3 (Reddi et al.).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tau: Option<f64>,
}

/// The server optimisers `[strategy] name` selects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StrategyName {
    #[default]
    FedAvg,
    FedAvgM,
    FedAdam,
}

impl StrategySection {
    fn is_default(&self) -> bool {
        *self == StrategySection::default()
    }

    /// The optimiser with every hyperparameter it takes, defaults filled
    /// in (the values [`Self::check`] vouches for).
    pub fn optimizer(&self) -> crate::optimizer::ServerOptimizer {
        use crate::optimizer::ServerOptimizer;
        match self.name {
            StrategyName::FedAvg => ServerOptimizer::FedAvg,
            StrategyName::FedAvgM => ServerOptimizer::FedAvgM {
                server_learning_rate: self.server_learning_rate.unwrap_or(1.0),
                momentum: self.momentum.unwrap_or(0.9),
            },
            StrategyName::FedAdam => ServerOptimizer::FedAdam {
                server_learning_rate: self.server_learning_rate.unwrap_or(0.01),
                beta1: self.beta1.unwrap_or(0.9),
                beta2: self.beta2.unwrap_or(0.99),
                tau: self.tau.unwrap_or(1e-3),
            },
        }
    }

    /// Refuses hyperparameters the chosen optimiser does not take (a
    /// momentum under FedAdam would silently do nothing) and values out of
    /// range.
    pub fn check(&self, path: &Path) -> Result<(), ConfError> {
        let name = self.optimizer().name();
        let given: [(&str, Option<f64>, &[&str]); 5] = [
            (
                "server_learning_rate",
                self.server_learning_rate,
                &["fedavgm", "fedadam"],
            ),
            ("momentum", self.momentum, &["fedavgm"]),
            ("beta1", self.beta1, &["fedadam"]),
            ("beta2", self.beta2, &["fedadam"]),
            ("tau", self.tau, &["fedadam"]),
        ];
        for (field, value, takes) in given {
            if value.is_some() && !takes.contains(&name) {
                let fix = match (self.name, field) {
                    (StrategyName::FedAvg, _) => format!(
                        "fedavg moves the model by the mean delta and takes no hyperparameters; \
                         remove it, or set name = \"{}\"",
                        if field == "momentum" {
                            "fedavgm"
                        } else {
                            "fedadam"
                        }
                    ),
                    (StrategyName::FedAdam, "momentum") => {
                        "FedAdam's momentum is beta1; remove momentum, or set name = \"fedavgm\""
                            .to_string()
                    }
                    _ => "remove it, or set name = \"fedadam\"".to_string(),
                };
                return Err(invalid(
                    path,
                    &format!("strategy.{field}"),
                    format!("applies to {} only, not {name}: {fix}", takes.join(" and ")),
                ));
            }
        }
        self.optimizer()
            .check()
            .map_err(|(field, problem)| invalid(path, &format!("strategy.{field}"), problem))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundsSection {
    /// Rounds to run once enough participants are connected; 0 waits for
    /// a data scientist's `StartRounds`.
    pub count: u32,
    /// A round starts, and completes, only with at least this many.
    pub min_participants: usize,
    /// Seconds a participant has to return its update (the training
    /// stage's deadline; later stages use `aggregation.stage_timeout_s`).
    pub round_timeout_s: u64,
    /// Failed attempts at a round (too many dropouts, aborted secure
    /// aggregation) retried before the queue halts and says why.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Seconds between a failed attempt and its retry.
    #[serde(default = "default_retry_pause_s")]
    pub retry_pause_s: u64,
}

fn default_max_retries() -> u32 {
    5
}

fn default_retry_pause_s() -> u64 {
    2
}

impl Default for RoundsSection {
    fn default() -> Self {
        RoundsSection {
            count: 10,
            min_participants: 2,
            round_timeout_s: 300,
            max_retries: default_max_retries(),
            retry_pause_s: default_retry_pause_s(),
        }
    }
}

/// How updates are combined. Secure aggregation is the default; plaintext
/// exists for benchmarks and debugging and says so in its name.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregationSection {
    pub mode: AggregationMode,
    /// 32 or 64: the ring Z_2^bits the masked sums live in.
    pub ring_bits: u32,
    /// Bits per quantised value.
    pub quant_bits: u32,
    /// Update deltas are clipped to [-clip, clip] before quantisation.
    pub clip: f32,
    /// A participant's FedAvg weight is min(samples, max_samples); the cap
    /// lets overflow be excluded before a round starts.
    pub max_samples: u64,
    /// Neighbours per participant (k); 0 picks the recommended value for
    /// the round's size (complete graph up to 16, O(log n) beyond).
    pub neighbors: u32,
    /// Shamir threshold (t); 0 picks the smallest safe one,
    /// ⌈(k + c + 2)/2⌉ (see `fedsoc_secagg::config::threshold_floor`).
    pub threshold: u32,
    /// Participants that may collude with a malicious coordinator (c):
    /// any two sets of t holders of a secret then share an honest member.
    /// Each participant may demand more in its own configuration.
    #[serde(default)]
    pub colluders: u32,
    /// Seconds each stage after training may take.
    pub stage_timeout_s: u64,
}

impl Default for AggregationSection {
    fn default() -> Self {
        AggregationSection {
            mode: AggregationMode::Secure,
            ring_bits: 64,
            quant_bits: 16,
            clip: 1.0,
            max_samples: 1 << 20,
            neighbors: 0,
            threshold: 0,
            colluders: 0,
            stage_timeout_s: 30,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AggregationMode {
    /// SecAgg+: the coordinator learns only the weighted sum.
    Secure,
    /// The coordinator sees every participant's update. Benchmarks and
    /// debugging only.
    PlaintextInsecure,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    /// Folder for the global model of every round and the round history.
    pub dir: PathBuf,
}

impl CoordinatorConfig {
    /// Loads, resolves relative paths, and checks the values.
    pub fn load(path: &Path) -> Result<Self, ConfError> {
        let mut config: CoordinatorConfig = fedsoc_conf::load(path)?;
        for p in [
            &mut config.tls.ca,
            &mut config.tls.cert,
            &mut config.tls.key,
            &mut config.storage.dir,
        ] {
            *p = fedsoc_conf::resolve(path, p);
        }
        if let Some(crl) = &mut config.tls.crl {
            *crl = fedsoc_conf::resolve(path, crl);
        }
        if let Some(encoder) = &mut config.features.encoder {
            *encoder = fedsoc_conf::resolve(path, encoder);
        }
        config.validate(path)?;
        Ok(config)
    }

    /// Checks what serde cannot: ranges and consistency.
    pub fn validate(&self, path: &Path) -> Result<(), ConfError> {
        let rate = self.calibration.false_alarm_rate;
        if !(rate > 0.0 && rate < 1.0) {
            return Err(invalid(
                path,
                "calibration.false_alarm_rate",
                format!("{rate} is not a share strictly between 0 and 1, e.g. 0.01"),
            ));
        }
        if !(1..=1000).contains(&self.calibration.bins_per_unit) {
            return Err(invalid(
                path,
                "calibration.bins_per_unit",
                "must be between 1 and 1000",
            ));
        }
        if self.roster.participants.is_empty() {
            return Err(invalid(
                path,
                "roster.participants",
                "the roster is empty; list the participant ids of the federation",
            ));
        }
        for (field, ids) in [
            ("roster.participants", &self.roster.participants),
            ("roster.data_scientists", &self.roster.data_scientists),
            ("roster.auditors", &self.roster.auditors),
        ] {
            let mut seen = std::collections::HashSet::new();
            for id in ids {
                if !seen.insert(id) {
                    return Err(invalid(path, field, format!("{id:?} is listed twice")));
                }
                fedsoc_pki::Identity::participant(id.clone())
                    .map_err(|e| invalid(path, field, e.to_string()))?;
            }
        }
        if self.rounds.min_participants == 0 {
            return Err(invalid(
                path,
                "rounds.min_participants",
                "must be at least 1",
            ));
        }
        if self.rounds.min_participants > self.roster.participants.len() {
            return Err(invalid(
                path,
                "rounds.min_participants",
                format!(
                    "{} exceeds the {} participants on the roster",
                    self.rounds.min_participants,
                    self.roster.participants.len()
                ),
            ));
        }
        if self.rounds.round_timeout_s == 0 {
            return Err(invalid(
                path,
                "rounds.round_timeout_s",
                "must be at least 1 second",
            ));
        }
        if !(self.limits.messages_per_s.is_finite() && self.limits.messages_per_s >= 1.0) {
            return Err(invalid(
                path,
                "limits.messages_per_s",
                "must be at least 1; an honest participant sends a handful of messages per stage",
            ));
        }
        if self.limits.message_burst < 16 {
            return Err(invalid(
                path,
                "limits.message_burst",
                "must be at least 16 (a stage's chunks arrive together)",
            ));
        }
        if self.rounds.max_retries > 1000 {
            return Err(invalid(
                path,
                "rounds.max_retries",
                "at most 1000; a round failing that often needs an operator, not a retry",
            ));
        }
        if self.training.epochs == 0 {
            return Err(invalid(path, "training.epochs", "must be at least 1"));
        }
        if self.training.batch_size == 0 {
            return Err(invalid(path, "training.batch_size", "must be at least 1"));
        }
        if !(self.training.learning_rate.is_finite() && self.training.learning_rate > 0.0) {
            return Err(invalid(
                path,
                "training.learning_rate",
                "must be a positive number, e.g. 0.001",
            ));
        }
        if !fedsoc_models::ClassifierLoss::NAMES.contains(&self.training.loss.as_str()) {
            return Err(invalid(
                path,
                "training.loss",
                format!(
                    "{:?}: use \"bce\", \"balanced\" or \"focal\"",
                    self.training.loss
                ),
            ));
        }
        if !(self.training.proximal_mu.is_finite() && self.training.proximal_mu >= 0.0) {
            return Err(invalid(
                path,
                "training.proximal_mu",
                "must be >= 0 (0 is plain FedAvg, 0.01 a light FedProx term)",
            ));
        }
        if self
            .training
            .class_weight
            .is_some_and(|w| !(w.is_finite() && w > 0.0))
        {
            return Err(invalid(
                path,
                "training.class_weight",
                "must be > 0: benign rows per attack row over the federation, e.g. 12.5",
            ));
        }
        if !(self.training.focal_gamma.is_finite() && self.training.focal_gamma >= 0.0) {
            return Err(invalid(
                path,
                "training.focal_gamma",
                "must be >= 0, e.g. 2",
            ));
        }
        self.strategy.check(path)?;
        if let Some(metrics) = &self.metrics {
            metrics.check(path)?;
        }
        let agg = &self.aggregation;
        if agg.ring_bits != 32 && agg.ring_bits != 64 {
            return Err(invalid(path, "aggregation.ring_bits", "must be 32 or 64"));
        }
        if !(agg.clip.is_finite() && agg.clip > 0.0) {
            return Err(invalid(
                path,
                "aggregation.clip",
                "must be a positive number, e.g. 1.0",
            ));
        }
        if agg.stage_timeout_s == 0 {
            return Err(invalid(
                path,
                "aggregation.stage_timeout_s",
                "must be at least 1 second",
            ));
        }
        if agg.mode == AggregationMode::Secure {
            self.secure_encoding()
                .check_capacity(self.roster.participants.len())
                .map_err(|e| {
                    invalid(
                        path,
                        "aggregation",
                        format!("{e}; lower quant_bits or max_samples, or use ring_bits = 64"),
                    )
                })?;
        }
        if self.model.hidden.is_empty() || self.model.hidden.contains(&0) {
            return Err(invalid(
                path,
                "model.hidden",
                "needs at least one layer width, each at least 1, e.g. [64, 32, 8]",
            ));
        }
        Ok(())
    }

    /// How secure rounds weight and quantise updates.
    pub fn secure_encoding(&self) -> fedsoc_secagg::weighted::WeightedEncoding {
        let agg = &self.aggregation;
        fedsoc_secagg::weighted::WeightedEncoding {
            quantizer: fedsoc_secagg::Quantizer {
                clip: agg.clip,
                bits: agg.quant_bits,
                ring: if agg.ring_bits == 32 {
                    fedsoc_secagg::Ring::U32
                } else {
                    fedsoc_secagg::Ring::U64
                },
            },
            max_samples: agg.max_samples,
        }
    }

    /// Where the revocation list is (the coordinator refuses to start
    /// without one).
    pub fn crl_path(&self) -> PathBuf {
        self.tls.crl.clone().unwrap_or_else(|| {
            self.tls
                .ca
                .parent()
                .unwrap_or(Path::new("."))
                .join("crl.pem")
        })
    }

    pub fn tls_files(&self) -> TlsFiles {
        TlsFiles {
            ca: self.tls.ca.clone(),
            cert: self.tls.cert.clone(),
            key: self.tls.key.clone(),
        }
    }
}
