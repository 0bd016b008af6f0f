//! Federated preprocessing: the global feature statistics and the anomaly
//! threshold from secure sums, so no participant reveals its own
//! distribution.
//!
//! The sums run the SecAgg+ client and server state machines
//! ([`fedsoc_secagg::simulate`]: every message through its byte encoding,
//! Ed25519-signed, the server seeing only masked vectors) inside this
//! process. A deployment runs the same vectors through the coordinator's
//! secure rounds.

use std::collections::BTreeMap;

use fedsoc_datasets::moments::{self, ScoreBins};
use fedsoc_datasets::{EncoderSpec, Records};
use fedsoc_secagg::{DropoutPlan, ParticipantId, Ring, RoundConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::error::ExperimentError;

/// The wrapping sum of `inputs` through one SecAgg+ round; checks that it
/// equals the plaintext sum bit for bit.
pub fn secure_sum(inputs: &[Vec<u64>], seed: u64) -> Result<Vec<u64>, ExperimentError> {
    let len = inputs.first().map(Vec::len).unwrap_or(0);
    if inputs.len() < 2 || inputs.iter().any(|v| v.len() != len) {
        return Err(ExperimentError::Setup(
            "a secure sum needs at least 2 inputs of equal length".into(),
        ));
    }
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let ids: Vec<ParticipantId> = (1..=inputs.len() as u32).map(ParticipantId).collect();
    // Placeholder keys: `simulate` draws fresh long-term identities.
    let key = fedsoc_secagg::crypto::ed25519_keypair(&mut rng).verifying_key();
    let mut round_id = [0u8; 32];
    round_id[..8].copy_from_slice(&seed.to_le_bytes());
    let config = RoundConfig::recommended(
        round_id,
        ids.iter().map(|&p| (p, key)).collect(),
        Ring::U64,
        len,
    );
    let by_id: BTreeMap<ParticipantId, Vec<u64>> =
        ids.iter().copied().zip(inputs.iter().cloned()).collect();
    let aggregate = fedsoc_secagg::simulate(&config, &by_id, &DropoutPlan::none(), &mut rng)
        .map_err(|e| ExperimentError::Setup(format!("secure sum: {e}")))?;
    let mut plain = vec![0u64; len];
    for v in inputs {
        plain
            .iter_mut()
            .zip(v)
            .for_each(|(s, x)| *s = s.wrapping_add(*x));
    }
    if aggregate.sum != plain {
        return Err(ExperimentError::Setup(
            "secure sum differs from the plaintext sum; refusing the result".into(),
        ));
    }
    Ok(aggregate.sum)
}

/// The federation-wide encoder: `layout` with means and standard
/// deviations from two secure sums over the participants' rows.
pub fn federated_encoder(
    layout: &EncoderSpec,
    participants: &[Records],
    seed: u64,
) -> Result<EncoderSpec, ExperimentError> {
    let max = participants.len();
    let first: Vec<Vec<u64>> = participants
        .iter()
        .map(|r| moments::first_pass(layout, r, max))
        .collect::<Result<_, _>>()?;
    let (n, means) = moments::means_from(layout, &secure_sum(&first, seed)?)?;
    let second: Vec<Vec<u64>> = participants
        .iter()
        .map(|r| moments::second_pass(layout, r, &means, max))
        .collect::<Result<_, _>>()?;
    let deviations = secure_sum(&second, seed.wrapping_add(1))?;
    Ok(moments::spec_from(layout, n, &means, &deviations)?)
}

/// The federation-wide weight of attack rows for the balanced loss:
/// benign rows per attack row over every participant, from a secure sum of
/// each one's two counts (so it equals the pooled ratio, and no participant
/// reveals its own). `None` when the federation holds no attack or no
/// benign row. Every variant (local, federated, centralized) trains with
/// this one weight, so their comparison is not confounded by each SOC's
/// own ratio.
pub fn federated_class_weight(
    participants: &[Records],
    seed: u64,
) -> Result<Option<f64>, ExperimentError> {
    let counts: Vec<Vec<u64>> = participants
        .iter()
        .map(|r| {
            let attacks = r.attack_flags().iter().filter(|&&a| a).count() as u64;
            vec![r.len() as u64 - attacks, attacks]
        })
        .collect();
    let sum = secure_sum(&counts, seed)?;
    Ok(match (sum[0], sum[1]) {
        (0, _) | (_, 0) => None,
        (benign, attacks) => Some(benign as f64 / attacks as f64),
    })
}

/// The global `quantile` of benign validation scores from a secure sum of
/// per-participant histograms.
pub fn federated_threshold(
    bins: &ScoreBins,
    validation_scores: &[Vec<f32>],
    quantile: f64,
    seed: u64,
) -> Result<f64, ExperimentError> {
    let histograms: Vec<Vec<u64>> = validation_scores
        .iter()
        .map(|s| bins.histogram(s))
        .collect::<Result<_, _>>()?;
    let sum = secure_sum(&histograms, seed)?;
    bins.quantile(&sum, quantile).ok_or_else(|| {
        ExperimentError::Setup("no validation scores to calibrate the threshold on".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_sum_is_the_wrapping_sum() {
        let inputs = vec![vec![1, u64::MAX, 5], vec![2, 3, 7], vec![10, 0, u64::MAX]];
        assert_eq!(secure_sum(&inputs, 1).unwrap(), vec![13, 2, 11]);
        assert!(secure_sum(&inputs[..1], 1).is_err());
        assert!(secure_sum(&[vec![1], vec![1, 2]], 1).is_err());
    }

    #[test]
    fn the_class_weight_is_the_pooled_ratio() {
        use fedsoc_datasets::{FlowRecord, Records};
        let flow = |label: Option<&str>| FlowRecord {
            duration_s: 1.0,
            bytes_out: 1.0,
            bytes_in: 1.0,
            packets_out: 1.0,
            packets_in: 1.0,
            protocol: "tcp".into(),
            service: "http".into(),
            conn_state: "SF".into(),
            dst_port: 80,
            label: label.map(str::to_string),
        };
        let soc = |benign: usize, attacks: usize| {
            let mut flows = vec![flow(None); benign];
            flows.extend(vec![flow(Some("scan")); attacks]);
            Records::from_flows(&flows)
        };
        // One SOC alone would say 99 and another 1: pooled it is 100/10.
        let socs = [soc(99, 1), soc(1, 1), soc(0, 8)];
        assert_eq!(federated_class_weight(&socs, 3).unwrap(), Some(10.0));
        let benign_only = [soc(5, 0), soc(3, 0), soc(1, 0)];
        assert_eq!(federated_class_weight(&benign_only, 3).unwrap(), None);
    }
}
