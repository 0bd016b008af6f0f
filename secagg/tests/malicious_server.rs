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
//! - Graph grinding: the neighbour graph used to be drawn from the round
//!   id, which the server picks, so it could try round ids until a
//!   colluding member sat next to the victim. Now the graph seed hashes a
//!   nonce from every advertiser, committed in its signed advertisement
//!   and revealed only after all commitments are fixed: the server can
//!   neither predict the graph nor steer it by leaving nonces out, and a
//!   colluding member cannot pick its nonce after seeing the others.

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
mod common;

use common::revealed_alone;
use fedsoc_secagg::graph::NeighbourGraph;
use fedsoc_secagg::messages::*;
use fedsoc_secagg::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

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
    let server = Server::new(cfg.clone()).unwrap();
    let mut c0 = BTreeMap::new();
    for (&p, key) in keys {
        c0.insert(p, Client::start(cfg.clone(), p, key, rng).unwrap());
    }
    let (mut server, bundles, mut c0) = fix_graph(server, c0).unwrap();
    let mut c1 = BTreeMap::new();
    for b in bundles {
        let st: ClientRevealed = c0.remove(&b.recipient).unwrap();
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
    let (st, nonces) = revealed_alone(&cfg, ParticipantId(1), &keys[&ParticipantId(1)], &mut rng);
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
        nonces,
        adverts,
    };
    assert!(matches!(
        st.handle_key_bundle(bundle, &mut rng),
        Err(SecAggError::BadSignature {
            participant: ParticipantId(0)
        })
    ));
}

/// A roster of `n` for the grinding tests: a sparse graph (k = 4), so a
/// given pair is neighbours in about 4 graphs of 29.
fn sparse_roster(n: u32, round: [u8; 32]) -> (RoundConfig, BTreeMap<ParticipantId, SigningKey>) {
    let keys: BTreeMap<_, _> = (0..n)
        .map(|i| (ParticipantId(i), SigningKey::from_bytes(&[i as u8 + 1; 32])))
        .collect();
    let vks = keys.iter().map(|(p, k)| (*p, k.verifying_key())).collect();
    let mut cfg = RoundConfig::recommended(round, vks, Ring::U64, 4);
    cfg.neighbors = 4;
    cfg.threshold = config::threshold_floor(4, 0);
    cfg.validate().unwrap();
    (cfg, keys)
}

/// The rule before: the graph seed was a hash of the round id alone.
fn round_id_seed(round: [u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"fedsoc-secagg/v1/graph")
        .chain_update(round)
        .finalize()
        .into()
}

/// Runs stages 0–1 with honest members whose randomness comes from
/// `honest_seed`, and returns the graph the round fixed.
fn graph_of_round(
    cfg: &RoundConfig,
    keys: &BTreeMap<ParticipantId, SigningKey>,
    honest_seed: u64,
) -> NeighbourGraph {
    let mut rng = ChaCha20Rng::seed_from_u64(honest_seed);
    let clients = keys
        .iter()
        .map(|(&p, key)| (p, Client::start(cfg.clone(), p, key, &mut rng).unwrap()))
        .collect();
    let (server, _, _) = fix_graph(Server::new(cfg.clone()).unwrap(), clients).unwrap();
    NeighbourGraph::new(cfg, &server.graph_seed())
}

const COLLUDER: ParticipantId = ParticipantId(7);

#[test]
fn grinding_round_ids_no_longer_puts_a_colluder_next_to_the_victim() {
    // Before: the server tries round ids until the graph of the old rule
    // makes its colluder a neighbour of the victim. It takes a few tries.
    let mut tries = 0u32;
    let ground = loop {
        tries += 1;
        let mut round = [0u8; 32];
        round[..4].copy_from_slice(&tries.to_be_bytes());
        let (cfg, _) = sparse_roster(30, round);
        if NeighbourGraph::new(&cfg, &round_id_seed(round)).are_neighbours(VICTIM, COLLUDER) {
            break round;
        }
        assert!(
            tries < 1000,
            "grinding should succeed quickly under the old rule"
        );
    };
    // Now: with that round id, the graph depends on the members' fresh
    // nonces, which the server sees only after it fixed everything it
    // controls. Forty rounds with the ground id: the colluder lands next
    // to the victim about as often as chance (4 in 29) says, not always.
    let (cfg, keys) = sparse_roster(30, ground);
    let mut adjacent = 0;
    let mut graphs = Vec::new();
    for run in 0..40 {
        let g = graph_of_round(&cfg, &keys, run);
        adjacent += usize::from(g.are_neighbours(VICTIM, COLLUDER));
        if !graphs.contains(&g) {
            graphs.push(g);
        }
    }
    assert!(
        graphs.len() > 30,
        "only {} distinct graphs in 40 rounds",
        graphs.len()
    );
    assert!(
        adjacent < 20,
        "the colluder neighboured the victim in {adjacent} of 40 rounds"
    );
}

/// Members through stage 0, and the commitment list the server sends.
fn advertised(
    cfg: &RoundConfig,
    keys: &BTreeMap<ParticipantId, SigningKey>,
    rng: &mut ChaCha20Rng,
) -> (
    ServerCollectingReveals,
    BTreeMap<ParticipantId, ClientAdvertised>,
    SeedCommitments,
) {
    let mut server = Server::new(cfg.clone()).unwrap();
    let mut clients = BTreeMap::new();
    for (&p, key) in keys {
        let (st, ad) = Client::start(cfg.clone(), p, key, rng).unwrap();
        server.handle_advertise(p, ad).unwrap();
        clients.insert(p, st);
    }
    let (server, list) = server.close().unwrap();
    (server, clients, list)
}

