//! Scenario files: what an experiment reads, how it splits the data among
//! participants, which models it trains and how it calibrates them.
//!
//! ```toml
//! name = "nsl-kdd-cross-border"
//! seeds = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
//! selection_seed = 0            # the run that chooses searched settings
//!
//! [data]
//! format = "nsl-kdd"            # nsl-kdd | csv | zeek | suricata | synthetic
//! # dir = "/data/nsl-kdd"       # default: $FEDSOC_DATA or ../shared/datasets, then nsl-kdd/
//! train = "KDDTrain+"
//! test = ["KDDTest+", "KDDTest-21"]
//!
//! [partition]                   # see fedsoc_datasets::partition::Partitioner
//! kind = "by-family"            # or "benign-by-group" with column = "service", alpha
//! families = [["DoS"], ["Probe"], ["R2L"], ["U2R"]]
//!
//! [federation]
//! participants = 4
//! rounds = 20
//!
//! [variants]
//! personalized = true           # each SOC fine-tunes the federated model
//!
//! [[model]]
//! kind = "autoencoder"          # or "classifier"
//! hidden = [64, 32, 8]
//! [model.search]                # chosen per variant on validation rows
//! epochs = [1, 5]
//! ```
//!
//! Relative paths are relative to the scenario file; `--data` overrides
//! the data folder.
//!
//! - [`data`]: reading the files once and splitting them per seed into
//!   training and labelled validation rows.
//! - [`secure_sum`]: the federated preprocessing (feature statistics and
//!   threshold from SecAgg+ sums).
//! - [`run`]: the search on the selection seed, then local-only, federated,
//!   centralized and personalised training per seed, each keeping the
//!   round its validation rows rank best.
//! - [`evaluate`]: metrics of one model on one test set.
//! - [`stats`]: means over seeds with bootstrap intervals, paired
//!   differences, operating thresholds at validation false-alarm rates.
//! - [`fusion`]: models' scores as calibrated p-values, fused into one.
//! - [`report`]: `summary.json`, CSVs, plots and `report.md`.

pub mod data;
pub mod evaluate;
pub mod fusion;
pub mod report;
pub mod run;
pub mod secure_sum;
pub mod stats;

use std::path::{Path, PathBuf};

use fedsoc_conf::{ConfError, invalid};
use fedsoc_datasets::partition::Partitioner;
use serde::{Deserialize, Serialize};

/// A whole scenario file.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// One full run (every variant, every model) per seed.
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// The seed of the run that chooses among a model's `search` values
    /// (on validation rows only); never one of `seeds`, so no reported
    /// figure comes from the run that made the choice.
    #[serde(default)]
    pub selection_seed: u64,
    pub data: DataSection,
    #[serde(default = "default_partition")]
    pub partition: Partitioner,
    pub federation: FederationSection,
    #[serde(default)]
    pub calibration: CalibrationSection,
    #[serde(rename = "model")]
    pub models: Vec<ModelSection>,
    #[serde(default)]
    pub variants: VariantsSection,
}

fn default_seeds() -> Vec<u64> {
    vec![1]
}

fn default_partition() -> Partitioner {
    Partitioner::Iid
}

/// Telemetry formats a scenario can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataFormat {
    NslKdd,
    Csv,
    Zeek,
    Suricata,
    /// The built-in generator: participant `i` is synthetic SOC `i`.
    Synthetic,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    pub format: DataFormat,
    /// Folder of the files; relative to the scenario file.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Training file (NSL-KDD: a standard name such as "KDDTrain+").
    #[serde(default)]
    pub train: Option<String>,
    /// Test files, each evaluated separately.
    #[serde(default)]
    pub test: Vec<String>,
    /// CSV schema (TOML), for `format = "csv"`.
    #[serde(default)]
    pub schema: Option<PathBuf>,
    #[serde(default)]
    pub skip_bad_rows: bool,
    /// Synthetic only: rows per participant and in the test set.
    #[serde(default = "default_synthetic_rows")]
    pub rows: usize,
    /// Synthetic only: fraction of attack rows in each participant's data.
    #[serde(default = "default_contamination")]
    pub contamination: f64,
}

fn default_synthetic_rows() -> usize {
    4000
}

fn default_contamination() -> f64 {
    0.05
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FederationSection {
    pub participants: usize,
    pub rounds: u32,
    /// Secure aggregation (default) or plaintext FedAvg, for comparison.
    #[serde(default = "yes")]
    pub secure: bool,
    /// The coordinator's server optimiser (`[federation.strategy]`, as the
    /// coordinator's `[strategy]`): FedAvg by default, or FedAvgM/FedAdam.
    #[serde(default)]
    pub strategy: fedsoc_coordinator::config::StrategySection,
}

fn yes() -> bool {
    true
}

/// How the anomaly threshold is set and compared.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationSection {
    /// Share of each participant's benign rows held out (never trained on)
    /// to calibrate the threshold.
    #[serde(default = "default_validation")]
    pub validation_fraction: f64,
    /// The threshold is this quantile of benign validation scores.
    #[serde(default = "default_quantile")]
    pub quantile: f64,
    /// Recall is also compared at this false-alarm rate on the test set,
    /// the same for every variant.
    #[serde(default = "default_matched_fpr")]
    pub matched_fpr: f64,
}

