//! Metrics for anomaly scores (higher score = more anomalous; label `true` = attack).
//!
//! Ranking metrics ([`roc_auc`], [`pr_auc`], [`roc_curve`], [`threshold_at_fpr`]) are computed by
//! one sort, O(n log n), and treat tied scores as one threshold, so the result does not depend on
//! the input order of tied rows; they return `None` (or an empty curve) when the inputs cannot be
//! ranked meaningfully.
//!
//! Threshold metrics ([`confusion_at`], [`recall_by_family`]) flag a row by the one flag rule,
//! [`flags`]: its score is above the threshold, or NaN (a score nobody can rank is reported, not
//! hidden). They pair rows with `zip`: when the slices differ in length the extra entries are
//! ignored, so callers that cannot rule that out should compare lengths first.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::score::flags;
use serde::{Deserialize, Serialize};

/// The family name of benign rows, left out of [`recall_by_family`].
pub const NORMAL_FAMILY: &str = "normal";

/// Area under the ROC curve.
///
/// Equals the probability that a random attack scores above a random benign row, with ties
/// counting one half (Mann–Whitney U with average ranks, i.e. the trapezoid rule).
/// `None` if only one class is present, the lengths differ, or a score is NaN.
pub fn roc_auc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let (pos, neg) = class_counts(scores, labels)?;
    let order = sorted_indices(scores, Ordering::Less);
    // Sum of the (1-based, tie-averaged) ranks of the positives.
    let mut pos_rank_sum = 0.0f64;
    for_each_tie_group(&order, scores, |start, group| {
        let group_pos = group.iter().filter(|&&i| labels[i]).count();
        let avg_rank = start as f64 + (group.len() as f64 + 1.0) / 2.0;
        pos_rank_sum += group_pos as f64 * avg_rank;
    });
    let (p, n) = (pos as f64, neg as f64);
    Some((pos_rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// Area under the precision–recall curve as average precision:
/// `Σ_k (R_k − R_{k−1}) · P_k` over distinct score thresholds, highest first (as scikit-learn).
/// `None` if only one class is present, the lengths differ, or a score is NaN.
pub fn pr_auc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let (pos, _) = class_counts(scores, labels)?;
    let order = sorted_indices(scores, Ordering::Greater);
    let (mut tp, mut seen) = (0usize, 0usize);
    let mut prev_recall = 0.0f64;
    let mut ap = 0.0f64;
    for_each_tie_group(&order, scores, |_, group| {
        tp += group.iter().filter(|&&i| labels[i]).count();
        seen += group.len();
        let recall = tp as f64 / pos as f64;
        let precision = tp as f64 / seen as f64;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
    });
    Some(ap)
}

/// Counts of a thresholded detector against the labels (positive = attack).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    /// Attacks flagged.
    pub tp: usize,
    /// Benign rows flagged (false alarms).
    pub fp: usize,
    /// Benign rows not flagged.
    pub tn: usize,
    /// Attacks missed.
    pub fn_: usize,
}

impl Confusion {
    /// `tp / (tp + fp)`: the share of alerts that are attacks; 0 when nothing is flagged.
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// `tp / (tp + fn)`: the share of attacks caught; 0 when there are no attacks.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// Harmonic mean of precision and recall, `2tp / (2tp + fp + fn)`; 0 when `tp` is 0.
    pub fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }

    /// `fp / (fp + tn)`: the share of benign rows flagged; 0 when there are no benign rows.
    pub fn false_positive_rate(&self) -> f64 {
        ratio(self.fp, self.fp + self.tn)
    }
}

/// `num / den`, or 0 when `den` is 0 (the metric is undefined; 0 never overstates a detector).
fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// The confusion counts when rows are flagged by [`flags`] (score above `threshold`).
pub fn confusion_at(scores: &[f32], labels: &[bool], threshold: f32) -> Confusion {
    let mut c = Confusion::default();
    for (&score, &attack) in scores.iter().zip(labels) {
        match (flags(score, threshold.into()), attack) {
            (true, true) => c.tp += 1,
            (true, false) => c.fp += 1,
            (false, false) => c.tn += 1,
            (false, true) => c.fn_ += 1,
        }
    }
    c
}

