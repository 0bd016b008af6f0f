//! Writing a run's results: `summary.json` (per model, variant and test:
//! each figure's mean over seeds with its 95 % bootstrap interval, and
//! paired comparisons), `metrics.csv` (one row per trained model and test
//! set), `rounds.csv` (validation and test ROC-AUC per round), SVG plots
//! and a Markdown report that reads without the JSON.
//!
//! Intervals come from [`super::stats`]: each resample redraws the seeds
//! and the test rows, so they hold for another training run on another
//! draw of test traffic, not only for the seeds shown.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::run::{Chosen, Outcome, RunResults, Task, TestRowsOwned, Variant, run_jobs};
use super::stats::{
    Bootstrap, Estimate, Metric, OPERATING_FPRS, SeedScores, Subset, TestRows, novel_labels,
};
use crate::error::ExperimentError;
use crate::plot::{self, Series};

/// Where each threshold sits in a [`SeedScores`]: the calibrated one, one
/// per operating point, then the oracle's.
const CALIBRATED: usize = 0;
const ORACLE: usize = 1 + OPERATING_FPRS.len();
/// The operating point comparisons and headlines use: 1 % false alarms.
const HEADLINE_POINT: usize = 1;

/// Recall and false-alarm rate at one threshold, with intervals.
#[derive(Clone, Debug, Serialize)]
pub struct Rates {
    pub recall: Estimate,
    pub fpr: Estimate,
}

/// The detector at one operating point (a false-alarm budget on benign
/// validation rows).
#[derive(Clone, Debug, Serialize)]
pub struct PointSummary {
    pub target_fpr: f64,
    pub recall: Estimate,
    pub fpr: Estimate,
    pub recall_by_family: BTreeMap<String, Estimate>,
    /// Recall on attack labels present in the training rows…
    pub recall_seen: Estimate,
    /// …and on labels only in the test set (novel attacks).
    pub recall_novel: Estimate,
    /// Per attack label (at the 1 % point only).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub recall_by_label: BTreeMap<String, Estimate>,
}

/// One (model, variant, participant) on one test set, over seeds.
#[derive(Clone, Debug, Serialize)]
pub struct TestSummary {
    pub roc_auc: Estimate,
    /// Mean over seeds (no interval).
    pub pr_auc: f64,
    /// At the threshold calibrated at the scenario's quantile.
    pub calibrated: Rates,
    /// At [`OPERATING_FPRS`], thresholds from validation rows.
    pub operating_points: Vec<PointSummary>,
    /// At the matched false-alarm rate read off the test set's own labels:
    /// an oracle, for comparing rankings only.
    pub oracle: Rates,
    /// The round each seed kept (chosen on validation rows).
    pub selected_rounds: Vec<u32>,
    /// Mean validation ROC-AUC at the kept rounds.
    pub validation_auc: f64,
}

/// `summary.json`: model → variant → (participant →) test → figures.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub seeds: Vec<u64>,
    pub rounds: u32,
    pub secure_aggregation: bool,
    pub threshold_quantile: f64,
    pub oracle_fpr: f64,
    pub resamples: usize,
    pub tests: Vec<String>,
    /// Per test: attack labels never in the training rows.
    pub novel_labels: BTreeMap<String, BTreeSet<String>>,
    pub models: BTreeMap<String, ModelSummary>,
    pub comparisons: Vec<Comparison>,
    /// What searched settings each variant chose on validation rows.
    pub chosen: Vec<Chosen>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ModelSummary {
    pub federated: BTreeMap<String, TestSummary>,
    pub centralized: BTreeMap<String, TestSummary>,
    /// Participant → test → figures.
    pub local: BTreeMap<String, BTreeMap<String, TestSummary>>,
    pub personalized: BTreeMap<String, BTreeMap<String, TestSummary>>,
}

impl ModelSummary {
    fn slot(
        &mut self,
        variant: Variant,
        participant: Option<&str>,
    ) -> &mut BTreeMap<String, TestSummary> {
        let p = participant.unwrap_or_default().to_string();
        match variant {
            Variant::Federated => &mut self.federated,
            Variant::Centralized => &mut self.centralized,
            Variant::Local => self.local.entry(p).or_default(),
            Variant::Personalized => self.personalized.entry(p).or_default(),
        }
    }

    /// The figures of `label` ("federated", "local soc-1", …) on `test`.
    pub fn get(&self, label: &str, test: &str) -> Option<&TestSummary> {
        match label.split_once(' ') {
            Some(("local", p)) => self.local.get(p)?.get(test),
            Some(("personalized", p)) => self.personalized.get(p)?.get(test),
            _ if label == "federated" => self.federated.get(test),
            _ if label == "centralized" => self.centralized.get(test),
            _ => None,
        }
    }
}