impl Default for CalibrationSection {
    fn default() -> Self {
        CalibrationSection {
            validation_fraction: default_validation(),
            quantile: default_quantile(),
            matched_fpr: default_matched_fpr(),
        }
    }
}

fn default_validation() -> f64 {
    0.1
}

fn default_quantile() -> f64 {
    0.99
}

fn default_matched_fpr() -> f64 {
    0.01
}

/// Model kinds a scenario can train.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    Autoencoder,
    Classifier,
}

impl ModelKind {
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Autoencoder => "autoencoder",
            ModelKind::Classifier => "classifier",
        }
    }
}

/// Which rows a model trains on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrainOn {
    /// Benign rows only (anomaly detection: learn what normal looks like).
    Benign,
    /// Every row, with its label.
    All,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    pub kind: ModelKind,
    /// A name for reports; defaults to the kind.
    #[serde(default)]
    pub name: Option<String>,
    pub hidden: Vec<usize>,
    /// Local epochs per round (and per round-equivalent when alone).
    #[serde(default = "one")]
    pub epochs: u32,
    #[serde(default = "default_batch")]
    pub batch_size: u32,
    #[serde(default = "default_lr")]
    pub learning_rate: f64,
    /// Classifier loss: "bce", "balanced" or "focal".
    #[serde(default = "default_loss")]
    pub loss: String,
    /// Focal loss gamma.
    #[serde(default = "default_gamma")]
    pub focal_gamma: f64,
    /// FedProx proximal weight (0 = plain FedAvg).
    #[serde(default)]
    pub proximal_mu: f64,
    /// Values to choose among on validation rows, per variant; the
    /// settings above are the default where a list is absent.
    #[serde(default)]
    pub search: Option<SearchSpace>,
}

/// Settings a scenario chooses by search: every combination is trained on
/// the selection seed, and each variant keeps the one whose model ranks
/// its own validation rows best.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSpace {
    #[serde(default)]
    pub epochs: Vec<u32>,
    #[serde(default)]
    pub learning_rate: Vec<f64>,
    #[serde(default)]
    pub loss: Vec<String>,
}

impl SearchSpace {
    /// Every combination of the listed values, over `base`'s settings,
    /// in a fixed order (epochs, then learning rate, then loss).
    pub fn candidates(&self, base: &ModelSection) -> Vec<ModelSection> {
        let epochs = if self.epochs.is_empty() {
            vec![base.epochs]
        } else {
            self.epochs.clone()
        };
        let rates = if self.learning_rate.is_empty() {
            vec![base.learning_rate]
        } else {
            self.learning_rate.clone()
        };
        let losses = if self.loss.is_empty() {
            vec![base.loss.clone()]
        } else {
            self.loss.clone()
        };
        let mut out = Vec::new();
        for &e in &epochs {
            for &lr in &rates {
                for loss in &losses {
                    out.push(ModelSection {
                        epochs: e,
                        learning_rate: lr,
                        loss: loss.clone(),
                        search: None,
                        ..base.clone()
                    });
                }
            }
        }
        out
    }
}

fn one() -> u32 {
    1
}

fn default_batch() -> u32 {
    256
}

fn default_lr() -> f64 {
    1e-3
}

fn default_loss() -> String {
    "bce".into()
}

fn default_gamma() -> f64 {
    2.0
}

impl ModelSection {
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.kind.name())
    }

    /// The searched settings, in words: "epochs 5, learning rate 0.001, loss balanced".
    pub fn settings(&self) -> String {
        let mut out = format!(
            "epochs {}, learning rate {}",
            self.epochs, self.learning_rate
        );
        if self.kind == ModelKind::Classifier {
            out.push_str(&format!(", loss {}", self.loss));
        }
        out
    }

    /// The autoencoder learns benign traffic (rows labelled normal), the
    /// classifier every row with its label — the same rule participants
    /// follow in a federation.
    pub fn train_on(&self) -> TrainOn {
        match self.kind {
            ModelKind::Autoencoder => TrainOn::Benign,
            ModelKind::Classifier => TrainOn::All,
        }
    }
}

