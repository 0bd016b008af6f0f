//! A lenient reading of `entries.log` for the verification page.
//!
//! `fedsoc audit verify` stops at the first fault; an auditor looking at a
//! damaged log still wants to see every entry and where the fault sits.
//! This reads the record framing documented in fedsoc-audit (header:
//! 8-byte magic, u32 version, u16 origin length, origin; record: "FSR1",
//! u32 payload length, SHA-256(0x00 ‖ payload), payload) and reports each
//! record's leaf hash check, never judging more than that: verdicts come
//! from [`fedsoc_coordinator::replay::verify_log`].

use std::path::Path;

use fedsoc_audit::Entry;
use fedsoc_audit::merkle::leaf_hash;

const MAGIC: &[u8; 8] = b"FSAUDLOG";
const MARKER: &[u8; 4] = b"FSR1";
const FRAME_HEADER: usize = 40;

/// One record as found in the file.
#[derive(Clone, Debug)]
pub struct RawEntry {
    pub index: u64,
    /// The entry kind, when the payload decodes.
    pub kind: Option<String>,
    /// The stored hash matches the payload.
    pub hash_ok: bool,
}

/// The records of `dir/entries.log` up to the first one that cannot be
/// framed (a short or garbled tail ends the list).
pub fn scan_entries(dir: &Path) -> std::io::Result<Vec<RawEntry>> {
    let bytes = std::fs::read(dir.join(fedsoc_audit::log::ENTRIES_FILE))?;
    Ok(scan(&bytes))
}

fn scan(bytes: &[u8]) -> Vec<RawEntry> {
    let mut out = Vec::new();
    if bytes.len() < 14 || &bytes[..8] != MAGIC {
        return out;
    }
    let origin_len = u16::from_le_bytes([bytes[12], bytes[13]]) as usize;
    let mut at = 14 + origin_len;
    while bytes.len().saturating_sub(at) >= FRAME_HEADER {
        let frame = &bytes[at..];
        if &frame[..4] != MARKER {
            break;
        }
        let len = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]) as usize;
        let Some(payload) = frame.get(FRAME_HEADER..FRAME_HEADER + len) else {
            break;
        };
        let hash_ok = leaf_hash(payload).as_slice() == &frame[8..40];
        out.push(RawEntry {
            index: out.len() as u64,
            kind: Entry::decode(payload).ok().map(|e| e.kind),
            hash_ok,
        });
        at += FRAME_HEADER + len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_short_files_list_nothing_and_never_panic() {
        assert!(scan(b"").is_empty());
        assert!(scan(b"FSAUDLOG\x01\0\0\0\xff\xff").is_empty());
        let mut file = b"FSAUDLOG\x01\0\0\0\x01\0xFSR1".to_vec();
        file.extend_from_slice(&u32::MAX.to_le_bytes());
        file.extend_from_slice(&[0; 40]);
        assert!(scan(&file).is_empty());
    }
}