/// Members through stage 1: the server waiting for the nonces, the
/// members' states, and the nonce each reveals (not yet delivered).
#[allow(clippy::type_complexity)]
fn revealed(
    cfg: &RoundConfig,
    keys: &BTreeMap<ParticipantId, SigningKey>,
    rng: &mut ChaCha20Rng,
) -> (
    ServerCollectingReveals,
    BTreeMap<ParticipantId, ClientRevealed>,
    BTreeMap<ParticipantId, SeedReveal>,
) {
    let (server, clients, list) = advertised(cfg, keys, rng);
    let mut reveals = BTreeMap::new();
    let mut waiting = BTreeMap::new();
    for (p, st) in clients {
        let (st, reveal) = st.handle_commitments(list.clone()).unwrap();
        reveals.insert(p, reveal);
        waiting.insert(p, st);
    }
    (server, waiting, reveals)
}

/// The victim handed a key bundle with `nonces`: its graph-seed refusal.
fn victim_refuses(
    cfg: &RoundConfig,
    victim: ClientRevealed,
    nonces: Vec<SeedNonce>,
    rng: &mut ChaCha20Rng,
) -> String {
    let bundle = KeyBundle {
        round_id: cfg.round_id,
        recipient: VICTIM,
        nonces,
        adverts: vec![],
    };
    match victim.handle_key_bundle(bundle, rng) {
        Err(SecAggError::GraphSeed(m)) => m,
        other => panic!("expected a graph-seed refusal, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_colluder_cannot_change_its_nonce_after_seeing_the_others() {
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let (cfg, keys) = sparse_roster(10, [5; 32]);
    let (mut server, mut waiting, reveals) = revealed(&cfg, &keys, &mut rng);
    // Having seen every honest nonce, the colluder picks a new one.
    let mut ground = reveals[&COLLUDER].clone();
    ground.nonce = [0xAB; 32];
    assert_eq!(
        server.handle_reveal(COLLUDER, ground.clone()),
        Err(SecAggError::GraphSeed(format!(
            "the nonce of {COLLUDER} does not match its commitment"
        )))
    );
    // A server that forwards it anyway is caught by every member.
    let nonces: Vec<SeedNonce> = reveals
        .values()
        .map(|r| SeedNonce {
            participant: r.sender,
            nonce: if r.sender == COLLUDER {
                ground.nonce
            } else {
                r.nonce
            },
        })
        .collect();
    let refused = victim_refuses(&cfg, waiting.remove(&VICTIM).unwrap(), nonces, &mut rng);
    assert!(
        refused.contains("does not match its commitment"),
        "{refused}"
    );
}

#[test]
fn a_server_cannot_choose_the_seed_by_leaving_nonces_out() {
    let mut rng = ChaCha20Rng::seed_from_u64(22);
    let (cfg, keys) = sparse_roster(10, [6; 32]);
    let (mut server, mut waiting, reveals) = revealed(&cfg, &keys, &mut rng);
    // The honest server cannot close without one advertiser's nonce.
    for (p, r) in &reveals {
        if *p != ParticipantId(3) {
            server.handle_reveal(*p, r.clone()).unwrap();
        }
    }
    match server.close() {
        Err(SecAggError::TooManyDropouts { stage, detail }) => {
            assert_eq!(stage, Stage::RevealSeed);
            assert!(
                detail.contains("participant(s) 3 advertised but did not reveal"),
                "{detail}"
            );
        }
        other => panic!("closed without a nonce: {:?}", other.map(|_| ())),
    }
    // A server that drops a nonce from the bundle (claiming the member
    // vanished) to draw another graph is refused by the members.
    let nonces: Vec<SeedNonce> = reveals
        .values()
        .filter(|r| r.sender != ParticipantId(3))
        .map(|r| SeedNonce {
            participant: r.sender,
            nonce: r.nonce,
        })
        .collect();
    let refused = victim_refuses(&cfg, waiting.remove(&VICTIM).unwrap(), nonces, &mut rng);
    assert!(
        refused.contains("no nonce for 3, who committed"),
        "{refused}"
    );
    // Nor can it swap the victim's own commitment for one it can open.
    let (_, clients, mut list) = advertised(&cfg, &keys, &mut rng);
    let victim = clients.into_iter().find(|(p, _)| *p == VICTIM).unwrap().1;
    list.commitments[0].commitment = [0x5A; 32];
    assert!(matches!(
        victim.handle_commitments(list),
        Err(SecAggError::GraphSeed(m)) if m.contains("that I did not make")
    ));
}

#[test]
fn a_member_told_other_sum_bounds_cannot_be_signed_for() {
    // The weight cap, clip and bits bound the sum the coordinator accepts
    // (see tests/bounds.rs); a member told a higher cap than the others
    // could be given more weight unnoticed. The bounds are signed in.
    let mut rng = ChaCha20Rng::seed_from_u64(15);
    let (mut cfg, keys) = roster(5, &mut rng);
    let encoding = |max_samples| weighted::WeightedEncoding {
        quantizer: Quantizer {
            clip: 1.0,
            bits: 16,
            ring: Ring::U64,
        },
        max_samples,
    };
    cfg.context = encoding(1000).context();
    let mut told_0 = cfg.clone();
    told_0.context = encoding(1_000_000_000).context();
    let mut server = Server::new(cfg).unwrap();
    let (_, advert) =
        Client::start(told_0, ParticipantId(0), &keys[&ParticipantId(0)], &mut rng).unwrap();
    assert_eq!(
        server.handle_advertise(ParticipantId(0), advert),
        Err(SecAggError::BadSignature {
            participant: ParticipantId(0)
        })
    );
}
