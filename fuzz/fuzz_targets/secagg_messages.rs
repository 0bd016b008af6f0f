//! Every public secure-aggregation wire message, decoded from raw bytes.
//! The first byte picks the type; a message that decodes must survive a
//! re-encode and decode unchanged.
#![no_main]

use fedsoc_secagg::Message;
use fedsoc_secagg::messages::{
    AdvertiseKeys, ConsistencySignature, KeyBundle, MaskedInput, ShareBundle, ShareKeys,
    SignedSurvivors, SurvivorList, UnmaskShares,
};
use libfuzzer_sys::fuzz_target;

fn check<M: Message + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    if let Ok(m) = M::decode(bytes) {
        let again = M::decode(&m.encode()).expect("a decoded message re-decodes");
        assert_eq!(again, m);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 9 {
        0 => check::<AdvertiseKeys>(bytes),
        1 => check::<KeyBundle>(bytes),
        2 => check::<ShareKeys>(bytes),
        3 => check::<ShareBundle>(bytes),
        4 => check::<MaskedInput>(bytes),
        5 => check::<SurvivorList>(bytes),
        6 => check::<ConsistencySignature>(bytes),
        7 => check::<SignedSurvivors>(bytes),
        _ => check::<UnmaskShares>(bytes),
    }
});
