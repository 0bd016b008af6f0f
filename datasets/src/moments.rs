//! Federated preprocessing: what each participant contributes, as integer
//! vectors for secure aggregation, so the federation learns only sums.
//!
//! 1. **Feature statistics** in two secure sums. First `[n, Σt_j]` over
//!    each participant's rows (`t` = the column after `log1p` where the
//!    layout says so) gives the global mean; then `Σ(t_j − μ_j)²` gives the
//!    global (population) variance. Two passes keep the numbers small and
//!    the variance exact to the fixed-point step, unlike `Σt² − nμ²`.
//! 2. **Anomaly threshold**: each participant counts its benign validation
//!    rows' scores into public bins ([`ScoreBins`]); the summed histogram
//!    gives the global quantile (e.g. the 99th percentile of benign scores).
//!
//! Real numbers travel as fixed point with [`FRACTION_BITS`] fractional
//! bits in two's complement, which secure aggregation sums exactly modulo
//! 2^64. A participant refuses to contribute a value that could overflow
//! the ring when summed with the others (`max_participants` bounds them),
//! so a sum either decodes exactly or fails loudly; it never wraps.

use crate::encoder::EncoderSpec;
use crate::error::DatasetError;
use crate::table::Records;

/// Fractional bits of the fixed-point encoding (steps of about 1e-6).
pub const FRACTION_BITS: u32 = 20;

fn overflow(what: &str, value: f64, limit: f64) -> DatasetError {
    DatasetError::InvalidSpec(format!(
        "{what} = {value:e} is too large to sum securely (limit {limit:e} per participant); \
         mark heavy-tailed columns numeric-log or lower max_participants"
    ))
}

/// Largest magnitude one participant may contribute so that the sum of
/// `max_participants` contributions stays inside i64.
fn per_participant_limit(max_participants: usize) -> f64 {
    (i64::MAX as f64) / (max_participants.max(1) as f64 + 1.0)
}

/// `x` in fixed point, as a ring word; refuses what could overflow.
fn encode_real(x: f64, what: &str, max_participants: usize) -> Result<u64, DatasetError> {
    let scaled = (x * (1u64 << FRACTION_BITS) as f64).round();
    let limit = per_participant_limit(max_participants);
    if !scaled.is_finite() || scaled.abs() > limit {
        return Err(overflow(what, x, limit / (1u64 << FRACTION_BITS) as f64));
    }
    Ok(scaled as i64 as u64)
}

/// A summed ring word back to a real number.
fn decode_real(word: u64) -> f64 {
    (word as i64) as f64 / (1u64 << FRACTION_BITS) as f64
}

/// The layout's transformed numeric values of `records`, row by row.
fn transformed_rows(
    layout: &EncoderSpec,
    records: &Records,
) -> Result<Vec<Vec<f64>>, DatasetError> {
    let numeric_only = EncoderSpec {
        numeric: layout.numeric.clone(),
        categorical: Vec::new(),
    };
    if numeric_only.numeric.is_empty() {
        return Ok(Vec::new());
    }
    let resolved = numeric_only.resolve(records)?;
    (0..records.len())
        .map(|row| Ok(numeric_only.transformed(records, &resolved, row)?.collect()))
        .collect()
}

/// Pass 1, one participant: `[n, Σt_1, …, Σt_k]` as ring words.
pub fn first_pass(
    layout: &EncoderSpec,
    records: &Records,
    max_participants: usize,
) -> Result<Vec<u64>, DatasetError> {
    let rows = transformed_rows(layout, records)?;
    let mut sums = vec![0.0f64; layout.numeric.len()];
    for row in &rows {
        sums.iter_mut().zip(row).for_each(|(s, v)| *s += v);
    }
    let mut out = Vec::with_capacity(1 + sums.len());
    out.push(records.len() as u64);
    for (s, c) in sums.iter().zip(&layout.numeric) {
        out.push(encode_real(
            *s,
            &format!("sum of column `{}`", c.name),
            max_participants,
        )?);
    }
    Ok(out)
}

/// The global means from the summed pass-1 vector: `(n, means)`.
pub fn means_from(layout: &EncoderSpec, sum: &[u64]) -> Result<(u64, Vec<f64>), DatasetError> {
    let k = layout.numeric.len();
    if sum.len() != 1 + k {
        return Err(DatasetError::InvalidSpec(format!(
            "a pass-1 sum has {} words, the layout needs {}",
            sum.len(),
            1 + k
        )));
    }
    let n = sum[0];
    if n == 0 {
        return Err(DatasetError::EmptyInput);
    }
    Ok((
        n,
        sum[1..]
            .iter()
            .map(|&w| decode_real(w) / n as f64)
            .collect(),
    ))
}

