//! Training objectives as burn tensors (so autodiff sees them): the autoencoder's reconstruction
//! MSE and the classifier's cross-entropy family, with the choices that cope with rare attacks.
//!
//! Classifier losses are written in terms of the logit `z` through `log σ(z)` and `log σ(−z)`,
//! which stay finite for any finite `z` (a probability rounded to exactly 0 or 1 never reaches
//! a `log`), so a confident model cannot turn the loss or its gradient into NaN.

use burn::tensor::activation::log_sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::input;
use crate::mlp::Mlp;
use crate::model::ModelConfig;

/// The classifier's loss. Ignored by the autoencoder.
///
/// With `p = σ(z)` the predicted P(attack) and `y ∈ {0, 1}` the label, each row contributes
/// (batch losses are means over rows):
///
/// - `Bce`: `−[y·log p + (1−y)·log(1−p)]`.
/// - `Balanced`: `Bce` with the attack term multiplied by `w = negatives / positives`, counted
///   over the participant's whole local data, so both classes carry equal total weight; `w = 1`
///   when either class is absent locally.
/// - `Weighted { pos_weight }`: `Bce` with the attack term multiplied by a given `w`: the
///   federation-wide negatives / positives of a statistics round, so every SOC weighs classes
///   alike (a SOC with few attacks no longer gives them a huge local weight).
/// - `Focal { gamma }`: `−[y·(1−p)^γ·log p + (1−y)·p^γ·log(1−p)]` (Lin et al., 2017), which
///   shrinks the loss of rows the model already gets right so training concentrates on the hard
///   ones. This is the α-balanced form with `α = ½`, times 2: the constant does not change
///   Adam's steps, and `gamma = 0` is exactly `Bce`.
///
/// Serialised with a `kind` tag: `{"kind": "bce"}`, `{"kind": "focal", "gamma": 2.0}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClassifierLoss {
    /// Plain binary cross-entropy.
    #[default]
    Bce,
    /// Cross-entropy with attacks weighted by the local negatives/positives ratio.
    Balanced,
    /// Cross-entropy with attacks weighted by a given (federation-wide) ratio.
    Weighted {
        /// Weight of the attack term, finite and > 0.
        pos_weight: f64,
    },
    /// Binary focal loss.
    Focal {
        /// Focusing exponent, `>= 0`; 2 is the usual choice.
        gamma: f64,
    },
}

impl ClassifierLoss {
    /// The names configuration files and training tasks use.
    pub const NAMES: [&'static str; 3] = ["bce", "balanced", "focal"];

    /// The loss `name` denotes ("" is `Bce`, as in a task from before
    /// losses were named), with `focal_gamma` for the focal loss; `None`
    /// for an unknown name.
    pub fn from_name(name: &str, focal_gamma: f64) -> Option<Self> {
        match name {
            "" | "bce" => Some(Self::Bce),
            "balanced" => Some(Self::Balanced),
            "focal" => Some(Self::Focal { gamma: focal_gamma }),
            _ => None,
        }
    }

    /// Why the loss is unusable, if it is.
    pub(crate) fn problem(&self) -> Option<String> {
        match *self {
            Self::Focal { gamma } if !(gamma.is_finite() && gamma >= 0.0) => Some(format!(
                "focal loss gamma is {gamma}, it must be finite and >= 0 (2 is the usual choice)"
            )),
            Self::Weighted { pos_weight } if !(pos_weight.is_finite() && pos_weight > 0.0) => {
                Some(format!(
                    "the attack weight is {pos_weight}, it must be finite and > 0 (benign rows \
                     per attack row)"
                ))
            }
            _ => None,
        }
    }
}

/// What one training run minimises, fixed before the first batch.
pub(crate) enum Objective<'a> {
    /// Mean squared reconstruction error over rows and features.
    Reconstruction,
    /// A [`ClassifierLoss`] against per-row labels.
    Classification(Labelled<'a>),
}

/// A classifier loss bound to the run's labels.
pub(crate) struct Labelled<'a> {
    labels: &'a [bool],
    /// Weight of the attack term (`Balanced`), else 1.
    pos_weight: f32,
    /// Focal exponent; `None` for the cross-entropy losses.
    gamma: Option<f64>,
}

impl<'a> Objective<'a> {
    /// The objective of `config`, checking that a supervised model got one label per row.
    pub(crate) fn new(
        config: &ModelConfig,
        labels: Option<&'a [bool]>,
        rows: usize,
        loss: ClassifierLoss,
    ) -> Result<Self, ModelError> {
        let Some(labels) = input::labels(config, labels, rows)? else {
            return Ok(Self::Reconstruction);
        };
        let (pos_weight, gamma) = match loss {
            ClassifierLoss::Bce => (1.0, None),
            ClassifierLoss::Balanced => (balance_weight(labels), None),
            ClassifierLoss::Weighted { pos_weight } => (pos_weight as f32, None),
            ClassifierLoss::Focal { gamma } => (1.0, Some(gamma)),
        };
        Ok(Self::Classification(Labelled {
            labels,
            pos_weight,
            gamma,
        }))
    }

