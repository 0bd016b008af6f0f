//! A coordinator that deviates from the protocol, driving the real client
//! state machines. Each test is an attack from the review of the secure
//! aggregation against a malicious server, and asserts how it now fails.
//!
//! - Split survivor lists: the server shows one survivor list (victim in)
//!   to some members and another (victim out) to the others, to collect
//!   the victim's self-mask seed `b` from the first group and its masking
//!   key `s_sk` from the second, and so its update. With each secret held
//!   by k + 1 members (k neighbours and the owner), the old threshold
//!   t = ⌊k/2⌋ + 1 let two disjoint groups of t exist for odd k (n = 4,
//!   k = 3, t = 2: {0, 1} and {2, 3}). Now t ≥ ⌈(k + c + 2)/2⌉: any two
//!   groups of t holders share an honest member, who signs one list only.
//! - Parameters told differently to different members: every signature
//!   covers the round's parameters (roster, k, t, c, ring, length), so a
//!   member given other parameters cannot be signed for.

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use fedsoc_secagg::messages::*;
use fedsoc_secagg::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const VICTIM: ParticipantId = ParticipantId(0);

fn roster(n: u32, rng: &mut ChaCha20Rng) -> (RoundConfig, BTreeMap<ParticipantId, SigningKey>) {
    let keys: BTreeMap<_, _> = (0..n)
        .map(|i| (ParticipantId(i), crypto::ed25519_keypair(rng)))
        .collect();
    let vks = keys.iter().map(|(p, k)| (*p, k.verifying_key())).collect();
    (RoundConfig::recommended([7; 32], vks, Ring::U64, 4), keys)
}

/// Every member through stages 0–2 with an honest server: their states
/// waiting for the survivor list, and the list the server would send.
fn to_survivor_list(
    cfg: &RoundConfig,
    keys: &BTreeMap<ParticipantId, SigningKey>,
    rng: &mut ChaCha20Rng,
) -> (BTreeMap<ParticipantId, ClientMasked>, SurvivorList) {
    let mut server = Server::new(cfg.clone()).unwrap();
    let mut c0 = BTreeMap::new();
    for (&p, key) in keys {
        let (st, msg) = Client::start(cfg.clone(), p, key, rng).unwrap();
        server.handle_advertise(p, msg).unwrap();
        c0.insert(p, st);
    }
    let (mut server, bundles) = server.close().unwrap();
    let mut c1 = BTreeMap::new();
    for b in bundles {
        let st: ClientAdvertised = c0.remove(&b.recipient).unwrap();
        let (st, msg) = st.handle_key_bundle(b.clone(), rng).unwrap();
        server.handle_share_keys(b.recipient, msg).unwrap();
        c1.insert(b.recipient, st);
    }
    let (mut server, bundles) = server.close().unwrap();
    let mut c2 = BTreeMap::new();
    for b in bundles {
        let st: ClientShared = c1.remove(&b.recipient).unwrap();
        let input = vec![u64::from(b.recipient.0) + 1; cfg.vector_len];
        let (st, msg) = st.handle_shares(b.clone(), &input, rng).unwrap();
        server.handle_masked_input(b.recipient, msg).unwrap();
        c2.insert(b.recipient, st);
    }
    let (_server, list) = server.close().unwrap();
    (c2, list)
}

/// What the split-view attack collects: shares of the victim's `b` and of
/// its `s_sk`, and which members refused to reveal.
#[derive(Debug, Default)]
struct Loot {
    b_shares: usize,
    sk_shares: usize,
    refused: Vec<(ParticipantId, SecAggError)>,
}

/// Shows `with_victim` the full list and everyone else the list without
/// the victim, forwards to each group the signatures on its own list, and
/// collects what the members reveal.
fn split_view(
    cfg: &RoundConfig,
    keys: &BTreeMap<ParticipantId, SigningKey>,
    with_victim: &[ParticipantId],
    rng: &mut ChaCha20Rng,
) -> Loot {
    let (masked, honest_list) = to_survivor_list(cfg, keys, rng);
    let everyone = honest_list.survivors.clone();
    let without: Vec<ParticipantId> = everyone.iter().copied().filter(|p| *p != VICTIM).collect();
    let mut signed = BTreeMap::new();
    let mut signatures: BTreeMap<bool, Vec<SurvivorSignature>> = BTreeMap::new();
    for (p, st) in masked {
        let sees_victim = with_victim.contains(&p);
        let list = SurvivorList {
            round_id: cfg.round_id,
            survivors: if sees_victim {
                everyone.clone()
            } else {
                without.clone()
            },
        };
        let (st, sig) = st.handle_survivors(list).unwrap();
        signatures
            .entry(sees_victim)
            .or_default()
            .push(SurvivorSignature {
                signer: p,
                signature: sig.signature,
            });
        signed.insert(p, (st, sees_victim));
    }
    let mut loot = Loot::default();
    for (p, (st, sees_victim)) in signed {
        let message = SignedSurvivors {
            round_id: cfg.round_id,
            survivors: if sees_victim {
                everyone.clone()
            } else {
                without.clone()
            },
            signatures: signatures[&sees_victim].clone(),
        };
        match st.handle_consistency(message) {
            Ok((_, shares)) => {
                loot.b_shares += shares.b_shares.iter().filter(|s| s.owner == VICTIM).count();
                loot.sk_shares += shares
                    .sk_shares
                    .iter()
                    .filter(|s| s.owner == VICTIM)
                    .count();
            }
            Err(e) => loot.refused.push((p, e)),
        }
    }
    loot
}

