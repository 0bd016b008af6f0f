//! What a federation asks of its members' rows in a `statistics` or a
//! `calibrate` round, and what it makes of the secure sum.
//!
//! A statistics round is two secure sums (see [`crate::moments`]):
//!
//! 1. [`MomentsQuery`]: per member `[n, Σt_j, category counts, family
//!    counts]`. Its sum gives the means, each categorical column's share
//!    of values outside the vocabulary ("other"), and the federation's
//!    rows per attack family (for class weights).
//! 2. [`SpreadQuery`]: `[Σ(t_j − μ_j)²]` with the means of pass 1. With
//!    pass 1 it gives the fitted [`EncoderSpec`] ([`FittedEncoder`]).
//!
//! A calibrate round is one sum ([`CalibrationQuery`]): each member's
//! histogram of its benign validation rows' scores over public bins; the
//! summed histogram gives the threshold at a false-alarm rate, and the bin
//! it falls in bounds how far it can be from the pooled quantile.
//!
//! Every query is public (it travels in the task and the audit log), has a
//! fixed vector length, and decodes the summed ring words exactly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::encoder::EncoderSpec;
use crate::error::DatasetError;
use crate::moments::{self, ScoreBins};
use crate::table::Records;

/// Family slot for rows whose family the query does not list.
pub const OTHER_FAMILY: &str = "<other>";

/// Pass 1 of a statistics round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MomentsQuery {
    /// The columns, vocabularies and `log1p` flags to fit (means and
    /// standard deviations are ignored).
    pub layout: EncoderSpec,
    /// Attack families to count rows of (the benign family included);
    /// rows of any other family are counted in one more slot.
    pub families: Vec<String>,
    /// Members the sum may have: bounds what one member may contribute.
    pub max_participants: usize,
}

/// Pass 2 of a statistics round: `[n, Σ(t_j − μ_j)²]`. Its row count must
/// equal pass 1's, or the passes were over different rows (a member
/// dropped between them) and the fit is refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpreadQuery {
    pub layout: EncoderSpec,
    /// Attack families of pass 1 (a member checks its rows as it did).
    #[serde(default)]
    pub families: Vec<String>,
    /// The federation means from pass 1, one per numeric column.
    pub means: Vec<f64>,
    pub max_participants: usize,
}

/// A calibrate round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibrationQuery {
    pub bins: ScoreBins,
    /// The share of benign rows allowed above the threshold.
    pub false_alarm_rate: f64,
}

/// What pass 1's sum says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    pub rows: u64,
    /// Means of the transformed numeric columns.
    pub means: Vec<f64>,
    /// Per categorical column: share of rows outside its vocabulary.
    pub other_share: BTreeMap<String, f64>,
    /// Rows per family (the query's, then [`OTHER_FAMILY`]).
    pub label_counts: BTreeMap<String, u64>,
}

/// The federation's encoder, fitted from both passes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FittedEncoder {
    pub encoder: EncoderSpec,
    pub moments: Moments,
}

/// The federation threshold from a calibrate round's sum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub false_alarm_rate: f64,
    pub threshold: f64,
    /// The histogram bin the (1 − rate)-quantile falls in: the pooled
    /// quantile of the members' benign scores lies inside it.
    pub score_interval: [f64; 2],
    /// Bounds on the share of benign rows scoring above `threshold`.
    pub false_alarm_interval: [f64; 2],
    pub benign_rows: u64,
}

/// Why a member cannot answer a query over its rows, in words that name
/// the column and the fix.
fn refuse(reason: String) -> DatasetError {
    DatasetError::InvalidSpec(reason)
}

impl MomentsQuery {
    /// Words in the vector.
    pub fn vector_len(&self) -> usize {
        1 + self.layout.numeric.len()
            + self
                .layout
                .categorical
                .iter()
                .map(|c| c.width())
                .sum::<usize>()
            + self.families.len()
            + 1
    }

