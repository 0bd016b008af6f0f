//! RFC 9162 §2.1 Merkle trees: hashing, tree heads, inclusion and
//! consistency proofs.
//!
//! The one-byte prefixes keep a leaf from ever being confused with an
//! interior node. The tree head of `n` leaves (`MTH`, §2.1.1) splits at the
//! largest power of two strictly below `n`; the empty tree's head is the
//! SHA-256 of the empty string.
//!
//! [`MerkleTree`] holds the leaf hashes and every complete, aligned subtree
//! hash, so appending is amortised O(1) and the head at any earlier size,
//! or a proof between any two sizes, costs O(log n) hashes at most.
//! The `verify_*` functions take hashes only: a participant or an auditor
//! checks a proof without holding the tree.
use sha2::{Digest, Sha256};
use thiserror::Error;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// SHA-256(0x00 ‖ entry).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([0u8])
        .chain_update(entry)
        .finalize()
        .into()
}

/// SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([1u8])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// The head of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// MTH over a list of leaf hashes, computed directly (O(n) hashes).
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [one] => *one,
        _ => {
            let k = split(leaves.len() as u64) as usize;
            node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
        }
    }
}

/// Largest power of two strictly below `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Why a proof could not be produced or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProofError {
    #[error(
        "leaf index {index} is outside a tree of size {tree_size}: ask for an index below the tree size"
    )]
    IndexOutOfRange { index: u64, tree_size: u64 },
    #[error(
        "a tree of size {requested} was asked for but the log holds only {available} entries: use a size no larger than the log"
    )]
    TreeTooSmall { requested: u64, available: u64 },
    #[error(
        "old tree size {old_size} is larger than new tree size {new_size}: a log never shrinks; swap the arguments or suspect a rollback"
    )]
    OldSizeLarger { old_size: u64, new_size: u64 },
    #[error(
        "the proof has {found} hashes but this proof needs exactly {expected}: it was built for other sizes or indices, or altered"
    )]
    WrongLength { expected: usize, found: usize },
    #[error(
        "the proof leads to root {} but the expected root is {}: the entry is not in that tree (or the proof, index or size is wrong)",
        hex::encode(.computed),
        hex::encode(.expected)
    )]
    RootMismatch { computed: Hash, expected: Hash },
    #[error(
        "the proof does not reproduce the old root (got {}, expected {}): the new tree does not extend the old one — history was rewritten, or the proof is wrong",
        hex::encode(.computed),
        hex::encode(.expected)
    )]
    OldRootMismatch { computed: Hash, expected: Hash },
    #[error(
        "the proof does not reproduce the new root (got {}, expected {}): the new tree does not extend the old one — history was rewritten, or the proof is wrong",
        hex::encode(.computed),
        hex::encode(.expected)
    )]
    NewRootMismatch { computed: Hash, expected: Hash },
}

