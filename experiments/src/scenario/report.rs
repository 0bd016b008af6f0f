//! Writing a run's results: `summary.json` (per model and variant, mean,
//! spread and every seed's value), `metrics.csv` (one row per trained
//! model and test set), `rounds.csv` (ROC-AUC per round), SVG plots and a
//! Markdown report that reads without the JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::run::{Outcome, RunResults, Variant};
use crate::error::ExperimentError;
use crate::plot::{self, Series};

/// Mean, standard deviation and each seed's value.
#[derive(Clone, Debug, Serialize)]
pub struct Stat {
    pub mean: f64,
    pub std: f64,
    pub runs: Vec<f64>,
}

impl Stat {
    fn of(runs: Vec<f64>) -> Stat {
        let n = runs.len().max(1) as f64;
        let mean = runs.iter().sum::<f64>() / n;
        let var = runs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        Stat {
            mean,
            std: var.sqrt(),
            runs,
        }
    }

    fn show(&self) -> String {
        if self.runs.len() > 1 {
            format!("{:.3} ± {:.3}", self.mean, self.std)
        } else {
            format!("{:.3}", self.mean)
        }
    }
}

/// Metrics of one (model, variant, participant) on one test set, over seeds.
#[derive(Clone, Debug, Serialize)]
pub struct TestSummary {
    pub roc_auc: Stat,
    pub pr_auc: Stat,
    pub f1: Stat,
    pub precision: Stat,
    pub recall: Stat,
    pub false_positive_rate: Stat,
    pub recall_by_family: BTreeMap<String, Stat>,
    /// At the matched false-alarm rate.
    pub matched_recall: Stat,
    pub matched_recall_by_family: BTreeMap<String, Stat>,
}

/// `summary.json`: model → variant → (participant →) test → metrics.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub seeds: Vec<u64>,
    pub rounds: u32,
    pub secure_aggregation: bool,
    pub matched_fpr: f64,
    pub threshold_quantile: f64,
    pub tests: Vec<String>,
    pub models: BTreeMap<String, ModelSummary>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ModelSummary {
    pub federated: BTreeMap<String, TestSummary>,
    pub centralized: BTreeMap<String, TestSummary>,
    /// Participant → test → metrics.
    pub local: BTreeMap<String, BTreeMap<String, TestSummary>>,
}

fn summarize(outcomes: &[&Outcome], test: usize) -> TestSummary {
    let stat = |f: &dyn Fn(&Outcome) -> f64| Stat::of(outcomes.iter().map(|o| f(o)).collect());
    let families: Vec<String> = outcomes
        .first()
        .map(|o| {
            o.evaluations[test]
                .recall_by_family
                .keys()
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let by_family = |matched: bool| -> BTreeMap<String, Stat> {
        families
            .iter()
            .map(|f| {
                let s = stat(&|o: &Outcome| {
                    let e = &o.evaluations[test];
                    let map = if matched {
                        &e.matched.recall_by_family
                    } else {
                        &e.recall_by_family
                    };
                    map.get(f).copied().unwrap_or(f64::NAN)
                });
                (f.clone(), s)
            })
            .collect()
    };
    TestSummary {
        roc_auc: stat(&|o| o.evaluations[test].roc_auc),
        pr_auc: stat(&|o| o.evaluations[test].pr_auc),
        f1: stat(&|o| o.evaluations[test].f1),
        precision: stat(&|o| o.evaluations[test].precision),
        recall: stat(&|o| o.evaluations[test].recall),
        false_positive_rate: stat(&|o| o.evaluations[test].false_positive_rate),
        recall_by_family: by_family(false),
        matched_recall: stat(&|o| o.evaluations[test].matched.recall),
        matched_recall_by_family: by_family(true),
    }
}

/// The summary of every model and variant.
pub fn summary(results: &RunResults) -> Summary {
    let mut models = BTreeMap::new();
    let model_names: Vec<String> = {
        let mut v: Vec<String> = Vec::new();
        for o in &results.outcomes {
            if !v.contains(&o.model) {
                v.push(o.model.clone());
            }
        }
        v
    };
    for model in &model_names {
        let pick = |variant: Variant, participant: Option<&str>| -> Vec<&Outcome> {
            results
                .outcomes
                .iter()
                .filter(|o| {
                    &o.model == model
                        && o.variant == variant
                        && o.participant.as_deref() == participant
                })
                .collect()
        };
        let per_test = |outs: Vec<&Outcome>| -> BTreeMap<String, TestSummary> {
            if outs.is_empty() {
                return BTreeMap::new();
            }
            results
                .tests
                .iter()
                .enumerate()
                .map(|(t, name)| (name.clone(), summarize(&outs, t)))
                .collect()
        };
        let local = results
            .participants
            .iter()
            .map(|p| (p.clone(), per_test(pick(Variant::Local, Some(p)))))
            .filter(|(_, m)| !m.is_empty())
            .collect();
        models.insert(
            model.clone(),
            ModelSummary {
                federated: per_test(pick(Variant::Federated, None)),
                centralized: per_test(pick(Variant::Centralized, None)),
                local,
            },
        );
    }
    let s = &results.scenario;
    Summary {
        scenario: s.name.clone(),
        seeds: s.seeds.clone(),
        rounds: s.federation.rounds,
        secure_aggregation: s.federation.secure,
        matched_fpr: s.calibration.matched_fpr,
        threshold_quantile: s.calibration.quantile,
        tests: results.tests.clone(),
        models,
    }
}

fn write(path: &Path, text: &str) -> Result<(), ExperimentError> {
    std::fs::write(path, text).map_err(|e| ExperimentError::io(path, e))
}

fn plot_err(e: plot::PlotError) -> ExperimentError {
    ExperimentError::Setup(format!("plot: {e}"))
}

/// The families that appear in any evaluation, sorted.
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
        Some(p) => format!("local {p}"),
        None => o.variant.name().to_string(),
    }
}

