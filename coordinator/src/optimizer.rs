//! Server optimisers: the step from the aggregate to the next global model.
//!
//! All three act on the pseudo-gradient Δ = Σ nᵢ·Δᵢ / Σ nᵢ, the
//! sample-weighted mean of the participants' deltas, which is all secure
//! aggregation reveals ([`WeightedSum`]):
//!
//! - FedAvg (McMahan et al. 2017): x ← x + Δ. No state.
//! - FedAvgM (Hsu et al. 2019): v ← β·v + Δ; x ← x + η·v.
//! - FedAdam (Reddi et al. 2021, "Adaptive Federated Optimization"):
//!   m ← β₁·m + (1 − β₁)·Δ; v ← β₂·v + (1 − β₂)·Δ²;
//!   x ← x + η·m / (√v + τ). No bias correction, as in the paper.
//!
//! The state (v, or m and v) starts at zeros and is kept in f64, the
//! precision the step is computed in: the stored state is exactly the
//! computed one, with no rounding between rounds to specify, and the cost
//! (8 bytes per parameter and vector) is the server's alone — participants
//! never see it. The model stays f32, as at the federation boundary.
//!
//! An auditor's replay must reproduce every step bit for bit, so each
//! coordinate is computed on its own with the expressions written in
//! [`step`], in index order, in plain IEEE-754 f64 arithmetic (no fused
//! multiply-add, no parallel reduction); `sqrt` is correctly rounded.
//! Sans-IO: no files, no clocks.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::aggregate::WeightedSum;
use crate::strategy;

/// A server optimiser and its hyperparameters: what `[strategy]`
/// configures and what every training round's `round.model` records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", deny_unknown_fields)]
pub enum ServerOptimizer {
    #[default]
    #[serde(rename = "fedavg")]
    FedAvg,
    #[serde(rename = "fedavgm")]
    FedAvgM {
        /// η.
        server_learning_rate: f64,
        /// β: the share of the previous velocity kept.
        momentum: f64,
    },
    #[serde(rename = "fedadam")]
    FedAdam {
        /// η.
        server_learning_rate: f64,
        /// β₁: decay of the first moment.
        beta1: f64,
        /// β₂: decay of the second moment.
        beta2: f64,
        /// τ: the adaptivity floor in m / (√v + τ).
        tau: f64,
    },
}

/// The names `[strategy] name` takes and `round.model` logs as `strategy`.
pub const NAMES: [&str; 3] = ["fedavg", "fedavgm", "fedadam"];

