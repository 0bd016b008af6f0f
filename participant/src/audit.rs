//! Holding the coordinator to its audit log, sans-IO. After every round the
//! coordinator sends a signed checkpoint of the log and a proof that it
//! extends the last checkpoint we accepted; a coordinator that rewrites
//! history cannot produce one. We also check the receipts for what we
//! sent: every `round.stage` entry recording one of our messages (key
//! advertisement, encrypted shares, masked input, consistency signature
//! over the survivor list, unmasking shares), proven to be in the signed
//! tree and recording the SHA-256 of exactly the bytes we sent.
//!
//! A failed check is evidence, not a glitch: the participant stops taking
//! part and reports both signed checkpoints for the auditors.
//!
//! The last accepted checkpoint is kept durably in the participant's state
//! folder (`checkpoint.note`, replaced atomically through the storage
//! layer) before it counts as accepted, so a restart neither forgets it nor
//! lets a coordinator that rolled its log back slip past.

use std::collections::BTreeMap;
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

/// The stage number of a plaintext round's updates in `round.stage`
/// entries (the coordinator's `trail::PLAINTEXT_UPDATES_STAGE`).
pub const PLAINTEXT_UPDATES_STAGE: u32 = 100;

/// What we sent in a round, as its receipts must show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub participant: String,
    /// The round the entries must be of (`None`: not checked).
    pub round: Option<u64>,
    /// Whether our update went into the aggregate. Then every message we
    /// sent needs a receipt: its stage's entry must record it (the
    /// consistency signature and unmasking shares may instead be logged
    /// as missed, e.g. after a deadline; our update cannot). Otherwise
    /// only the receipts that come are checked.
    pub included: bool,
    /// SHA-256 (hex) of the message we sent in each stage; `None`: any
    /// message of ours (plaintext updates, which we do not hash).
    pub sent: BTreeMap<u32, Option<String>>,
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
    #[error("the receipts for our messages do not check out ({0}); checkpoint:\n{1}")]
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