/// Writes every file of the report into `out`; returns the summary.
pub fn write_all(results: &RunResults, out: &Path) -> Result<Summary, ExperimentError> {
    std::fs::create_dir_all(out).map_err(|e| ExperimentError::io(out, e))?;
    let summary = summary(results);
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
        "seed,model,variant,participant,test,roc_auc,pr_auc,threshold,precision,recall,f1,false_positive_rate,matched_fpr,matched_recall",
    );
    for f in &families {
        let _ = write!(s, ",recall_{f}");
    }
    for f in &families {
        let _ = write!(s, ",matched_recall_{f}");
    }
    s.push('\n');
    for o in &results.outcomes {
        for e in &o.evaluations {
            let _ = write!(
                s,
                "{},{},{},{},{},{:.6},{:.6},{:.6e},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6}",
                o.seed,
                o.model,
                o.variant.name(),
                o.participant.as_deref().unwrap_or(""),
                e.test,
                e.roc_auc,
                e.pr_auc,
                e.threshold,
                e.precision,
                e.recall,
                e.f1,
                e.false_positive_rate,
                e.matched.fpr,
                e.matched.recall
            );
            for map in [&e.recall_by_family, &e.matched.recall_by_family] {
                for f in &families {
                    match map.get(f) {
                        Some(v) => {
                            let _ = write!(s, ",{v:.6}");
                        }
                        None => s.push(','),
                    }
                }
            }
            s.push('\n');
        }
    }
    s
}

fn rounds_csv(results: &RunResults) -> String {
    let mut s = format!(
        "seed,model,variant,participant,round,roc_auc_{}\n",
        results.tests.first().map(String::as_str).unwrap_or("test")
    );
    for o in &results.outcomes {
        for (r, auc) in o.auc_per_round.iter().enumerate() {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{:.6}",
                o.seed,
                o.model,
                o.variant.name(),
                o.participant.as_deref().unwrap_or(""),
                r + 1,
                auc
            );
        }
    }
    s
}

/// File-name-safe form of a test or model name.
fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else if c == '+' {
                'p'
            } else {
                '-'
            }
        })
        .collect()
}

