//! `fedsoc score`: a SOC scores its own telemetry with an exported global model, offline.
//!
//! The model file (a safetensors export, see `fedsoc_models::export`) carries the federation's
//! encoder, so the rows are encoded exactly as the participants encoded them in training. The
//! telemetry is read with the same readers a participant uses (NSL-KDD, Zeek, Suricata, CSV with
//! a schema).
//!
//! A row is flagged when its score is strictly above the threshold. The threshold is given, or
//! calibrated on reference traffic: the `(1 − fpr)` quantile of the scores of the reference's
//! benign rows (with unlabelled reference traffic every row reads as benign, i.e. "this is our
//! normal traffic"). Each SOC calibrates its own false-alarm budget on its own traffic, because
//! score scales differ between sites even under one global model.

use std::fmt;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use fedsoc_datasets::read::{csv, nsl_kdd, open_text, suricata, zeek};
use fedsoc_datasets::{EncoderSpec, Loaded, ReadOptions, Records};
use fedsoc_models::{ExportMeta, ModelConfig, anomaly_scores, read_safetensors};

use crate::error::ExperimentError;

/// The telemetry formats `fedsoc score` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputFormat {
    NslKdd,
    Zeek,
    Suricata,
    Csv,
}

impl InputFormat {
    pub const NAMES: [&'static str; 4] = ["nsl-kdd", "zeek", "suricata", "csv"];

    pub fn name(self) -> &'static str {
        match self {
            InputFormat::NslKdd => "nsl-kdd",
            InputFormat::Zeek => "zeek",
            InputFormat::Suricata => "suricata",
            InputFormat::Csv => "csv",
        }
    }
}

impl FromStr for InputFormat {
    type Err = ExperimentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "nsl-kdd" => Ok(InputFormat::NslKdd),
            "zeek" => Ok(InputFormat::Zeek),
            "suricata" => Ok(InputFormat::Suricata),
            "csv" => Ok(InputFormat::Csv),
            other => Err(ExperimentError::Setup(format!(
                "unknown format {other:?}; use one of {}",
                Self::NAMES.join(", ")
            ))),
        }
    }
}

/// A telemetry file to read.
#[derive(Clone, Debug)]
pub struct InputSpec {
    pub path: PathBuf,
    /// `None`: guessed by [`detect_format`].
    pub format: Option<InputFormat>,
    /// The CSV schema (TOML); required for `csv`.
    pub schema: Option<PathBuf>,
    pub skip_bad_rows: bool,
}