    /// Mean loss of the rows `idx` (whose features are `x`) under `model`.
    pub(crate) fn batch_loss(
        &self,
        model: &Mlp,
        x: Tensor<2>,
        idx: &[usize],
        device: &Device,
    ) -> Tensor<1> {
        match self {
            Self::Reconstruction => (model.forward(x.clone()) - x).square().mean(),
            Self::Classification(labelled) => labelled.loss(model.forward(x), idx, device),
        }
    }
}

impl Labelled<'_> {
    /// Mean loss of `logits` (`[batch, 1]`) for the rows `idx`.
    fn loss(&self, logits: Tensor<2>, idx: &[usize], device: &Device) -> Tensor<1> {
        // Per-row coefficients of log p and log(1−p): the label picks one, `pos_weight` scales
        // the attack term. Built on the host: one upload each instead of tensor arithmetic on y.
        let n = idx.len();
        let (mut pos, mut neg) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for &i in idx {
            // `idx` comes from `0..rows` and `labels.len() == rows` (checked in `new`).
            let attack = self.labels.get(i).copied().unwrap_or(false);
            pos.push(if attack { self.pos_weight } else { 0.0 });
            neg.push(if attack { 0.0 } else { 1.0 });
        }
        let pos = Tensor::<2>::from_data(TensorData::new(pos, [n, 1]), device);
        let neg = Tensor::<2>::from_data(TensorData::new(neg, [n, 1]), device);
        let log_p = log_sigmoid(logits.clone());
        let log_q = log_sigmoid(logits.neg());
        let (pos, neg) = match self.gamma {
            // (1−p)^γ = exp(γ·log(1−p)): finite, with a finite gradient, even where p rounds to 1.
            Some(g) => (
                pos * log_q.clone().mul_scalar(g).exp(),
                neg * log_p.clone().mul_scalar(g).exp(),
            ),
            None => (pos, neg),
        };
        (pos * log_p + neg * log_q).mean().neg()
    }
}