    /// One member's vector. Refused when a categorical column has none of
    /// the vocabulary's values (see [`category_counts`]).
    pub fn vector(&self, records: &Records) -> Result<Vec<u64>, DatasetError> {
        if records.is_empty() {
            return Err(DatasetError::EmptyInput);
        }
        let mut out = moments::first_pass(&self.layout, records, self.max_participants)?;
        out.extend(category_counts(&self.layout, records)?);
        let mut families = vec![0u64; self.families.len() + 1];
        for family in records.families() {
            let slot = self
                .families
                .iter()
                .position(|f| f.eq_ignore_ascii_case(family))
                .unwrap_or(self.families.len());
            families[slot] += 1;
        }
        out.extend(families);
        debug_assert_eq!(out.len(), self.vector_len());
        Ok(out)
    }

    /// What the summed vectors say.
    pub fn decode(&self, sum: &[u64]) -> Result<Moments, DatasetError> {
        if sum.len() != self.vector_len() {
            return Err(refuse(format!(
                "a statistics sum has {} words, the query needs {}",
                sum.len(),
                self.vector_len()
            )));
        }
        let k = self.layout.numeric.len();
        let (rows, means) = moments::means_from(&self.layout, &sum[..1 + k])?;
        let mut at = 1 + k;
        let mut other_share = BTreeMap::new();
        for column in &self.layout.categorical {
            let counts = &sum[at..at + column.width()];
            at += column.width();
            let total: u64 = counts.iter().sum();
            if total != rows {
                return Err(refuse(format!(
                    "column `{}` counts {total} values over {rows} rows: the sum is inconsistent",
                    column.name
                )));
            }
            other_share.insert(
                column.name.clone(),
                counts[column.vocabulary.len()] as f64 / rows as f64,
            );
        }
        let label_counts = self
            .families
            .iter()
            .map(String::as_str)
            .chain([OTHER_FAMILY])
            .zip(&sum[at..])
            .map(|(f, &c)| (f.to_string(), c))
            .collect();
        Ok(Moments {
            rows,
            means,
            other_share,
            label_counts,
        })
    }
}

/// Each categorical column's counts per slot (vocabulary, then "other").
/// Refused when a column has none of the vocabulary's values: its rows
/// would all be "other", so the data is not what the federation's encoder
/// describes (another sensor, or a file read with the wrong schema).
pub fn category_counts(layout: &EncoderSpec, records: &Records) -> Result<Vec<u64>, DatasetError> {
    let mut out = Vec::new();
    let names = records.categorical_names();
    for column in &layout.categorical {
        let at = names
            .iter()
            .position(|n| *n == column.name)
            .ok_or_else(|| {
                refuse(format!(
                    "the federation's encoder names categorical column `{}` but the data has no \
                     such column; it has: {} (read the data with the federation's schema)",
                    column.name,
                    names.join(", ")
                ))
            })?;
        let mut counts = vec![0u64; column.width()];
        for row in 0..records.len() {
            counts[column.slot(&records.categorical_row(row)[at])] += 1;
        }
        if !column.vocabulary.is_empty() && counts[column.vocabulary.len()] == records.len() as u64
        {
            let mut seen: Vec<&str> = (0..records.len().min(1000))
                .map(|row| records.categorical_row(row)[at].as_str())
                .collect();
            seen.sort_unstable();
            seen.dedup();
            seen.truncate(8);
            return Err(refuse(format!(
                "none of the {} rows has a value of categorical column `{}` in the \
                     federation's vocabulary [{}] (the data has e.g. [{}]); the telemetry is \
                     not what the federation's encoder describes: check the data source and \
                     its format, or ask the data scientist to extend the vocabulary",
                records.len(),
                column.name,
                column.vocabulary.join(", "),
                seen.join(", ")
            )));
        }
        out.extend(counts);
    }
    Ok(out)
}

impl SpreadQuery {
    /// The pass-2 query that follows pass 1's result.
    pub fn after(moments: &MomentsQuery, result: &Moments) -> Self {
        SpreadQuery {
            layout: moments.layout.clone(),
            families: moments.families.clone(),
            means: result.means.clone(),
            max_participants: moments.max_participants,
        }
    }

    pub fn vector_len(&self) -> usize {
        1 + self.layout.numeric.len()
    }

