//! The auditors' log: an append-only, verifiable record of every
//! aggregation (RFC 9162 Merkle hashing, signed checkpoints, inclusion and
//! consistency proofs, replay of each round).
//!
//! # Layout
//!
//! - [`merkle`]: RFC 9162 leaf and node hashes.
//!
//! The log itself, its checkpoints and proofs arrive with the audit work;
//! until then the coordinator keeps its round history in its storage folder.
#![forbid(unsafe_code)]

pub mod merkle {
    //! RFC 9162 §2.1 hashing: the one-byte prefixes keep a leaf from ever
    //! being confused with an interior node.
    use sha2::{Digest, Sha256};

    /// SHA-256(0x00 ‖ entry).
    pub fn leaf_hash(entry: &[u8]) -> [u8; 32] {
        Sha256::new()
            .chain_update([0u8])
            .chain_update(entry)
            .finalize()
            .into()
    }

    /// SHA-256(0x01 ‖ left ‖ right).
    pub fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
        Sha256::new()
            .chain_update([1u8])
            .chain_update(left)
            .chain_update(right)
            .finalize()
            .into()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

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
    }
}