/// The lowest score threshold whose false-positive rate on the benign rows is `<= max_fpr`:
/// the most attacks caught within a false-alarm budget.
///
/// Candidates are just below the distinct scores (the next lower `f32`, so [`flags`] flags every
/// row with that score): a benign row tied with an attack cannot be split from it. `None` if the lengths differ, a
/// score or `max_fpr` is NaN, there are no benign rows, or even the highest score already
/// flags too many benign rows (then only a threshold above every score, flagging nothing, fits).
pub fn threshold_at_fpr(scores: &[f32], labels: &[bool], max_fpr: f64) -> Option<f32> {
    if scores.len() != labels.len() || scores.iter().any(|s| s.is_nan()) || max_fpr.is_nan() {
        return None;
    }
    let neg = labels.iter().filter(|&&l| !l).count();
    if neg == 0 {
        return None;
    }
    let order = sorted_indices(scores, Ordering::Greater);
    let (mut fp, mut best) = (0usize, None);
    // Lowering the threshold only adds false alarms, so the last group within budget wins.
    for_each_tie_group(&order, scores, |_, group| {
        fp += group.iter().filter(|&&i| !labels[i]).count();
        if fp as f64 / neg as f64 <= max_fpr {
            best = Some(scores[group[0]].next_down());
        }
    });
    best
}

/// `(flagged, total)` per attack family at `threshold`, for every family except
/// [`NORMAL_FAMILY`]: which kinds of attack a detector catches and which it misses.
pub fn recall_by_family(
    scores: &[f32],
    families: &[&str],
    threshold: f32,
) -> BTreeMap<String, (usize, usize)> {
    let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (&score, &family) in scores.iter().zip(families) {
        if family == NORMAL_FAMILY {
            continue;
        }
        let flagged = usize::from(flags(score, threshold.into()));
        match out.get_mut(family) {
            Some((hit, total)) => {
                *hit += flagged;
                *total += 1;
            }
            None => {
                out.insert(family.to_string(), (flagged, 1));
            }
        }
    }
    out
}

/// ROC curve points `(false-positive rate, true-positive rate)` for plotting: `(0, 0)`, then one
/// point per distinct score from the highest down (the last is `(1, 1)`). Tied scores form one
/// point, so ties draw a diagonal segment and the trapezoid area equals [`roc_auc`].
///
/// Longer curves are thinned to `max_points` evenly spaced points (by index), always keeping
/// both ends; `max_points` below 2 counts as 2. Empty when [`roc_auc`] would be `None`.
pub fn roc_curve(scores: &[f32], labels: &[bool], max_points: usize) -> Vec<(f64, f64)> {
    let Some((pos, neg)) = class_counts(scores, labels) else {
        return Vec::new();
    };
    let order = sorted_indices(scores, Ordering::Greater);
    let mut points = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0usize, 0usize);
    for_each_tie_group(&order, scores, |_, group| {
        let group_pos = group.iter().filter(|&&i| labels[i]).count();
        tp += group_pos;
        fp += group.len() - group_pos;
        points.push((fp as f64 / neg as f64, tp as f64 / pos as f64));
    });
    thin(points, max_points.max(2))
}

/// At most `max` (>= 2) of `points`, evenly spaced by index, first and last included.
fn thin<T: Copy>(points: Vec<T>, max: usize) -> Vec<T> {
    if points.len() <= max {
        return points;
    }
    let last = (points.len() - 1) as u128;
    let steps = (max - 1) as u128;
    // `k·last/steps` rises strictly (last > steps) from 0 to `last`; u128 cannot overflow.
    (0..=steps)
        .filter_map(|k| points.get((k * last / steps) as usize).copied())
        .collect()
}

