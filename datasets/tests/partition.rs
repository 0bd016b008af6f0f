//! IID partitioning: complete, balanced, deterministic.

use fedsoc_datasets::DatasetError;
use fedsoc_datasets::partition::{iid_indices, iid_split};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn every_index_once_and_balanced(len in 0usize..500, parts in 1usize..20, seed: u64) {
        let split = iid_indices(len, parts, seed).unwrap();
        prop_assert_eq!(split.len(), parts);
        let sizes: Vec<usize> = split.iter().map(Vec::len).collect();
        let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        prop_assert!(max - min <= 1);
        let mut all: Vec<usize> = split.into_iter().flatten().collect();
        all.sort_unstable();
        prop_assert_eq!(all, (0..len).collect::<Vec<_>>());
        prop_assert_eq!(iid_indices(len, parts, seed).unwrap(), iid_indices(len, parts, seed).unwrap());
    }
}

#[test]
fn seeds_change_the_split_and_zero_parts_is_an_error() {
    let items: Vec<u32> = (0..100).collect();
    assert_ne!(
        iid_split(&items, 4, 1).unwrap(),
        iid_split(&items, 4, 2).unwrap()
    );
    assert_eq!(
        iid_split(&items, 0, 1).unwrap_err(),
        DatasetError::ZeroParts
    );
}