#[test]
fn split_survivor_lists_never_yield_both_secrets_of_a_member() {
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let (cfg, keys) = roster(4, &mut rng);
    assert_eq!(
        (cfg.neighbors, cfg.threshold),
        (3, 3),
        "n = 4: complete graph"
    );

    // The threshold the attack needs is refused outright, by every member.
    let mut old = cfg.clone();
    old.threshold = 2;
    let refused = Client::start(old, ParticipantId(1), &keys[&ParticipantId(1)], &mut rng);
    match refused {
        Err(SecAggError::UnsafeConfig { reason }) => {
            assert!(reason.contains("below 3"), "{reason}")
        }
        other => panic!("a member accepted t = 2 for k = 3: {:?}", other.map(|_| ())),
    }

    // Every way of splitting the others around the victim.
    let others = [ParticipantId(1), ParticipantId(2), ParticipantId(3)];
    for mask in 0u8..8 {
        let mut with_victim = vec![VICTIM];
        with_victim.extend(
            others
                .iter()
                .enumerate()
                .filter(|(i, _)| mask >> i & 1 == 1)
                .map(|(_, p)| *p),
        );
        let loot = split_view(&cfg, &keys, &with_victim, &mut rng);
        let t = cfg.threshold;
        assert!(
            !(loot.b_shares >= t && loot.sk_shares >= t),
            "split {with_victim:?}: the server collected {} shares of b and {} of s_sk",
            loot.b_shares,
            loot.sk_shares
        );
        // A group below t refuses to reveal anything, and says why.
        for (p, e) in &loot.refused {
            assert!(
                matches!(e, SecAggError::MissingSignature { needed: 3, .. }),
                "split {with_victim:?}: {p} refused with {e}"
            );
        }
        if with_victim.len() == 2 {
            // The old attack's split ({0, 1} | {2, 3}): both groups refuse.
            assert_eq!(loot.refused.len(), 4, "split {with_victim:?}: {loot:?}");
        }
    }
}

#[test]
fn a_member_told_other_parameters_cannot_be_signed_for() {
    let mut rng = ChaCha20Rng::seed_from_u64(14);
    let (cfg, keys) = roster(5, &mut rng);
    // Member 0 is told one colluder is tolerated; the others, none.
    let mut told_0 = cfg.clone();
    told_0.colluders = 1;
    told_0.threshold = config::threshold_floor(told_0.neighbors, 1);
    told_0.validate().unwrap();
    let mut server = Server::new(cfg.clone()).unwrap();
    let (_, advert) =
        Client::start(told_0, ParticipantId(0), &keys[&ParticipantId(0)], &mut rng).unwrap();
    // The server running the others' parameters refuses its advertisement…
    assert!(matches!(
        server.handle_advertise(ParticipantId(0), advert.clone()),
        Err(SecAggError::BadSignature {
            participant: ParticipantId(0)
        })
    ));
    // …and a server that forwards it anyway is caught by every neighbour.
    let (st, _) = Client::start(
        cfg.clone(),
        ParticipantId(1),
        &keys[&ParticipantId(1)],
        &mut rng,
    )
    .unwrap();
    let mut adverts = vec![advert];
    for p in 1..5 {
        let (_, ad) = Client::start(
            cfg.clone(),
            ParticipantId(p),
            &keys[&ParticipantId(p)],
            &mut rng,
        )
        .unwrap();
        adverts.push(ad);
    }
    let bundle = KeyBundle {
        round_id: cfg.round_id,
        recipient: ParticipantId(1),
        adverts,
    };
    assert!(matches!(
        st.handle_key_bundle(bundle, &mut rng),
        Err(SecAggError::BadSignature {
            participant: ParticipantId(0)
        })
    ));
}