/// `negatives / positives` of the local labels, or 1 when a class is absent.
fn balance_weight(labels: &[bool]) -> f32 {
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        1.0
    } else {
        (neg as f64 / pos as f64) as f32
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn losses_by_name() {
        assert_eq!(
            ClassifierLoss::from_name("", 2.0),
            Some(ClassifierLoss::Bce)
        );
        assert_eq!(
            ClassifierLoss::from_name("bce", 2.0),
            Some(ClassifierLoss::Bce)
        );
        assert_eq!(
            ClassifierLoss::from_name("balanced", 2.0),
            Some(ClassifierLoss::Balanced)
        );
        assert_eq!(
            ClassifierLoss::from_name("focal", 3.0),
            Some(ClassifierLoss::Focal { gamma: 3.0 })
        );
        assert_eq!(ClassifierLoss::from_name("hinge", 2.0), None);
        assert!(
            ClassifierLoss::NAMES
                .iter()
                .all(|n| ClassifierLoss::from_name(n, 2.0).is_some())
        );
    }

    use super::*;
    use crate::classifier::ClassifierConfig;
    use crate::flat::read_f32s;

    const T: bool = true;
    const F: bool = false;

    fn classifier() -> ModelConfig {
        ClassifierConfig::new(3).into()
    }

    /// The loss of fixed `logits` for rows `0..n` under `loss`.
    fn loss_of(logits: &[f32], labels: &[bool], loss: ClassifierLoss) -> f64 {
        let device = Device::flex();
        let Objective::Classification(labelled) =
            Objective::new(&classifier(), Some(labels), labels.len(), loss).unwrap()
        else {
            panic!("a classifier has a labelled objective");
        };
        let z =
            Tensor::<2>::from_data(TensorData::new(logits.to_vec(), [logits.len(), 1]), &device);
        let idx: Vec<usize> = (0..logits.len()).collect();
        f64::from(read_f32s(labelled.loss(z, &idx, &device)).unwrap()[0])
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6 * b.abs().max(1.0)
    }

    #[test]
    fn losses_at_zero_logits() {
        // z = 0 → p = ½ for every row, so every row's cross-entropy is ln 2.
        let ln2 = std::f64::consts::LN_2;
        let labels = [T, F, F, F];
        assert!(close(loss_of(&[0.0; 4], &labels, ClassifierLoss::Bce), ln2));
        // 3 negatives / 1 positive: the attack row counts 3 times → (3 + 1 + 1 + 1)·ln 2 / 4.
        assert!(close(
            loss_of(&[0.0; 4], &labels, ClassifierLoss::Balanced),
            1.5 * ln2
        ));
        // A given weight instead of the local ratio: w = 5 → (5 + 3)·ln 2 / 4.
        assert!(close(
            loss_of(
                &[0.0; 4],
                &labels,
                ClassifierLoss::Weighted { pos_weight: 5.0 }
            ),
            2.0 * ln2
        ));
        assert!(
            ClassifierLoss::Weighted { pos_weight: 0.0 }
                .problem()
                .is_some()
        );
        // Focal γ = 2: every row is scaled by (½)² → ln 2 / 4.
        assert!(close(
            loss_of(&[0.0; 4], &labels, ClassifierLoss::Focal { gamma: 2.0 }),
            0.25 * ln2
        ));
    }

    #[test]
    fn losses_at_mixed_logits_match_the_formulas() {
        let sigma = |z: f64| 1.0 / (1.0 + (-z).exp());
        // Rows: (z = 2, attack), (z = −1, benign), (z = 0.5, benign).
        let (p1, p2, p3) = (sigma(2.0), sigma(-1.0), sigma(0.5));
        let logits = [2.0, -1.0, 0.5];
        let labels = [T, F, F];
        let bce = -(p1.ln() + (1.0 - p2).ln() + (1.0 - p3).ln()) / 3.0;
        assert!(close(loss_of(&logits, &labels, ClassifierLoss::Bce), bce));
        let balanced = -(2.0 * p1.ln() + (1.0 - p2).ln() + (1.0 - p3).ln()) / 3.0;
        assert!(close(
            loss_of(&logits, &labels, ClassifierLoss::Balanced),
            balanced
        ));
        let g = 1.5;
        let focal = -((1.0 - p1).powf(g) * p1.ln()
            + p2.powf(g) * (1.0 - p2).ln()
            + p3.powf(g) * (1.0 - p3).ln())
            / 3.0;
        assert!(close(
            loss_of(&logits, &labels, ClassifierLoss::Focal { gamma: g }),
            focal
        ));
        // γ = 0 is plain cross-entropy.
        assert!(close(
            loss_of(&logits, &labels, ClassifierLoss::Focal { gamma: 0.0 }),
            bce
        ));
    }

    #[test]
    fn confident_logits_stay_finite() {
        // σ(±200) rounds to exactly 1 / 0 in f32; log σ(z) must not.
        let logits = [200.0, -200.0, 200.0, -200.0];
        let labels = [T, F, F, T];
        for loss in [
            ClassifierLoss::Bce,
            ClassifierLoss::Balanced,
            ClassifierLoss::Focal { gamma: 0.5 },
        ] {
            let v = loss_of(&logits, &labels, loss);
            // Two rows right (≈ 0) and two wrong by 200 each.
            assert!(v.is_finite() && v > 50.0, "{loss:?}: {v}");
        }
    }

    #[test]
    fn balance_weight_falls_back_to_one() {
        assert_eq!(balance_weight(&[T, F, F, F, F]), 4.0);
        assert_eq!(balance_weight(&[T, T, F]), 0.5);
        assert_eq!(balance_weight(&[F, F]), 1.0);
        assert_eq!(balance_weight(&[T]), 1.0);
        assert_eq!(balance_weight(&[]), 1.0);
    }

    #[test]
    fn objective_checks_labels_only_for_the_classifier() {
        let ae: ModelConfig = crate::autoencoder::AutoencoderConfig::new(3).into();
        for labels in [None, Some(&[T][..])] {
            assert!(matches!(
                Objective::new(&ae, labels, 5, ClassifierLoss::Bce),
                Ok(Objective::Reconstruction)
            ));
        }
        assert!(matches!(
            Objective::new(&classifier(), None, 5, ClassifierLoss::Bce),
            Err(ModelError::MissingLabels {
                model: "classifier"
            })
        ));
        assert!(matches!(
            Objective::new(&classifier(), Some(&[T, F]), 5, ClassifierLoss::Bce),
            Err(ModelError::LabelLength {
                expected: 5,
                actual: 2
            })
        ));
    }

    #[test]
    fn focal_gamma_must_be_finite_and_non_negative() {
        for gamma in [-0.1, f64::NAN, f64::INFINITY] {
            assert!(ClassifierLoss::Focal { gamma }.problem().is_some());
        }
        assert!(ClassifierLoss::Focal { gamma: 0.0 }.problem().is_none());
        assert!(ClassifierLoss::Balanced.problem().is_none());
    }

    #[test]
    fn serde_uses_a_kind_tag() {
        let focal = ClassifierLoss::Focal { gamma: 2.0 };
        let json = serde_json::to_string(&focal).unwrap();
        assert_eq!(json, r#"{"kind":"focal","gamma":2.0}"#);
        assert_eq!(
            serde_json::from_str::<ClassifierLoss>(&json).unwrap(),
            focal
        );
        assert_eq!(
            serde_json::from_str::<ClassifierLoss>(r#"{"kind":"balanced"}"#).unwrap(),
            ClassifierLoss::Balanced
        );
    }
}