/// An append-only Merkle tree over leaf hashes.
///
/// `levels[0]` holds the leaves; `levels[h][i]` is the hash of the complete
/// subtree of `2^h` leaves starting at leaf `i * 2^h`, stored as soon as its
/// last leaf arrives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MerkleTree {
    levels: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree over the given leaf hashes, in order.
    pub fn from_leaves(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut tree = Self::new();
        for leaf in leaves {
            tree.push(leaf);
        }
        tree
    }

    /// Appends a leaf hash; returns its index.
    pub fn push(&mut self, leaf: Hash) -> u64 {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        let index = self.levels[0].len();
        self.levels[0].push(leaf);
        let (mut level, mut i) = (0usize, index);
        while i % 2 == 1 {
            let parent = node_hash(&self.levels[level][i - 1], &self.levels[level][i]);
            level += 1;
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(parent);
            i /= 2;
        }
        index as u64
    }

    /// Number of leaves.
    pub fn len(&self) -> u64 {
        self.leaves().len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The leaf hashes, in order.
    pub fn leaves(&self) -> &[Hash] {
        self.levels.first().map_or(&[], Vec::as_slice)
    }

    /// The leaf hash at `index`, if present.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.leaves().get(i).copied())
    }

    /// The head of the whole tree.
    pub fn root(&self) -> Hash {
        self.subtree(0, self.len())
    }

    /// The head of the tree made of the first `tree_size` leaves.
    pub fn root_at(&self, tree_size: u64) -> Result<Hash, ProofError> {
        self.check_size(tree_size)?;
        Ok(self.subtree(0, tree_size))
    }

    /// The audit path (§2.1.3.1) for leaf `index` in the tree of the first
    /// `tree_size` leaves, nearest sibling first.
    pub fn inclusion_proof(&self, index: u64, tree_size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(tree_size)?;
        if index >= tree_size {
            return Err(ProofError::IndexOutOfRange { index, tree_size });
        }
        let mut proof = Vec::new();
        self.path(index, 0, tree_size, &mut proof);
        Ok(proof)
    }

    /// The consistency proof (§2.1.4.1) that the first `old_size` leaves are
    /// a prefix of the first `new_size` leaves. Empty when `old_size` is 0
    /// or equals `new_size`.
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(new_size)?;
        if old_size > new_size {
            return Err(ProofError::OldSizeLarger { old_size, new_size });
        }
        let mut proof = Vec::new();
        if old_size != 0 && old_size != new_size {
            self.subproof(old_size, 0, new_size, true, &mut proof);
        }
        Ok(proof)
    }

    fn check_size(&self, requested: u64) -> Result<(), ProofError> {
        if requested > self.len() {
            return Err(ProofError::TreeTooSmall {
                requested,
                available: self.len(),
            });
        }
        Ok(())
    }

    /// MTH of leaves `[start, end)`, `end <= len`. The left part of every
    /// split is a complete aligned subtree, so this is O(log n).
    fn subtree(&self, start: u64, end: u64) -> Hash {
        let n = end - start;
        if n == 0 {
            return empty_root();
        }
        if n.is_power_of_two() && start.is_multiple_of(n) {
            let cached = self
                .levels
                .get(n.trailing_zeros() as usize)
                .and_then(|level| level.get((start / n) as usize));
            if let Some(hash) = cached {
                return *hash;
            }
        }
        if n == 1 {
            // Unreachable for end <= len (leaves are always cached); keeps
            // the function total.
            return empty_root();
        }
        let k = split(n);
        node_hash(
            &self.subtree(start, start + k),
            &self.subtree(start + k, end),
        )
    }

    fn path(&self, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) {
        let n = end - start;
        if n <= 1 {
            return;
        }
        let k = split(n);
        if m < k {
            self.path(m, start, start + k, out);
            out.push(self.subtree(start + k, end));
        } else {
            self.path(m - k, start + k, end, out);
            out.push(self.subtree(start, start + k));
        }
    }

    fn subproof(&self, m: u64, start: u64, end: u64, whole: bool, out: &mut Vec<Hash>) {
        let n = end - start;
        if m == n {
            if !whole {
                out.push(self.subtree(start, end));
            }
            return;
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, start, start + k, whole, out);
            out.push(self.subtree(start + k, end));
        } else {
            self.subproof(m - k, start + k, end, false, out);
            out.push(self.subtree(start, start + k));
        }
    }
}

/// Length of the audit path for leaf `m` of a tree of `n` leaves.
fn inclusion_len(m: u64, n: u64) -> usize {
    if n <= 1 {
        return 0;
    }
    let k = split(n);
    1 + if m < k {
        inclusion_len(m, k)
    } else {
        inclusion_len(m - k, n - k)
    }
}

/// Length of the consistency proof from `m` to `n` leaves, `0 < m < n`.
fn consistency_len(m: u64, n: u64, whole: bool) -> usize {
    if m == n {
        return usize::from(!whole);
    }
    let k = split(n);
    1 + if m <= k {
        consistency_len(m, k, whole)
    } else {
        consistency_len(m - k, n - k, false)
    }
}

/// Checks that `leaf` sits at `index` in the tree of `tree_size` leaves
/// whose head is `root` (§2.1.3.2).
///
/// Take `tree_size` and `root` together from one signed checkpoint: some
/// sizes give paths of the same shape, so a root paired with a size it was
/// not computed for proves nothing.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= tree_size {
        return Err(ProofError::IndexOutOfRange { index, tree_size });
    }
    let expected = inclusion_len(index, tree_size);
    if proof.len() != expected {
        return Err(ProofError::WrongLength {
            expected,
            found: proof.len(),
        });
    }
    let (mut f, mut s) = (index, tree_size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(ProofError::WrongLength {
                expected,
                found: proof.len(),
            });
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength {
            expected,
            found: proof.len(),
        });
    }
    if r != *root {
        return Err(ProofError::RootMismatch {
            computed: r,
            expected: *root,
        });
    }
    Ok(())
}