    /// One member's vector; refused for the same rows pass 1 refuses, so
    /// both passes sum over the same members.
    pub fn vector(&self, records: &Records) -> Result<Vec<u64>, DatasetError> {
        MomentsQuery {
            layout: self.layout.clone(),
            families: self.families.clone(),
            max_participants: self.max_participants,
        }
        .vector(records)?;
        let mut out = vec![records.len() as u64];
        out.extend(moments::second_pass(
            &self.layout,
            records,
            &self.means,
            self.max_participants,
        )?);
        Ok(out)
    }

    /// The fitted encoder from pass 1's result and this pass's sum.
    pub fn decode(&self, moments: &Moments, sum: &[u64]) -> Result<FittedEncoder, DatasetError> {
        if moments.means != self.means {
            return Err(refuse(
                "the spread pass was asked with other means than pass 1 gave".into(),
            ));
        }
        let Some((&rows, deviations)) = sum.split_first() else {
            return Err(refuse("an empty spread sum".into()));
        };
        if rows != moments.rows {
            return Err(refuse(format!(
                "the spread pass summed {rows} rows, the moments pass {}: the passes were over \
                 different members (one dropped or joined between them); run the statistics \
                 round again",
                moments.rows
            )));
        }
        Ok(FittedEncoder {
            encoder: moments::spec_from(&self.layout, moments.rows, &self.means, deviations)?,
            moments: moments.clone(),
        })
    }
}

impl CalibrationQuery {
    pub fn vector_len(&self) -> usize {
        self.bins.len()
    }

    /// One member's histogram of its benign validation scores.
    pub fn vector(&self, benign_scores: &[f32]) -> Result<Vec<u64>, DatasetError> {
        if benign_scores.is_empty() {
            return Err(refuse(
                "no benign validation rows to score: the telemetry has no benign rows held out \
                 for validation (lower validation_fraction only if it is 0, or add benign traffic)"
                    .into(),
            ));
        }
        self.bins.histogram(benign_scores)
    }

