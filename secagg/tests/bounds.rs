//! A member that forges its FedAvg weight or its values inside a correctly
//! masked input: the secure sum unmasks fine (the masks are honest), so the
//! check is on the sum itself. `WeightedEncoding::decode` refuses any sum
//! that the survivors could not have produced honestly; what one hostile
//! member can still do inside the bounds (claim `max_samples`, send any
//! update within [-clip, clip]) is stated in the README.

use std::collections::BTreeMap;

use fedsoc_secagg::weighted::WeightedEncoding;
use fedsoc_secagg::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const D: usize = 6;

fn setup() -> (RoundConfig, WeightedEncoding) {
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let keys = (0..4u32)
        .map(|i| {
            (
                ParticipantId(i),
                crypto::ed25519_keypair(&mut rng).verifying_key(),
            )
        })
        .collect();
    let encoding = WeightedEncoding {
        quantizer: Quantizer {
            clip: 1.0,
            bits: 16,
            ring: Ring::U64,
        },
        max_samples: 1000,
    };
    let config =
        RoundConfig::recommended([3; 32], keys, Ring::U64, WeightedEncoding::vector_len(D));
    (config, encoding)
}

/// Three honest members and member 3 sending `forged` (or an honest
/// update when `None`), through a whole simulated secure round.
fn unmasked_sum(forge: impl Fn(&mut Vec<u64>, u64)) -> Result<weighted::WeightedTotal> {
    let (config, encoding) = setup();
    let mut rng = ChaCha20Rng::seed_from_u64(22);
    let mut inputs = BTreeMap::new();
    let mut honest_weight = 0;
    for i in 0..4u32 {
        let samples = 100 * u64::from(i + 1);
        let mut words = encoding.encode(&[0.1; D], samples, 0.5, &mut rng).unwrap();
        if i == 3 {
            forge(&mut words, honest_weight);
        } else {
            honest_weight += samples;
        }
        inputs.insert(ParticipantId(i), words);
    }
    let aggregate = simulate(&config, &inputs, &DropoutPlan::none(), &mut rng)?;
    encoding.decode(&aggregate.sum, aggregate.survivors.len())
}

fn out_of_bounds(result: Result<weighted::WeightedTotal>) -> String {
    match result {
        Err(e @ SecAggError::AggregateOutOfBounds { survivors: 4, .. }) => e.to_string(),
        other => panic!(
            "a forged input was accepted: {:?}",
            other.map(|t| t.total_weight)
        ),
    }
}

#[test]
fn honest_inputs_decode() {
    let total = unmasked_sum(|_, _| {}).unwrap();
    assert_eq!(total.total_weight, 1000);
}

#[test]
fn a_weight_that_cancels_the_others_is_refused() {
    // Weight word −Σ others: the total weight would be 0 and the round
    // would "complete" with the model unchanged.
    let said = out_of_bounds(unmasked_sum(|words, others| {
        words[D] = 0u64.wrapping_sub(others);
    }));
    assert!(said.contains("total weight 0"), "{said}");
}

#[test]
fn a_weight_above_max_samples_is_refused() {
    // 10^9 samples would take 99.9999 % of the FedAvg weight.
    let said = out_of_bounds(unmasked_sum(|words, _| words[D] = 1_000_000_000));
    assert!(said.contains("expected 1..=4000"), "{said}");
}

#[test]
fn a_value_beyond_any_honest_quantisation_is_refused() {
    // One word of 2^63 would move a coordinate by about 10^10.
    let said = out_of_bounds(unmasked_sum(|words, _| words[2] = 1 << 63));
    assert!(said.contains("word 2"), "{said}");
}
