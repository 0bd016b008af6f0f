//! The model bundle of each completed round, kept in `bundles = "DIR"`
//! so a SOC always has the current model at hand: the coordinator sends it
//! in pieces after the round's checkpoint; the agent checks it against the
//! federation CA (weights, encoder and threshold against their log entries,
//! the entries against the signed checkpoint) and only then writes it,
//! atomically, as `DIR/round-NNNNNN/`. The newest few are kept.

use std::path::{Path, PathBuf};

use fedsoc_proto::v1::BundleChunk;

/// Bundles kept in the folder; older ones are removed.
pub const KEPT: usize = 5;

/// Largest bundle accepted: far above any model fedsoc trains.
const MAX_BUNDLE: u64 = 1 << 30;

/// Collects one bundle's pieces (sans-IO).
#[derive(Debug, Default)]
pub struct BundleIntake {
    current: Option<(u64, u64, Vec<u8>)>,
}

impl BundleIntake {
    /// Adds a piece; returns `(round, bytes)` once the bundle is whole. A
    /// piece of another round or out of order starts over, or is refused.
    pub fn push(&mut self, piece: BundleChunk) -> Result<Option<(u64, Vec<u8>)>, String> {
        if piece.total_len > MAX_BUNDLE {
            self.current = None;
            return Err(format!(
                "a bundle of {} bytes is over the {MAX_BUNDLE}-byte limit",
                piece.total_len
            ));
        }
        if piece.offset == 0 {
            self.current = Some((piece.round, piece.total_len, Vec::new()));
        }
        let Some((round, total, buf)) = self.current.as_mut() else {
            return Err("a bundle piece without its start".into());
        };
        if *round != piece.round || *total != piece.total_len || buf.len() as u64 != piece.offset {
            self.current = None;
            return Err(format!(
                "bundle piece at byte {} of round {} does not continue the bundle being received",
                piece.offset, piece.round
            ));
        }
        buf.extend_from_slice(&piece.data);
        if buf.len() as u64 > *total {
            self.current = None;
            return Err("a bundle longer than it announced".into());
        }
        if buf.len() as u64 == *total {
            let (round, _, bytes) = self.current.take().unwrap_or_default();
            return Ok(Some((round, bytes)));
        }
        Ok(None)
    }
}

/// Verifies the bundle of `round` against `ca_pem` and writes it to
/// `dir/round-NNNNNN/`; then removes all but the newest [`KEPT`].
pub fn keep(dir: &Path, round: u64, bytes: &[u8], ca_pem: &str) -> Result<PathBuf, String> {
    let bundle = fedsoc_bundle::Bundle::from_bytes(bytes).map_err(|e| e.to_string())?;
    let verified = bundle.verify(ca_pem).map_err(|e| e.to_string())?;
    if verified.round != round {
        return Err(format!(
            "the bundle announced for round {round} is the model of round {}",
            verified.round
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let target = dir.join(format!("round-{round:06}"));
    if !target.exists() {
        bundle.write(&target).map_err(|e| e.to_string())?;
    }
    prune(dir);
    Ok(target)
}

/// Removes all but the newest [`KEPT`] `round-*` folders (best effort).
fn prune(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut rounds: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("round-"))
        })
        .collect();
    rounds.sort();
    let excess = rounds.len().saturating_sub(KEPT);
    for old in &rounds[..excess] {
        let _ = std::fs::remove_dir_all(old);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(round: u64, offset: u64, total: u64, data: &[u8]) -> BundleChunk {
        BundleChunk {
            round,
            offset,
            total_len: total,
            data: data.to_vec(),
        }
    }

    #[test]
    fn pieces_assemble_in_order_and_a_gap_is_refused() {
        let mut intake = BundleIntake::default();
        assert_eq!(intake.push(piece(3, 0, 5, b"abc")).unwrap(), None);
        assert_eq!(
            intake.push(piece(3, 3, 5, b"de")).unwrap(),
            Some((3, b"abcde".to_vec()))
        );
        intake.push(piece(4, 0, 5, b"ab")).unwrap();
        assert!(intake.push(piece(4, 3, 5, b"de")).is_err());
        assert!(intake.push(piece(4, 2, 5, b"c")).is_err(), "started over");
        assert!(intake.push(piece(5, 0, MAX_BUNDLE + 1, b"")).is_err());
    }

    #[test]
    fn garbage_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        assert!(keep(dir.path(), 1, b"not a bundle", "").is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
