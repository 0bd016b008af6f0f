//! Holding the coordinator to its audit log, sans-IO. After every round the
//! coordinator sends a signed checkpoint of the log and a proof that it
//! extends the last checkpoint we accepted; a coordinator that rewrites
//! history cannot produce one. We also check the receipt for our update:
//! the log entry that records it, proven to be in the signed tree.
//!
//! A failed check is evidence, not a glitch: the participant stops taking
//! part and reports both signed checkpoints for the auditors.
//!
//! The last accepted checkpoint is kept durably in the participant's state
//! folder (`checkpoint.note`, replaced atomically through the storage
//! layer) before it counts as accepted, so a restart neither forgets it nor
//! lets a coordinator that rolled its log back slip past.

use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use fedsoc_audit::{Entry, Hash, SignedCheckpoint, verify_inclusion};
use fedsoc_durable::Disk;
use fedsoc_proto::v1::AuditCheckpoint;

/// The file in the state folder holding the last accepted checkpoint.
pub const CHECKPOINT_FILE: &str = "checkpoint.note";

/// The checkpoints we accepted and the key that must sign them.
#[derive(Debug, Default)]
pub struct CheckpointKeeper {
    key: Option<VerifyingKey>,
    last: Option<SignedCheckpoint>,
    /// Where accepted checkpoints are kept; `None`: in memory only.
    state: Option<(PathBuf, Disk)>,
}

/// Our update in a round, as the receipt must show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub participant: String,
    /// SHA-256 (hex) of the message that carried our update, when known.
    pub sha256: Option<String>,
}

/// Why a checkpoint was refused; carries the evidence.
#[derive(Debug, thiserror::Error)]
pub enum AuditViolation {
    #[error("the coordinator sent an audit checkpoint before identifying its signing key")]
    NoKey,
    #[error("unreadable audit checkpoint: {0}")]
    Unreadable(String),
    #[error("the audit checkpoint is not signed by the coordinator's key: {0}")]
    Signature(String),
    #[error(
        "the coordinator's audit log does not extend the checkpoint we hold ({detail}): \
         its history was rewritten or rolled back. Evidence, both signed by the coordinator:\n\
         --- held ---\n{held}\n--- new ---\n{new}"
    )]
    HistoryRewritten {
        detail: String,
        held: String,
        new: String,
    },
    #[error("the receipt for our update does not check out ({0}); checkpoint:\n{1}")]
    Receipt(String, String),
    #[error("cannot keep the accepted checkpoint in {path}: {detail}")]
    Storage { path: PathBuf, detail: String },
}

fn hashes(proof: &[Vec<u8>]) -> Result<Vec<Hash>, AuditViolation> {
    proof
        .iter()
        .map(|h| {
            h.as_slice().try_into().map_err(|_| {
                AuditViolation::Unreadable(format!("a proof hash of {} bytes", h.len()))
            })
        })
        .collect()
}

fn note(checkpoint: &SignedCheckpoint) -> String {
    checkpoint
        .to_note()
        .unwrap_or_else(|e| format!("(unprintable: {e})"))
}