/// Guesses a file's format when none was given: a schema means CSV; a Zeek `#` header or a
/// JSON line with Zeek's fields means Zeek; a JSON line with `event_type` means Suricata EVE;
/// a file named like NSL-KDD's (`KDDTrain+.txt`, …) means NSL-KDD. Anything else is an error
/// asking for `--format`, because a wrong guess would fail later with a less helpful message.
pub fn detect_format(path: &Path, has_schema: bool) -> Result<InputFormat, ExperimentError> {
    if has_schema {
        return Ok(InputFormat::Csv);
    }
    let mut reader = open_text(path)?;
    let mut first = String::new();
    while first.trim().is_empty() {
        first.clear();
        let n = reader
            .read_line(&mut first)
            .map_err(|e| ExperimentError::io(path, e))?;
        if n == 0 {
            break;
        }
    }
    let first = first.trim();
    if first.starts_with("#separator") || first.starts_with("#fields") {
        return Ok(InputFormat::Zeek);
    }
    if first.starts_with('{') {
        if first.contains("\"event_type\"") {
            return Ok(InputFormat::Suricata);
        }
        if first.contains("\"conn_state\"") || first.contains("\"id.resp_p\"") {
            return Ok(InputFormat::Zeek);
        }
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.contains("kdd") {
        return Ok(InputFormat::NslKdd);
    }
    Err(ExperimentError::Setup(format!(
        "cannot tell the format of {}; pass --format ({}), and --schema for a CSV",
        path.display(),
        InputFormat::NAMES.join(", ")
    )))
}

/// Reads a telemetry file with the participant's readers.
pub fn read_input(input: &InputSpec) -> Result<Loaded, ExperimentError> {
    let format = match input.format {
        Some(f) => f,
        None => detect_format(&input.path, input.schema.is_some())?,
    };
    let options = ReadOptions {
        skip_bad_rows: input.skip_bad_rows,
    };
    let loaded = match format {
        InputFormat::NslKdd => nsl_kdd::read(&input.path, &options)?,
        InputFormat::Zeek => zeek::read(&input.path, &options)?,
        InputFormat::Suricata => suricata::read(&input.path, &options)?,
        InputFormat::Csv => {
            let schema = input.schema.as_ref().ok_or_else(|| {
                ExperimentError::Setup(format!(
                    "{} is read as CSV, which needs --schema SCHEMA.toml naming its columns",
                    input.path.display()
                ))
            })?;
            csv::read_csv(&input.path, &csv::CsvSchema::load(schema)?, &options)?
        }
    };
    if loaded.records.is_empty() {
        return Err(ExperimentError::Setup(format!(
            "{} has no rows to score ({})",
            input.path.display(),
            loaded.report
        )));
    }
    Ok(loaded)
}

/// An exported global model with its encoder, ready to score.
#[derive(Clone, Debug)]
pub struct ExportedModel {
    pub config: ModelConfig,
    pub weights: Vec<f32>,
    pub meta: ExportMeta,
    pub encoder: EncoderSpec,
}

impl ExportedModel {
    /// Reads a safetensors export (see `fedsoc_models::export`) and its encoder.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Self, ExperimentError> {
        let (config, weights, meta) = read_safetensors(bytes)?;
        let encoder: EncoderSpec = serde_json::from_str(&meta.encoder_json).map_err(|e| {
            ExperimentError::Setup(format!(
                "the model's encoder is unreadable ({e}); export the model again"
            ))
        })?;
        encoder.validate()?;
        if encoder.dim() != config.input_dim() {
            return Err(ExperimentError::Setup(format!(
                "the model's encoder makes {} columns but the model reads {}; export the model \
                 again with the federation's coordinator config",
                encoder.dim(),
                config.input_dim()
            )));
        }
        Ok(ExportedModel {
            config,
            weights,
            meta,
            encoder,
        })
    }

    /// [`from_safetensors`](Self::from_safetensors) of a file.
    pub fn load(path: &Path) -> Result<Self, ExperimentError> {
        let bytes = std::fs::read(path).map_err(|e| ExperimentError::io(path, e))?;
        Self::from_safetensors(&bytes).map_err(|e| match e {
            ExperimentError::Model(m) => ExperimentError::Setup(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// One anomaly score per record (higher = more suspicious).
    pub fn score(&self, records: &Records) -> Result<Vec<f32>, ExperimentError> {
        let features = self.encoder.encode(records)?;
        Ok(anomaly_scores(
            &self.config,
            &self.weights,
            features.view(),
        )?)
    }
}

/// Where a threshold came from, for the summary.
#[derive(Clone, Debug, PartialEq)]
pub enum ThresholdSource {
    /// `--threshold`.
    Given,
    /// `--calibrate REF --fpr F`: the `(1 − fpr)` quantile of `rows` benign reference scores.
    Calibrated {
        reference: String,
        fpr: f64,
        rows: usize,
    },
    /// A model bundle's threshold, calibrated by the federation in a `calibrate` round.
    Federation {
        round: u64,
        false_alarm_rate: f64,
        benign_rows: u64,
    },
}

/// A score threshold: rows scoring strictly above it are flagged.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    pub value: f32,
    pub source: ThresholdSource,
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            ThresholdSource::Given => write!(f, "{} (given with --threshold)", self.value),
            ThresholdSource::Calibrated {
                reference,
                fpr,
                rows,
            } => write!(
                f,
                "{} (calibrated: the {} quantile of {rows} benign rows of {reference}, \
                 for a false-positive rate of at most {fpr})",
                self.value,
                1.0 - fpr
            ),
            ThresholdSource::Federation {
                round,
                false_alarm_rate,
                benign_rows,
            } => write!(
                f,
                "{} (the federation's, calibrated in round {round} over {benign_rows} benign \
                 rows for a false-alarm rate of {false_alarm_rate})",
                self.value
            ),
        }
    }
}

/// The smallest benign score with at most `fpr` of the benign scores strictly above it: the
/// `(1 − fpr)` quantile, taken at an observed score so the budget holds exactly on the
/// reference (ties can only lower the false-alarm count).
pub fn calibrate(benign_scores: &[f32], fpr: f64) -> Result<f32, ExperimentError> {
    if !(0.0..1.0).contains(&fpr) {
        return Err(ExperimentError::Setup(format!(
            "--fpr {fpr} must be at least 0 and below 1, e.g. 0.01 for one false alarm in a hundred benign rows"
        )));
    }
    if benign_scores.is_empty() {
        return Err(ExperimentError::Setup(
            "the reference has no benign rows to calibrate on; pass normal traffic (unlabelled \
             rows count as benign) or give --threshold"
                .into(),
        ));
    }
    if let Some(i) = benign_scores.iter().position(|s| s.is_nan()) {
        return Err(ExperimentError::Setup(format!(
            "reference row {i} scores NaN; the model cannot calibrate on it"
        )));
    }
    let mut sorted = benign_scores.to_vec();
    sorted.sort_by(f32::total_cmp);
    let n = sorted.len();
    // Rows allowed above the threshold; the epsilon keeps 0.01 × 100 at 1 despite rounding.
    let allowed = ((fpr * n as f64) + 1e-9).floor() as usize;
    Ok(sorted[n - 1 - allowed.min(n - 1)])
}

/// Calibrates on reference records: scores them and takes [`calibrate`] of the benign ones.
pub fn calibrate_on(
    model: &ExportedModel,
    reference: &Records,
    name: &str,
    fpr: f64,
) -> Result<Threshold, ExperimentError> {
    let scores = model.score(reference)?;
    let benign: Vec<f32> = scores
        .iter()
        .zip(reference.attack_flags())
        .filter(|(_, attack)| !attack)
        .map(|(&s, _)| s)
        .collect();
    Ok(Threshold {
        value: calibrate(&benign, fpr)?,
        source: ThresholdSource::Calibrated {
            reference: name.to_string(),
            fpr,
            rows: benign.len(),
        },
    })
}

/// Whether the records say anything about attacks. Readers read unlabelled rows as benign, so
/// a file without a single attack row is treated as unlabelled: its label columns would only
/// repeat "normal" and recall would be undefined.
pub fn has_attack_labels(records: &Records) -> bool {
    records.attack_flags().into_iter().any(|a| a)
}

/// What scoring found, printed on stderr.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub rows: usize,
    pub threshold: Threshold,
    pub flagged: usize,
    /// With attack labels: `(attacks, attacks flagged, benign, benign flagged)`.
    pub labelled: Option<(usize, usize, usize, usize)>,
}

