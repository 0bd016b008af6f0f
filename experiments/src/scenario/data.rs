//! A scenario's data: read once, then split per seed into participants'
//! training rows and their labelled validation rows; the test sets are
//! never split and never seen before the end.
//!
//! Validation rows are carved from each participant's training share,
//! stratified by family, so every choice a run makes (the round it keeps,
//! the threshold, the fusion's calibration) is made on rows the model
//! never trained on and the test set never touched.

use std::path::{Path, PathBuf};

use fedsoc_datasets::partition::{Partitioner, benign_slices, iid_indices};
use fedsoc_datasets::read::{csv::CsvSchema, default_data_dir, nsl_kdd};
use fedsoc_datasets::synthetic::{SyntheticConfig, site_telemetry, test_set};
use fedsoc_datasets::{EncoderSpec, ReadOptions, ReadReport, Records};

use super::{DataFormat, Scenario};
use crate::error::ExperimentError;

/// Everything read from disk (or generated), before any split.
pub struct ScenarioData {
    /// The training file's rows (synthetic: empty, generated per seed).
    pub train: Records,
    /// The test sets, each scored once at the end. With a
    /// `benign-by-group` partition each test file also gives one slice per
    /// SOC (its own kind of normal traffic and every attack), named
    /// `FILE@soc-N`, after the whole file.
    pub tests: Vec<(String, Records)>,
    /// The encoder columns, vocabularies and log1p flags; statistics unfit.
    pub layout: EncoderSpec,
    pub reports: Vec<ReadReport>,
}

/// One seed's split.
pub struct Split {
    /// Each participant's training rows (every family).
    pub participants: Vec<Records>,
    /// Each participant's held-out validation rows, labelled, every family
    /// in proportion: benign ones calibrate thresholds, all of them select.
    pub validation: Vec<Records>,
    /// Where each participant's training rows came from: row numbers in
    /// the training file (synthetic data: in the participant's generated
    /// rows).
    pub train_rows: Vec<Vec<usize>>,
    /// Where each participant's validation rows came from, likewise.
    pub validation_rows: Vec<Vec<usize>>,
}

impl Split {
    /// Participant `p`'s benign validation rows (threshold calibration).
    pub fn benign_validation(&self, p: usize) -> Records {
        let v = &self.validation[p];
        v.filter(|i| v.family(i) == "normal")
    }
}

/// Each row's value of the categorical column `column`, or an error that
/// names the columns there are.
pub fn column_values(records: &Records, column: &str) -> Result<Vec<String>, ExperimentError> {
    let k = records
        .categorical_names()
        .iter()
        .position(|c| c == column)
        .ok_or_else(|| {
            ExperimentError::Setup(format!(
                "the partition groups by `{column}`, which the data does not have; use one of {:?}",
                records.categorical_names()
            ))
        })?;
    Ok((0..records.len())
        .map(|i| records.categorical_row(i)[k].clone())
        .collect())
}

/// The test sets and, for a `benign-by-group` partition, each SOC's slice
/// of each.
fn with_slices(
    scenario: &Scenario,
    tests: Vec<(String, Records)>,
) -> Result<Vec<(String, Records)>, ExperimentError> {
    let Partitioner::BenignByGroup {
        column,
        alpha,
        profile_seed,
        ..
    } = &scenario.partition
    else {
        return Ok(tests);
    };
    let n = scenario.federation.participants;
    let mut out = Vec::with_capacity(tests.len() * (n + 1));
    for (name, records) in &tests {
        let groups = column_values(records, column)?;
        let slices = benign_slices(records.families(), &groups, n, *alpha, *profile_seed)?;
        out.push((name.clone(), records.clone()));
        for (p, rows) in slices.iter().enumerate() {
            out.push((format!("{name}@soc-{}", p + 1), records.select(rows)));
        }
    }
    Ok(out)
}

/// The folder the data files are in: `--data`, else `[data] dir`
/// (relative to the scenario), else the default data folder.
fn data_dir(
    scenario: &Scenario,
    scenario_path: &Path,
    flag: Option<&Path>,
) -> Result<PathBuf, ExperimentError> {
    let sub = match scenario.data.format {
        DataFormat::NslKdd => "nsl-kdd",
        _ => "",
    };
    if let Some(dir) = flag {
        let nested = dir.join(sub);
        return Ok(if !sub.is_empty() && nested.is_dir() {
            nested
        } else {
            dir.to_path_buf()
        });
    }
    if let Some(dir) = &scenario.data.dir {
        return Ok(fedsoc_conf::resolve(scenario_path, dir));
    }
    default_data_dir().map(|d| d.join(sub)).ok_or_else(|| {
        ExperimentError::Setup(format!(
            "no data folder: pass --data DIR, set [data] dir in {}, or set {} to the folder holding nsl-kdd/ and formats/",
            scenario_path.display(),
            fedsoc_datasets::read::DATA_ENV
        ))
    })
}