/// Which variants to run.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VariantsSection {
    #[serde(default = "yes")]
    pub local: bool,
    #[serde(default = "yes")]
    pub federated: bool,
    #[serde(default = "yes")]
    pub centralized: bool,
    /// The federated model fine-tuned by each SOC on its own rows.
    #[serde(default)]
    pub personalized: bool,
    /// Round-equivalents of local training a SOC may fine-tune for (the
    /// one its validation rows rank best is kept, none included).
    #[serde(default = "default_personal_rounds")]
    pub personal_rounds: u32,
}

fn default_personal_rounds() -> u32 {
    3
}

impl Default for VariantsSection {
    fn default() -> Self {
        VariantsSection {
            local: true,
            federated: true,
            centralized: true,
            personalized: false,
            personal_rounds: default_personal_rounds(),
        }
    }
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Self, ConfError> {
        let scenario: Scenario = fedsoc_conf::load(path)?;
        scenario.validate(path)?;
        Ok(scenario)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfError> {
        let bad = |field: &str, problem: String| Err(invalid(path, field, problem));
        if self.seeds.is_empty() {
            return bad(
                "seeds",
                "list at least one seed, e.g. seeds = [1, 2, 3]".into(),
            );
        }
        if self.models.iter().any(|m| m.search.is_some())
            && self.seeds.contains(&self.selection_seed)
        {
            return bad(
                "selection_seed",
                format!(
                    "{} is also a reported seed; choose a selection seed outside seeds so no reported figure comes from the run that chose",
                    self.selection_seed
                ),
            );
        }
        if self.federation.participants < 2 {
            return bad(
                "federation.participants",
                format!(
                    "{} participants; a federation needs at least 2",
                    self.federation.participants
                ),
            );
        }
        self.federation.strategy.check(path)?;
        if self.federation.rounds == 0 {
            return bad("federation.rounds", "0 rounds; run at least 1".into());
        }
        if self.variants.personalized && !self.variants.federated {
            return bad(
                "variants.personalized",
                "personalisation starts from the federated model; set federated = true".into(),
            );
        }
        if self.models.is_empty() {
            return bad("model", "no [[model]] section; add at least one".into());
        }
        for (i, m) in self.models.iter().enumerate() {
            let field = |f: &str| format!("model[{i}].{f}");
            if m.hidden.is_empty() || m.hidden.contains(&0) {
                return bad(
                    &field("hidden"),
                    format!("{:?}: give non-zero widths, e.g. [64, 32]", m.hidden),
                );
            }
            if m.epochs == 0 || m.batch_size == 0 {
                return bad(
                    &field("epochs"),
                    "epochs and batch_size must be at least 1".into(),
                );
            }
            if !(m.learning_rate.is_finite() && m.learning_rate > 0.0) {
                return bad(
                    &field("learning_rate"),
                    format!("{} must be finite and > 0", m.learning_rate),
                );
            }
            if !fedsoc_models::ClassifierLoss::NAMES.contains(&m.loss.as_str()) {
                return bad(
                    &field("loss"),
                    format!("{:?}: use \"bce\", \"balanced\" or \"focal\"", m.loss),
                );
            }
            if !(m.proximal_mu.is_finite() && m.proximal_mu >= 0.0) {
                return bad(
                    &field("proximal_mu"),
                    format!("{} must be finite and >= 0", m.proximal_mu),
                );
            }
            if let Some(search) = &m.search {
                if search.epochs.contains(&0)
                    || search
                        .learning_rate
                        .iter()
                        .any(|r| !(r.is_finite() && *r > 0.0))
                {
                    return bad(
                        &field("search"),
                        "epochs must be at least 1 and learning rates finite and > 0".into(),
                    );
                }
                if let Some(l) = search
                    .loss
                    .iter()
                    .find(|l| !fedsoc_models::ClassifierLoss::NAMES.contains(&l.as_str()))
                {
                    return bad(
                        &field("search.loss"),
                        format!("{l:?}: use \"bce\", \"balanced\" or \"focal\""),
                    );
                }
                if search.candidates(m).len() < 2 {
                    return bad(
                        &field("search"),
                        "a search needs at least two values of some setting; list them or remove [model.search]".into(),
                    );
                }
            }
            if self.models[..i].iter().any(|o| o.name() == m.name()) {
                return bad(
                    &field("name"),
                    format!("two models are named {:?}; give each a name", m.name()),
                );
            }
        }
        let c = &self.calibration;
        if !(c.validation_fraction > 0.0 && c.validation_fraction < 0.5) {
            return bad(
                "calibration.validation_fraction",
                format!("{} must be in (0, 0.5)", c.validation_fraction),
            );
        }
        if !(c.quantile > 0.5 && c.quantile < 1.0) {
            return bad(
                "calibration.quantile",
                format!("{} must be in (0.5, 1), e.g. 0.99", c.quantile),
            );
        }
        if !(c.matched_fpr > 0.0 && c.matched_fpr < 0.5) {
            return bad(
                "calibration.matched_fpr",
                format!("{} must be in (0, 0.5), e.g. 0.01", c.matched_fpr),
            );
        }
        let d = &self.data;
        match d.format {
            DataFormat::Synthetic => {
                if d.rows == 0 {
                    return bad("data.rows", "0 rows; generate at least 1".into());
                }
                if self.partition != Partitioner::Iid {
                    return bad(
                        "partition",
                        "synthetic data is already split by SOC; remove [partition]".into(),
                    );
                }
            }
            _ => {
                if d.train.is_none() {
                    return bad("data.train", "name the training file".into());
                }
                if d.test.is_empty() {
                    return bad("data.test", "list at least one test file".into());
                }
                if let Some(train) = &d.train
                    && d.test.contains(train)
                {
                    return bad(
                        "data.test",
                        format!(
                            "{train:?} is both the training and a test file; test on a file the models never train on"
                        ),
                    );
                }
            }
        }
        if d.format == DataFormat::Csv && d.schema.is_none() {
            return bad(
                "data.schema",
                "CSV data needs a schema file (see the README's CSV section)".into(),
            );
        }
        let assigned = match &self.partition {
            Partitioner::ByFamily { families } => Some(families),
            Partitioner::BenignByGroup { families, .. } if !families.is_empty() => Some(families),
            _ => None,
        };
        if let Some(families) = assigned
            && families.len() != self.federation.participants
        {
            return bad(
                "partition.families",
                format!(
                    "{} lists for {} participants; give one list per participant",
                    families.len(),
                    self.federation.participants
                ),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Scenario, ConfError> {
        let path = Path::new("s.toml");
        let s: Scenario = fedsoc_conf::parse(path, text)?;
        s.validate(path)?;
        Ok(s)
    }

    const MINIMAL: &str = r#"
name = "t"
[data]
format = "nsl-kdd"
train = "KDDTrain+"
test = ["KDDTest+"]
[federation]
participants = 4
rounds = 2
[[model]]
kind = "autoencoder"
hidden = [8]
"#;

    #[test]
    fn every_published_scenario_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut loaded = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(
                    !s.seeds.contains(&s.selection_seed)
                        || s.models.iter().all(|m| m.search.is_none())
                );
                loaded += 1;
            }
        }
        assert!(loaded >= 6, "{loaded} scenarios in {}", dir.display());
    }

    #[test]
    fn minimal_scenario_gets_defaults() {
        let s = parse(MINIMAL).unwrap();
        assert_eq!(s.seeds, [1]);
        assert_eq!(s.partition, Partitioner::Iid);
        assert!(s.federation.secure);
        assert_eq!(s.models[0].train_on(), TrainOn::Benign);
        assert_eq!(s.calibration.quantile, 0.99);
    }

    #[test]
    fn mistakes_name_the_field() {
        for (edit, field) in [
            (
                MINIMAL.replace("rounds = 2", "rounds = 0"),
                "federation.rounds",
            ),
            (
                MINIMAL.replace("participants = 4", "participants = 1"),
                "federation.participants",
            ),
            (
                MINIMAL.replace("hidden = [8]", "hidden = [0]"),
                "model[0].hidden",
            ),
            (
                MINIMAL.replace("hidden = [8]", "hidden = [8]\nloss = \"hinge\""),
                "model[0].loss",
            ),
            (MINIMAL.replace("test = [\"KDDTest+\"]", ""), "data.test"),
            (
                MINIMAL.replace("test = [\"KDDTest+\"]", "test = [\"KDDTrain+\"]"),
                "both the training and a test file",
            ),
            (
                MINIMAL
                    .replace(
                        "hidden = [8]",
                        "hidden = [8]\n[model.search]\nepochs = [1, 2]",
                    )
                    .replace("name = \"t\"", "name = \"t\"\nseeds = [0, 1]"),
                "selection_seed",
            ),
            (
                MINIMAL.replace("hidden = [8]", "hidden = [8]\n[model.search]\nepochs = [2]"),
                "model[0].search",
            ),
            (
                format!("{MINIMAL}\n[variants]\nfederated = false\npersonalized = true\n"),
                "variants.personalized",
            ),
            (
                MINIMAL.replace("format = \"nsl-kdd\"", "format = \"pcap\""),
                "data.format",
            ),
            (
                MINIMAL.replace("name = \"t\"", "name = \"t\"\nsedes = [1]"),
                "`sedes`",
            ),
            (
                format!("{MINIMAL}\n[partition]\nkind = \"by-family\"\nfamilies = [[\"DoS\"]]\n"),
                "partition.families",
            ),
        ] {
            let e = parse(&edit).unwrap_err().to_string();
            assert!(e.contains(field), "{field}: {e}");
        }
    }
}