impl Summary {
    /// Attacks flagged / attacks, with labels.
    pub fn recall(&self) -> Option<f64> {
        self.labelled
            .filter(|l| l.0 > 0)
            .map(|(attacks, caught, _, _)| caught as f64 / attacks as f64)
    }

    /// Benign rows flagged / benign rows, with labels.
    pub fn false_positive_rate(&self) -> Option<f64> {
        self.labelled
            .filter(|l| l.2 > 0)
            .map(|(_, _, benign, alarms)| alarms as f64 / benign as f64)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "rows scored: {}", self.rows)?;
        writeln!(f, "threshold: {}", self.threshold)?;
        write!(
            f,
            "rows flagged (score > threshold): {} ({:.2}%)",
            self.flagged,
            percent(self.flagged, self.rows)
        )?;
        match self.labelled {
            Some((attacks, caught, benign, alarms)) => write!(
                f,
                "\nlabels: recall {:.4} ({caught} of {attacks} attacks), false-positive rate {:.4} \
                 ({alarms} of {benign} benign rows)",
                self.recall().unwrap_or(0.0),
                self.false_positive_rate().unwrap_or(0.0)
            ),
            None => write!(
                f,
                "\nlabels: none (no row is labelled an attack), so no recall or false-positive rate"
            ),
        }
    }
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// Writes the scores CSV: `row,score,flag` (plus `label,family` when the records carry attack
/// labels), one line per record in file order. `row` counts the rows read from 0 (rows skipped
/// with `--skip-bad-rows` are not counted). Scores are written in Rust's shortest exact form, so
/// parsing them back as f32 gives the very values compared with the threshold.
pub fn write_scores(
    out: &mut dyn Write,
    records: &Records,
    scores: &[f32],
    threshold: &Threshold,
) -> Result<Summary, ExperimentError> {
    let labelled = has_attack_labels(records);
    let io = |e: std::io::Error| ExperimentError::io(Path::new("scores CSV"), e);
    if labelled {
        writeln!(out, "row,score,flag,label,family").map_err(io)?;
    } else {
        writeln!(out, "row,score,flag").map_err(io)?;
    }
    let attacks = records.attack_flags();
    let (mut flagged, mut counts) = (0, (0, 0, 0, 0));
    for (row, (&score, &attack)) in scores.iter().zip(&attacks).enumerate() {
        let flag = fedsoc_models::score::flags(score, threshold.value.into());
        flagged += usize::from(flag);
        if attack {
            counts.0 += 1;
            counts.1 += usize::from(flag);
        } else {
            counts.2 += 1;
            counts.3 += usize::from(flag);
        }
        if labelled {
            writeln!(
                out,
                "{row},{score},{},{},{}",
                u8::from(flag),
                csv_field(records.label(row)),
                csv_field(records.family(row))
            )
        } else {
            writeln!(out, "{row},{score},{}", u8::from(flag))
        }
        .map_err(io)?;
    }
    Ok(Summary {
        rows: scores.len(),
        threshold: threshold.clone(),
        flagged,
        labelled: labelled.then_some(counts),
    })
}