/// Reads the scenario's files.
pub fn load(
    scenario: &Scenario,
    scenario_path: &Path,
    flag: Option<&Path>,
) -> Result<ScenarioData, ExperimentError> {
    let d = &scenario.data;
    let options = ReadOptions {
        skip_bad_rows: d.skip_bad_rows,
    };
    if d.format == DataFormat::Synthetic {
        let tests = test_set(&SyntheticConfig {
            seed: 0x7e57,
            rows: d.rows,
            attack_fraction: 0.2,
        })?;
        return Ok(ScenarioData {
            train: Records::default(),
            tests: vec![("synthetic-test".into(), Records::from_flows(&tests))],
            layout: EncoderSpec::synthetic_layout(),
            reports: Vec::new(),
        });
    }
    let dir = data_dir(scenario, scenario_path, flag)?;
    let schema = match &d.schema {
        Some(s) => Some(CsvSchema::load(&fedsoc_conf::resolve(scenario_path, s))?),
        None => None,
    };
    // A malformed row names the scenario file's setting that skips it.
    let skip_hint = format!(
        "set skip_bad_rows = true in [data] of {}",
        scenario_path.display()
    );
    let read_one = |name: &str| -> Result<fedsoc_datasets::Loaded, ExperimentError> {
        Ok(match d.format {
            DataFormat::NslKdd => nsl_kdd::read(&nsl_kdd::find(&dir, name)?, &options)?,
            DataFormat::Csv => {
                let schema = schema
                    .as_ref()
                    .ok_or_else(|| ExperimentError::Setup("CSV data needs [data] schema".into()))?;
                fedsoc_datasets::read::csv::read_csv(&dir.join(name), schema, &options)?
            }
            DataFormat::Zeek => fedsoc_datasets::read::zeek::read(&dir.join(name), &options)?,
            DataFormat::Suricata => {
                fedsoc_datasets::read::suricata::read(&dir.join(name), &options)?
            }
            DataFormat::Synthetic => unreachable_synthetic()?,
        })
    };
    let read = |name: &str| -> Result<fedsoc_datasets::Loaded, ExperimentError> {
        read_one(name).map_err(|e| match e {
            ExperimentError::Data(e) => ExperimentError::Data(e.with_skip_hint(skip_hint.as_str())),
            other => other,
        })
    };
    let train_name = d.train.clone().unwrap_or_default();
    let train = read(&train_name)?;
    let mut reports = vec![train.report];
    let mut tests = Vec::new();
    for name in &d.test {
        let loaded = read(name)?;
        reports.push(loaded.report);
        tests.push((name.clone(), loaded.records));
    }
    let layout = match d.format {
        DataFormat::NslKdd => nsl_kdd::encoder_layout()?,
        DataFormat::Csv => schema
            .as_ref()
            .map(|s| s.encoder_layout(&Default::default()))
            .transpose()?
            .ok_or_else(|| ExperimentError::Setup("CSV data needs [data] schema".into()))?,
        _ => EncoderSpec::synthetic_layout(),
    };
    Ok(ScenarioData {
        train: train.records,
        tests: with_slices(scenario, tests)?,
        layout,
        reports,
    })
}

fn unreachable_synthetic() -> Result<fedsoc_datasets::Loaded, ExperimentError> {
    Err(ExperimentError::Setup(
        "synthetic data is generated, not read".into(),
    ))
}