impl ServerOptimizer {
    /// The name in the configuration and the log.
    pub fn name(&self) -> &'static str {
        match self {
            ServerOptimizer::FedAvg => "fedavg",
            ServerOptimizer::FedAvgM { .. } => "fedavgm",
            ServerOptimizer::FedAdam { .. } => "fedadam",
        }
    }

    /// How many state vectors the optimiser called `name` keeps (`None`
    /// for a name this build does not know).
    pub fn state_vectors_of(name: &str) -> Option<usize> {
        match name {
            "fedavg" => Some(0),
            "fedavgm" => Some(1),
            "fedadam" => Some(2),
            _ => None,
        }
    }

    /// The name as papers write it.
    pub fn title(&self) -> &'static str {
        match self {
            ServerOptimizer::FedAvg => "FedAvg",
            ServerOptimizer::FedAvgM { .. } => "FedAvgM",
            ServerOptimizer::FedAdam { .. } => "FedAdam",
        }
    }

    /// How many vectors of one value per parameter its state holds.
    pub fn state_vectors(&self) -> usize {
        match self {
            ServerOptimizer::FedAvg => 0,
            ServerOptimizer::FedAvgM { .. } => 1,
            ServerOptimizer::FedAdam { .. } => 2,
        }
    }

    /// Whether it keeps a state between rounds.
    pub fn is_stateful(&self) -> bool {
        self.state_vectors() > 0
    }

    /// The hyperparameters by name, in a fixed order.
    pub fn hyperparameters(&self) -> Vec<(&'static str, f64)> {
        match *self {
            ServerOptimizer::FedAvg => Vec::new(),
            ServerOptimizer::FedAvgM {
                server_learning_rate,
                momentum,
            } => vec![
                ("server_learning_rate", server_learning_rate),
                ("momentum", momentum),
            ],
            ServerOptimizer::FedAdam {
                server_learning_rate,
                beta1,
                beta2,
                tau,
            } => vec![
                ("server_learning_rate", server_learning_rate),
                ("beta1", beta1),
                ("beta2", beta2),
                ("tau", tau),
            ],
        }
    }

    /// The same optimiser with the same hyperparameters, bit for bit (a
    /// replayed step is only the same step with the very same numbers).
    pub fn same_as(&self, other: &ServerOptimizer) -> bool {
        self.name() == other.name()
            && self
                .hyperparameters()
                .iter()
                .zip(other.hyperparameters())
                .all(|((_, a), (_, b))| a.to_bits() == b.to_bits())
    }

    /// E.g. `fedadam (server_learning_rate 0.01, beta1 0.9, beta2 0.99, tau 0.001)`.
    pub fn describe(&self) -> String {
        let params = self.hyperparameters();
        if params.is_empty() {
            return self.name().to_string();
        }
        let list: Vec<String> = params.iter().map(|(k, v)| format!("{k} {v:?}")).collect();
        format!("{} ({})", self.name(), list.join(", "))
    }

    /// What differs from `other`: the names, or each hyperparameter that
    /// differs as `field A, not B` (A ours).
    pub fn differences(&self, other: &ServerOptimizer) -> String {
        if self.name() != other.name() {
            return format!("{}, not {}", self.describe(), other.describe());
        }
        self.hyperparameters()
            .iter()
            .zip(other.hyperparameters())
            .filter(|((_, a), (_, b))| a.to_bits() != b.to_bits())
            .map(|((k, a), (_, b))| format!("{k} {a:?}, not {b:?}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Checks the ranges; an error is (field, problem and fix). The same
    /// rules hold for a configuration and for what a log records.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let lr = |eta: f64, example: &str| {
            if eta.is_finite() && eta > 0.0 && eta <= 10.0 {
                Ok(())
            } else {
                Err((
                    "server_learning_rate",
                    format!("{eta:?} is not in (0, 10]; e.g. {example}"),
                ))
            }
        };
        let decay = |field: &'static str, beta: f64, example: &str| {
            if beta.is_finite() && (0.0..1.0).contains(&beta) {
                Ok(())
            } else {
                Err((
                    field,
                    format!(
                        "{beta:?} is not in [0, 1): a decay of 1 or more never forgets; e.g. {example}"
                    ),
                ))
            }
        };
        match *self {
            ServerOptimizer::FedAvg => Ok(()),
            ServerOptimizer::FedAvgM {
                server_learning_rate,
                momentum,
            } => {
                lr(server_learning_rate, "1.0")?;
                decay("momentum", momentum, "0.9")
            }
            ServerOptimizer::FedAdam {
                server_learning_rate,
                beta1,
                beta2,
                tau,
            } => {
                lr(server_learning_rate, "0.01")?;
                decay("beta1", beta1, "0.9")?;
                decay("beta2", beta2, "0.99")?;
                if tau.is_finite() && tau > 0.0 {
                    Ok(())
                } else {
                    Err((
                        "tau",
                        format!(
                            "{tau:?} is not a positive number: it keeps m / (sqrt(v) + tau) finite; e.g. 0.001"
                        ),
                    ))
                }
            }
        }
    }
}

/// What a stateful optimiser remembers between training rounds.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState {
    /// Training rounds that stepped it (a round with no samples does not).
    pub steps: u64,
    /// FedAvgM: `[v]`; FedAdam: `[m, v]`; one value per parameter each.
    pub vectors: Vec<Vec<f64>>,
}