/// Writes the plots (first seed for curves; seed means for heat maps);
/// returns `(caption, file)` pairs.
fn plots(
    results: &RunResults,
    summary: &Summary,
    out: &Path,
) -> Result<Vec<(String, String)>, ExperimentError> {
    let mut figures = Vec::new();
    let first_seed = results.scenario.seeds.first().copied().unwrap_or(0);
    let families = all_families(results);
    for (model, ms) in &summary.models {
        let of_model: Vec<&Outcome> = results
            .outcomes
            .iter()
            .filter(|o| &o.model == model && o.seed == first_seed)
            .collect();
        for (t, test) in results.tests.iter().enumerate() {
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
            let mut add = |label: String, ts: Option<&super::report::TestSummary>| {
                rows.push(label);
                values.push(
                    families
                        .iter()
                        .map(|f| {
                            ts.and_then(|ts| ts.matched_recall_by_family.get(f))
                                .map(|s| s.mean)
                        })
                        .collect::<Vec<_>>(),
                );
            };
            for (p, per_test) in &ms.local {
                add(format!("local {p}"), per_test.get(test));
            }
            add("federated".into(), ms.federated.get(test));
            add("centralized".into(), ms.centralized.get(test));
            let file = format!("recall-{}-{}.svg", slug(model), slug(test));
            plot::heatmap(
                &out.join(&file),
                &format!(
                    "Recall per attack family at {:.0}% false alarms, {model}, {test}",
                    summary.matched_fpr * 100.0
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
        let series: Vec<Series> = of_model
            .iter()
            .filter(|o| !o.auc_per_round.is_empty())
            .map(|o| {
                Series::new(
                    variant_label(o),
                    o.auc_per_round
                        .iter()
                        .enumerate()
                        .map(|(r, a)| ((r + 1) as f64, *a))
                        .collect(),
                )
            })
            .collect();
        if !series.is_empty() {
            let file = format!("auc-per-round-{}.svg", slug(model));
            let test = results.tests.first().cloned().unwrap_or_default();
            plot::lines(
                &out.join(&file),
                &format!("ROC-AUC per round, {model}, {test} (seed {first_seed})"),
                "round",
                "ROC-AUC",
                false,
                &series,
            )
            .map_err(plot_err)?;
            figures.push((format!("ROC-AUC per round of the {model}"), file));
        }
    }
    Ok(figures)
}

fn markdown(results: &RunResults, summary: &Summary, figures: &[(String, String)]) -> String {
    let s = &results.scenario;
    let mut md = format!("# Experiment: {}\n\n{}\n\n", s.name, s.description.trim());
    let _ = writeln!(
        md,
        "Seeds {:?}; {} participants; {} rounds; aggregation: {}; threshold: the {:.1}th percentile of benign validation scores (securely summed histogram for the federation); matched comparison at {:.1}% false alarms on each test set.\n",
        s.seeds,
        s.federation.participants,
        s.federation.rounds,
        if s.federation.secure {
            "secure (SecAgg+)"
        } else {
            "plaintext FedAvg"
        },
        s.calibration.quantile * 100.0,
        s.calibration.matched_fpr * 100.0
    );
    md.push_str("## Data\n\n");
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
    let families: Vec<String> = all_families(results);
    md.push_str("\n## Overview\n\nROC-AUC, mean over seeds (local-only: the mean of the participants' means).\n\n| model | test | local-only | federated | centralized |\n|---|---|---|---|---|\n");
    for (model, ms) in &summary.models {
        for test in &summary.tests {
            let locals: Vec<f64> = ms
                .local
                .values()
                .filter_map(|t| t.get(test).map(|t| t.roc_auc.mean))
                .collect();
            let local = if locals.is_empty() {
                "–".to_string()
            } else {
                format!("{:.3}", locals.iter().sum::<f64>() / locals.len() as f64)
            };
            let show = |t: Option<&TestSummary>| t.map_or("–".to_string(), |t| t.roc_auc.show());
            let _ = writeln!(
                md,
                "| {model} | {test} | {local} | **{}** | {} |",
                show(ms.federated.get(test)),
                show(ms.centralized.get(test))
            );
        }
    }
    for (model, ms) in &summary.models {
        for test in &summary.tests {
            let _ = writeln!(md, "\n## {model} on {test}\n");
            let rows: Vec<(String, &TestSummary)> = ms
                .local
                .iter()
                .filter_map(|(p, per_test)| per_test.get(test).map(|t| (format!("local {p}"), t)))
                .chain(
                    ms.federated
                        .get(test)
                        .map(|t| ("**federated**".to_string(), t)),
                )
                .chain(
                    ms.centralized
                        .get(test)
                        .map(|t| ("centralized".to_string(), t)),
                )
                .collect();
            let family_header: String = families.iter().map(|f| format!(" {f} |")).collect();
            let family_rule: String = families.iter().map(|_| "---|").collect();
            let _ = writeln!(
                md,
                "At the calibrated threshold:\n\n| variant | ROC-AUC | PR-AUC | F1 | precision | recall | FPR |{family_header}\n|---|---|---|---|---|---|---|{family_rule}"
            );
            for (label, ts) in &rows {
                let _ = write!(
                    md,
                    "| {label} | {} | {} | {} | {} | {} | {} |",
                    ts.roc_auc.show(),
                    ts.pr_auc.show(),
                    ts.f1.show(),
                    ts.precision.show(),
                    ts.recall.show(),
                    ts.false_positive_rate.show()
                );
                for f in &families {
                    let v = ts
                        .recall_by_family
                        .get(f)
                        .map(Stat::show)
                        .unwrap_or_else(|| "–".into());
                    let _ = write!(md, " {v} |");
                }
                md.push('\n');
            }
            let _ = writeln!(
                md,
                "\nAt {:.1}% false alarms on this test set (the same for every variant):\n\n| variant | recall |{family_header}\n|---|---|{family_rule}",
                summary.matched_fpr * 100.0
            );
            for (label, ts) in &rows {
                let _ = write!(md, "| {label} | {} |", ts.matched_recall.show());
                for f in &families {
                    let v = ts
                        .matched_recall_by_family
                        .get(f)
                        .map(Stat::show)
                        .unwrap_or_else(|| "–".into());
                    let _ = write!(md, " {v} |");
                }
                md.push('\n');
            }
        }
    }
    md.push_str("\n## Figures\n\n");
    for (caption, file) in figures {
        let _ = writeln!(md, "- [{caption}]({file})\n\n  ![{caption}]({file})\n");
    }
    md.push_str("\nFiles: `summary.json` (per model and variant: mean, spread and every seed), `metrics.csv` (one row per trained model and test set), `rounds.csv` (ROC-AUC per round), `results.json` (everything).\n");
    md
}