/// `a − b` on one test set: ROC-AUC and the 1 % operating point, each
/// difference with its paired interval.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub model: String,
    pub test: String,
    pub a: String,
    pub b: String,
    pub roc_auc: Estimate,
    pub recall_at_1pct: Estimate,
    pub fpr_at_1pct: Estimate,
}

/// The seeds of one (model, variant, participant), in seed order.
struct Group<'a> {
    model: &'a str,
    variant: Variant,
    participant: Option<&'a str>,
    outcomes: Vec<&'a Outcome>,
}

impl Group<'_> {
    fn label(&self) -> String {
        match self.participant {
            Some(p) => format!("{} {p}", self.variant.name()),
            None => self.variant.name().to_string(),
        }
    }

    /// Whether this group is reported on `test`: a SOC's slice
    /// (`FILE@soc-N`) is reported for the shared models and that SOC's own.
    fn reports_on(&self, test: &str) -> bool {
        match (test.rsplit_once('@'), self.participant) {
            (Some((_, soc)), Some(p)) => soc == p,
            _ => true,
        }
    }

    fn seed_scores(&self, t: usize) -> Vec<SeedScores> {
        self.outcomes
            .iter()
            .map(|o| {
                let e = &o.evaluations[t];
                let mut thresholds = vec![e.threshold];
                thresholds.extend(e.operating_points.iter().map(|p| p.threshold));
                thresholds.push(e.matched.threshold);
                SeedScores::new(o.test_scores[t].clone(), thresholds)
            })
            .collect()
    }
}

fn groups(results: &RunResults) -> Vec<Group<'_>> {
    let mut out: Vec<Group<'_>> = Vec::new();
    for o in &results.outcomes {
        let found = out.iter_mut().find(|g| {
            g.model == o.model
                && g.variant == o.variant
                && g.participant == o.participant.as_deref()
        });
        match found {
            Some(g) => g.outcomes.push(o),
            None => out.push(Group {
                model: &o.model,
                variant: o.variant,
                participant: o.participant.as_deref(),
                outcomes: vec![o],
            }),
        }
    }
    out
}

/// What the report measures on one test set: its rows, families, the
/// labels seen in training and the novel ones.
struct TestSet<'a> {
    rows: TestRows<'a>,
    families: Vec<String>,
    labels: Vec<String>,
    seen: BTreeSet<String>,
    novel: BTreeSet<String>,
}

impl<'a> TestSet<'a> {
    fn new(
        owned: &'a TestRowsOwned,
        train_labels: &BTreeSet<String>,
    ) -> Result<Self, ExperimentError> {
        let rows = TestRows::new(&owned.attacks, &owned.families, &owned.labels)?;
        let attack = |i: &usize| owned.attacks[*i];
        let families: BTreeSet<String> = (0..owned.attacks.len())
            .filter(attack)
            .map(|i| owned.families[i].clone())
            .collect();
        let labels: BTreeSet<String> = (0..owned.attacks.len())
            .filter(attack)
            .map(|i| owned.labels[i].clone())
            .collect();
        let novel = novel_labels(
            train_labels.iter(),
            (0..owned.attacks.len())
                .filter(attack)
                .map(|i| owned.labels[i].as_str()),
        );
        let seen = labels.difference(&novel).cloned().collect();
        Ok(TestSet {
            rows,
            families: families.into_iter().collect(),
            labels: labels.into_iter().collect(),
            seen,
            novel,
        })
    }

    /// Every metric of a [`TestSummary`], in the order `summarize` reads.
    fn metrics(&self) -> Vec<Metric> {
        let mut m = vec![
            Metric::RocAuc,
            Metric::Recall { at: CALIBRATED },
            Metric::FalsePositiveRate { at: CALIBRATED },
            Metric::Recall { at: ORACLE },
            Metric::FalsePositiveRate { at: ORACLE },
        ];
        for k in 0..OPERATING_FPRS.len() {
            let at = 1 + k;
            m.push(Metric::Recall { at });
            m.push(Metric::FalsePositiveRate { at });
            for f in &self.families {
                m.push(Metric::SubsetRecall {
                    at,
                    rows: Subset::Family(f.clone()),
                });
            }
            m.push(Metric::SubsetRecall {
                at,
                rows: Subset::Labels(self.seen.clone()),
            });
            m.push(Metric::SubsetRecall {
                at,
                rows: Subset::Labels(self.novel.clone()),
            });
            if k == HEADLINE_POINT {
                for l in &self.labels {
                    m.push(Metric::SubsetRecall {
                        at,
                        rows: Subset::Label(l.clone()),
                    });
                }
            }
        }
        m
    }