/// Splits the data among participants for `seed` and holds out each
/// participant's validation rows: `validation_fraction` of every family it
/// holds (at least one row of a family with two or more), chosen by a
/// seeded shuffle.
pub fn split(
    data: &ScenarioData,
    scenario: &Scenario,
    seed: u64,
) -> Result<Split, ExperimentError> {
    let n = scenario.federation.participants;
    let parts: Vec<(Records, Vec<usize>)> = if scenario.data.format == DataFormat::Synthetic {
        (0..n)
            .map(|site| {
                site_telemetry(
                    site,
                    &SyntheticConfig {
                        seed,
                        rows: scenario.data.rows,
                        attack_fraction: scenario.data.contamination,
                    },
                )
                .map(|flows| {
                    let records = Records::from_flows(&flows);
                    let rows = (0..records.len()).collect();
                    (records, rows)
                })
            })
            .collect::<Result<_, _>>()?
    } else {
        let groups = match &scenario.partition {
            Partitioner::BenignByGroup { column, .. } => Some(column_values(&data.train, column)?),
            _ => None,
        };
        scenario
            .partition
            .split(data.train.families(), groups.as_deref(), n, seed)?
            .into_iter()
            .map(|rows| (data.train.select(&rows), rows))
            .collect()
    };
    let fraction = scenario.calibration.validation_fraction;
    let mut split = Split {
        participants: Vec::with_capacity(n),
        validation: Vec::with_capacity(n),
        train_rows: Vec::with_capacity(n),
        validation_rows: Vec::with_capacity(n),
    };
    for (p, (records, rows)) in parts.into_iter().enumerate() {
        let mut by_family: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
        for i in 0..records.len() {
            by_family.entry(records.family(i)).or_default().push(i);
        }
        let mut is_held = vec![false; records.len()];
        for (k, (family, members)) in by_family.iter().enumerate() {
            // A seeded shuffle of the family's rows; the first share is held out.
            let salt = 0xca1 + p as u64 + 0x1000 * k as u64;
            let order = iid_indices(members.len(), 1, seed ^ salt)?.remove(0);
            let mut held = ((members.len() as f64) * fraction).round() as usize;
            if held == 0 && members.len() >= 2 {
                held = 1;
            }
            if *family == "normal" && held == 0 {
                return Err(ExperimentError::Setup(format!(
                    "participant {p} has {} benign rows, too few to hold out validation rows; give it more data",
                    members.len()
                )));
            }
            for &o in &order[..held.min(order.len())] {
                is_held[members[o]] = true;
            }
        }
        if !by_family.contains_key("normal") {
            return Err(ExperimentError::Setup(format!(
                "participant {p} has no benign rows to calibrate a threshold on; change the partition"
            )));
        }
        split.validation.push(records.filter(|i| is_held[i]));
        split.participants.push(records.filter(|i| !is_held[i]));
        split.validation_rows.push(
            (0..rows.len())
                .filter(|&i| is_held[i])
                .map(|i| rows[i])
                .collect(),
        );
        split.train_rows.push(
            (0..rows.len())
                .filter(|&i| !is_held[i])
                .map(|i| rows[i])
                .collect(),
        );
    }
    Ok(split)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rows_are_held_out_of_training_and_stratified_by_family() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("synthetic.toml");
        std::fs::write(
            &path,
            r#"name = "t"
[data]
format = "synthetic"
rows = 3000
contamination = 0.1
[federation]
participants = 3
rounds = 1
[calibration]
validation_fraction = 0.2
[[model]]
kind = "autoencoder"
hidden = [8]
"#,
        )
        .unwrap();
        let scenario = Scenario::load(&path).unwrap();
        let data = load(&scenario, &path, None).unwrap();
        let split = split(&data, &scenario, 5).unwrap();
        for p in 0..3 {
            let (train, held) = (&split.train_rows[p], &split.validation_rows[p]);
            assert!(train.iter().all(|r| !held.contains(r)), "participant {p}");
            assert_eq!(train.len() + held.len(), 3000);
            assert_eq!(split.participants[p].len(), train.len());
            assert_eq!(split.validation[p].len(), held.len());
            // Every family is held out in proportion (rounded per family).
            let all = split.participants[p].family_counts();
            let val = split.validation[p].family_counts();
            assert!(val.len() > 1, "attacks are validated too: {val:?}");
            for (family, &n) in &val {
                let total = n + all.get(family).copied().unwrap_or(0);
                let want = ((total as f64) * 0.2).round().max(1.0);
                assert_eq!(n as f64, want, "{family}: {n} of {total}");
            }
            let benign = split.benign_validation(p);
            assert!(benign.families().iter().all(|f| f == "normal"));
            assert_eq!(benign.len(), val["normal"]);
        }
        // The same seed, the same split; another seed, another.
        assert_eq!(
            split.validation_rows,
            super::split(&data, &scenario, 5).unwrap().validation_rows
        );
    }

    #[test]
    fn a_malformed_row_names_the_scenario_files_setting() {
        let dir = tempfile::tempdir().unwrap();
        let row = "{\"proto\":\"tcp\",\"conn_state\":\"SF\",\"id.resp_p\":80,\"duration\":0.1,\
                   \"orig_bytes\":10,\"resp_bytes\":20,\"orig_pkts\":1,\"resp_pkts\":1}\n";
        std::fs::write(dir.path().join("conn.log"), format!("{row}{{not json\n")).unwrap();
        std::fs::write(dir.path().join("test.log"), row).unwrap();
        let path = dir.path().join("zeek.toml");
        std::fs::write(
            &path,
            r#"name = "t"
[data]
format = "zeek"
dir = "."
train = "conn.log"
test = ["test.log"]
[federation]
participants = 2
rounds = 1
[[model]]
kind = "autoencoder"
hidden = [8]
"#,
        )
        .unwrap();
        let scenario = Scenario::load(&path).unwrap();
        let Err(err) = load(&scenario, &path, None) else {
            panic!("a malformed row was accepted")
        };
        let said = err.to_string();
        let want = format!(
            "fix the row, or set skip_bad_rows = true in [data] of {}",
            path.display()
        );
        assert!(
            said.contains("conn.log:2:")
                && said.contains(&want)
                && !said.contains("--skip-bad-rows"),
            "{said}"
        );
    }
}
