//! Turning [`FlowRecord`]s into model input.
//!
//! An [`EncoderSpec`] is shared by the whole federation (it travels in the
//! coordinator's Welcome as JSON), so every participant's column `j` means
//! the same thing. Numeric columns are optionally `log1p`-compressed (flow
//! sizes are heavy-tailed) and standardised to z-scores with the spec's
//! mean/std, so a small dense autoencoder sees inputs of unit scale.
//! Categorical columns are one-hot over a fixed vocabulary plus one extra
//! "other" slot, so a value nobody listed (a new Zeek service, a rare
//! connection state) still encodes to a valid row.

mod default;
pub mod features;

pub use features::{CategoricalFeature, MIN_RATE_DURATION_S, NumericFeature, port_class};

use ndarray::Array2;

use crate::error::DatasetError;
use crate::record::FlowRecord;

/// Standard deviations at or below this are treated as 1: a constant column
/// encodes as `x - mean` instead of dividing by zero.
pub const MIN_STD: f64 = 1e-9;

/// Name suffix of a categorical column's extra slot in [`EncoderSpec::feature_names`].
pub const OTHER_SLOT: &str = "<other>";

/// A standardised numeric column: `((log1p?)(x) - mean) / std`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NumericColumn {
    /// A [`NumericFeature`] name, e.g. "bytes_out".
    pub name: String,
    /// Apply `ln(1 + x)` before standardising (for heavy-tailed columns).
    pub log1p: bool,
    /// Mean of the (transformed) column.
    pub mean: f64,
    /// Standard deviation of the (transformed) column.
    pub std: f64,
}

impl NumericColumn {
    fn transform(&self, x: f64) -> f64 {
        if self.log1p { x.ln_1p() } else { x }
    }

    fn scale(&self) -> f64 {
        if self.std > MIN_STD { self.std } else { 1.0 }
    }
}

/// A one-hot categorical column: one slot per vocabulary entry, then one
/// "other" slot for values outside the vocabulary.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CategoricalColumn {
    /// A [`CategoricalFeature`] name, e.g. "service".
    pub name: String,
    pub vocabulary: Vec<String>,
}

impl CategoricalColumn {
    /// Encoded width: the vocabulary plus the "other" slot.
    pub fn width(&self) -> usize {
        self.vocabulary.len() + 1
    }

    /// The slot of `value`: its vocabulary index, or the last ("other") slot.
    pub fn slot(&self, value: &str) -> usize {
        self.vocabulary
            .iter()
            .position(|v| v == value)
            .unwrap_or(self.vocabulary.len())
    }
}

/// The feature encoding: numeric columns first, then categorical blocks.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EncoderSpec {
    pub numeric: Vec<NumericColumn>,
    pub categorical: Vec<CategoricalColumn>,
}

impl EncoderSpec {
    /// A spec with `layout`'s columns, vocabularies and `log1p` flags, and
    /// means/stds (population) fitted on `records`. For centralised
    /// baselines and tests; a federation uses a shared spec instead.
    pub fn fit(records: &[FlowRecord], layout: &EncoderSpec) -> Result<Self, DatasetError> {
        let (numeric, _) = layout.resolve()?;
        if records.is_empty() {
            return Err(DatasetError::EmptyInput);
        }
        // Welford's running mean/variance, per column.
        let mut mean = vec![0.0f64; numeric.len()];
        let mut m2 = vec![0.0f64; numeric.len()];
        for (row, record) in records.iter().enumerate() {
            record.check_numeric(row)?;
            let count = (row + 1) as f64;
            for (j, (feature, column)) in numeric.iter().zip(&layout.numeric).enumerate() {
                let x = column.transform(feature.value(record));
                if !x.is_finite() {
                    return Err(DatasetError::NonFinite {
                        row,
                        column: column.name.clone(),
                        value: x,
                    });
                }
                let delta = x - mean[j];
                mean[j] += delta / count;
                m2[j] += delta * (x - mean[j]);
            }
        }
        let n = records.len() as f64;
        let mut spec = layout.clone();
        for (j, column) in spec.numeric.iter_mut().enumerate() {
            column.mean = mean[j];
            column.std = (m2[j] / n).sqrt();
        }
        Ok(spec)
    }

    /// Number of encoded columns.
    pub fn dim(&self) -> usize {
        self.numeric.len()
            + self
                .categorical
                .iter()
                .map(CategoricalColumn::width)
                .sum::<usize>()
    }

