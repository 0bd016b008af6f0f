//! Turning [`Records`] (or flows) into model input.
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

use std::borrow::Cow;

use ndarray::Array2;

use crate::error::DatasetError;
use crate::record::FlowRecord;
use crate::table::Records;

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

/// What an encoder reads: [`Records`], or flows (turned into their flow
/// columns by [`Records::from_flows`] after their raw fields are checked).
pub trait EncoderInput {
    fn to_records(&self) -> Result<Cow<'_, Records>, DatasetError>;
}

impl EncoderInput for Records {
    fn to_records(&self) -> Result<Cow<'_, Records>, DatasetError> {
        Ok(Cow::Borrowed(self))
    }
}

impl EncoderInput for [FlowRecord] {
    fn to_records(&self) -> Result<Cow<'_, Records>, DatasetError> {
        for (row, record) in self.iter().enumerate() {
            record.check_numeric(row)?;
        }
        Ok(Cow::Owned(Records::from_flows(self)))
    }
}

impl EncoderInput for Vec<FlowRecord> {
    fn to_records(&self) -> Result<Cow<'_, Records>, DatasetError> {
        self.as_slice().to_records()
    }
}

impl<const N: usize> EncoderInput for [FlowRecord; N] {
    fn to_records(&self) -> Result<Cow<'_, Records>, DatasetError> {
        self.as_slice().to_records()
    }
}

/// Where each encoder column is in a [`Records`] table.
pub(crate) struct Resolved {
    numeric: Vec<usize>,
    categorical: Vec<usize>,
}

impl EncoderSpec {
    /// A spec with `layout`'s columns, vocabularies and `log1p` flags, and
    /// means/stds (population) fitted on `records`. For centralised
    /// baselines and tests; a federation computes the same statistics as
    /// secure sums instead (see [`crate::moments`]).
    pub fn fit<I: EncoderInput + ?Sized>(
        records: &I,
        layout: &EncoderSpec,
    ) -> Result<Self, DatasetError> {
        let records = records.to_records()?;
        let resolved = layout.resolve(&records)?;
        if records.is_empty() {
            return Err(DatasetError::EmptyInput);
        }
        // Welford's running mean/variance, per column.
        let k = layout.numeric.len();
        let mut mean = vec![0.0f64; k];
        let mut m2 = vec![0.0f64; k];
        for row in 0..records.len() {
            let count = (row + 1) as f64;
            for (j, x) in layout.transformed(&records, &resolved, row)?.enumerate() {
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

    /// Row `row`'s numeric columns after `log1p` (where set), checked:
    /// finite, and >= 0 before `log1p`.
    pub(crate) fn transformed<'a>(
        &'a self,
        records: &'a Records,
        resolved: &'a Resolved,
        row: usize,
    ) -> Result<impl Iterator<Item = f64> + 'a, DatasetError> {
        let values = records.numeric_row(row);
        for (column, &at) in self.numeric.iter().zip(&resolved.numeric) {
            let x = values[at];
            if column.log1p && x < 0.0 {
                return Err(DatasetError::Negative {
                    row,
                    column: column.name.clone(),
                    value: x,
                });
            }
            let t = column.transform(x);
            if !t.is_finite() {
                return Err(DatasetError::NonFinite {
                    row,
                    column: column.name.clone(),
                    value: x,
                });
            }
        }
        Ok(self
            .numeric
            .iter()
            .zip(&resolved.numeric)
            .map(move |(column, &at)| column.transform(values[at])))
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
    /// first non-finite value (or negative value of a `log1p` column),
    /// naming row and column, and on a column the records do not have.
    pub fn encode<I: EncoderInput + ?Sized>(
        &self,
        records: &I,
    ) -> Result<Array2<f32>, DatasetError> {
        let records = records.to_records()?;
        let resolved = self.resolve(&records)?;
        let mut out = Array2::<f32>::zeros((records.len(), self.dim()));
        for (row, mut encoded) in out.rows_mut().into_iter().enumerate() {
            for (j, (x, column)) in self
                .transformed(&records, &resolved, row)?
                .zip(&self.numeric)
                .enumerate()
            {
                let z = (x - column.mean) / column.scale();
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
            let values = records.categorical_row(row);
            let mut offset = self.numeric.len();
            for (column, &at) in self.categorical.iter().zip(&resolved.categorical) {
                encoded[offset + column.slot(&values[at])] = 1.0;
                offset += column.width();
            }
        }
        Ok(out)
    }

    /// Checks that the spec can encode: unique column names; finite means
    /// and non-negative finite stds; non-empty vocabularies without blank
    /// or duplicate entries; at least one column. Whether the data has the
    /// named columns is checked when encoding.
    pub fn validate(&self) -> Result<(), DatasetError> {
        let bad = |msg: String| Err(DatasetError::InvalidSpec(msg));
        if self.numeric.is_empty() && self.categorical.is_empty() {
            return bad("no columns; list at least one numeric or categorical column".into());
        }
        for (i, c) in self.numeric.iter().enumerate() {
            if self.numeric[..i].iter().any(|o| o.name == c.name) {
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
        }
        for (i, c) in self.categorical.iter().enumerate() {
            if self.categorical[..i].iter().any(|o| o.name == c.name) {
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
        }
        Ok(())
    }

    /// Validates and finds every column in `records`.
    pub(crate) fn resolve(&self, records: &Records) -> Result<Resolved, DatasetError> {
        self.validate()?;
        let find = |names: &[String], name: &str, kind: &str| {
            names.iter().position(|n| n == name).ok_or_else(|| {
                DatasetError::InvalidSpec(format!(
                    "the encoder names {kind} column `{name}` but the data has no such column; \
                     it has: {} (read the data with the federation's schema)",
                    names.join(", ")
                ))
            })
        };
        Ok(Resolved {
            numeric: self
                .numeric
                .iter()
                .map(|c| find(records.numeric_names(), &c.name, "numeric"))
                .collect::<Result<_, _>>()?,
            categorical: self
                .categorical
                .iter()
                .map(|c| find(records.categorical_names(), &c.name, "categorical"))
                .collect::<Result<_, _>>()?,
        })
    }
}