/// Pass 2, one participant: `[Σ(t_1 − μ_1)², …]` as ring words.
pub fn second_pass(
    layout: &EncoderSpec,
    records: &Records,
    means: &[f64],
    max_participants: usize,
) -> Result<Vec<u64>, DatasetError> {
    let rows = transformed_rows(layout, records)?;
    let mut sums = vec![0.0f64; layout.numeric.len()];
    for row in &rows {
        for ((s, v), m) in sums.iter_mut().zip(row).zip(means) {
            *s += (v - m) * (v - m);
        }
    }
    sums.iter()
        .zip(&layout.numeric)
        .map(|(s, c)| {
            encode_real(
                *s,
                &format!("squared deviations of column `{}`", c.name),
                max_participants,
            )
        })
        .collect()
}

/// The federation-wide spec: `layout` with the securely summed means and
/// standard deviations.
pub fn spec_from(
    layout: &EncoderSpec,
    n: u64,
    means: &[f64],
    squared_deviations: &[u64],
) -> Result<EncoderSpec, DatasetError> {
    if squared_deviations.len() != layout.numeric.len() || means.len() != layout.numeric.len() {
        return Err(DatasetError::InvalidSpec(
            "pass-2 sum and means must have one entry per numeric column".into(),
        ));
    }
    let mut spec = layout.clone();
    for ((c, m), w) in spec.numeric.iter_mut().zip(means).zip(squared_deviations) {
        c.mean = *m;
        c.std = (decode_real(*w).max(0.0) / n as f64).sqrt();
    }
    spec.validate()?;
    Ok(spec)
}

/// Public histogram bins for anomaly scores: `edges` ascending, bin `i`
/// is `[edges[i], edges[i+1])`, with one under- and one overflow bin.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScoreBins {
    pub edges: Vec<f64>,
}

impl ScoreBins {
    /// Log-spaced bins for reconstruction errors: `per_decade` bins per
    /// factor of 10 from `low` to `high`.
    pub fn logarithmic(low: f64, high: f64, per_decade: usize) -> Self {
        let decades = (high / low).log10();
        let n = (decades * per_decade as f64).ceil().max(1.0) as usize;
        ScoreBins {
            edges: (0..=n)
                .map(|i| low * 10f64.powf(i as f64 / per_decade as f64))
                .collect(),
        }
    }

    /// `bins` even bins on [low, high], e.g. for classifier logits.
    pub fn linear(low: f64, high: f64, bins: usize) -> Self {
        let n = bins.max(1);
        ScoreBins {
            edges: (0..=n)
                .map(|i| low + (high - low) * i as f64 / n as f64)
                .collect(),
        }
    }

    /// Even bins on [0, 1] for probabilities.
    pub fn unit(bins: usize) -> Self {
        Self::linear(0.0, 1.0, bins)
    }

