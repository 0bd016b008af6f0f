//! Turning the aggregate into the next global model.

use crate::aggregate::WeightedSum;

/// FedAvg (McMahan et al. 2017): the new model is the old one moved by the
/// sample-weighted mean of the participants' deltas, which equals the
/// sample-weighted mean of their local models.
pub fn fedavg(global: &[f32], sum: &WeightedSum) -> Vec<f32> {
    if sum.total_samples == 0 {
        return global.to_vec();
    }
    let total = sum.total_samples as f64;
    global
        .iter()
        .zip(&sum.weighted_delta)
        .map(|(&g, &d)| (f64::from(g) + d / total) as f32)
        .collect()
}

/// Sample-weighted mean training loss of the round.
pub fn mean_loss(sum: &WeightedSum) -> f32 {
    if sum.total_samples == 0 {
        f32::NAN
    } else {
        (sum.weighted_loss / sum.total_samples as f64) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fedavg_is_weighted_mean_of_local_models() {
        let global = [1.0f32, -1.0];
        let locals = [([2.0f32, 0.0], 1u64), ([0.0, -3.0], 3)];
        let mut sum = crate::aggregate::PlaintextSum::new(2);
        for (local, n) in locals {
            let delta: Vec<f32> = local.iter().zip(global).map(|(l, g)| l - g).collect();
            sum.add(n, 0.5, &delta).unwrap();
        }
        let sum = sum.finish();
        let next = fedavg(&global, &sum);
        assert_eq!(next, vec![0.5, -2.25]);
        assert_eq!(mean_loss(&sum), 0.5);
    }
}
