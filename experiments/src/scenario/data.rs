//! A scenario's data: read once, then split per seed into participants'
//! training rows, their benign validation rows and the test sets.

use std::path::{Path, PathBuf};

use fedsoc_datasets::partition::iid_indices;
use fedsoc_datasets::read::{csv::CsvSchema, default_data_dir, nsl_kdd};
use fedsoc_datasets::synthetic::{SyntheticConfig, site_telemetry, test_set};
use fedsoc_datasets::{EncoderSpec, ReadOptions, ReadReport, Records};

use super::{DataFormat, Scenario};
use crate::error::ExperimentError;

/// Everything read from disk (or generated), before any split.
pub struct ScenarioData {
    /// The training file's rows (synthetic: empty, generated per seed).
    pub train: Records,
    pub tests: Vec<(String, Records)>,
    /// The encoder columns, vocabularies and log1p flags; statistics unfit.
    pub layout: EncoderSpec,
    pub reports: Vec<ReadReport>,
}

/// One seed's split.
pub struct Split {
    /// Each participant's training rows (every family).
    pub participants: Vec<Records>,
    /// Each participant's held-out benign rows, for threshold calibration.
    pub validation: Vec<Records>,
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
        tests,
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
/// participant's benign validation rows.
pub fn split(
    data: &ScenarioData,
    scenario: &Scenario,
    seed: u64,
) -> Result<Split, ExperimentError> {
    let n = scenario.federation.participants;
    let parts: Vec<Records> = if scenario.data.format == DataFormat::Synthetic {
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
                .map(|flows| Records::from_flows(&flows))
            })
            .collect::<Result<_, _>>()?
    } else {
        scenario
            .partition
            .split(data.train.families(), n, seed)?
            .iter()
            .map(|rows| data.train.select(rows))
            .collect()
    };
    let mut participants = Vec::with_capacity(n);
    let mut validation = Vec::with_capacity(n);
    for (p, records) in parts.into_iter().enumerate() {
        let benign: Vec<usize> = (0..records.len())
            .filter(|&i| records.family(i) == "normal")
            .collect();
        // A seeded shuffle of the benign rows; the first share is held out.
        let order = iid_indices(benign.len(), 1, seed ^ (0xca1 + p as u64))?.remove(0);
        let held =
            ((benign.len() as f64) * scenario.calibration.validation_fraction).round() as usize;
        let mut is_held = vec![false; records.len()];
        for &k in &order[..held.min(order.len())] {
            is_held[benign[k]] = true;
        }
        if held == 0 {
            return Err(ExperimentError::Setup(format!(
                "participant {p} has {} benign rows, too few to hold out validation rows; give it more data",
                benign.len()
            )));
        }
        validation.push(records.filter(|i| is_held[i]));
        participants.push(records.filter(|i| !is_held[i]));
    }
    Ok(Split {
        participants,
        validation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_row_names_the_scenario_files_setting() {
        let dir = tempfile::tempdir().unwrap();
        let row = "{\"proto\":\"tcp\",\"conn_state\":\"SF\",\"id.resp_p\":80,\"duration\":0.1,\
                   \"orig_bytes\":10,\"resp_bytes\":20,\"orig_pkts\":1,\"resp_pkts\":1}\n";
        std::fs::write(dir.path().join("conn.log"), format!("{row}{{not json\n")).unwrap();
        let path = dir.path().join("zeek.toml");
        std::fs::write(
            &path,
            r#"name = "t"
[data]
format = "zeek"
dir = "."
train = "conn.log"
test = ["conn.log"]
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