    /// A [`TestSummary`] from the estimates of [`TestSet::metrics`].
    fn summarize(&self, group: &Group<'_>, t: usize, estimates: Vec<Estimate>) -> TestSummary {
        let mut e = estimates.into_iter();
        let mut next = || {
            e.next().unwrap_or(Estimate {
                mean: f64::NAN,
                low: f64::NAN,
                high: f64::NAN,
            })
        };
        let roc_auc = next();
        let calibrated = Rates {
            recall: next(),
            fpr: next(),
        };
        let oracle = Rates {
            recall: next(),
            fpr: next(),
        };
        let mut operating_points = Vec::new();
        for (k, &target_fpr) in OPERATING_FPRS.iter().enumerate() {
            let recall = next();
            let fpr = next();
            let recall_by_family = self.families.iter().map(|f| (f.clone(), next())).collect();
            let recall_seen = next();
            let recall_novel = next();
            let recall_by_label = if k == HEADLINE_POINT {
                self.labels.iter().map(|l| (l.clone(), next())).collect()
            } else {
                BTreeMap::new()
            };
            operating_points.push(PointSummary {
                target_fpr,
                recall,
                fpr,
                recall_by_family,
                recall_seen,
                recall_novel,
                recall_by_label,
            });
        }
        let n = group.outcomes.len().max(1) as f64;
        TestSummary {
            roc_auc,
            pr_auc: group
                .outcomes
                .iter()
                .map(|o| o.evaluations[t].pr_auc)
                .sum::<f64>()
                / n,
            calibrated,
            operating_points,
            oracle,
            selected_rounds: group.outcomes.iter().map(|o| o.selected_round).collect(),
            validation_auc: group
                .outcomes
                .iter()
                .map(|o| o.validation_auc())
                .sum::<f64>()
                / n,
        }
    }
}

/// The pairs compared on a test set: federated against centralized and
/// against each SOC alone, and each SOC's personalised model against the
/// federated one and against the SOC alone (on a SOC's slice, only that
/// SOC's).
fn pairs(groups: &[Group<'_>], model: &str, test: &str) -> Vec<(String, String)> {
    let has = |label: &str| {
        groups
            .iter()
            .any(|g| g.model == model && g.label() == label && g.reports_on(test))
    };
    let mut out = Vec::new();
    let mut add = |a: String, b: String| {
        if has(&a) && has(&b) {
            out.push((a, b));
        }
    };
    add("federated".into(), "centralized".into());
    let socs: BTreeSet<&str> = groups
        .iter()
        .filter(|g| g.model == model)
        .filter_map(|g| g.participant)
        .collect();
    for p in socs {
        add("federated".into(), format!("local {p}"));
        add(format!("personalized {p}"), "federated".into());
        add(format!("personalized {p}"), format!("local {p}"));
    }
    out
}

/// The summary of every model and variant, with intervals; the bootstrap
/// runs on `jobs` threads.
pub fn summary(results: &RunResults, jobs: usize) -> Result<Summary, ExperimentError> {
    let bootstrap = Bootstrap::default();
    let groups = groups(results);
    let sets: Vec<TestSet<'_>> = results
        .test_rows
        .iter()
        .map(|rows| TestSet::new(rows, &results.train_labels))
        .collect::<Result<_, _>>()?;
    // One task per (group, test) and per compared pair and test.
    let mut cells: Vec<(usize, usize)> = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        for (t, test) in results.tests.iter().enumerate() {
            if group.reports_on(test) && t < sets.len() {
                cells.push((g, t));
            }
        }
    }
    let (groups_ref, sets_ref) = (&groups, &sets);
    let work: Vec<Task<'_, TestSummary>> = cells
        .iter()
        .map(|&(g, t)| {
            Box::new(move || {
                let set = &sets_ref[t];
                let group = &groups_ref[g];
                let estimates =
                    bootstrap.estimates(&set.rows, &group.seed_scores(t), &set.metrics())?;
                Ok(set.summarize(group, t, estimates))
            }) as Task<'_, TestSummary>
        })
        .collect();
    let mut models: BTreeMap<String, ModelSummary> = BTreeMap::new();
    for (&(g, t), summary) in cells.iter().zip(run_jobs(jobs, work)) {
        let group = &groups[g];
        models
            .entry(group.model.to_string())
            .or_default()
            .slot(group.variant, group.participant)
            .insert(results.tests[t].clone(), summary?);
    }

    let model_names: Vec<&str> = {
        let mut v: Vec<&str> = Vec::new();
        for g in &groups {
            if !v.contains(&g.model) {
                v.push(g.model);
            }
        }
        v
    };
    let mut compared: Vec<(String, usize, String, String)> = Vec::new();
    for model in &model_names {
        for (t, test) in results.tests.iter().enumerate() {
            for (a, b) in pairs(&groups, model, test) {
                compared.push((model.to_string(), t, a, b));
            }
        }
    }
    let find = |model: &str, label: &str| {
        groups
            .iter()
            .find(|g| g.model == model && g.label() == label)
    };
    let work: Vec<Task<'_, Comparison>> = compared
        .iter()
        .map(|(model, t, a, b)| {
            let (ga, gb) = (find(model, a), find(model, b));
            let test = results.tests[*t].clone();
            let set = &sets[*t];
            Box::new(move || {
                let (Some(ga), Some(gb)) = (ga, gb) else {
                    return Err(ExperimentError::Setup(format!("no outcomes of {a} or {b}")));
                };
                let (sa, sb) = (ga.seed_scores(*t), gb.seed_scores(*t));
                let at = 1 + HEADLINE_POINT;
                let diff = |metric: Metric| bootstrap.paired(&set.rows, &sa, &sb, &metric);
                Ok(Comparison {
                    model: model.clone(),
                    test,
                    a: a.clone(),
                    b: b.clone(),
                    roc_auc: diff(Metric::RocAuc)?,
                    recall_at_1pct: diff(Metric::Recall { at })?,
                    fpr_at_1pct: diff(Metric::FalsePositiveRate { at })?,
                })
            }) as Task<'_, Comparison>
        })
        .collect();
    let comparisons = run_jobs(jobs, work).into_iter().collect::<Result<_, _>>()?;

    let s = &results.scenario;
    Ok(Summary {
        scenario: s.name.clone(),
        seeds: s.seeds.clone(),
        rounds: s.federation.rounds,
        secure_aggregation: s.federation.secure,
        threshold_quantile: s.calibration.quantile,
        oracle_fpr: s.calibration.matched_fpr,
        resamples: bootstrap.resamples,
        tests: results.tests.clone(),
        novel_labels: results
            .tests
            .iter()
            .zip(&sets)
            .map(|(name, set)| (name.clone(), set.novel.clone()))
            .collect(),
        models,
        comparisons,
        chosen: results.chosen.clone(),
    })
}

