//! The audit log's standalone decoders: entry envelope, checkpoint text,
//! signed note, blob id, and the inclusion and consistency proofs a
//! participant checks against a received checkpoint. The first byte picks
//! one; whatever decodes must re-encode to the same canonical bytes.
#![no_main]

use fedsoc_audit::merkle::{self, Hash};
use fedsoc_audit::{BlobId, Checkpoint, Entry, SignedCheckpoint};
use libfuzzer_sys::fuzz_target;

/// Reads `bytes` as: u64 a, u64 b, 32-byte hash, 32-byte hash, then hashes.
fn proof_parts(bytes: &[u8]) -> Option<(u64, u64, Hash, Hash, Vec<Hash>)> {
    let head = bytes.get(..80)?;
    let a = u64::from_le_bytes(head[..8].try_into().ok()?);
    let b = u64::from_le_bytes(head[8..16].try_into().ok()?);
    let x: Hash = head[16..48].try_into().ok()?;
    let y: Hash = head[48..80].try_into().ok()?;
    let proof = bytes[80..]
        .chunks_exact(32)
        .map(|c| c.try_into().expect("32 bytes"))
        .collect();
    Some((a, b, x, y, proof))
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 6 {
        0 => {
            if let Ok(e) = Entry::decode(bytes) {
                assert_eq!(e.encode().expect("decoded entry encodes"), bytes);
            }
        }
        1 => {
            if let Ok(text) = std::str::from_utf8(bytes)
                && let Ok(c) = Checkpoint::from_text(text)
            {
                assert_eq!(c.to_text().expect("decoded checkpoint prints"), text);
            }
        }
        2 => {
            if let Ok(s) = SignedCheckpoint::from_bytes(bytes) {
                let again = SignedCheckpoint::from_bytes(&s.to_bytes().expect("prints"))
                    .expect("printed note parses");
                assert_eq!(again, s);
                let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]).verifying_key();
                let _ = s.verify(&key);
            }
        }
        3 => {
            if let Ok(text) = std::str::from_utf8(bytes)
                && let Ok(id) = text.parse::<BlobId>()
            {
                assert_eq!(id.to_string(), text);
            }
        }
        4 => {
            if let Some((index, size, leaf, root, proof)) = proof_parts(bytes) {
                let _ = merkle::verify_inclusion(&leaf, index, size, &proof, &root);
            }
        }
        _ => {
            if let Some((old, new, old_root, new_root, proof)) = proof_parts(bytes) {
                let _ = merkle::verify_consistency(old, new, &old_root, &new_root, &proof);
            }
        }
    }
});
