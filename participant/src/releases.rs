//! The base models this participant has released unmasking shares for.
//!
//! A coordinator that completes a secure round with members S, calls it
//! aborted, and reruns it from the same global model with S minus one
//! member gets two sums whose difference is that member's update. Each
//! honest member therefore lets its update from one base model enter sums
//! over one member set only: before it sends its unmasking shares (the
//! point from which the coordinator can finish the sum) it records the base
//! model and the survivor list it signed here, durably. A later secure task
//! from that base is refused unless its roster is exactly that survivor
//! list, and in it the member signs no other survivor list: a retry over
//! the very same members (what a coordinator restarted after a crash runs)
//! can only reproduce the same sum, while a retry before anyone unmasked
//! stays free, since nothing was revealed.
//!
//! Kept in the state folder (`releases.json`, replaced atomically through
//! the storage layer), so a restart does not forget it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fedsoc_durable::Disk;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The file in the state folder holding the ledger.
pub const RELEASES_FILE: &str = "releases.json";

/// One release: which round and attempt our unmasking shares went to, and
/// over which members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub round: u64,
    /// Hex of the secure-aggregation round id (one per attempt).
    pub round_id: String,
    /// The survivor list we signed (participant ids, sorted).
    pub survivors: Vec<String>,
}

/// Base model (SHA-256 hex of its weights) → the release made from it.
#[derive(Debug, Default)]
pub struct ReleaseLedger {
    released: BTreeMap<String, Release>,
    /// Where the ledger is kept; `None`: in memory only.
    state: Option<(PathBuf, Disk)>,
}

/// Why a task is refused, or the ledger cannot be kept.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(
        "refusing a secure task for round {round} from base model {base}: our update from that \
         model already went into the sum of round {earlier} (secure round {round_id}) over \
         [{released}], whose unmasking shares we released; this task's members are \
         [{offered}], and a second sum over other members would let the coordinator subtract \
         the two. Only a retry with exactly the released members is accepted"
    )]
    AlreadyReleased {
        round: u64,
        base: String,
        earlier: u64,
        round_id: String,
        released: String,
        offered: String,
    },
    #[error("cannot keep the release ledger in {path}: {detail}")]
    Storage { path: PathBuf, detail: String },
}

/// SHA-256 (hex) of a model's weights, little-endian f32s.
pub fn base_model_sha256(weights: &[f32]) -> String {
    let mut h = Sha256::new();
    for w in weights {
        h.update(w.to_le_bytes());
    }
    hex::encode(h.finalize())
}

impl ReleaseLedger {
    /// The ledger kept in `dir` (created if missing).
    pub fn open(dir: &Path, disk: Disk) -> Result<Self, ReleaseError> {
        let path = dir.join(RELEASES_FILE);
        let storage = |detail: String| ReleaseError::Storage {
            path: path.clone(),
            detail,
        };
        disk.create_dir_all(dir)
            .map_err(|e| storage(e.to_string()))?;
        let released = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                storage(format!(
                    "it is unreadable ({e}); restore it from a backup. Removing it would let a \
                     coordinator rerun a round you already unmasked and difference the two sums"
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(storage(e.to_string())),
        };
        Ok(ReleaseLedger {
            released,
            state: Some((dir.to_path_buf(), disk)),
        })
    }

    /// Checks a secure task for `round` from base model `base` with
    /// `members`: `None` if our update from that base entered no sum yet;
    /// the released survivor list, which the task must reproduce exactly,
    /// if `members` is that list; refused otherwise.
    pub fn check(
        &self,
        round: u64,
        base: &str,
        members: &[String],
    ) -> Result<Option<Vec<String>>, ReleaseError> {
        let Some(r) = self.released.get(base) else {
            return Ok(None);
        };
        let mut offered = members.to_vec();
        offered.sort();
        if offered == r.survivors {
            return Ok(Some(r.survivors.clone()));
        }
        Err(ReleaseError::AlreadyReleased {
            round,
            base: base.to_string(),
            earlier: r.round,
            round_id: r.round_id.clone(),
            released: r.survivors.join(", "),
            offered: offered.join(", "),
        })
    }

    /// Records, durably, that we are about to release unmasking shares for
    /// an update from `base`. Call before the shares leave.
    pub fn record(&mut self, base: &str, mut release: Release) -> Result<(), ReleaseError> {
        release.survivors.sort();
        let mut next = self.released.clone();
        next.insert(base.to_string(), release);
        if let Some((dir, disk)) = &self.state {
            let path = dir.join(RELEASES_FILE);
            // Serialising a map of strings and integers cannot fail.
            let bytes = serde_json::to_vec_pretty(&next).expect("plain data serialises");
            disk.replace(&path, &bytes)
                .map_err(|e| ReleaseError::Storage {
                    path,
                    detail: e.to_string(),
                })?;
        }
        self.released = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_base_is_refused_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let base = base_model_sha256(&[0.5, -1.0]);
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut ledger = ReleaseLedger::open(dir.path(), Disk::real()).unwrap();
        assert_eq!(ledger.check(3, &base, &ids(&["b", "a"])).unwrap(), None);
        let release = Release {
            round: 3,
            round_id: "ab".into(),
            survivors: ids(&["c", "a", "b"]),
        };
        ledger.record(&base, release).unwrap();
        let reopened = ReleaseLedger::open(dir.path(), Disk::real()).unwrap();
        let refused = reopened
            .check(3, &base, &ids(&["a", "b"]))
            .unwrap_err()
            .to_string();
        assert!(
            refused
                .contains("already went into the sum of round 3 (secure round ab) over [a, b, c]"),
            "{refused}"
        );
        assert!(
            refused.contains("this task's members are [a, b]"),
            "{refused}"
        );
        // The very same members: a retry that can only reproduce the sum.
        assert_eq!(
            reopened.check(3, &base, &ids(&["b", "c", "a"])).unwrap(),
            Some(ids(&["a", "b", "c"]))
        );
        let other = base_model_sha256(&[0.5, -0.9]);
        assert_eq!(reopened.check(4, &other, &ids(&["a"])).unwrap(), None);
    }

    #[test]
    fn an_unreadable_ledger_is_named_not_reset() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(RELEASES_FILE), b"{not json").unwrap();
        let e = ReleaseLedger::open(dir.path(), Disk::real()).unwrap_err();
        assert!(e.to_string().contains("restore it from a backup"), "{e}");
    }
}
