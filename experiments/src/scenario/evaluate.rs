//! Scoring a model on a test set: ranking metrics, the confusion at the
//! calibrated threshold, recall at the standard operating points (0.1 %,
//! 1 % and 5 % false alarms, thresholds from benign validation rows), and
//! recall at a false-alarm rate matched on the test set itself — an
//! oracle no deployment has, kept only to compare rankings.

use std::collections::BTreeMap;

use fedsoc_models::metrics::{confusion_at, recall_by_family, roc_curve, threshold_at_fpr};
use fedsoc_models::{pr_auc, roc_auc};
use ndarray::Array2;
use serde::Serialize;

use super::stats::{OPERATING_FPRS, threshold_at_validation_fpr};
use crate::error::ExperimentError;

/// Points kept of each ROC curve for the plots.
const ROC_POINTS: usize = 200;

/// An encoded test set with its labels.
pub struct TestData {
    pub name: String,
    pub features: Array2<f32>,
    pub attacks: Vec<bool>,
    pub families: Vec<String>,
    /// Each row's label (NSL-KDD: the attack's name).
    pub labels: Vec<String>,
}

/// The detector at a false-alarm budget set on benign validation rows,
/// as a deployment would set it.
#[derive(Clone, Debug, Serialize)]
pub struct OperatingPoint {
    /// The budget: at most this share of benign validation rows flagged.
    pub target_fpr: f64,
    pub threshold: f64,
    /// What the budget gave on the test set.
    pub fpr: f64,
    pub recall: f64,
    pub recall_by_family: BTreeMap<String, f64>,
    /// Recall per attack label (NSL-KDD: per attack name).
    pub recall_by_label: BTreeMap<String, f64>,
}

/// Recall where the false-alarm rate on this test set's benign rows is
/// `fpr`: the threshold is read off the test set's own labels (an oracle).
#[derive(Clone, Debug, Serialize)]
pub struct MatchedRecall {
    pub fpr: f64,
    pub threshold: f64,
    pub recall: f64,
    pub recall_by_family: BTreeMap<String, f64>,
}

/// Everything measured of one model on one test set.
#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    pub test: String,
    pub roc_auc: f64,
    pub pr_auc: f64,
    /// The calibrated threshold (a quantile of benign validation scores).
    pub threshold: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub false_positive_rate: f64,
    pub recall_by_family: BTreeMap<String, f64>,
    /// At [`OPERATING_FPRS`], thresholds from validation.
    pub operating_points: Vec<OperatingPoint>,
    /// The oracle: thresholds from the test set's labels.
    pub matched: MatchedRecall,
    #[serde(skip)]
    pub roc_curve: Vec<(f64, f64)>,
}

fn family_recall(scores: &[f32], families: &[String], threshold: f32) -> BTreeMap<String, f64> {
    let refs: Vec<&str> = families.iter().map(String::as_str).collect();
    recall_by_family(scores, &refs, threshold)
        .into_iter()
        .map(|(f, (hit, total))| {
            (
                f,
                if total == 0 {
                    0.0
                } else {
                    hit as f64 / total as f64
                },
            )
        })
        .collect()
}

/// Evaluates `scores` of `test` at the calibrated `threshold` and at the
/// operating points `benign_validation` scores give.
pub fn evaluate(
    test: &TestData,
    scores: &[f32],
    threshold: f64,
    benign_validation: &[f32],
    matched_fpr: f64,
) -> Result<Evaluation, ExperimentError> {
    if scores.len() != test.attacks.len() {
        return Err(ExperimentError::Setup(format!(
            "{} scores for {} test rows",
            scores.len(),
            test.attacks.len()
        )));
    }
    let t = threshold as f32;
    let c = confusion_at(scores, &test.attacks, t);
    let matched_t = threshold_at_fpr(scores, &test.attacks, matched_fpr).unwrap_or(f32::INFINITY);
    let m = confusion_at(scores, &test.attacks, matched_t);
    // Benign rows count as "normal" whatever the data calls them.
    let attack_labels: Vec<String> = test
        .labels
        .iter()
        .zip(&test.attacks)
        .map(|(l, &a)| if a { l.clone() } else { "normal".into() })
        .collect();
    let operating_points = OPERATING_FPRS
        .iter()
        .map(|&target_fpr| {
            let t = threshold_at_validation_fpr(benign_validation, target_fpr);
            let c = confusion_at(scores, &test.attacks, t);
            OperatingPoint {
                target_fpr,
                threshold: f64::from(t),
                fpr: c.false_positive_rate(),
                recall: c.recall(),
                recall_by_family: family_recall(scores, &test.families, t),
                recall_by_label: family_recall(scores, &attack_labels, t),
            }
        })
        .collect();
    Ok(Evaluation {
        test: test.name.clone(),
        roc_auc: roc_auc(scores, &test.attacks).unwrap_or(f64::NAN),
        pr_auc: pr_auc(scores, &test.attacks).unwrap_or(f64::NAN),
        threshold,
        precision: c.precision(),
        recall: c.recall(),
        f1: c.f1(),
        false_positive_rate: c.false_positive_rate(),
        recall_by_family: family_recall(scores, &test.families, t),
        operating_points,
        matched: MatchedRecall {
            fpr: m.false_positive_rate(),
            threshold: f64::from(matched_t),
            recall: m.recall(),
            recall_by_family: family_recall(scores, &test.families, matched_t),
        },
        roc_curve: roc_curve(scores, &test.attacks, ROC_POINTS),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluation_at_threshold_and_matched_fpr() {
        let test = TestData {
            name: "t".into(),
            features: Array2::zeros((6, 1)),
            attacks: vec![false, false, false, false, true, true],
            families: ["normal", "normal", "normal", "normal", "DoS", "R2L"]
                .map(String::from)
                .to_vec(),
            labels: [
                "normal",
                "normal",
                "normal",
                "normal",
                "neptune",
                "guess_passwd",
            ]
            .map(String::from)
            .to_vec(),
        };
        let scores = [0.1, 0.2, 0.3, 0.9, 0.8, 0.95];
        let validation: Vec<f32> = (0..1000).map(|i| i as f32 / 1000.0).collect();
        let e = evaluate(&test, &scores, 0.85, &validation, 0.25).unwrap();
        // At 0.85: flagged 0.9 (benign) and 0.95 (R2L).
        assert_eq!(
            (e.precision, e.recall, e.false_positive_rate),
            (0.5, 0.5, 0.25)
        );
        assert_eq!(e.recall_by_family["R2L"], 1.0);
        assert_eq!(e.recall_by_family["DoS"], 0.0);
        assert!((e.roc_auc - 0.875).abs() < 1e-12);
        assert!(e.matched.fpr <= 0.25);
        // Validation scores spread on [0, 1): at 5 % the threshold is just
        // below 0.95, flagging the R2L row (0.95) only.
        let at5 = &e.operating_points[2];
        assert_eq!(at5.target_fpr, 0.05);
        assert!(at5.threshold < 0.95 && at5.threshold > 0.94, "{at5:?}");
        assert_eq!((at5.recall, at5.fpr), (0.5, 0.0));
        assert_eq!(at5.recall_by_label["guess_passwd"], 1.0);
        assert_eq!(at5.recall_by_label["neptune"], 0.0);
        assert!(!at5.recall_by_label.contains_key("normal"));
        assert!(evaluate(&test, &scores[..5], 0.5, &validation, 0.1).is_err());
    }
}
