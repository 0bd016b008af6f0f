//! Round kinds: what a round computes. A `train` round sums model updates;
//! the others sum integer vectors over the members' own rows, through the
//! same SecAgg+ stages, and conclude with an entry of their own:
//!
//! - `moments`, `spread`: the two passes of a statistics round, which fit
//!   the federation's encoder (`statistics.moments`, `encoder.fitted`);
//! - `calibrate`: the federation threshold of the global model at a
//!   false-alarm rate (`threshold.calibrated`).
//!
//! The query of each sum round is public: it goes out with every task, is
//! logged in `round.opened`, and its hash is the SecAgg+ context, so every
//! member's signatures bind it. The coordinator and an auditor's replay
//! draw conclusions from a sum with the same function, [`conclude`].

use fedsoc_datasets::moments::ScoreBins;
use fedsoc_datasets::statistics::{CalibrationQuery, Moments, MomentsQuery, SpreadQuery};
use fedsoc_models::ModelConfig;
use serde::{Deserialize, Serialize};

use crate::config::{CalibrationSection, StatisticsSection};
use crate::federation::InForce;
use crate::trail::{EncoderFitted, MomentsSummed, ThresholdCalibrated, kind as entry};

/// What a round computes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoundKind {
    #[default]
    Train,
    Moments,
    Spread,
    Calibrate,
}

impl RoundKind {
    pub fn name(self) -> &'static str {
        match self {
            RoundKind::Train => "train",
            RoundKind::Moments => "moments",
            RoundKind::Spread => "spread",
            RoundKind::Calibrate => "calibrate",
        }
    }

    /// The kind a task names ("" is training, as before kinds).
    pub fn from_wire(name: &str) -> Result<Self, String> {
        match name {
            "" | "train" => Ok(RoundKind::Train),
            "moments" => Ok(RoundKind::Moments),
            "spread" => Ok(RoundKind::Spread),
            "calibrate" => Ok(RoundKind::Calibrate),
            other => Err(format!(
                "round kind {other:?} is unknown (train, moments, spread, calibrate)"
            )),
        }
    }

    /// The rounds a data scientist's request queues, `n` times over: a
    /// statistics round is two secure sums, so two rounds.
    pub fn requested(name: &str, n: u32) -> Result<Vec<RoundKind>, String> {
        let one = match name {
            "" | "train" => vec![RoundKind::Train],
            "statistics" => vec![RoundKind::Moments, RoundKind::Spread],
            "calibrate" => vec![RoundKind::Calibrate],
            other => {
                return Err(format!(
                    "round kind {other:?} is unknown: use train, statistics or calibrate"
                ));
            }
        };
        Ok((0..n).flat_map(|_| one.clone()).collect())
    }

    /// Whether the round sums integer vectors rather than model updates.
    pub fn is_sum(self) -> bool {
        self != RoundKind::Train
    }
}

/// A sum round's query.
#[derive(Clone, Debug, PartialEq)]
pub enum Query {
    Moments(MomentsQuery),
    Spread(SpreadQuery),
    Calibrate(CalibrationQuery),
}

impl Query {
    /// The query of a `kind` round given what the federation knows now.
    pub fn for_round(
        kind: RoundKind,
        state: &SumState,
        model: &ModelConfig,
        settings: (&StatisticsSection, &CalibrationSection),
        max_participants: usize,
    ) -> Result<Option<Query>, String> {
        let (statistics, calibration) = settings;
        let layout = || {
            serde_json::from_str(&state.encoder.json)
                .map_err(|e| format!("the encoder in force does not read back: {e}"))
        };
        Ok(Some(match kind {
            RoundKind::Train => return Ok(None),
            RoundKind::Moments => Query::Moments(MomentsQuery {
                layout: layout()?,
                families: statistics.families.clone(),
                max_participants,
            }),
            RoundKind::Spread => {
                let Some(pass1) = &state.moments else {
                    return Err("a spread round needs the moments round before it; queue \
                         `--kind statistics`, which runs both"
                        .into());
                };
                Query::Spread(SpreadQuery::after(&pass1.query, &pass1.moments))
            }
            RoundKind::Calibrate => Query::Calibrate(CalibrationQuery {
                bins: calibration_bins(model, calibration.bins_per_unit),
                false_alarm_rate: calibration.false_alarm_rate,
            }),
        }))
    }