impl OptimizerState {
    /// The state before the first step.
    pub fn zeros(optimizer: &ServerOptimizer, num_params: usize) -> Self {
        OptimizerState {
            steps: 0,
            vectors: vec![vec![0.0; num_params]; optimizer.state_vectors()],
        }
    }

    /// The blob (audit log) and file (store) format: the vectors in order,
    /// each value f64 little-endian. `steps` travels beside it.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.vectors
            .iter()
            .flatten()
            .flat_map(|v| v.to_le_bytes())
            .collect()
    }

    /// Reads [`Self::to_bytes`]: `vectors` vectors (see
    /// [`ServerOptimizer::state_vectors`]) for a model of `num_params`.
    pub fn from_bytes(
        vectors: usize,
        num_params: usize,
        steps: u64,
        bytes: &[u8],
    ) -> Result<Self, String> {
        let k = vectors;
        let want = k * num_params * 8;
        if bytes.len() != want {
            return Err(format!(
                "holds {} bytes; {k} vector(s) of {num_params} f64 values are {want} bytes",
                bytes.len(),
            ));
        }
        let values: Vec<f64> = bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        Ok(OptimizerState {
            steps,
            vectors: if num_params == 0 {
                vec![Vec::new(); k]
            } else {
                values.chunks(num_params).map(<[f64]>::to_vec).collect()
            },
        })
    }

    /// SHA-256 (hex) of [`Self::to_bytes`].
    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(self.to_bytes()))
    }

    /// The first value that differs from `other`, as text, for errors.
    pub fn first_difference(&self, other: &OptimizerState) -> Option<String> {
        if self.steps != other.steps {
            return Some(format!("steps {} here, {} there", self.steps, other.steps));
        }
        if self.vectors.len() != other.vectors.len() {
            return Some(format!(
                "{} vectors here, {} there",
                self.vectors.len(),
                other.vectors.len()
            ));
        }
        for (j, (a, b)) in self.vectors.iter().zip(&other.vectors).enumerate() {
            if a.len() != b.len() {
                return Some(format!(
                    "vector {j} has {} values here, {} there",
                    a.len(),
                    b.len()
                ));
            }
            if let Some(k) = (0..a.len()).find(|&k| a[k].to_bits() != b[k].to_bits()) {
                return Some(format!(
                    "vector {j} value {k} is {:?} here, {:?} there",
                    a[k], b[k]
                ));
            }
        }
        None
    }
}

