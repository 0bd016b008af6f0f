//! A small, deterministic secure-aggregation round, recorded message by
//! message, so a target can replay it up to any stage and swap in fuzzed
//! bytes there. Every client draws from its own seeded RNG, so replaying
//! one client alone gives the same keys the recorded messages were made for.

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use fedsoc_secagg::messages::{
    ConsistencySignature, KeyBundle, MaskedInput, ShareBundle, ShareKeys, SignedSurvivors,
    SurvivorList, UnmaskShares,
};
use fedsoc_secagg::{
    Client, ClientAdvertised, ClientConsistent, ClientMasked, ClientShared, Message, ParticipantId,
    Ring, RoundConfig, crypto,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// Participants in the round (complete graph, k = 4, t = 3).
pub const N: u32 = 5;
/// Ring elements per input.
pub const VECTOR_LEN: usize = 4;
/// The participant that stops after sharing keys in the dropout scenario,
/// so the server must reconstruct its masking key.
pub const DROPPER: ParticipantId = ParticipantId(N - 1);

/// Every message of one round, in wire bytes, keyed by participant.
pub struct Transcript {
    pub config: RoundConfig,
    pub keys: BTreeMap<ParticipantId, SigningKey>,
    pub inputs: BTreeMap<ParticipantId, Vec<u64>>,
    /// Client → server messages of stage 0..=4.
    pub client: [BTreeMap<ParticipantId, Vec<u8>>; 5],
    /// Server → client messages that start stage 1..=4 (index 0 unused).
    pub server: [BTreeMap<ParticipantId, Vec<u8>>; 5],
}

/// The RNG of one client (and of the key set, for `None`).
pub fn rng_for(p: Option<ParticipantId>) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(p.map_or(0x00fe_d50c, |p| u64::from(p.0) + 1))
}

/// The round's configuration and long-term keys.
pub fn config() -> (RoundConfig, BTreeMap<ParticipantId, SigningKey>) {
    let mut rng = rng_for(None);
    let keys: BTreeMap<_, _> = (0..N)
        .map(|i| (ParticipantId(i), crypto::ed25519_keypair(&mut rng)))
        .collect();
    let vks = keys.iter().map(|(p, k)| (*p, k.verifying_key())).collect();
    let config = RoundConfig::recommended([7; 32], vks, Ring::U64, VECTOR_LEN);
    (config, keys)
}

/// The stages one client goes through, for replay.
pub enum ClientStage {
    Advertised(ClientAdvertised),
    Shared(ClientShared),
    Masked(ClientMasked),
    Consistent(ClientConsistent),
}

/// Replays client `p` through the recorded server messages until it waits
/// for the message that starts `stage` (1..=4).
pub fn replay_client(t: &Transcript, p: ParticipantId, stage: usize) -> ClientStage {
    let mut rng = rng_for(Some(p));
    let (st, _) = Client::start(t.config.clone(), p, &t.keys[&p], &mut rng).expect("start");
    let mut st = ClientStage::Advertised(st);
    for s in 1..stage {
        let msg = &t.server[s][&p];
        st = match st {
            ClientStage::Advertised(c) => {
                let b = KeyBundle::decode(msg).expect("recorded bundle");
                ClientStage::Shared(c.handle_key_bundle(b, &mut rng).expect("stage 1").0)
            }
            ClientStage::Shared(c) => {
                let b = ShareBundle::decode(msg).expect("recorded bundle");
                let input = &t.inputs[&p];
                ClientStage::Masked(c.handle_shares(b, input, &mut rng).expect("stage 2").0)
            }
            ClientStage::Masked(c) => {
                let l = SurvivorList::decode(msg).expect("recorded list");
                ClientStage::Consistent(c.handle_survivors(l).expect("stage 3").0)
            }
            ClientStage::Consistent(_) => unreachable!("stage 4 is the last"),
        };
    }
    st
}

/// Whether `p` sends its message of `stage` in the scenario.
pub fn sends(dropout: bool, p: ParticipantId, stage: usize) -> bool {
    !(dropout && p == DROPPER && stage >= 2)
}

/// Runs every client and the server honestly; with `dropout`, [`DROPPER`]
/// sends no masked input (nor anything after).
pub fn record(dropout: bool) -> Transcript {
    let (config, keys) = config();
    let inputs: BTreeMap<_, _> = config
        .participants
        .iter()
        .map(|p| {
            (
                *p,
                (0..VECTOR_LEN as u64).map(|i| i + u64::from(p.0)).collect(),
            )
        })
        .collect();
    let mut t = Transcript {
        config: config.clone(),
        keys,
        inputs,
        client: Default::default(),
        server: Default::default(),
    };
    let sends = |p, stage| sends(dropout, p, stage);
    let mut rngs: BTreeMap<_, _> = config
        .participants
        .iter()
        .map(|p| (*p, rng_for(Some(*p))))
        .collect();

    let mut server = fedsoc_secagg::Server::new(config.clone()).expect("server");
    let mut c0 = BTreeMap::new();
    for &p in &config.participants {
        let rng = rngs.get_mut(&p).expect("rng");
        let (st, msg) = Client::start(config.clone(), p, &t.keys[&p], rng).expect("start");
        server.handle_advertise(p, msg.clone()).expect("advert");
        t.client[0].insert(p, msg.encode());
        c0.insert(p, st);
    }
    let (mut server, bundles) = server.close().expect("close 0");
    let mut c1 = BTreeMap::new();
    for b in bundles {
        let p = b.recipient;
        t.server[1].insert(p, b.encode());
        let rng = rngs.get_mut(&p).expect("rng");
        let (st, msg): (_, ShareKeys) = c0
            .remove(&p)
            .expect("c0")
            .handle_key_bundle(b, rng)
            .expect("s1");
        server.handle_share_keys(p, msg.clone()).expect("shares");
        t.client[1].insert(p, msg.encode());
        c1.insert(p, st);
    }
    let (mut server, bundles) = server.close().expect("close 1");
    let mut c2 = BTreeMap::new();
    for b in bundles {
        let p = b.recipient;
        t.server[2].insert(p, b.encode());
        let rng = rngs.get_mut(&p).expect("rng");
        let (st, msg): (_, MaskedInput) = c1
            .remove(&p)
            .expect("c1")
            .handle_shares(b, &t.inputs[&p], rng)
            .expect("s2");
        t.client[2].insert(p, msg.encode());
        if sends(p, 2) {
            server.handle_masked_input(p, msg).expect("masked");
            c2.insert(p, st);
        }
    }
    let (mut server, list) = server.close().expect("close 2");
    let mut c3 = BTreeMap::new();
    for (p, st) in c2 {
        t.server[3].insert(p, list.encode());
        let (st, msg): (_, ConsistencySignature) = st.handle_survivors(list.clone()).expect("s3");
        server.handle_consistency(p, msg.clone()).expect("sig");
        t.client[3].insert(p, msg.encode());
        c3.insert(p, st);
    }
    let (mut server, signed): (_, SignedSurvivors) = server.close().expect("close 3");
    for (p, st) in c3 {
        t.server[4].insert(p, signed.encode());
        let (_, msg): (_, UnmaskShares) = st.handle_consistency(signed.clone()).expect("s4");
        server.handle_unmask(p, msg.clone()).expect("unmask");
        t.client[4].insert(p, msg.encode());
    }
    server.close().expect("close 4");
    t
}