    /// The threshold at the query's false-alarm rate, with its bounds.
    pub fn decode(&self, sum: &[u64]) -> Result<Calibration, DatasetError> {
        if sum.len() != self.vector_len() {
            return Err(refuse(format!(
                "a calibration sum has {} words, the bins need {}",
                sum.len(),
                self.vector_len()
            )));
        }
        let total: u64 = sum.iter().sum();
        if total == 0 {
            return Err(refuse("the calibration sum counts no benign rows".into()));
        }
        let q = 1.0 - self.false_alarm_rate;
        let threshold = self
            .bins
            .quantile(sum, q)
            .ok_or_else(|| refuse("no quantile of an empty histogram".into()))?;
        // The slot where the cumulative count reaches the target.
        let target = q * total as f64;
        let mut below = 0u64;
        let mut slot = sum.len() - 1;
        for (s, &c) in sum.iter().enumerate() {
            if c > 0 && (below + c) as f64 >= target {
                slot = s;
                break;
            }
            below += c;
        }
        let edges = &self.bins.edges;
        if slot == 0 || slot == edges.len() {
            return Err(refuse(format!(
                "the benign scores' {q}-quantile lies {} the calibration bins [{}, {}]: widen \
                 the bins in [calibration] of coordinator.toml",
                if slot == 0 { "below" } else { "above" },
                edges.first().copied().unwrap_or_default(),
                edges.last().copied().unwrap_or_default()
            )));
        }
        let above_bin: u64 = sum[slot + 1..].iter().sum();
        Ok(Calibration {
            false_alarm_rate: self.false_alarm_rate,
            threshold,
            score_interval: [edges[slot - 1], edges[slot]],
            false_alarm_interval: [
                above_bin as f64 / total as f64,
                (above_bin + sum[slot]) as f64 / total as f64,
            ],
            benign_rows: total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::{CategoricalColumn, NumericColumn};

    fn records(rows: &[(f64, &str, &str)]) -> Records {
        let mut r = Records::new(vec!["a".into()], vec!["proto".into()]);
        for (a, proto, family) in rows {
            r.push(
                &[*a],
                vec![proto.to_string()],
                family.to_string(),
                family.to_string(),
            )
            .unwrap();
        }
        r
    }

    fn query() -> MomentsQuery {
        MomentsQuery {
            layout: EncoderSpec {
                numeric: vec![NumericColumn {
                    name: "a".into(),
                    log1p: true,
                    mean: 0.0,
                    std: 1.0,
                }],
                categorical: vec![CategoricalColumn {
                    name: "proto".into(),
                    vocabulary: vec!["tcp".into(), "udp".into()],
                }],
            },
            families: vec!["normal".into(), "dos".into()],
            max_participants: 8,
        }
    }

    fn add(a: &[u64], b: &[u64]) -> Vec<u64> {
        a.iter().zip(b).map(|(x, y)| x.wrapping_add(*y)).collect()
    }

    #[test]
    fn two_passes_fit_the_pooled_encoder_and_count_categories_and_families() {
        let a = records(&[(1.0, "tcp", "normal"), (9.0, "icmp", "DoS")]);
        let b = records(&[(100.0, "udp", "normal"), (3.0, "tcp", "probe")]);
        let q = query();
        let moments = q
            .decode(&add(&q.vector(&a).unwrap(), &q.vector(&b).unwrap()))
            .unwrap();
        assert_eq!(moments.rows, 4);
        assert_eq!(moments.other_share["proto"], 0.25);
        assert_eq!(moments.label_counts["normal"], 2);
        assert_eq!(moments.label_counts["dos"], 1);
        assert_eq!(moments.label_counts[OTHER_FAMILY], 1);
        let spread = SpreadQuery::after(&q, &moments);
        let fitted = spread
            .decode(
                &moments,
                &add(&spread.vector(&a).unwrap(), &spread.vector(&b).unwrap()),
            )
            .unwrap();
        let mut pooled = a.clone();
        pooled.append(&b).unwrap();
        let want = EncoderSpec::fit(&pooled, &q.layout).unwrap();
        assert!((fitted.encoder.numeric[0].mean - want.numeric[0].mean).abs() < 1e-5);
        assert!((fitted.encoder.numeric[0].std - want.numeric[0].std).abs() < 1e-5);
    }

    #[test]
    fn telemetry_outside_the_vocabulary_is_refused_by_column() {
        let e = query()
            .vector(&records(&[
                (1.0, "icmp", "normal"),
                (2.0, "sctp", "normal"),
            ]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`proto`") && e.contains("icmp") && e.contains("vocabulary"),
            "{e}"
        );
        let mut other = Records::new(vec!["a".into()], vec!["service".into()]);
        other
            .push(
                &[1.0],
                vec!["http".into()],
                "normal".into(),
                "normal".into(),
            )
            .unwrap();
        let e = query().vector(&other).unwrap_err().to_string();
        assert!(e.contains("no such column") && e.contains("`proto`"), "{e}");
    }

    #[test]
    fn calibration_bounds_hold_the_pooled_quantile() {
        let q = CalibrationQuery {
            bins: ScoreBins::logarithmic(1e-3, 1e3, 20),
            false_alarm_rate: 0.05,
        };
        let a: Vec<f32> = (1..=600).map(|i| i as f32 * 0.01).collect();
        let b: Vec<f32> = (1..=400).map(|i| 0.5 + i as f32 * 0.02).collect();
        let c = q
            .decode(&add(&q.vector(&a).unwrap(), &q.vector(&b).unwrap()))
            .unwrap();
        let mut pooled: Vec<f32> = a.iter().chain(&b).copied().collect();
        pooled.sort_by(f32::total_cmp);
        let exact = f64::from(pooled[(0.95 * pooled.len() as f64) as usize - 1]);
        assert!(
            c.score_interval[0] <= exact && exact <= c.score_interval[1],
            "{exact} outside {:?}",
            c.score_interval
        );
        let above = pooled
            .iter()
            .filter(|&&s| f64::from(s) > c.threshold)
            .count() as f64
            / pooled.len() as f64;
        assert!(
            c.false_alarm_interval[0] <= above && above <= c.false_alarm_interval[1],
            "{above} outside {:?}",
            c.false_alarm_interval
        );
        let beyond = q
            .decode(&q.vector(&[1e9]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(beyond.contains("widen"), "{beyond}");
    }
}
