//! Offline verification of a log directory, trusting nothing its writer
//! says except what the audit public key signed.
//!
//! [`Verifier::verify`] re-reads every record, recomputes every leaf hash
//! and the tree, checks `seq` is 0..n and timestamps never decrease, checks
//! every stored checkpoint's signature and that its root is the recomputed
//! root at its size, checks checkpoints the caller holds from earlier
//! (a participant's, an auditor's: [`Verifier::trust`]) the same way, and,
//! given a way to list each entry's blobs ([`Verifier::blob_refs`]), that
//! every referenced blob exists and hashes to its id. It stops at the first
//! failure, which names the entry or checkpoint and the reason. On success
//! the [`VerifyReport`] holds the decoded entries, in order, for replay.
use std::path::Path;

use ed25519_dalek::VerifyingKey;

use crate::blob::{BlobId, BlobStore};
use crate::checkpoint::SignedCheckpoint;
use crate::entry::Entry;
use crate::error::AuditError;
use crate::log::{BLOBS_DIR, CHECKPOINTS_FILE, ENTRIES_FILE, load};
use crate::merkle::{Hash, MerkleTree};

/// Lists the blobs an entry refers to (the caller knows the entry kinds).
pub type BlobRefs<'a> = dyn Fn(&Entry) -> Result<Vec<BlobId>, String> + 'a;

/// What a successful verification established.
#[derive(Clone, Debug)]
pub struct VerifyReport {
    pub origin: String,
    /// Every entry, decoded, in order (entry `i` has `seq == i`).
    pub entries: Vec<Entry>,
    /// The recomputed tree; its leaves are the entries' leaf hashes.
    pub tree: MerkleTree,
    /// The recomputed root of the whole log.
    pub root: Hash,
    /// The stored checkpoints, all signed by the key and consistent.
    pub checkpoints: Vec<SignedCheckpoint>,
    /// How many caller-held checkpoints were checked.
    pub trusted_checked: usize,
    /// How many blob references were checked (0 without `blob_refs`).
    pub blobs_checked: usize,
}

impl VerifyReport {
    /// Number of entries.
    pub fn tree_size(&self) -> u64 {
        self.tree.len()
    }

    /// The newest stored checkpoint.
    pub fn latest_checkpoint(&self) -> Option<&SignedCheckpoint> {
        self.checkpoints.last()
    }
}

/// Configures and runs a verification.
pub struct Verifier<'a> {
    key: VerifyingKey,
    trusted: Vec<SignedCheckpoint>,
    blob_refs: Option<Box<BlobRefs<'a>>>,
}

impl<'a> Verifier<'a> {
    /// Verifies against the coordinator's audit public key.
    pub fn new(key: VerifyingKey) -> Self {
        Self {
            key,
            trusted: Vec::new(),
            blob_refs: None,
        }
    }

    /// Checkpoints obtained earlier (e.g. kept by participants): each must
    /// be signed by the key and match the log's root at its size, so a
    /// rewritten or rolled-back history is caught.
    pub fn trust(mut self, checkpoints: impl IntoIterator<Item = SignedCheckpoint>) -> Self {
        self.trusted.extend(checkpoints);
        self
    }

    /// How to find the blobs each entry refers to; every one is then
    /// checked in `<dir>/blobs`.
    pub fn blob_refs(mut self, refs: impl Fn(&Entry) -> Result<Vec<BlobId>, String> + 'a) -> Self {
        self.blob_refs = Some(Box::new(refs));
        self
    }

    /// Verifies the log directory `dir`; see the module documentation.
    pub fn verify(&self, dir: impl AsRef<Path>) -> Result<VerifyReport, AuditError> {
        let dir = dir.as_ref();
        let read = |name: &str| -> Result<Vec<u8>, AuditError> {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => AuditError::MissingFile {
                    path,
                    detail: "a log directory holds entries.log and checkpoints.log: copy both",
                },
                _ => AuditError::Io {
                    action: "read",
                    path,
                    source: e,
                },
            })
        };
        let (entries_bytes, checkpoints_bytes) = (read(ENTRIES_FILE)?, read(CHECKPOINTS_FILE)?);
        // Frames, leaf hashes, encodings, seq, timestamps, stored
        // checkpoints' roots against the recomputed tree.
        let loaded = load(
            &dir.join(ENTRIES_FILE),
            &entries_bytes,
            &dir.join(CHECKPOINTS_FILE),
            &checkpoints_bytes,
        )?;

        for (index, signed) in loaded.checkpoints.iter().enumerate() {
            signed
                .verify(&self.key)
                .map_err(|source| AuditError::CheckpointInvalid {
                    index: index as u64,
                    tree_size: signed.checkpoint.tree_size,
                    source,
                })?;
        }

        for signed in &self.trusted {
            let c = &signed.checkpoint;
            let invalid = |source| AuditError::TrustedCheckpointInvalid {
                tree_size: c.tree_size,
                source,
            };
            signed.verify(&self.key).map_err(invalid)?;
            if c.origin != loaded.origin {
                return Err(invalid(
                    crate::checkpoint::CheckpointError::OriginMismatch {
                        old: c.origin.clone(),
                        new: loaded.origin.clone(),
                    },
                ));
            }
            let computed_root =
                loaded
                    .tree
                    .root_at(c.tree_size)
                    .map_err(|_| AuditError::LogRolledBack {
                        trusted_size: c.tree_size,
                        log_size: loaded.tree.len(),
                    })?;
            if computed_root != c.root {
                return Err(AuditError::HistoryRewritten {
                    tree_size: c.tree_size,
                    trusted_root: c.root,
                    computed_root,
                });
            }
        }

        let mut blobs_checked = 0;
        if let Some(refs) = &self.blob_refs {
            let store = BlobStore::open_read_only(dir.join(BLOBS_DIR));
            for (index, (_, entry)) in loaded.entries.iter().enumerate() {
                let index = index as u64;
                let ids = refs(entry).map_err(|reason| AuditError::BlobRefs {
                    index,
                    kind: entry.kind.clone(),
                    reason,
                })?;
                for id in &ids {
                    store.check(id).map_err(|e| AuditError::EntryBlob {
                        index,
                        kind: entry.kind.clone(),
                        source: Box::new(e),
                    })?;
                    blobs_checked += 1;
                }
            }
        }

        Ok(VerifyReport {
            origin: loaded.origin,
            entries: loaded.entries.into_iter().map(|(_, e)| e).collect(),
            root: loaded.tree.root(),
            tree: loaded.tree,
            checkpoints: loaded.checkpoints,
            trusted_checked: self.trusted.len(),
            blobs_checked,
        })
    }
}

/// Verifies `dir` against `key`, with no caller-held checkpoints and no
/// blob references.
pub fn verify_dir(dir: impl AsRef<Path>, key: &VerifyingKey) -> Result<VerifyReport, AuditError> {
    Verifier::new(*key).verify(dir)
}