fn write(path: &Path, text: &str) -> Result<(), ExperimentError> {
    std::fs::write(path, text).map_err(|e| ExperimentError::io(path, e))
}

fn plot_err(e: plot::PlotError) -> ExperimentError {
    ExperimentError::Setup(format!("plot: {e}"))
}

/// The attack families of every test set, sorted.
fn all_families(results: &RunResults) -> Vec<String> {
    let mut f: Vec<String> = results
        .outcomes
        .iter()
        .flat_map(|o| {
            o.evaluations
                .iter()
                .flat_map(|e| e.recall_by_family.keys().cloned())
        })
        .collect();
    f.sort();
    f.dedup();
    f
}

fn variant_label(o: &Outcome) -> String {
    match &o.participant {
        Some(p) => format!("{} {p}", o.variant.name()),
        None => o.variant.name().to_string(),
    }
}

/// Writes every file of the report into `out`, the bootstrap on `jobs`
/// threads; returns the summary.
pub fn write_all(
    results: &RunResults,
    out: &Path,
    jobs: usize,
) -> Result<Summary, ExperimentError> {
    std::fs::create_dir_all(out).map_err(|e| ExperimentError::io(out, e))?;
    let summary = summary(results, jobs)?;
    let json = serde_json::to_string_pretty(&summary)
        .map_err(|e| ExperimentError::Setup(format!("summary to JSON: {e}")))?;
    write(&out.join("summary.json"), &json)?;
    let raw = serde_json::to_string_pretty(results)
        .map_err(|e| ExperimentError::Setup(format!("results to JSON: {e}")))?;
    write(&out.join("results.json"), &raw)?;
    write(&out.join("metrics.csv"), &metrics_csv(results))?;
    write(&out.join("rounds.csv"), &rounds_csv(results))?;
    let figures = plots(results, &summary, out)?;
    write(
        &out.join("report.md"),
        &markdown(results, &summary, &figures),
    )?;
    Ok(summary)
}