    /// A name per encoded column: numeric names, then `column=value` for
    /// each one-hot slot and `column=<other>` for the extra slot.
    pub fn feature_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.numeric.iter().map(|c| c.name.clone()).collect();
        for c in &self.categorical {
            names.extend(c.vocabulary.iter().map(|v| format!("{}={v}", c.name)));
            names.push(format!("{}={OTHER_SLOT}", c.name));
        }
        names
    }

    /// Encodes `records` into a `records.len() × dim()` matrix. Fails on the
    /// first negative or non-finite numeric value, naming row and column.
    pub fn encode(&self, records: &[FlowRecord]) -> Result<Array2<f32>, DatasetError> {
        let (numeric, categorical) = self.resolve()?;
        let mut out = Array2::<f32>::zeros((records.len(), self.dim()));
        for (row, (record, mut encoded)) in records.iter().zip(out.rows_mut()).enumerate() {
            record.check_numeric(row)?;
            for (j, (feature, column)) in numeric.iter().zip(&self.numeric).enumerate() {
                let z = (column.transform(feature.value(record)) - column.mean) / column.scale();
                let z32 = z as f32;
                if !z32.is_finite() {
                    return Err(DatasetError::NonFinite {
                        row,
                        column: column.name.clone(),
                        value: z,
                    });
                }
                encoded[j] = z32;
            }
            let mut offset = self.numeric.len();
            for (feature, column) in categorical.iter().zip(&self.categorical) {
                encoded[offset + column.slot(feature.value(record))] = 1.0;
                offset += column.width();
            }
        }
        Ok(out)
    }

    /// Checks that the spec can encode: known, unique column names; finite
    /// means and non-negative finite stds; non-empty vocabularies without
    /// blank or duplicate entries; at least one column.
    pub fn validate(&self) -> Result<(), DatasetError> {
        self.resolve().map(|_| ())
    }

    /// Validates and maps column names to features.
    fn resolve(&self) -> Result<(Vec<NumericFeature>, Vec<CategoricalFeature>), DatasetError> {
        let bad = |msg: String| Err(DatasetError::InvalidSpec(msg));
        if self.numeric.is_empty() && self.categorical.is_empty() {
            return bad("no columns; list at least one numeric or categorical column".into());
        }
        let mut numeric = Vec::with_capacity(self.numeric.len());
        for c in &self.numeric {
            let Some(feature) = NumericFeature::from_name(&c.name) else {
                let known: Vec<&str> = NumericFeature::ALL.iter().map(|f| f.name()).collect();
                return bad(format!(
                    "unknown numeric column `{}`; known: {}",
                    c.name,
                    known.join(", ")
                ));
            };
            if numeric.contains(&feature) {
                return bad(format!(
                    "numeric column `{}` is listed twice; remove one",
                    c.name
                ));
            }
            if !c.mean.is_finite() || !c.std.is_finite() || c.std < 0.0 {
                return bad(format!(
                    "numeric column `{}` has mean {} and std {}; both must be finite and std >= 0 (refit the spec)",
                    c.name, c.mean, c.std
                ));
            }
            numeric.push(feature);
        }
        let mut categorical = Vec::with_capacity(self.categorical.len());
        for c in &self.categorical {
            let Some(feature) = CategoricalFeature::from_name(&c.name) else {
                let known: Vec<&str> = CategoricalFeature::ALL.iter().map(|f| f.name()).collect();
                return bad(format!(
                    "unknown categorical column `{}`; known: {}",
                    c.name,
                    known.join(", ")
                ));
            };
            if categorical.contains(&feature) {
                return bad(format!(
                    "categorical column `{}` is listed twice; remove one",
                    c.name
                ));
            }
            if c.vocabulary.is_empty() {
                return bad(format!(
                    "categorical column `{}` has an empty vocabulary; list its values or drop the column",
                    c.name
                ));
            }
            for (i, v) in c.vocabulary.iter().enumerate() {
                if v.trim().is_empty() || c.vocabulary[..i].contains(v) {
                    return bad(format!(
                        "categorical column `{}`: vocabulary entry {v:?} is blank or repeated; each value must be listed once",
                        c.name
                    ));
                }
            }
            categorical.push(feature);
        }
        Ok((numeric, categorical))
    }
}
