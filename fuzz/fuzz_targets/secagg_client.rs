//! A client state machine fed one hostile server message. Input: stage
//! (1..=4, the message that starts it), which client, scenario, then the
//! message bytes; the client is replayed honestly up to that stage.
#![no_main]

use std::sync::OnceLock;

use fedsoc_fuzz::round::{self, ClientStage, Transcript};
use fedsoc_secagg::messages::{KeyBundle, ShareBundle, SignedSurvivors, SurvivorList};
use fedsoc_secagg::{Message, ParticipantId};
use libfuzzer_sys::fuzz_target;

fn transcripts() -> &'static [Transcript; 2] {
    static T: OnceLock<[Transcript; 2]> = OnceLock::new();
    T.get_or_init(|| [round::record(false), round::record(true)])
}

fuzz_target!(|data: &[u8]| {
    let [stage, who, scenario, bytes @ ..] = data else {
        return;
    };
    let stage = usize::from(*stage % 4) + 1;
    let dropout = scenario & 1 == 1;
    let t = &transcripts()[usize::from(dropout)];
    let me = ParticipantId(u32::from(*who) % round::N);
    if !t.server[stage].contains_key(&me) {
        return; // the dropout never gets this far
    }
    let mut rng = round::rng_for(Some(me));
    let _ = match round::replay_client(t, me, stage) {
        ClientStage::Advertised(c) => {
            KeyBundle::decode(bytes).and_then(|m| c.handle_key_bundle(m, &mut rng).map(drop))
        }
        ClientStage::Shared(c) => ShareBundle::decode(bytes)
            .and_then(|m| c.handle_shares(m, &t.inputs[&me], &mut rng).map(drop)),
        ClientStage::Masked(c) => {
            SurvivorList::decode(bytes).and_then(|m| c.handle_survivors(m).map(drop))
        }
        ClientStage::Consistent(c) => {
            SignedSurvivors::decode(bytes).and_then(|m| c.handle_consistency(m).map(drop))
        }
    };
});