    /// Reads a logged or received query.
    pub fn parse(kind: RoundKind, json: &str) -> Result<Self, String> {
        let bad = |e: serde_json::Error| format!("the {} query does not read: {e}", kind.name());
        match kind {
            RoundKind::Train => Err("a training round has no query".into()),
            RoundKind::Moments => serde_json::from_str(json).map(Query::Moments).map_err(bad),
            RoundKind::Spread => serde_json::from_str(json).map(Query::Spread).map_err(bad),
            RoundKind::Calibrate => serde_json::from_str(json)
                .map(Query::Calibrate)
                .map_err(bad),
        }
    }

    pub fn kind(&self) -> RoundKind {
        match self {
            Query::Moments(_) => RoundKind::Moments,
            Query::Spread(_) => RoundKind::Spread,
            Query::Calibrate(_) => RoundKind::Calibrate,
        }
    }

    pub fn json(&self) -> String {
        match self {
            Query::Moments(q) => serde_json::to_string(q),
            Query::Spread(q) => serde_json::to_string(q),
            Query::Calibrate(q) => serde_json::to_string(q),
        }
        .unwrap_or_default()
    }

    pub fn vector_len(&self) -> usize {
        match self {
            Query::Moments(q) => q.vector_len(),
            Query::Spread(q) => q.vector_len(),
            Query::Calibrate(q) => q.vector_len(),
        }
    }

    /// The SecAgg+ context of the round: binds its kind and query, as each
    /// member derives it from its task ([`fedsoc_secagg::query_context`]).
    pub fn context(&self) -> [u8; 32] {
        fedsoc_secagg::query_context(self.kind().name(), &self.json())
    }
}

/// Public score bins of a calibrate round: log bins of reconstruction
/// error for an autoencoder, even logit bins for a classifier.
pub fn calibration_bins(model: &ModelConfig, per_unit: u32) -> ScoreBins {
    match model {
        ModelConfig::Autoencoder(_) => ScoreBins::logarithmic(1e-6, 1e6, per_unit as usize),
        ModelConfig::Classifier(_) => ScoreBins::linear(-60.0, 60.0, 120 * per_unit as usize),
    }
}

/// What a model's score is, as a calibration names it.
pub fn score_name(model: &ModelConfig) -> &'static str {
    match model {
        ModelConfig::Autoencoder(_) => "reconstruction error",
        ModelConfig::Classifier(_) => "logit",
    }
}

/// Pass 1's result, which pass 2 starts from.
#[derive(Clone, Debug, PartialEq)]
pub struct Pass1 {
    pub round: u64,
    pub query: MomentsQuery,
    pub moments: Moments,
}

/// What sum rounds have established so far: the encoder in force, the
/// last pass 1, and the last calibration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SumState {
    pub encoder: InForce,
    /// Benign rows per attack row, federation-wide, from the last fit: the
    /// balanced loss's attack weight (`None` without labelled attacks).
    pub class_weight: Option<f64>,
    pub moments: Option<Pass1>,
    pub calibration: Option<ThresholdCalibrated>,
}

/// A sum round's conclusion: the entry that follows `round.aggregated`.
#[derive(Clone, Debug, PartialEq)]
pub enum Conclusion {
    Moments(MomentsSummed),
    Encoder(EncoderFitted),
    Threshold(ThresholdCalibrated),
}

impl Conclusion {
    /// The entry kind and JSON body.
    pub fn entry(&self) -> (&'static str, serde_json::Value) {
        let body = match self {
            Conclusion::Moments(b) => serde_json::to_value(b),
            Conclusion::Encoder(b) => serde_json::to_value(b),
            Conclusion::Threshold(b) => serde_json::to_value(b),
        }
        .unwrap_or_default();
        (self.kind(), body)
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Conclusion::Moments(_) => entry::STATISTICS_MOMENTS,
            Conclusion::Encoder(_) => entry::ENCODER_FITTED,
            Conclusion::Threshold(_) => entry::THRESHOLD_CALIBRATED,
        }
    }

    /// The state after this conclusion is committed (its round completed).
    pub fn apply(&self, state: &mut SumState, query: &Query) {
        match (self, query) {
            (Conclusion::Moments(m), Query::Moments(q)) => {
                state.moments = Some(Pass1 {
                    round: m.round,
                    query: q.clone(),
                    moments: m.moments.clone(),
                });
            }
            (Conclusion::Encoder(e), _) => {
                state.encoder = InForce::new(e.encoder_json.clone(), e.round);
                state.class_weight = class_weight(&e.label_counts);
                state.moments = None;
            }
            (Conclusion::Threshold(t), _) => state.calibration = Some(t.clone()),
            _ => {}
        }
    }
}