/// The checkpoint last accepted and kept in the state folder `dir`
/// (`None`: none yet), read without changing anything: what
/// `fedsoc participant checkpoint` shows an auditor.
pub fn read_held(dir: &Path) -> Result<Option<SignedCheckpoint>, AuditViolation> {
    let path = dir.join(CHECKPOINT_FILE);
    let storage = |detail: String| AuditViolation::Storage {
        path: path.clone(),
        detail,
    };
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(SignedCheckpoint::from_bytes(&bytes).map_err(|e| {
            storage(format!(
                "it is unreadable ({e}); restore it from a backup, or ask an auditor for \
                 the federation's latest checkpoint before removing it"
            ))
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(storage(e.to_string())),
    }
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
        let last = read_held(dir)?;
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

    /// Our witness cosignature over the last accepted checkpoint, made
    /// with our certificate's key as witness `name` (our participant id)
    /// at `timestamp` (seconds): what we send back once a checkpoint
    /// checked out.
    pub fn cosign_last(
        &self,
        name: &str,
        key: &ed25519_dalek::SigningKey,
        timestamp: u64,
    ) -> Option<fedsoc_proto::v1::CheckpointCosignature> {
        let last = self.last.as_ref()?;
        let cosignature = last.checkpoint.cosign(name, key, timestamp).ok()?;
        Some(fedsoc_proto::v1::CheckpointCosignature {
            checkpoint: last.to_bytes().ok()?,
            timestamp,
            signature: cosignature.signature.to_vec(),
        })
    }

    fn check_receipt(
        &self,
        message: &AuditCheckpoint,
        new: &SignedCheckpoint,
        expected: &Expected,
    ) -> Result<(), AuditViolation> {
        let fail = |why: String| AuditViolation::Receipt(why, note(new));
        // The receipt of the update (older coordinators send only it) and
        // one per stage entry; each must be in the signed tree.
        let mut offered: Vec<Offered<'_>> = Vec::new();
        if !message.receipt_entry.is_empty() {
            offered.push((
                message.receipt_index,
                &message.receipt_entry,
                &message.receipt_proof,
            ));
        }
        for r in &message.receipts {
            if !offered.iter().any(|(index, _, _)| *index == r.index) {
                offered.push((r.index, &r.entry, &r.proof));
            }
        }
        if offered.is_empty() && expected.included && !expected.sent.is_empty() {
            return Err(fail("no receipt came with the checkpoint".into()));
        }
        let mut stages: Vec<(u64, StageRecord)> = Vec::new();
        for (index, bytes, proof) in offered {
            let entry = Entry::decode(bytes).map_err(|e| fail(format!("entry {index}: {e}")))?;
            verify_inclusion(
                &fedsoc_audit::merkle::leaf_hash(bytes),
                index,
                new.checkpoint.tree_size,
                &hashes(proof)?,
                &new.checkpoint.root,
            )
            .map_err(|e| fail(format!("entry {index}: {e}")))?;
            if entry.kind != "round.stage" {
                continue;
            }
            let record: StageRecord = entry
                .body_json()
                .map_err(|e| fail(format!("entry {index}: {e}")))?;
            if expected.round.is_some_and(|r| r != record.round) {
                return Err(fail(format!(
                    "entry {index} is of round {}, not of round {}",
                    record.round,
                    expected.round.unwrap_or_default()
                )));
            }
            stages.push((index, record));
        }
        let me = expected.participant.as_str();
        for (&stage, ours) in &expected.sent {
            let ours_text = ours
                .as_deref()
                .map(|s| format!(" (sha256 {s})"))
                .unwrap_or_default();
            let Some((index, record)) = stages.iter().find(|(_, r)| r.stage == stage) else {
                if expected.included {
                    return Err(fail(format!(
                        "no receipt for the entry of stage {stage}, where we sent a message{ours_text}"
                    )));
                }
                continue;
            };
            if let Some(logged) = record.received.iter().find(|r| r.participant == me) {
                if let Some(ours) = ours
                    && logged.sha256 != *ours
                {
                    return Err(fail(format!(
                        "entry {index} records a different stage-{stage} message for us: \
                         sha256 {} logged, we sent sha256 {ours}",
                        logged.sha256
                    )));
                }
                continue;
            }
            let logged_dropout = record.dropped.iter().any(|d| d.participant == me);
            let may_miss = stage == fedsoc_proto::secagg_stage::CONSISTENCY
                || stage == fedsoc_proto::secagg_stage::UNMASK;
            if expected.included && !(logged_dropout && may_miss) {
                return Err(fail(format!(
                    "entry {index} (stage {stage}) does not record our message{ours_text}"
                )));
            }
            if logged_dropout {
                tracing::warn!(
                    participant = me,
                    stage,
                    entry = index,
                    "the log records our stage-{stage} message as missed, though we sent it"
                );
            }
        }
        Ok(())
    }
}

/// A receipt as it came: entry index, encoded entry, inclusion proof.
type Offered<'a> = (u64, &'a [u8], &'a [Vec<u8>]);

/// The part of a `round.stage` entry a receipt check reads.
#[derive(serde::Deserialize)]
struct StageRecord {
    round: u64,
    stage: u32,
    #[serde(default)]
    received: Vec<Received>,
    #[serde(default)]
    dropped: Vec<Dropped>,
}

#[derive(serde::Deserialize)]
struct Received {
    participant: String,
    sha256: String,
}

#[derive(serde::Deserialize)]
struct Dropped {
    participant: String,
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

    fn stage_body(stage: u32, received: &[(&str, &str)], dropped: &[&str]) -> String {
        let received: Vec<_> = received
            .iter()
            .map(|(p, h)| serde_json::json!({"participant": p, "index": 0, "sha256": h}))
            .collect();
        let dropped: Vec<_> = dropped
            .iter()
            .map(|p| serde_json::json!({"participant": p, "reason": "late"}))
            .collect();
        serde_json::json!({"round": 1, "attempt": 1, "stage": stage, "name": "s",
            "received": received, "dropped": dropped})
        .to_string()
    }

    fn ours(sent: &[(u32, &str)]) -> Expected {
        Expected {
            participant: "soc-ee".into(),
            round: Some(1),
            included: true,
            sent: sent
                .iter()
                .map(|(s, h)| (*s, Some(h.to_string())))
                .collect(),
        }
    }

    /// The message for `log` with receipts for `entries`.
    fn with_receipts(log: &mut AuditLog, entries: &[u64]) -> AuditCheckpoint {
        let mut m = message(log, 0, None);
        let size = log.len();
        m.receipts = entries
            .iter()
            .map(|&i| fedsoc_proto::v1::Receipt {
                index: i,
                entry: log.entry(i).unwrap().encode().unwrap(),
                proof: log
                    .inclusion_proof(i, size)
                    .unwrap()
                    .iter()
                    .map(|h| h.to_vec())
                    .collect(),
            })
            .collect();
        m
    }

    #[test]
    fn receipts_must_prove_our_update_is_in_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let body = stage_body(2, &[("soc-ee", "ab")], &[]);
        let mut log = log_with(dir.path(), 1, &["opened", &body, "model"]);
        let expected = ours(&[(2, "ab")]);
        keeper(1)
            .accept(&message(&mut log, 0, Some(1)), Some(&expected))
            .unwrap();

        // Another participant's hash, a missing receipt, a wrong index.
        let other = ours(&[(2, "cd")]);
        let err = keeper(1)
            .accept(&message(&mut log, 0, Some(1)), Some(&other))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("records a different stage-2 message"),
            "{err}"
        );
        let err = keeper(1)
            .accept(&message(&mut log, 0, None), Some(&expected))
            .unwrap_err();
        assert!(err.to_string().contains("no receipt"), "{err}");
        let mut m = message(&mut log, 0, Some(1));
        m.receipt_index = 2;
        let err = keeper(1).accept(&m, Some(&expected)).unwrap_err();
        assert!(matches!(err, AuditViolation::Receipt(..)), "{err}");
    }

    #[test]
    fn every_message_we_sent_needs_a_receipt_that_records_it() {
        let dir = tempfile::tempdir().unwrap();
        let bodies = [
            stage_body(0, &[("soc-ee", "a0"), ("soc-fi", "f0")], &[]),
            stage_body(2, &[("soc-ee", "a2")], &[]),
            stage_body(3, &[("soc-ee", "forged")], &[]),
            stage_body(4, &[], &["soc-ee"]),
        ];
        let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
        let mut log = log_with(dir.path(), 1, &refs);
        let sent = ours(&[(0, "a0"), (2, "a2"), (3, "a3")]);

        // The consistency signature's entry is left out: refused.
        let err = keeper(1)
            .accept(&with_receipts(&mut log, &[0, 1]), Some(&sent))
            .unwrap_err();
        assert!(
            err.to_string().contains(
                "no receipt for the entry of stage 3, where we sent a message (sha256 a3)"
            ),
            "{err}"
        );
        // It records another signature than ours: refused.
        let err = keeper(1)
            .accept(&with_receipts(&mut log, &[0, 1, 2]), Some(&sent))
            .unwrap_err();
        assert!(
            err.to_string().contains(
                "entry 2 records a different stage-3 message for us: sha256 forged logged, we sent sha256 a3"
            ),
            "{err}"
        );
        // Unmasking shares logged as missed are accepted; an update is not.
        let late = ours(&[(0, "a0"), (2, "a2"), (4, "a4")]);
        keeper(1)
            .accept(&with_receipts(&mut log, &[0, 1, 3]), Some(&late))
            .unwrap();
        // Not included: only what the receipts claim about us is checked.
        let mut dropped = sent.clone();
        dropped.included = false;
        keeper(1)
            .accept(&with_receipts(&mut log, &[0]), Some(&dropped))
            .unwrap();
        assert!(
            keeper(1)
                .accept(&with_receipts(&mut log, &[0, 2]), Some(&dropped))
                .is_err()
        );
    }

    #[test]
    fn cosignatures_verify_against_our_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = log_with(dir.path(), 1, &["r1"]);
        let mut k = keeper(1);
        assert!(k.cosign_last("soc-ee", &key(7), 5).is_none());
        k.accept(&message(&mut log, 0, None), None).unwrap();
        let c = k.cosign_last("soc-ee", &key(7), 5).unwrap();
        let signed = SignedCheckpoint::from_bytes(&c.checkpoint).unwrap();
        let cosig = fedsoc_audit::Cosignature {
            name: "soc-ee".into(),
            key_id: fedsoc_audit::cosignature::key_id("soc-ee", &key(7).verifying_key()),
            timestamp: c.timestamp,
            signature: c.signature.clone().try_into().unwrap(),
        };
        cosig
            .verify(&signed.checkpoint, &key(7).verifying_key())
            .unwrap();
    }
}
