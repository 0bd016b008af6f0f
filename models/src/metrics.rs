//! Ranking metrics for anomaly scores (higher score = more anomalous; label `true` = attack).
//!
//! Both are computed by one sort, O(n log n), and treat tied scores as one threshold, so the
//! result does not depend on the input order of tied rows.

use std::cmp::Ordering;

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