/// A CSV field, quoted when it holds a delimiter, quote or line break.
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedsoc_datasets::FlowRecord;
    use fedsoc_models::export::flat_sha256;
    use fedsoc_models::{AutoencoderConfig, export_safetensors, initial_weights};

    #[test]
    fn calibration_keeps_the_false_alarm_budget() {
        let scores: Vec<f32> = (1..=100).map(|i| i as f32).collect();
        // 1 % of 100: one row (100) may be above, so the threshold is 99.
        assert_eq!(calibrate(&scores, 0.01).unwrap(), 99.0);
        assert_eq!(calibrate(&scores, 0.0).unwrap(), 100.0);
        assert_eq!(calibrate(&scores, 0.1).unwrap(), 90.0);
        // 0.5 % of 100 rounds down: no row may be above.
        assert_eq!(calibrate(&scores, 0.005).unwrap(), 100.0);
        for fpr in [0.0, 0.01, 0.05, 0.33] {
            let t = calibrate(&scores, fpr).unwrap();
            let above = scores.iter().filter(|&&s| s > t).count();
            assert!(above as f64 <= fpr * 100.0 + 1e-9, "fpr {fpr}: {above}");
        }
        // Order does not matter, ties only lower the count.
        let tied = [5.0, 1.0, 5.0, 5.0];
        assert_eq!(calibrate(&tied, 0.25).unwrap(), 5.0);
        assert!(
            calibrate(&[], 0.01)
                .unwrap_err()
                .to_string()
                .contains("no benign rows")
        );
        assert!(
            calibrate(&scores, 1.0)
                .unwrap_err()
                .to_string()
                .contains("--fpr")
        );
        assert!(calibrate(&scores, -0.1).is_err());
        assert!(calibrate(&[1.0, f32::NAN], 0.1).is_err());
    }

    fn flow(label: Option<&str>, bytes_out: f64) -> FlowRecord {
        FlowRecord {
            duration_s: 1.0,
            bytes_out,
            bytes_in: 100.0,
            packets_out: 3.0,
            packets_in: 2.0,
            protocol: "tcp".into(),
            service: "http".into(),
            conn_state: "SF".into(),
            dst_port: 80,
            label: label.map(str::to_string),
        }
    }

    fn model() -> ExportedModel {
        let encoder = EncoderSpec::synthetic_default();
        let config: ModelConfig = AutoencoderConfig {
            input_dim: encoder.dim(),
            hidden: vec![4, 2],
        }
        .into();
        let flat = initial_weights(&config, 3).unwrap();
        let meta = ExportMeta {
            federation: "test".into(),
            round: 1,
            model_sha256: flat_sha256(&flat),
            encoder_json: serde_json::to_string(&encoder).unwrap(),
        };
        let bytes = export_safetensors(&config, &flat, &meta).unwrap();
        ExportedModel::from_safetensors(&bytes).unwrap()
    }

    #[test]
    fn scores_csv_flags_strictly_above_and_counts_labels() {
        let model = model();
        let records = Records::from_flows(&[
            flow(None, 100.0),
            flow(Some("scan"), 1e9),
            flow(None, 200.0),
            flow(Some("exfil, \"big\""), 5e8),
        ]);
        let scores = model.score(&records).unwrap();
        assert_eq!(scores.len(), 4);
        // The threshold at row 2's score: row 2 itself is not flagged (strictly above).
        let threshold = Threshold {
            value: scores[2],
            source: ThresholdSource::Given,
        };
        let mut out = Vec::new();
        let summary = write_scores(&mut out, &records, &scores, &threshold).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "row,score,flag,label,family");
        assert_eq!(lines.len(), 5);
        assert!(
            lines[3].starts_with("2,") && lines[3].contains(",0,"),
            "{text}"
        );
        assert!(lines[4].ends_with("\"exfil, \"\"big\"\"\""), "{text}");
        let flagged = scores.iter().filter(|&&s| s > scores[2]).count();
        assert_eq!(summary.flagged, flagged);
        let (attacks, caught, benign, alarms) = summary.labelled.unwrap();
        assert_eq!((attacks, benign), (2, 2));
        assert_eq!(alarms, usize::from(scores[0] > scores[2]));
        assert_eq!(summary.recall(), Some(caught as f64 / 2.0));
        let shown = summary.to_string();
        assert!(
            shown.contains("rows scored: 4") && shown.contains("recall"),
            "{shown}"
        );
        // Scores parse back to the same f32.
        for (line, s) in lines[1..].iter().zip(&scores) {
            let parsed: f32 = line.split(',').nth(1).unwrap().parse().unwrap();
            assert_eq!(parsed.to_bits(), s.to_bits());
        }
    }

    #[test]
    fn unlabelled_records_have_no_label_columns_and_calibrate_on_all_rows() {
        let model = model();
        let records = Records::from_flows(
            &(1..=50)
                .map(|i| flow(None, i as f64 * 10.0))
                .collect::<Vec<_>>(),
        );
        assert!(!has_attack_labels(&records));
        let threshold = calibrate_on(&model, &records, "ref.log", 0.1).unwrap();
        assert!(matches!(
            threshold.source,
            ThresholdSource::Calibrated { rows: 50, .. }
        ));
        let scores = model.score(&records).unwrap();
        let mut out = Vec::new();
        let summary = write_scores(&mut out, &records, &scores, &threshold).unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .starts_with("row,score,flag\n")
        );
        assert!(summary.flagged <= 5, "{summary}");
        assert_eq!(summary.labelled, None);
        assert!(summary.to_string().contains("labels: none"));
    }

    #[test]
    fn format_detection_and_its_limits() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let zeek = write("conn.log", "#separator \\x09\n#fields\tts\n");
        assert_eq!(detect_format(&zeek, false).unwrap(), InputFormat::Zeek);
        let eve = write("eve.json", "\n{\"event_type\":\"flow\"}\n");
        assert_eq!(detect_format(&eve, false).unwrap(), InputFormat::Suricata);
        let kdd = write("KDDTest+.txt", "0,tcp,http\n");
        assert_eq!(detect_format(&kdd, false).unwrap(), InputFormat::NslKdd);
        let other = write("flows.csv", "a,b\n");
        assert_eq!(detect_format(&other, true).unwrap(), InputFormat::Csv);
        let err = detect_format(&other, false).unwrap_err().to_string();
        assert!(err.contains("--format"), "{err}");
        let err = read_input(&InputSpec {
            path: other,
            format: Some(InputFormat::Csv),
            schema: None,
            skip_bad_rows: false,
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("--schema"), "{err}");
        assert_eq!("zeek".parse::<InputFormat>().unwrap(), InputFormat::Zeek);
        assert!("pcap".parse::<InputFormat>().is_err());
    }

    #[test]
    fn a_model_whose_encoder_does_not_fit_is_refused() {
        let encoder = EncoderSpec::synthetic_default();
        let config: ModelConfig = AutoencoderConfig {
            input_dim: encoder.dim() + 1,
            hidden: vec![2],
        }
        .into();
        let flat = initial_weights(&config, 0).unwrap();
        let meta = ExportMeta {
            federation: "test".into(),
            round: 0,
            model_sha256: flat_sha256(&flat),
            encoder_json: serde_json::to_string(&encoder).unwrap(),
        };
        let bytes = export_safetensors(&config, &flat, &meta).unwrap();
        let err = ExportedModel::from_safetensors(&bytes)
            .unwrap_err()
            .to_string();
        assert!(err.contains("columns"), "{err}");
    }
}