/// `(positives, negatives)`, or `None` when the inputs cannot be ranked meaningfully.
fn class_counts(scores: &[f32], labels: &[bool]) -> Option<(usize, usize)> {
    if scores.len() != labels.len() || scores.iter().any(|s| s.is_nan()) {
        return None;
    }
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = labels.len() - pos;
    (pos > 0 && neg > 0).then_some((pos, neg))
}

/// Indices sorted by score, ascending for `Less`, descending for `Greater`.
fn sorted_indices(scores: &[f32], first: Ordering) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        let ord = scores[a].total_cmp(&scores[b]);
        if first == Ordering::Less {
            ord
        } else {
            ord.reverse()
        }
    });
    order
}

/// Calls `f(start, group)` for each run of equal scores in `order` (`start` = run position).
/// Uses `==`, so `-0.0` and `0.0` (adjacent after sorting) form one tie group.
fn for_each_tie_group(order: &[usize], scores: &[f32], mut f: impl FnMut(usize, &[usize])) {
    let mut start = 0;
    while start < order.len() {
        let s = scores[order[start]];
        let len = order[start..]
            .iter()
            .take_while(|&&i| scores[i] == s)
            .count();
        f(start, &order[start..start + len]);
        start += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: bool = true;
    const F: bool = false;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// O(n²) definition: P(score⁺ > score⁻) + ½ P(score⁺ = score⁻).
    fn brute_auc(scores: &[f32], labels: &[bool]) -> f64 {
        let (mut num, mut den) = (0.0, 0.0);
        for (i, &li) in labels.iter().enumerate() {
            for (j, &lj) in labels.iter().enumerate() {
                if li && !lj {
                    den += 1.0;
                    num += match scores[i].partial_cmp(&scores[j]) {
                        Some(Ordering::Greater) => 1.0,
                        Some(Ordering::Equal) => 0.5,
                        _ => 0.0,
                    };
                }
            }
        }
        num / den
    }

    #[test]
    fn roc_auc_hand_computed() {
        // Pairs (pos, neg): (.35,.1)✓ (.35,.4)✗ (.8,.1)✓ (.8,.4)✓ → 3/4.
        assert!(close(
            roc_auc(&[0.1, 0.4, 0.35, 0.8], &[F, F, T, T]).unwrap(),
            0.75
        ));
        assert!(close(
            roc_auc(&[0.1, 0.2, 0.8, 0.9], &[F, F, T, T]).unwrap(),
            1.0
        ));
        assert!(close(
            roc_auc(&[0.9, 0.8, 0.2, 0.1], &[F, F, T, T]).unwrap(),
            0.0
        ));
    }

    #[test]
    fn roc_auc_ties_count_half() {
        // pos {.5,.9}, neg {.5,.2}: (.5,.5)=½ (.5,.2)=1 (.9,.5)=1 (.9,.2)=1 → 3.5/4.
        assert!(close(
            roc_auc(&[0.5, 0.5, 0.2, 0.9], &[T, F, F, T]).unwrap(),
            0.875
        ));
        // All scores equal: pure chance.
        assert!(close(roc_auc(&[0.3; 5], &[T, F, F, T, F]).unwrap(), 0.5));
        // -0.0 ties with 0.0.
        assert!(close(roc_auc(&[-0.0, 0.0], &[T, F]).unwrap(), 0.5));
    }

    #[test]
    fn pr_auc_hand_computed() {
        // Descending: .8 T (P=1, R=½), .4 F (P=½, R=½), .35 T (P=⅔, R=1), .1 F.
        // AP = ½·1 + ½·⅔ = 5/6.
        assert!(close(
            pr_auc(&[0.1, 0.4, 0.35, 0.8], &[F, F, T, T]).unwrap(),
            5.0 / 6.0
        ));
        assert!(close(
            pr_auc(&[0.1, 0.2, 0.8, 0.9], &[F, F, T, T]).unwrap(),
            1.0
        ));
        // Worst ranking: positives last. .9 F, .8 F, .2 T (P=⅓, R=½), .1 T (P=½, R=1).
        assert!(close(
            pr_auc(&[0.9, 0.8, 0.2, 0.1], &[F, F, T, T]).unwrap(),
            0.5 / 3.0 + 0.25
        ));
    }

    #[test]
    fn pr_auc_ties_form_one_threshold() {
        // .9 T (P=1, R=½); {.5 T, .5 F} (P=⅔, R=1); .2 F. AP = ½ + ½·⅔ = 5/6.
        assert!(close(
            pr_auc(&[0.5, 0.5, 0.2, 0.9], &[T, F, F, T]).unwrap(),
            5.0 / 6.0
        ));
        // All tied: AP = prevalence.
        assert!(close(pr_auc(&[1.0; 4], &[T, F, F, F]).unwrap(), 0.25));
    }

    #[test]
    fn undefined_inputs_give_none() {
        for f in [roc_auc, pr_auc] {
            assert_eq!(f(&[0.1, 0.2], &[T, T]), None);
            assert_eq!(f(&[0.1, 0.2], &[F, F]), None);
            assert_eq!(f(&[], &[]), None);
            assert_eq!(f(&[0.1], &[T, F]), None);
            assert_eq!(f(&[f32::NAN, 0.2], &[T, F]), None);
        }
    }

    #[test]
    fn confusion_counts_and_rates() {
        let scores = [0.1, 0.4, 0.35, 0.8, 0.4];
        let labels = [F, F, T, T, T];
        // Just below 0.4 the tied 0.4s are both flagged: .4 F (fp), .8 T and .4 T
        // (tp); .35 T is missed (fn), .1 F passes (tn).
        let c = confusion_at(&scores, &labels, 0.39);
        assert_eq!(
            c,
            Confusion {
                tp: 2,
                fp: 1,
                tn: 1,
                fn_: 1
            }
        );
        assert!(close(c.precision(), 2.0 / 3.0));
        assert!(close(c.recall(), 2.0 / 3.0));
        assert!(close(c.f1(), 2.0 / 3.0));
        assert!(close(c.false_positive_rate(), 0.5));
        // At the tie (a score equal to the threshold does not alarm): only .8 T.
        // P = 1, R = ⅓, F1 = 2·⅓/(1 + ⅓) = ½, FPR = 0.
        let c = confusion_at(&scores, &labels, 0.4);
        assert_eq!((c.tp, c.fp, c.tn, c.fn_), (1, 0, 2, 2));
        assert!(close(c.precision(), 1.0));
        assert!(close(c.recall(), 1.0 / 3.0));
        assert!(close(c.f1(), 0.5));
        assert!(close(c.false_positive_rate(), 0.0));
    }

    #[test]
    fn confusion_rates_are_zero_where_undefined() {
        // Benign only, nothing flagged: no alerts, no attacks.
        let c = confusion_at(&[0.1, 0.2], &[F, F], 0.5);
        assert_eq!(
            (c.tn, c.precision(), c.recall(), c.f1()),
            (2, 0.0, 0.0, 0.0)
        );
        assert_eq!(c.false_positive_rate(), 0.0);
        // Attacks only: no benign rows.
        let c = confusion_at(&[0.9], &[T], 0.5);
        assert_eq!((c.tp, c.false_positive_rate(), c.f1()), (1, 0.0, 1.0));
        assert_eq!(Confusion::default().f1(), 0.0);
        // NaN is always flagged (see `flags`), even under an infinite threshold.
        let c = confusion_at(&[f32::NAN, f32::NAN], &[T, F], f32::INFINITY);
        assert_eq!((c.tp, c.fp), (1, 1));
    }

    #[test]
    fn threshold_at_fpr_respects_ties() {
        // Benign {.9, .8, .5}, attacks {.8, .7, .3}. From the top: .9 F (FPR ⅓),
        // {.8 T, .8 F} (⅔), .7 T (⅔), .5 F (1), .3 T (1).
        let scores = [0.9, 0.8, 0.8, 0.7, 0.5, 0.3];
        let labels = [F, T, F, T, F, T];
        let at = |fpr| threshold_at_fpr(&scores, &labels, fpr);
        // The threshold is just below the lowest flagged score.
        let below = |s: f32| Some(s.next_down());
        assert_eq!(at(1.0 / 3.0), below(0.9));
        // 0.8 would also flag the tied benign row: FPR ⅔ > ½.
        assert_eq!(at(0.5), below(0.9));
        assert_eq!(at(2.0 / 3.0), below(0.7));
        assert_eq!(at(0.99), below(0.7));
        assert_eq!(at(1.0), below(0.3));
        // The top row is benign: no score keeps FPR at 0.
        assert_eq!(at(0.0), None);
        assert_eq!(at(0.2), None);
        // An attack on top: its score is the zero-false-alarm threshold.
        assert_eq!(
            threshold_at_fpr(&[0.95, 0.9], &[T, F], 0.0),
            Some(0.95f32.next_down())
        );
    }

    #[test]
    fn threshold_at_fpr_undefined_inputs() {
        assert_eq!(threshold_at_fpr(&[0.1, 0.2], &[T, T], 0.5), None);
        assert_eq!(threshold_at_fpr(&[], &[], 0.5), None);
        assert_eq!(threshold_at_fpr(&[0.1], &[T, F], 0.5), None);
        assert_eq!(threshold_at_fpr(&[f32::NAN, 0.2], &[T, F], 0.5), None);
        assert_eq!(threshold_at_fpr(&[0.1, 0.2], &[T, F], f64::NAN), None);
        // Benign only is fine: the lowest score within budget.
        assert_eq!(
            threshold_at_fpr(&[0.1, 0.2], &[F, F], 0.5),
            Some(0.2f32.next_down())
        );
    }

    #[test]
    fn recall_by_family_skips_normal() {
        let scores = [0.9, 0.2, 0.6, 0.6, 0.1, 0.7];
        let families = ["DoS", "DoS", "Probe", "normal", "R2L", "normal"];
        // At 0.55: DoS .9 ✓ .2 ✗; Probe .6 ✓; R2L .1 ✗; normal left out.
        let got = recall_by_family(&scores, &families, 0.55);
        let want: BTreeMap<String, (usize, usize)> = [
            ("DoS".to_string(), (1, 2)),
            ("Probe".to_string(), (1, 1)),
            ("R2L".to_string(), (0, 1)),
        ]
        .into();
        assert_eq!(got, want);
        assert!(recall_by_family(&[0.5], &["normal"], 0.0).is_empty());
    }

    #[test]
    fn roc_curve_hand_computed() {
        // Descending: .8 T → (0, ½); .4 F → (½, ½); .35 T → (½, 1); .1 F → (1, 1).
        let scores = [0.1, 0.4, 0.35, 0.8];
        let labels = [F, F, T, T];
        let full = vec![(0.0, 0.0), (0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0)];
        assert_eq!(roc_curve(&scores, &labels, 100), full);
        assert_eq!(roc_curve(&scores, &labels, 5), full);
        // Thinned to 3: indices 0, 2, 4.
        assert_eq!(
            roc_curve(&scores, &labels, 3),
            vec![(0.0, 0.0), (0.5, 0.5), (1.0, 1.0)]
        );
        // Below 2 still keeps both ends.
        for max in [0, 1, 2] {
            assert_eq!(
                roc_curve(&scores, &labels, max),
                vec![(0.0, 0.0), (1.0, 1.0)]
            );
        }
    }

    #[test]
    fn roc_curve_ties_are_one_point() {
        // .9 T → (0, ½); {.5 T, .5 F} → (½, 1) in one diagonal step; .2 F → (1, 1).
        assert_eq!(
            roc_curve(&[0.5, 0.5, 0.2, 0.9], &[T, F, F, T], 10),
            vec![(0.0, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]
        );
        assert_eq!(
            roc_curve(&[0.3; 3], &[T, F, F], 10),
            vec![(0.0, 0.0), (1.0, 1.0)]
        );
        assert!(roc_curve(&[0.1, 0.2], &[T, T], 10).is_empty());
        assert!(roc_curve(&[f32::NAN, 0.2], &[T, F], 10).is_empty());
    }

    fn trapezoid(curve: &[(f64, f64)]) -> f64 {
        curve
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
            .sum()
    }

    fn scored() -> impl Strategy<Value = (Vec<f32>, Vec<bool>)> {
        // Integer-valued scores in a small range: many ties, and the transforms below keep
        // distinct values distinct in f32 (so they are truly monotone after rounding).
        prop::collection::vec((-50i32..50, any::<bool>()), 2..80)
            .prop_map(|v| v.into_iter().map(|(s, l)| (s as f32, l)).unzip())
    }

    proptest! {
        #[test]
        fn roc_auc_invariant_under_monotone_transform((scores, labels) in scored()) {
            let base = roc_auc(&scores, &labels);
            let transforms: [fn(f32) -> f32; 3] = [
                |x| (f64::from(x) / 10.0).exp() as f32,
                |x| (f64::from(x).powi(3) + 5.0) as f32,
                |x| 3.0 * x - 2.0,
            ];
            for t in transforms {
                let mapped: Vec<f32> = scores.iter().map(|&s| t(s)).collect();
                let got = roc_auc(&mapped, &labels);
                match (base, got) {
                    (Some(a), Some(b)) => prop_assert!(close(a, b), "{a} vs {b}"),
                    (a, b) => prop_assert_eq!(a, b),
                }
            }
        }

        #[test]
        fn roc_auc_matches_pairwise_definition((scores, labels) in scored()) {
            if let Some(auc) = roc_auc(&scores, &labels) {
                prop_assert!(close(auc, brute_auc(&scores, &labels)));
                let negated: Vec<f32> = scores.iter().map(|s| -s).collect();
                prop_assert!(close(roc_auc(&negated, &labels).unwrap(), 1.0 - auc));
            }
        }

        #[test]
        fn roc_curve_area_is_roc_auc((scores, labels) in scored(), max in 0usize..12) {
            if let Some(auc) = roc_auc(&scores, &labels) {
                let full = roc_curve(&scores, &labels, usize::MAX);
                prop_assert!(close(trapezoid(&full), auc));
                let thinned = roc_curve(&scores, &labels, max);
                prop_assert!(thinned.len() <= max.max(2));
                prop_assert_eq!(thinned.first(), Some(&(0.0, 0.0)));
                prop_assert_eq!(thinned.last(), Some(&(1.0, 1.0)));
                prop_assert!(thinned.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
            } else {
                prop_assert!(roc_curve(&scores, &labels, max).is_empty());
            }
        }

        #[test]
        fn threshold_at_fpr_is_lowest_within_budget(
            (scores, labels) in scored(),
            max_fpr in 0.0f64..1.0,
        ) {
            let fpr = |t: f32| confusion_at(&scores, &labels, t).false_positive_rate();
            match threshold_at_fpr(&scores, &labels, max_fpr) {
                Some(t) => {
                    prop_assert!(fpr(t) <= max_fpr);
                    // Flagging the highest score left unflagged breaks the budget.
                    if let Some(&lower) = scores.iter().filter(|&&s| s <= t).max_by(|a, b| a.total_cmp(b)) {
                        prop_assert!(fpr(lower.next_down()) > max_fpr);
                    }
                }
                None => {
                    let top = scores.iter().copied().max_by(|a, b| a.total_cmp(b));
                    let no_benign = labels.iter().all(|&l| l);
                    prop_assert!(no_benign || top.is_some_and(|t| fpr(t.next_down()) > max_fpr));
                }
            }
        }

        #[test]
        fn pr_auc_is_order_independent_and_bounded((scores, labels) in scored()) {
            if let Some(ap) = pr_auc(&scores, &labels) {
                prop_assert!((0.0..=1.0 + 1e-12).contains(&ap));
                let rev_s: Vec<f32> = scores.iter().rev().copied().collect();
                let rev_l: Vec<bool> = labels.iter().rev().copied().collect();
                prop_assert!(close(pr_auc(&rev_s, &rev_l).unwrap(), ap));
            }
        }
    }
}