fn metrics_csv(results: &RunResults) -> String {
    let families = all_families(results);
    let mut s = String::from(
        "seed,model,variant,participant,test,selected_round,roc_auc,pr_auc,threshold,recall,false_positive_rate",
    );
    for fpr in OPERATING_FPRS {
        let _ = write!(s, ",recall_at_{0}pct,fpr_at_{0}pct", fpr * 100.0);
    }
    s.push_str(",oracle_fpr,oracle_recall");
    let headline = OPERATING_FPRS[HEADLINE_POINT] * 100.0;
    for f in &families {
        let _ = write!(s, ",recall_{f}_at_{headline}pct");
    }
    s.push('\n');
    for o in &results.outcomes {
        for e in &o.evaluations {
            let _ = write!(
                s,
                "{},{},{},{},{},{},{:.6},{:.6},{:.6e},{:.6},{:.6}",
                o.seed,
                o.model,
                o.variant.name(),
                o.participant.as_deref().unwrap_or(""),
                e.test,
                o.selected_round,
                e.roc_auc,
                e.pr_auc,
                e.threshold,
                e.recall,
                e.false_positive_rate,
            );
            for p in &e.operating_points {
                let _ = write!(s, ",{:.6},{:.6}", p.recall, p.fpr);
            }
            let _ = write!(s, ",{:.6},{:.6}", e.matched.fpr, e.matched.recall);
            let at = e.operating_points.get(HEADLINE_POINT);
            for f in &families {
                match at.and_then(|p| p.recall_by_family.get(f)) {
                    Some(v) => {
                        let _ = write!(s, ",{v:.6}");
                    }
                    None => s.push(','),
                }
            }
            s.push('\n');
        }
    }
    s
}

fn rounds_csv(results: &RunResults) -> String {
    let mut s = format!(
        "seed,model,variant,participant,round,validation_roc_auc,test_roc_auc_{}_not_used_for_selection\n",
        results.tests.first().map(String::as_str).unwrap_or("test")
    );
    for o in &results.outcomes {
        let first = u32::from(o.variant != Variant::Personalized);
        for (r, val) in o.validation_auc_per_round.iter().enumerate() {
            let test = o.auc_per_round.get(r).copied().unwrap_or(f64::NAN);
            let _ = writeln!(
                s,
                "{},{},{},{},{},{:.6},{:.6}",
                o.seed,
                o.model,
                o.variant.name(),
                o.participant.as_deref().unwrap_or(""),
                r as u32 + first,
                val,
                test
            );
        }
    }
    s
}

/// File-name-safe form of a test or model name.
fn slug(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else if c == '+' {
                'p'
            } else {
                '-'
            }
        })
        .collect();
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// Writes the plots (first seed for curves; seed means for heat maps) of
/// the whole test sets; returns `(caption, file)` pairs.
fn plots(
    results: &RunResults,
    summary: &Summary,
    out: &Path,
) -> Result<Vec<(String, String)>, ExperimentError> {
    let mut figures = Vec::new();
    let first_seed = results.scenario.seeds.first().copied().unwrap_or(0);
    let families = all_families(results);
    let headline = OPERATING_FPRS[HEADLINE_POINT];
    for (model, ms) in &summary.models {
        let of_model: Vec<&Outcome> = results
            .outcomes
            .iter()
            .filter(|o| &o.model == model && o.seed == first_seed)
            .collect();
        for (t, test) in results.tests.iter().enumerate() {
            if test.contains('@') {
                continue;
            }
            let series: Vec<Series> = of_model
                .iter()
                .map(|o| {
                    let e = &o.evaluations[t];
                    Series::new(
                        format!("{} (AUC {:.3})", variant_label(o), e.roc_auc),
                        e.roc_curve.clone(),
                    )
                })
                .collect();
            let file = format!("roc-{}-{}.svg", slug(model), slug(test));
            plot::roc_curves(
                &out.join(&file),
                &format!("ROC, {model}, {test} (seed {first_seed})"),
                &series,
            )
            .map_err(plot_err)?;
            figures.push((format!("ROC curves of the {model} on {test}"), file));

            let mut rows = Vec::new();
            let mut values = Vec::new();
            let labels = std::iter::once("federated".to_string())
                .chain(std::iter::once("centralized".to_string()))
                .chain(ms.local.keys().map(|p| format!("local {p}")))
                .chain(ms.personalized.keys().map(|p| format!("personalized {p}")));
            for label in labels {
                let Some(ts) = ms.get(&label, test) else {
                    continue;
                };
                rows.push(label);
                values.push(
                    families
                        .iter()
                        .map(|f| {
                            ts.operating_points
                                .get(HEADLINE_POINT)
                                .and_then(|p| p.recall_by_family.get(f))
                                .map(|e| e.mean)
                        })
                        .collect::<Vec<_>>(),
                );
            }
            let file = format!("recall-{}-{}.svg", slug(model), slug(test));
            plot::heatmap(
                &out.join(&file),
                &format!(
                    "Recall per attack family at {}% false alarms (validation), {model}, {test}",
                    headline * 100.0
                ),
                &rows,
                &families,
                &values,
            )
            .map_err(plot_err)?;
            figures.push((
                format!("Recall per attack family, {model}, {test} (mean over seeds)"),
                file,
            ));
        }
        let curve = |o: &Outcome, values: &[f64]| {
            let first = u32::from(o.variant != Variant::Personalized);
            values
                .iter()
                .enumerate()
                .map(|(r, a)| (f64::from(r as u32 + first), *a))
                .collect::<Vec<_>>()
        };
        let trained: Vec<&&Outcome> = of_model
            .iter()
            .filter(|o| !o.validation_auc_per_round.is_empty())
            .collect();
        if !trained.is_empty() {
            let series: Vec<Series> = trained
                .iter()
                .map(|o| Series::new(variant_label(o), curve(o, &o.validation_auc_per_round)))
                .collect();
            let file = format!("validation-auc-per-round-{}.svg", slug(model));
            plot::lines(
                &out.join(&file),
                &format!("Validation ROC-AUC per round, {model} (seed {first_seed}): the kept round is the best"),
                "round",
                "ROC-AUC",
                false,
                &series,
            )
            .map_err(plot_err)?;
            figures.push((format!("Validation ROC-AUC per round of the {model}"), file));
            let series: Vec<Series> = trained
                .iter()
                .filter(|o| !o.auc_per_round.is_empty())
                .map(|o| Series::new(variant_label(o), curve(o, &o.auc_per_round)))
                .collect();
            let file = format!("auc-per-round-{}.svg", slug(model));
            let test = results.tests.first().cloned().unwrap_or_default();
            plot::lines(
                &out.join(&file),
                &format!("Test ROC-AUC per round, {model}, {test} (seed {first_seed}; not used for selection)"),
                "round",
                "ROC-AUC",
                false,
                &series,
            )
            .map_err(plot_err)?;
            figures.push((
                format!(
                    "Test ROC-AUC per round of the {model} (for the record; never used to choose)"
                ),
                file,
            ));
        }
    }
    Ok(figures)
}