    /// Number of counters: the bins plus under- and overflow.
    pub fn len(&self) -> usize {
        self.edges.len() + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    fn slot(&self, score: f64) -> usize {
        // partition_point: the number of edges <= score.
        self.edges.partition_point(|&e| e <= score)
    }

    /// One participant's counts of `scores` (NaN scores are refused).
    pub fn histogram(&self, scores: &[f32]) -> Result<Vec<u64>, DatasetError> {
        let mut counts = vec![0u64; self.len()];
        for (row, s) in scores.iter().enumerate() {
            if s.is_nan() {
                return Err(DatasetError::NonFinite {
                    row,
                    column: "anomaly score".into(),
                    value: f64::from(*s),
                });
            }
            counts[self.slot(f64::from(*s))] += 1;
        }
        Ok(counts)
    }

    /// The `q`-quantile of the summed histogram, interpolated inside its
    /// bin (geometrically for log bins); an under/overflow bin gives its
    /// edge. `None` for an empty histogram or a wrong length.
    pub fn quantile(&self, counts: &[u64], q: f64) -> Option<f64> {
        if counts.len() != self.len() || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let target = q * total as f64;
        let mut below = 0u64;
        for (slot, &c) in counts.iter().enumerate() {
            if c > 0 && (below + c) as f64 >= target {
                if slot == 0 {
                    return self.edges.first().copied();
                }
                if slot == self.edges.len() {
                    return self.edges.last().copied();
                }
                let (lo, hi) = (self.edges[slot - 1], self.edges[slot]);
                let f = ((target - below as f64) / c as f64).clamp(0.0, 1.0);
                let geometric = lo > 0.0 && hi / lo > 1.0 + 1e-12 && self.is_logarithmic();
                return Some(if geometric {
                    lo * (hi / lo).powf(f)
                } else {
                    lo + (hi - lo) * f
                });
            }
            below += c;
        }
        self.edges.last().copied()
    }

    fn is_logarithmic(&self) -> bool {
        self.edges.len() >= 3
            && self.edges[0] > 0.0
            && ((self.edges[2] / self.edges[1]) - (self.edges[1] / self.edges[0])).abs() < 1e-9
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::NumericColumn;

    fn table(values: &[(f64, f64)]) -> Records {
        let mut r = Records::new(vec!["a".into(), "b".into()], vec![]);
        for (a, b) in values {
            r.push(&[*a, *b], vec![], "normal".into(), "normal".into())
                .unwrap();
        }
        r
    }

    fn layout() -> EncoderSpec {
        EncoderSpec {
            numeric: vec![
                NumericColumn {
                    name: "a".into(),
                    log1p: false,
                    mean: 0.0,
                    std: 1.0,
                },
                NumericColumn {
                    name: "b".into(),
                    log1p: true,
                    mean: 0.0,
                    std: 1.0,
                },
            ],
            categorical: vec![],
        }
    }

    fn add(parts: &[Vec<u64>]) -> Vec<u64> {
        let mut out = vec![0u64; parts[0].len()];
        for p in parts {
            out.iter_mut()
                .zip(p)
                .for_each(|(o, v)| *o = o.wrapping_add(*v));
        }
        out
    }

    #[test]
    fn summed_moments_match_pooled_fit() {
        let a = table(&[(1.0, 10.0), (2.0, 0.0), (3.5, 1000.0)]);
        let b = table(&[(-4.0, 5.0), (0.25, 3.0)]);
        let mut pooled = a.clone();
        pooled.append(&b).unwrap();
        let fitted = EncoderSpec::fit(&pooled, &layout()).unwrap();

        let s1 = add(&[
            first_pass(&layout(), &a, 8).unwrap(),
            first_pass(&layout(), &b, 8).unwrap(),
        ]);
        let (n, means) = means_from(&layout(), &s1).unwrap();
        assert_eq!(n, 5);
        let s2 = add(&[
            second_pass(&layout(), &a, &means, 8).unwrap(),
            second_pass(&layout(), &b, &means, 8).unwrap(),
        ]);
        let spec = spec_from(&layout(), n, &means, &s2).unwrap();
        for (got, want) in spec.numeric.iter().zip(&fitted.numeric) {
            assert!((got.mean - want.mean).abs() < 1e-5, "{got:?} {want:?}");
            assert!((got.std - want.std).abs() < 1e-5, "{got:?} {want:?}");
        }
    }

    #[test]
    fn values_that_could_overflow_are_refused() {
        let huge = table(&[(1e11, 1.0)]);
        let e = first_pass(&layout(), &huge, 1000).unwrap_err().to_string();
        assert!(e.contains("`a`") && e.contains("numeric-log"), "{e}");
        assert!(first_pass(&layout(), &huge, 1).is_ok());
        assert!(means_from(&layout(), &[0, 0, 0]).is_err());
        assert!(means_from(&layout(), &[1, 0]).is_err());
    }

    #[test]
    fn histogram_quantiles() {
        let bins = ScoreBins::unit(10);
        assert_eq!(bins.len(), 12);
        let scores: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
        let h = bins.histogram(&scores).unwrap();
        assert_eq!(h.iter().sum::<u64>(), 100);
        assert_eq!(h[0], 0); // nothing below 0
        // 0.00..0.09 in bin [0, 0.1): slot 1.
        assert_eq!(h[1], 10);
        let q = bins.quantile(&h, 0.95).unwrap();
        assert!((q - 0.95).abs() < 0.011, "{q}");
        assert_eq!(bins.quantile(&[0; 12], 0.5), None);
        assert!(bins.histogram(&[f32::NAN]).is_err());

        let log = ScoreBins::logarithmic(1e-3, 1e3, 20);
        let s: Vec<f32> = (1..=1000).map(|i| i as f32 * 0.01).collect(); // 0.01..10
        let h = log.histogram(&s).unwrap();
        let q99 = log.quantile(&h, 0.99).unwrap();
        assert!((q99 / 9.9 - 1.0).abs() < 0.12, "{q99}");
        // Scores past the last edge land in the overflow bin.
        let h = log.histogram(&[1e9]).unwrap();
        assert_eq!(h[log.len() - 1], 1);
        assert_eq!(log.quantile(&h, 0.5), log.edges.last().copied());
    }
}