/// One server step from `global` on the round's `sum`. `state` is the
/// optimiser's state after the previous training round (`None`: zeros).
/// Returns the new model and, for a stateful optimiser, the new state.
///
/// FedAvg is exactly [`strategy::fedavg`], so existing logs keep their
/// hashes. With no samples (Σ nᵢ = 0) nothing moves: the model and the
/// state come back unchanged. A state that does not fit the optimiser or
/// the model is refused, never indexed past its end.
pub fn step(
    optimizer: &ServerOptimizer,
    global: &[f32],
    sum: &WeightedSum,
    state: Option<&OptimizerState>,
) -> Result<(Vec<f32>, Option<OptimizerState>), String> {
    if let ServerOptimizer::FedAvg = optimizer {
        return Ok((strategy::fedavg(global, sum), None));
    }
    let d = global.len();
    if sum.weighted_delta.len() != d {
        return Err(format!(
            "the aggregate has {} values, the model {d}",
            sum.weighted_delta.len()
        ));
    }
    let mut next = match state {
        Some(s) => s.clone(),
        None => OptimizerState::zeros(optimizer, d),
    };
    if next.vectors.len() != optimizer.state_vectors() || next.vectors.iter().any(|v| v.len() != d)
    {
        return Err(format!(
            "the optimiser state holds {} vector(s) of {:?} values; {} needs {} of {d}",
            next.vectors.len(),
            next.vectors.iter().map(Vec::len).collect::<Vec<_>>(),
            optimizer.name(),
            optimizer.state_vectors()
        ));
    }
    if sum.total_samples == 0 {
        return Ok((global.to_vec(), Some(next)));
    }
    let total = sum.total_samples as f64;
    let mut model = Vec::with_capacity(d);
    match (*optimizer, next.vectors.as_mut_slice()) {
        (
            ServerOptimizer::FedAvgM {
                server_learning_rate: eta,
                momentum: beta,
            },
            [v],
        ) => {
            for ((&g, &w), v) in global.iter().zip(&sum.weighted_delta).zip(v.iter_mut()) {
                let delta = w / total;
                *v = beta * *v + delta;
                model.push((f64::from(g) + eta * *v) as f32);
            }
        }
        (
            ServerOptimizer::FedAdam {
                server_learning_rate: eta,
                beta1,
                beta2,
                tau,
            },
            [m, v],
        ) => {
            let moments = m.iter_mut().zip(v.iter_mut());
            for ((&g, &w), (m, v)) in global.iter().zip(&sum.weighted_delta).zip(moments) {
                let delta = w / total;
                *m = beta1 * *m + (1.0 - beta1) * delta;
                *v = beta2 * *v + (1.0 - beta2) * (delta * delta);
                model.push((f64::from(g) + eta * *m / (v.sqrt() + tau)) as f32);
            }
        }
        _ => return Err("the optimiser state does not fit the optimiser".into()),
    }
    next.steps += 1;
    Ok((model, Some(next)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(weighted_delta: Vec<f64>, total_samples: u64) -> WeightedSum {
        WeightedSum {
            weighted_delta,
            total_samples,
            weighted_loss: 0.0,
        }
    }

    /// Two rounds by hand, with numbers exact in binary: Δ₁ = [0.5, -0.25]
    /// (Σ nᵢ·Δᵢ = [2, -1] over 4 samples), Δ₂ = [0.25, 0.5]; η = 0.5, β = 0.5.
    /// v₁ = Δ₁ = [0.5, -0.25];              x₁ = [1, -1] + 0.5·v₁ = [1.25, -1.125]
    /// v₂ = 0.5·v₁ + Δ₂ = [0.5, 0.375];     x₂ = x₁ + 0.5·v₂ = [1.5, -0.9375]
    #[test]
    fn fedavgm_two_rounds_by_hand() {
        let opt = ServerOptimizer::FedAvgM {
            server_learning_rate: 0.5,
            momentum: 0.5,
        };
        let (x1, s1) = step(&opt, &[1.0, -1.0], &sum(vec![2.0, -1.0], 4), None).unwrap();
        let s1 = s1.unwrap();
        assert_eq!(x1, vec![1.25, -1.125]);
        assert_eq!(s1.vectors, vec![vec![0.5, -0.25]]);
        assert_eq!(s1.steps, 1);
        let (x2, s2) = step(&opt, &x1, &sum(vec![1.0, 2.0], 4), Some(&s1)).unwrap();
        let s2 = s2.unwrap();
        assert_eq!(x2, vec![1.5, -0.9375]);
        assert_eq!(s2.vectors, vec![vec![0.5, 0.375]]);
        assert_eq!(s2.steps, 2);
    }

    /// Two rounds by hand: β₁ = 0.5, β₂ = 0.75 (so √v = 0.5·|Δ| after one
    /// step), τ = 0.25, η = 1; Δ₁ = [0.5, -1.5], Δ₂ = [0.25, 0.75].
    /// m₁ = 0.5·Δ₁ = [0.25, -0.75]; v₁ = 0.25·Δ₁² = [0.0625, 0.5625];
    /// x₁ = [1, -1] + [0.25/(0.25+0.25), -0.75/(0.75+0.25)] = [1.5, -1.75].
    /// m₂ = 0.5·m₁ + 0.5·Δ₂ = [0.25, 0]; v₂ = 0.75·v₁ + 0.25·Δ₂² =
    /// [0.0625, 0.5625]; x₂ = x₁ + [0.25/0.5, 0/1] = [2, -1.75]: the second
    /// coordinate's momentum cancels its new delta.
    #[test]
    fn fedadam_two_rounds_by_hand() {
        let opt = ServerOptimizer::FedAdam {
            server_learning_rate: 1.0,
            beta1: 0.5,
            beta2: 0.75,
            tau: 0.25,
        };
        let (x1, s1) = step(&opt, &[1.0, -1.0], &sum(vec![2.0, -6.0], 4), None).unwrap();
        let s1 = s1.unwrap();
        assert_eq!(x1, vec![1.5, -1.75]);
        assert_eq!(s1.vectors, vec![vec![0.25, -0.75], vec![0.0625, 0.5625]]);
        let (x2, s2) = step(&opt, &x1, &sum(vec![1.0, 3.0], 4), Some(&s1)).unwrap();
        let s2 = s2.unwrap();
        assert_eq!(x2, vec![2.0, -1.75]);
        assert_eq!(s2.vectors, vec![vec![0.25, 0.0], vec![0.0625, 0.5625]]);
        assert_eq!(s2.steps, 2);
    }

    /// The paper's defaults on one coordinate: m = 0.1·Δ, v = 0.01·Δ², so
    /// the first step is η·0.1Δ/(0.1|Δ| + τ) = 0.01·0.05/0.051 for Δ = 0.5.
    #[test]
    fn fedadam_defaults_first_step() {
        let opt = ServerOptimizer::FedAdam {
            server_learning_rate: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            tau: 1e-3,
        };
        let (x, s) = step(&opt, &[0.0], &sum(vec![1.0], 2), None).unwrap();
        let want = 0.01 * 0.05 / 0.051;
        assert!((f64::from(x[0]) - want).abs() < 1e-9, "{x:?} vs {want}");
        let s = s.unwrap();
        assert!((s.vectors[0][0] - 0.05).abs() < 1e-15);
        assert!((s.vectors[1][0] - 0.0025).abs() < 1e-15);
    }

    #[test]
    fn fedavg_is_the_unchanged_function_and_keeps_no_state() {
        let global = [0.3f32, -1.7, 2.5e-3];
        let s = sum(vec![0.123, -4.5, 1e-7], 7);
        let (x, state) = step(&ServerOptimizer::FedAvg, &global, &s, None).unwrap();
        assert!(state.is_none());
        let want = strategy::fedavg(&global, &s);
        assert_eq!(
            x.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        // FedAvgM with no momentum and η = 1 is FedAvg.
        let plain = ServerOptimizer::FedAvgM {
            server_learning_rate: 1.0,
            momentum: 0.0,
        };
        let (y, _) = step(&plain, &global, &s, None).unwrap();
        assert_eq!(y, want);
    }

    #[test]
    fn no_samples_move_nothing() {
        let opt = ServerOptimizer::FedAdam {
            server_learning_rate: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            tau: 1e-3,
        };
        let (x1, s1) = step(&opt, &[1.0, 2.0], &sum(vec![1.0, 1.0], 1), None).unwrap();
        let s1 = s1.unwrap();
        let (x2, s2) = step(&opt, &x1, &sum(vec![0.0, 0.0], 0), Some(&s1)).unwrap();
        assert_eq!(x2, x1);
        assert_eq!(s2.unwrap(), s1);
        let (x0, s0) = step(&opt, &[1.0, 2.0], &sum(vec![0.0, 0.0], 0), None).unwrap();
        assert_eq!(
            (x0, s0.unwrap()),
            (vec![1.0, 2.0], OptimizerState::zeros(&opt, 2))
        );
    }

    #[test]
    fn a_state_that_does_not_fit_is_refused() {
        let adam = ServerOptimizer::FedAdam {
            server_learning_rate: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            tau: 1e-3,
        };
        let momentum = ServerOptimizer::FedAvgM {
            server_learning_rate: 1.0,
            momentum: 0.9,
        };
        let wrong = OptimizerState::zeros(&momentum, 2);
        let err = step(&adam, &[1.0, 2.0], &sum(vec![1.0, 1.0], 1), Some(&wrong)).unwrap_err();
        assert!(err.contains("fedadam needs 2"), "{err}");
        let short = OptimizerState::zeros(&adam, 1);
        assert!(step(&adam, &[1.0, 2.0], &sum(vec![1.0, 1.0], 1), Some(&short)).is_err());
        assert!(step(&adam, &[1.0, 2.0], &sum(vec![1.0], 1), None).is_err());
    }

    #[test]
    fn state_bytes_round_trip_and_lengths_are_checked() {
        let adam = ServerOptimizer::FedAdam {
            server_learning_rate: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            tau: 1e-3,
        };
        let state = OptimizerState {
            steps: 3,
            vectors: vec![vec![0.1, -0.0, 3.5], vec![1e-300, 2.0, f64::MIN_POSITIVE]],
        };
        let bytes = state.to_bytes();
        assert_eq!(bytes.len(), 48);
        let back = OptimizerState::from_bytes(adam.state_vectors(), 3, 3, &bytes).unwrap();
        assert_eq!(back.first_difference(&state), None);
        let err = OptimizerState::from_bytes(adam.state_vectors(), 4, 3, &bytes).unwrap_err();
        assert!(err.contains("64 bytes"), "{err}");
    }

    #[test]
    fn hyperparameters_round_trip_through_the_log_bit_for_bit() {
        let adam = ServerOptimizer::FedAdam {
            server_learning_rate: 0.1 + 0.2,
            beta1: 0.9,
            beta2: 0.99,
            tau: 1e-3,
        };
        let json = serde_json::to_string(&adam).unwrap();
        assert!(json.contains("\"name\":\"fedadam\""), "{json}");
        let back: ServerOptimizer = serde_json::from_str(&json).unwrap();
        assert!(back.same_as(&adam));
        let other = ServerOptimizer::FedAdam {
            server_learning_rate: 0.3,
            beta1: 0.9,
            beta2: 0.999,
            tau: 1e-3,
        };
        assert!(!other.same_as(&adam));
        assert_eq!(
            other.differences(&adam),
            "server_learning_rate 0.3, not 0.30000000000000004; beta2 0.999, not 0.99"
        );
    }

    #[test]
    fn ranges_are_checked_naming_the_field() {
        let bad = [
            (
                ServerOptimizer::FedAvgM {
                    server_learning_rate: 0.0,
                    momentum: 0.9,
                },
                "server_learning_rate",
            ),
            (
                ServerOptimizer::FedAvgM {
                    server_learning_rate: 1.0,
                    momentum: 1.0,
                },
                "momentum",
            ),
            (
                ServerOptimizer::FedAdam {
                    server_learning_rate: 0.01,
                    beta1: f64::NAN,
                    beta2: 0.99,
                    tau: 1e-3,
                },
                "beta1",
            ),
            (
                ServerOptimizer::FedAdam {
                    server_learning_rate: 0.01,
                    beta1: 0.9,
                    beta2: -0.1,
                    tau: 1e-3,
                },
                "beta2",
            ),
            (
                ServerOptimizer::FedAdam {
                    server_learning_rate: 0.01,
                    beta1: 0.9,
                    beta2: 0.99,
                    tau: 0.0,
                },
                "tau",
            ),
            (
                ServerOptimizer::FedAdam {
                    server_learning_rate: f64::INFINITY,
                    beta1: 0.9,
                    beta2: 0.99,
                    tau: 1e-3,
                },
                "server_learning_rate",
            ),
        ];
        for (opt, field) in bad {
            assert_eq!(opt.check().unwrap_err().0, field, "{opt:?}");
        }
        assert!(ServerOptimizer::FedAvg.check().is_ok());
    }
}