/// "0.964 [0.961, 0.967]", or "0.964" with one seed and no spread.
fn show(e: &Estimate) -> String {
    if e.mean.is_nan() {
        "–".into()
    } else {
        format!("{:.3} [{:.3}, {:.3}]", e.mean, e.low, e.high)
    }
}

/// A difference: "+0.012 [+0.004, +0.020]", bold when the interval
/// excludes 0.
fn show_diff(e: &Estimate) -> String {
    if e.mean.is_nan() {
        return "–".into();
    }
    let text = format!("{:+.3} [{:+.3}, {:+.3}]", e.mean, e.low, e.high);
    if e.excludes_zero() {
        format!("**{text}**")
    } else {
        text
    }
}

/// Row labels in report order: shared models, then per SOC.
fn row_labels(ms: &ModelSummary, test: &str) -> Vec<String> {
    let mut out = vec!["federated".to_string(), "centralized".to_string()];
    out.extend(ms.local.keys().map(|p| format!("local {p}")));
    out.extend(ms.personalized.keys().map(|p| format!("personalized {p}")));
    out.retain(|l| ms.get(l, test).is_some());
    out
}

fn markdown(results: &RunResults, summary: &Summary, figures: &[(String, String)]) -> String {
    let s = &results.scenario;
    let mut md = format!("# Experiment: {}\n\n{}\n\n", s.name, s.description.trim());
    let pct = |f: f64| format!("{}%", f * 100.0);
    md.push_str("## How it was run\n\n");
    let _ = writeln!(
        md,
        "- Seeds {:?} ({} run{}); {} participants; {} rounds; aggregation: {}.",
        s.seeds,
        s.seeds.len(),
        if s.seeds.len() == 1 { "" } else { "s" },
        s.federation.participants,
        s.federation.rounds,
        if s.federation.secure {
            "secure (SecAgg+)"
        } else {
            "plaintext FedAvg"
        },
    );
    let _ = writeln!(
        md,
        "- Validation: {} of each participant's rows of every family, held out before training (never trained on, never tested on).",
        pct(s.calibration.validation_fraction)
    );
    md.push_str("- Chosen on validation rows only: the round each training keeps (the one whose model ranks its validation rows best by ROC-AUC; the rounds kept are listed per table), every threshold, and the fusion's calibration. The test sets were scored once, at the end.\n");
    let _ = writeln!(
        md,
        "- Operating points: at most {} of benign validation rows flagged; the test false-alarm rate each gives is reported next to its recall. The calibrated threshold is the {}th percentile of benign validation scores (a securely summed histogram for the federation).",
        OPERATING_FPRS.map(pct).join(", "),
        s.calibration.quantile * 100.0
    );
    let _ = writeln!(
        md,
        "- Intervals: mean over seeds with a 95 % bootstrap interval ({} resamples, each redrawing the seeds and the test rows within benign and attack rows); differences are paired (same seeds, same rows) and **bold** where the interval excludes 0.",
        summary.resamples
    );
    let _ = writeln!(
        md,
        "- Oracle: recall at {} false alarms read off each test set's own labels, for comparing rankings only; no deployment can set a threshold that way.",
        pct(s.calibration.matched_fpr)
    );
    if s.variants.personalized {
        let _ = writeln!(
            md,
            "- Personalised: the federated model fine-tuned by each SOC for up to {} round-equivalents on its own rows (the federated model itself included, as round 0; the SOC's validation rows choose), its threshold set on its own validation rows.",
            s.variants.personal_rounds
        );
    }
    if !results.chosen.is_empty() {
        md.push_str("\n### Settings searched on validation\n\n");
        let _ = writeln!(
            md,
            "Each candidate was trained on selection seed {} (not a reported seed), scored on validation rows only; each variant keeps its best (mean validation ROC-AUC; over the SOCs for local).\n",
            s.selection_seed
        );
        for c in &results.chosen {
            let _ = writeln!(
                md,
                "**{}**: local chose {}; federated chose {}; centralized chose {}.\n\n| settings | local | federated | centralized |\n|---|---|---|---|",
                c.model,
                c.local.settings(),
                c.federated.settings(),
                c.centralized.settings()
            );
            for (settings, l, f, z) in &c.candidates {
                let _ = writeln!(md, "| {settings} | {l:.4} | {f:.4} | {z:.4} |");
            }
            md.push('\n');
        }
    }
    md.push_str("\n## Data\n\n");
    for r in &results.read_reports {
        let _ = writeln!(md, "- {}", r.to_string().replace('\n', "\n  "));
    }
    md.push_str("\n| participant | training rows by family |\n|---|---|\n");
    for (p, fams) in results
        .participants
        .iter()
        .zip(&results.participant_families)
    {
        let list: Vec<String> = fams.iter().map(|(f, n)| format!("{f} {n}")).collect();
        let _ = writeln!(md, "| {p} | {} |", list.join(", "));
    }
    for (test, novel) in &summary.novel_labels {
        if !novel.is_empty() && !test.contains('@') {
            let list: Vec<&str> = novel.iter().map(String::as_str).collect();
            let _ = writeln!(
                md,
                "\nAttack labels in {test} never seen in training (novel): {}.",
                list.join(", ")
            );
        }
    }
    let headline = OPERATING_FPRS[HEADLINE_POINT];
    for (model, ms) in &summary.models {
        for test in &summary.tests {
            let rows = row_labels(ms, test);
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(md, "\n## {model} on {test}\n");
            let points: String = OPERATING_FPRS
                .iter()
                .map(|f| format!(" recall @{0} | FPR @{0} |", pct(*f)))
                .collect();
            let rule: String = OPERATING_FPRS.iter().map(|_| "---|---|").collect();
            let _ = writeln!(
                md,
                "| variant | ROC-AUC | PR-AUC |{points} oracle recall @{} | rounds kept |\n|---|---|---|{rule}---|---|",
                pct(s.calibration.matched_fpr)
            );
            for label in &rows {
                let Some(ts) = ms.get(label, test) else {
                    continue;
                };
                let _ = write!(md, "| {label} | {} | {:.3} |", show(&ts.roc_auc), ts.pr_auc);
                for p in &ts.operating_points {
                    let _ = write!(md, " {} | {} |", show(&p.recall), show(&p.fpr));
                }
                // Fused detectors train nothing: no round to keep.
                let rounds = if ts.validation_auc.is_nan() {
                    "–".to_string()
                } else {
                    let r: Vec<String> = ts.selected_rounds.iter().map(u32::to_string).collect();
                    r.join(" ")
                };
                let _ = writeln!(md, " {} | {rounds} |", show(&ts.oracle.recall));
            }
            // Families and seen/novel labels at the headline point.
            let families: Vec<String> = rows
                .iter()
                .filter_map(|l| ms.get(l, test))
                .flat_map(|ts| {
                    ts.operating_points
                        .get(HEADLINE_POINT)
                        .map(|p| p.recall_by_family.keys().cloned().collect::<Vec<_>>())
                        .unwrap_or_default()
                })
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let header: String = families.iter().map(|f| format!(" {f} |")).collect();
            let rule: String = families.iter().map(|_| "---|").collect();
            let _ = writeln!(
                md,
                "\nRecall at {} false alarms (validation threshold), per attack family and for labels seen in training or novel:\n\n| variant |{header} seen labels | novel labels |\n|---|{rule}---|---|",
                pct(headline)
            );
            for label in &rows {
                let Some(p) = ms
                    .get(label, test)
                    .and_then(|ts| ts.operating_points.get(HEADLINE_POINT))
                else {
                    continue;
                };
                let _ = write!(md, "| {label} |");
                for f in &families {
                    let v = p.recall_by_family.get(f).map_or("–".into(), show);
                    let _ = write!(md, " {v} |");
                }
                let _ = writeln!(
                    md,
                    " {} | {} |",
                    show(&p.recall_seen),
                    show(&p.recall_novel)
                );
            }
            let compared: Vec<&Comparison> = summary
                .comparisons
                .iter()
                .filter(|c| &c.model == model && &c.test == test)
                .collect();
            if !compared.is_empty() {
                let _ = writeln!(
                    md,
                    "\nPaired differences (a − b):\n\n| a − b | ROC-AUC | recall @{0} | FPR @{0} |\n|---|---|---|---|",
                    pct(headline)
                );
                for c in compared {
                    let _ = writeln!(
                        md,
                        "| {} − {} | {} | {} | {} |",
                        c.a,
                        c.b,
                        show_diff(&c.roc_auc),
                        show_diff(&c.recall_at_1pct),
                        show_diff(&c.fpr_at_1pct)
                    );
                }
            }
        }
    }
    md.push_str(&fusion_section(summary));
    md.push_str("\n## Figures\n\n");
    for (caption, file) in figures {
        let _ = writeln!(md, "- [{caption}]({file})\n\n  ![{caption}]({file})\n");
    }
    md.push_str("\nFiles: `summary.json` (every figure above with its interval, and the comparisons), `metrics.csv` (one row per trained model and test set), `rounds.csv` (validation and test ROC-AUC per round), `results.json` (everything per seed).\n");
    md
}