impl CheckpointKeeper {
    /// A keeper whose accepted checkpoints live in `dir` (created if
    /// missing), starting from the one stored there.
    pub fn open(dir: &Path, disk: Disk) -> Result<Self, AuditViolation> {
        let storage = |path: &Path, detail: String| AuditViolation::Storage {
            path: path.to_path_buf(),
            detail,
        };
        disk.create_dir_all(dir)
            .map_err(|e| storage(dir, e.to_string()))?;
        let path = dir.join(CHECKPOINT_FILE);
        let last = match std::fs::read(&path) {
            Ok(bytes) => Some(SignedCheckpoint::from_bytes(&bytes).map_err(|e| {
                storage(
                    &path,
                    format!(
                        "it is unreadable ({e}); restore it from a backup, or ask an auditor for \
                         the federation's latest checkpoint before removing it"
                    ),
                )
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(storage(&path, e.to_string())),
        };
        Ok(CheckpointKeeper {
            key: None,
            last,
            state: Some((dir.to_path_buf(), disk)),
        })
    }

    /// Sets the key the coordinator signs with (from its certificate,
    /// checked against the federation CA). A different key from the one
    /// we held is itself a rewrite: checkpoints are kept, not forgotten.
    pub fn set_key(&mut self, key: VerifyingKey) {
        self.key = Some(key);
    }

    /// Tree size of the last accepted checkpoint (0: none).
    pub fn size(&self) -> u64 {
        self.last.as_ref().map_or(0, |c| c.checkpoint.tree_size)
    }

    pub fn last(&self) -> Option<&SignedCheckpoint> {
        self.last.as_ref()
    }

    /// Checks a checkpoint message and accepts it; `expected` names our
    /// update when the message should carry its receipt.
    pub fn accept(
        &mut self,
        message: &AuditCheckpoint,
        expected: Option<&Expected>,
    ) -> Result<(), AuditViolation> {
        let key = self.key.ok_or(AuditViolation::NoKey)?;
        let new = SignedCheckpoint::from_bytes(&message.checkpoint)
            .map_err(|e| AuditViolation::Unreadable(e.to_string()))?;
        new.verify(&key)
            .map_err(|e| AuditViolation::Signature(e.to_string()))?;
        if let Some(held) = &self.last {
            let rewritten = |detail: String| AuditViolation::HistoryRewritten {
                detail,
                held: note(held),
                new: note(&new),
            };
            let (old, now) = (&held.checkpoint, &new.checkpoint);
            if now.tree_size < old.tree_size {
                return Err(rewritten(format!(
                    "the log shrank from {} to {} entries",
                    old.tree_size, now.tree_size
                )));
            }
            if message.from_size != old.tree_size {
                return Err(rewritten(format!(
                    "the proof starts at size {} but we hold size {}",
                    message.from_size, old.tree_size
                )));
            }
            let proof = hashes(&message.consistency_proof)?;
            fedsoc_audit::checkpoint::verify_consistency(old, now, &proof)
                .map_err(|e| rewritten(e.to_string()))?;
        }
        if let Some(expected) = expected {
            self.check_receipt(message, &new, expected)?;
        }
        if let Some((dir, disk)) = &self.state {
            let path = dir.join(CHECKPOINT_FILE);
            disk.replace(&path, &message.checkpoint)
                .map_err(|e| AuditViolation::Storage {
                    path,
                    detail: e.to_string(),
                })?;
        }
        self.last = Some(new);
        Ok(())
    }

    fn check_receipt(
        &self,
        message: &AuditCheckpoint,
        new: &SignedCheckpoint,
        expected: &Expected,
    ) -> Result<(), AuditViolation> {
        let fail = |why: String| AuditViolation::Receipt(why, note(new));
        if message.receipt_entry.is_empty() {
            return Err(fail("no receipt came with the checkpoint".into()));
        }
        let entry = Entry::decode(&message.receipt_entry).map_err(|e| fail(e.to_string()))?;
        let proof = hashes(&message.receipt_proof)?;
        verify_inclusion(
            &fedsoc_audit::merkle::leaf_hash(&message.receipt_entry),
            message.receipt_index,
            new.checkpoint.tree_size,
            &proof,
            &new.checkpoint.root,
        )
        .map_err(|e| fail(format!("entry {}: {e}", message.receipt_index)))?;
        let body: serde_json::Value = entry.body_json().map_err(|e| fail(e.to_string()))?;
        let listed = body["received"].as_array().is_some_and(|received| {
            received.iter().any(|r| {
                r["participant"] == expected.participant.as_str()
                    && expected
                        .sha256
                        .as_deref()
                        .is_none_or(|sha| r["sha256"] == sha)
            })
        });
        if !listed {
            return Err(fail(format!(
                "entry {} does not record our update{}",
                message.receipt_index,
                expected
                    .sha256
                    .as_deref()
                    .map(|s| format!(" (sha256 {s})"))
                    .unwrap_or_default()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use fedsoc_audit::AuditLog;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    /// A log with `bodies` appended, in a fresh folder.
    fn log_with(dir: &std::path::Path, signer: u8, bodies: &[&str]) -> AuditLog {
        let mut log = AuditLog::open_or_create(dir, "fedsoc/test", key(signer)).unwrap();
        for body in bodies {
            log.append("round.stage", body.as_bytes().to_vec()).unwrap();
        }
        log
    }

    /// The coordinator's message for a checkpoint of `log`, proving
    /// consistency from `from` and carrying a receipt for `receipt`.
    fn message(log: &mut AuditLog, from: u64, receipt: Option<u64>) -> AuditCheckpoint {
        let cp = log.checkpoint(fedsoc_audit::now_ms()).unwrap();
        let size = cp.checkpoint.tree_size;
        let mut m = AuditCheckpoint {
            checkpoint: cp.to_bytes().unwrap(),
            from_size: from,
            consistency_proof: if from > 0 {
                log.consistency_proof(from, size)
                    .unwrap()
                    .iter()
                    .map(|h| h.to_vec())
                    .collect()
            } else {
                Vec::new()
            },
            ..Default::default()
        };
        if let Some(index) = receipt {
            m.receipt_index = index;
            m.receipt_entry = log.entry(index).unwrap().encode().unwrap();
            m.receipt_proof = log
                .inclusion_proof(index, size)
                .unwrap()
                .iter()
                .map(|h| h.to_vec())
                .collect();
        }
        m
    }

    fn keeper(signer: u8) -> CheckpointKeeper {
        let mut k = CheckpointKeeper::default();
        k.set_key(key(signer).verifying_key());
        k
    }

    #[test]
    fn accepts_a_log_that_grows_and_refuses_a_rewritten_one() {
        let a = tempfile::tempdir().unwrap();
        let mut log = log_with(a.path(), 1, &["r1", "r2"]);
        let mut k = keeper(1);
        k.accept(&message(&mut log, 0, None), None).unwrap();
        assert_eq!(k.size(), 2);
        log.append("round.stage", b"r3".to_vec()).unwrap();
        k.accept(&message(&mut log, 2, None), None).unwrap();
        assert_eq!(k.size(), 3);

        // Same key, same length and more, different history.
        let b = tempfile::tempdir().unwrap();
        let mut forged = log_with(b.path(), 1, &["r1", "r2-rewritten", "r3", "r4"]);
        let err = k.accept(&message(&mut forged, 3, None), None).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, AuditViolation::HistoryRewritten { .. }),
            "{text}"
        );
        // The evidence: both signed notes.
        assert!(text.contains("size 3") && text.contains("size 4"), "{text}");
        assert_eq!(k.size(), 3, "a refused checkpoint is not kept");

        // A log cut back is a rewrite too.
        let c = tempfile::tempdir().unwrap();
        let mut shorter = log_with(c.path(), 1, &["r1"]);
        let err = k.accept(&message(&mut shorter, 0, None), None).unwrap_err();
        assert!(err.to_string().contains("shrank from 3 to 1"), "{err}");
    }

    #[test]
    fn refuses_checkpoints_signed_by_another_key_or_before_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = log_with(dir.path(), 9, &["r1"]);
        let m = message(&mut log, 0, None);
        assert!(matches!(
            CheckpointKeeper::default().accept(&m, None),
            Err(AuditViolation::NoKey)
        ));
        assert!(matches!(
            keeper(1).accept(&m, None),
            Err(AuditViolation::Signature(_))
        ));
    }

    #[test]
    fn receipts_must_prove_our_update_is_in_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let body = r#"{"received":[{"participant":"soc-ee","index":0,"sha256":"ab"}]}"#;
        let mut log = log_with(dir.path(), 1, &["opened", body, "model"]);
        let ours = Expected {
            participant: "soc-ee".into(),
            sha256: Some("ab".into()),
        };
        keeper(1)
            .accept(&message(&mut log, 0, Some(1)), Some(&ours))
            .unwrap();

        // Another participant's hash, a missing receipt, a wrong index.
        let other = Expected {
            sha256: Some("cd".into()),
            ..ours.clone()
        };
        let err = keeper(1)
            .accept(&message(&mut log, 0, Some(1)), Some(&other))
            .unwrap_err();
        assert!(
            err.to_string().contains("does not record our update"),
            "{err}"
        );
        let err = keeper(1)
            .accept(&message(&mut log, 0, None), Some(&ours))
            .unwrap_err();
        assert!(err.to_string().contains("no receipt"), "{err}");
        let mut m = message(&mut log, 0, Some(1));
        m.receipt_index = 2;
        let err = keeper(1).accept(&m, Some(&ours)).unwrap_err();
        assert!(matches!(err, AuditViolation::Receipt(..)), "{err}");
    }
}