/// Checks that the tree of `old_size` leaves with head `old_root` is a
/// prefix of the tree of `new_size` leaves with head `new_root` (§2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::OldSizeLarger { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength {
                expected: 0,
                found: proof.len(),
            });
        }
        let want_old = if old_size == 0 {
            empty_root()
        } else {
            *new_root
        };
        if *old_root != want_old {
            return Err(ProofError::OldRootMismatch {
                computed: want_old,
                expected: *old_root,
            });
        }
        return Ok(());
    }
    let expected = consistency_len(old_size, new_size, true);
    if proof.len() != expected {
        return Err(ProofError::WrongLength {
            expected,
            found: proof.len(),
        });
    }
    let wrong_length = ProofError::WrongLength {
        expected,
        found: proof.len(),
    };
    // When the old tree is a complete subtree its head is the first node of
    // the path and is not sent.
    let first = if old_size.is_power_of_two() {
        *old_root
    } else {
        match proof.first() {
            Some(h) => *h,
            None => return Err(wrong_length),
        }
    };
    let rest = if old_size.is_power_of_two() {
        proof
    } else {
        &proof[1..]
    };
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (first, first);
    for c in rest {
        if s == 0 {
            return Err(wrong_length);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(wrong_length);
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch {
            computed: fr,
            expected: *old_root,
        });
    }
    if sr != *new_root {
        return Err(ProofError::NewRootMismatch {
            computed: sr,
            expected: *new_root,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Tree head written straight from the recursive definition, over raw
    /// entries, sharing nothing with the code under test but SHA-256.
    fn naive_mth(entries: &[Vec<u8>]) -> Hash {
        fn sha(parts: &[&[u8]]) -> Hash {
            let mut h = Sha256::new();
            for p in parts {
                h.update(p);
            }
            h.finalize().into()
        }
        match entries.len() {
            0 => sha(&[]),
            1 => sha(&[&[0], &entries[0]]),
            n => {
                let mut k = 1;
                while k * 2 < n {
                    k *= 2;
                }
                let (l, r) = (naive_mth(&entries[..k]), naive_mth(&entries[k..]));
                sha(&[&[1], &l, &r])
            }
        }
    }

    fn entries(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("entry {i}").into_bytes()).collect()
    }

    fn tree_of(entries: &[Vec<u8>]) -> MerkleTree {
        MerkleTree::from_leaves(entries.iter().map(|e| leaf_hash(e)))
    }

    #[test]
    fn empty_leaf_matches_rfc_9162_test_vector() {
        // SHA-256 of the single byte 0x00.
        assert_eq!(
            hex::encode(leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_ne!(
            node_hash(&leaf_hash(b"a"), &leaf_hash(b"b")),
            leaf_hash(b"ab")
        );
    }

    #[test]
    fn empty_tree_head_is_sha256_of_nothing() {
        assert_eq!(
            hex::encode(MerkleTree::new().root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn small_trees_match_the_naive_definition() {
        for n in 0..=64 {
            let e = entries(n);
            let tree = tree_of(&e);
            assert_eq!(tree.root(), naive_mth(&e), "n = {n}");
            for m in 0..=n {
                assert_eq!(
                    tree.root_at(m as u64),
                    Ok(naive_mth(&e[..m])),
                    "n={n} m={m}"
                );
            }
        }
    }

    /// The eight-leaf data set of the Certificate Transparency reference
    /// tests, with the tree heads of its first 1..=8 leaves.
    #[test]
    fn certificate_transparency_reference_heads() {
        let inputs = [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ];
        let heads = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let data: Vec<Vec<u8>> = inputs.iter().map(|h| hex::decode(h).unwrap()).collect();
        let tree = tree_of(&data);
        for (i, head) in heads.iter().enumerate() {
            let size = i as u64 + 1;
            assert_eq!(
                hex::encode(tree.root_at(size).unwrap()),
                *head,
                "size {size}"
            );
            assert_eq!(
                hex::encode(naive_mth(&data[..=i])),
                *head,
                "naive, size {size}"
            );
        }
    }

    #[test]
    fn edge_cases_are_errors_not_panics() {
        let tree = tree_of(&entries(5));
        assert_eq!(
            tree.inclusion_proof(5, 5),
            Err(ProofError::IndexOutOfRange {
                index: 5,
                tree_size: 5
            })
        );
        assert!(matches!(
            tree.root_at(6),
            Err(ProofError::TreeTooSmall { .. })
        ));
        assert!(matches!(
            tree.consistency_proof(4, 3),
            Err(ProofError::OldSizeLarger { .. })
        ));
        let root = tree.root();
        assert_eq!(tree.consistency_proof(5, 5), Ok(vec![]));
        assert_eq!(verify_consistency(5, 5, &root, &root, &[]), Ok(()));
        assert!(verify_consistency(5, 5, &root, &empty_root(), &[]).is_err());
        assert_eq!(verify_consistency(0, 5, &empty_root(), &root, &[]), Ok(()));
        assert!(verify_consistency(0, 5, &root, &root, &[]).is_err());
        assert!(verify_inclusion(&root, 0, 0, &[], &root).is_err());
        // A one-leaf tree: its head is the leaf hash.
        let one = tree_of(&entries(1));
        assert_eq!(
            verify_inclusion(&one.root(), 0, 1, &[], &one.root()),
            Ok(())
        );
    }

    fn flip(proof: &mut [Hash], which: usize, byte: usize, bit: u8) {
        let len = proof.len();
        proof[which % len][byte % 32] ^= 1 << (bit % 8);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn inclusion_proofs_verify_and_break_when_altered(
            n in 1usize..=200,
            m_seed in any::<u64>(),
            which in any::<usize>(), byte in any::<usize>(), bit in any::<u8>(),
            other in any::<u64>(),
        ) {
            let e = entries(n);
            let tree = tree_of(&e);
            // Every size m <= n, checked against the naive head.
            let m = 1 + (m_seed % n as u64);
            let root = naive_mth(&e[..m as usize]);
            for index in 0..m {
                let leaf = leaf_hash(&e[index as usize]);
                let proof = tree.inclusion_proof(index, m).unwrap();
                prop_assert_eq!(verify_inclusion(&leaf, index, m, &proof, &root), Ok(()));

                // Another index.
                let wrong = (index + 1 + other % m) % m;
                if wrong != index {
                    prop_assert!(verify_inclusion(&leaf, wrong, m, &proof, &root).is_err());
                }
                // Another size, with that size's true head. (A size paired
                // with a head that is not its own is not a meaningful claim:
                // the signed checkpoint binds the two.)
                for size in [m - 1, m + 1] {
                    if size > index && size != m && size <= n as u64 {
                        let other_root = naive_mth(&e[..size as usize]);
                        prop_assert!(verify_inclusion(&leaf, index, size, &proof, &other_root).is_err());
                    }
                }
                // Another leaf.
                let other_leaf = leaf_hash(b"not in the log");
                prop_assert!(verify_inclusion(&other_leaf, index, m, &proof, &root).is_err());
                // A flipped bit in the path.
                if !proof.is_empty() {
                    let mut bad = proof.clone();
                    flip(&mut bad, which.wrapping_add(index as usize), byte, bit);
                    prop_assert!(verify_inclusion(&leaf, index, m, &bad, &root).is_err());
                    // A dropped or an extra hash.
                    prop_assert!(verify_inclusion(&leaf, index, m, &proof[1..], &root).is_err());
                }
                let mut longer = proof.clone();
                longer.push(root);
                prop_assert!(verify_inclusion(&leaf, index, m, &longer, &root).is_err());
            }
        }

        #[test]
        fn consistency_proofs_verify_and_break_when_altered(
            n in 1usize..=200,
            m_seed in any::<u64>(),
            which in any::<usize>(), byte in any::<usize>(), bit in any::<u8>(),
        ) {
            let e = entries(n);
            let tree = tree_of(&e);
            let m = m_seed % (n as u64 + 1);
            let n = n as u64;
            let (old_root, new_root) = (naive_mth(&e[..m as usize]), naive_mth(&e));
            let proof = tree.consistency_proof(m, n).unwrap();
            prop_assert_eq!(verify_consistency(m, n, &old_root, &new_root, &proof), Ok(()));

            if !proof.is_empty() {
                let mut bad = proof.clone();
                flip(&mut bad, which, byte, bit);
                prop_assert!(verify_consistency(m, n, &old_root, &new_root, &bad).is_err());
                prop_assert!(verify_consistency(m, n, &old_root, &new_root, &proof[1..]).is_err());
            }
            let mut longer = proof.clone();
            longer.push(new_root);
            prop_assert!(verify_consistency(m, n, &old_root, &new_root, &longer).is_err());
            // A different old tree of the same size (history rewritten).
            if m > 0 {
                let mut forged = e[..m as usize].to_vec();
                forged[which % m as usize].push(b'!');
                prop_assert!(verify_consistency(m, n, &naive_mth(&forged), &new_root, &proof).is_err());
                prop_assert!(verify_consistency(m, n, &old_root, &naive_mth(&forged), &proof).is_err());
            }
            // Shifted sizes, each with its own true head.
            let head = |size: u64| naive_mth(&e[..size as usize]);
            if m > 0 && m < n {
                prop_assert!(verify_consistency(m + 1, n, &head(m + 1), &new_root, &proof).is_err());
                prop_assert!(verify_consistency(m, n - 1, &old_root, &head(n - 1), &proof).is_err());
                prop_assert!(verify_consistency(m - 1, n, &head(m - 1), &new_root, &proof).is_err());
            }
            if m > 0 && m + 1 < n {
                prop_assert!(verify_consistency(m, n - 1, &old_root, &head(n - 1), &proof).is_err());
            }
        }

        #[test]
        fn incremental_heads_match_recomputation(n in 0usize..=300) {
            let e = entries(n);
            let mut tree = MerkleTree::new();
            for (i, entry) in e.iter().enumerate() {
                tree.push(leaf_hash(entry));
                prop_assert_eq!(tree.root(), root_of(&tree.leaves()[..=i]));
            }
            prop_assert_eq!(tree.root(), naive_mth(&e));
        }
    }
}