/// The fusion table: each fused detector next to the autoencoder and the
/// classifier alone, per shared variant and whole test set, and where it
/// falls short of the better single model.
fn fusion_section(summary: &Summary) -> String {
    let fused: Vec<&String> = summary.models.keys().filter(|m| m.contains('+')).collect();
    if fused.is_empty() {
        return String::new();
    }
    let pct = |f: f64| format!("{}%", f * 100.0);
    let mut md = String::from(
        "\n## Fusion\n\nThe autoencoder and the classifier on one scale: each score becomes its upper-tail p-value among the variant's benign validation scores (exponential tail beyond the top 1 %), fused by min-p (Šidák) or Fisher's method. A fused detector is meant to be at least as good as the better single model; cells where it is not (mean below the better one's) are marked ✗.\n",
    );
    for test in summary.tests.iter().filter(|t| !t.contains('@')) {
        for variant in ["federated", "centralized"] {
            let singles: Vec<(&str, &TestSummary)> = summary
                .models
                .iter()
                .filter(|(m, _)| !m.contains('+'))
                .filter_map(|(m, ms)| ms.get(variant, test).map(|t| (m.as_str(), t)))
                .collect();
            if singles.len() < 2 {
                continue;
            }
            let points: String = OPERATING_FPRS
                .iter()
                .map(|f| format!(" recall @{} |", pct(*f)))
                .collect();
            let rule: String = OPERATING_FPRS.iter().map(|_| "---|").collect();
            let _ = writeln!(
                md,
                "\n### {variant} on {test}\n\n| detector | ROC-AUC |{points}\n|---|---|{rule}"
            );
            let best = |f: &dyn Fn(&TestSummary) -> f64| {
                singles
                    .iter()
                    .map(|(_, t)| f(t))
                    .fold(f64::NEG_INFINITY, f64::max)
            };
            for (m, t) in &singles {
                let _ = write!(md, "| {m} | {} |", show(&t.roc_auc));
                for p in &t.operating_points {
                    let _ = write!(md, " {} |", show(&p.recall));
                }
                md.push('\n');
            }
            for m in &fused {
                let Some(t) = summary.models[*m].get(variant, test) else {
                    continue;
                };
                let mark =
                    |value: f64, better: f64| if value + 1e-12 < better { " ✗" } else { "" };
                let _ = write!(
                    md,
                    "| **{m}** | {}{} |",
                    show(&t.roc_auc),
                    mark(t.roc_auc.mean, best(&|s| s.roc_auc.mean))
                );
                for (k, p) in t.operating_points.iter().enumerate() {
                    let better = best(&|s| {
                        s.operating_points
                            .get(k)
                            .map_or(f64::NAN, |q| q.recall.mean)
                    });
                    let _ = write!(md, " {}{} |", show(&p.recall), mark(p.recall.mean, better));
                }
                md.push('\n');
            }
        }
    }
    md
}
