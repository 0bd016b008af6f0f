//! The server state machine fed one hostile message. Input: stage (0..=4),
//! sender, how the fuzzed message meets the sender's honest one (instead,
//! before or after), scenario (with or without a dropout after sharing),
//! then the message bytes. The round then runs on honestly to the end;
//! errors anywhere are fine, panics are not.
#![no_main]

use std::sync::OnceLock;

use fedsoc_fuzz::round::{self, Transcript};
use fedsoc_secagg::messages::{
    AdvertiseKeys, ConsistencySignature, MaskedInput, ShareKeys, UnmaskShares,
};
use fedsoc_secagg::{Message, ParticipantId, Result, Server};
use libfuzzer_sys::fuzz_target;

fn transcripts() -> &'static [Transcript; 2] {
    static T: OnceLock<[Transcript; 2]> = OnceLock::new();
    T.get_or_init(|| [round::record(false), round::record(true)])
}

/// How the fuzzed message is delivered relative to the honest one.
#[derive(Clone, Copy, PartialEq)]
enum Order {
    Instead,
    Before,
    After,
}

/// Delivers stage `stage`'s messages through `handle`, the fuzzed one
/// from `target` as `order` says.
fn deliver(
    t: &Transcript,
    dropout: bool,
    stage: usize,
    fuzz: Option<(ParticipantId, Order, &[u8])>,
    mut handle: impl FnMut(ParticipantId, &[u8]) -> Result<()>,
) {
    for &p in &t.config.participants {
        let honest = t.client[stage]
            .get(&p)
            .filter(|_| round::sends(dropout, p, stage));
        let fuzzed = fuzz.filter(|(who, _, _)| *who == p);
        if let Some((_, Order::Before, bytes)) = fuzzed {
            let _ = handle(p, bytes);
        }
        match (fuzzed, honest) {
            (Some((_, Order::Instead, bytes)), _) => {
                let _ = handle(p, bytes);
            }
            (_, Some(bytes)) => {
                let _ = handle(p, bytes);
            }
            _ => {}
        }
        if let Some((_, Order::After, bytes)) = fuzzed {
            let _ = handle(p, bytes);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [stage, who, how, scenario, bytes @ ..] = data else {
        return;
    };
    let stage = usize::from(*stage % 5);
    let dropout = scenario & 1 == 1;
    let t = &transcripts()[usize::from(dropout)];
    // One id outside the roster too.
    let who = ParticipantId(u32::from(*who) % (round::N + 1));
    let order = [Order::Instead, Order::Before, Order::After][usize::from(*how % 3)];
    let at = |s: usize| (s == stage).then_some((who, order, bytes));

    let mut s0 = Server::new(t.config.clone()).expect("valid config");
    deliver(t, dropout, 0, at(0), |p, b| {
        s0.handle_advertise(p, AdvertiseKeys::decode(b)?)
    });
    let Ok((mut s1, _)) = s0.close() else { return };
    deliver(t, dropout, 1, at(1), |p, b| {
        s1.handle_share_keys(p, ShareKeys::decode(b)?)
    });
    let Ok((mut s2, _)) = s1.close() else { return };
    deliver(t, dropout, 2, at(2), |p, b| {
        s2.handle_masked_input(p, MaskedInput::decode(b)?)
    });
    let Ok((mut s3, _)) = s2.close() else { return };
    deliver(t, dropout, 3, at(3), |p, b| {
        s3.handle_consistency(p, ConsistencySignature::decode(b)?)
    });
    let Ok((mut s4, _)) = s3.close() else { return };
    deliver(t, dropout, 4, at(4), |p, b| {
        s4.handle_unmask(p, UnmaskShares::decode(b)?)
    });
    let _ = s4.close();
});