/// Benign rows per attack row from a fit's family counts; `None` when a
/// class is missing.
pub fn class_weight(label_counts: &std::collections::BTreeMap<String, u64>) -> Option<f64> {
    let benign = label_counts
        .iter()
        .filter(|(f, _)| f.eq_ignore_ascii_case(fedsoc_datasets::NORMAL))
        .map(|(_, c)| *c)
        .sum::<u64>();
    let attacks = label_counts.values().sum::<u64>() - benign;
    (benign > 0 && attacks > 0).then(|| benign as f64 / attacks as f64)
}

/// Where a sum round stands: its identity and the model it ran under.
pub struct SumRound<'a> {
    pub round: u64,
    pub attempt: u32,
    pub model: &'a ModelConfig,
    pub model_sha256: &'a str,
}

/// What a sum round's secure sum concludes, given the state before it.
pub fn conclude(
    query: &Query,
    sum: &[u64],
    state: &SumState,
    at: SumRound<'_>,
) -> Result<Conclusion, String> {
    let SumRound {
        round,
        attempt,
        model,
        model_sha256,
    } = at;
    match query {
        Query::Moments(q) => Ok(Conclusion::Moments(MomentsSummed {
            round,
            attempt,
            moments: q.decode(sum).map_err(|e| e.to_string())?,
        })),
        Query::Spread(q) => {
            let pass1 = state
                .moments
                .as_ref()
                .filter(|p| p.round + 1 == round && SpreadQuery::after(&p.query, &p.moments) == *q)
                .ok_or_else(|| {
                    "the spread round does not follow the moments round whose means it uses"
                        .to_string()
                })?;
            let fitted = q.decode(&pass1.moments, sum).map_err(|e| e.to_string())?;
            let encoder_json = serde_json::to_string(&fitted.encoder)
                .map_err(|e| format!("the fitted encoder to JSON: {e}"))?;
            let in_force = InForce::new(encoder_json, round);
            Ok(Conclusion::Encoder(EncoderFitted {
                round,
                attempt,
                encoder_sha256: in_force.sha256,
                encoder_json: in_force.json.to_string(),
                rows: fitted.moments.rows,
                other_share: fitted.moments.other_share,
                label_counts: fitted.moments.label_counts,
            }))
        }
        Query::Calibrate(q) => {
            let c = q.decode(sum).map_err(|e| e.to_string())?;
            Ok(Conclusion::Threshold(ThresholdCalibrated {
                round,
                attempt,
                model_sha256: model_sha256.to_string(),
                encoder_sha256: state.encoder.sha256.clone(),
                score: score_name(model).into(),
                false_alarm_rate: c.false_alarm_rate,
                threshold: c.threshold,
                score_interval: c.score_interval,
                false_alarm_interval: c.false_alarm_interval,
                benign_rows: c.benign_rows,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statistics_request_is_two_rounds_and_kinds_read_back() {
        assert_eq!(
            RoundKind::requested("statistics", 1).unwrap(),
            vec![RoundKind::Moments, RoundKind::Spread]
        );
        assert_eq!(RoundKind::requested("train", 3).unwrap().len(), 3);
        assert!(
            RoundKind::requested("stats", 1)
                .unwrap_err()
                .contains("statistics")
        );
        for k in [
            RoundKind::Train,
            RoundKind::Moments,
            RoundKind::Spread,
            RoundKind::Calibrate,
        ] {
            assert_eq!(RoundKind::from_wire(k.name()).unwrap(), k);
        }
        assert_eq!(RoundKind::from_wire("").unwrap(), RoundKind::Train);
        let layout = fedsoc_datasets::EncoderSpec::synthetic_layout();
        let moments = Query::Moments(MomentsQuery {
            layout: layout.clone(),
            families: vec![],
            max_participants: 3,
        });
        let spread = Query::Spread(SpreadQuery {
            layout,
            families: vec![],
            means: vec![],
            max_participants: 3,
        });
        assert_ne!(moments.context(), spread.context());
        let counts = |pairs: &[(&str, u64)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let w = class_weight(&counts(&[("normal", 90), ("dos", 6), ("<other>", 4)]));
        assert_eq!(w, Some(9.0));
        assert_eq!(class_weight(&counts(&[("normal", 90), ("dos", 0)])), None);
    }
}
