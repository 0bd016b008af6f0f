//! The crate's error type: every variant says what is wrong and what to do.
use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::blob::BlobId;
use crate::checkpoint::CheckpointError;
use crate::entry::EntryError;
use crate::merkle::{Hash, ProofError};

/// Everything that can go wrong with an audit log.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error("could not {action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{} is not a fedsoc audit {expected} file: {detail}; point the command at the log directory (it holds entries.log, checkpoints.log and blobs/)",
        .path.display()
    )]
    NotAnAuditFile {
        path: PathBuf,
        expected: &'static str,
        detail: String,
    },
    #[error(
        "{} is in audit format version {found}, this build reads version {supported}: use a fedsoc release that matches the log",
        .path.display()
    )]
    UnsupportedFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{} is missing: {detail}", .path.display())]
    MissingFile { path: PathBuf, detail: &'static str },
    #[error(
        "another process is writing the audit log {} (it holds the lock on entries.log): stop it first, or open the log read-only",
        .dir.display()
    )]
    Locked { dir: PathBuf },
    #[error(
        "{} belongs to the log of origin {stored:?}, not {requested:?}: open it with its own origin, or use another directory",
        .path.display()
    )]
    OriginMismatch {
        path: PathBuf,
        stored: String,
        requested: String,
    },
    #[error("the audit log {} is open read-only: cannot {action}; open it with its signing key to write", .dir.display())]
    ReadOnly { dir: PathBuf, action: &'static str },
    #[error(
        "an earlier write to {} failed and could not be undone: stop the process, then reopen the log (opening checks and reports the file's tail)",
        .path.display()
    )]
    Poisoned { path: PathBuf },

    // Damage to the files.
    #[error(
        "{} ends with a torn record (record {index}) at byte {offset}, {tail_len} bytes before the end of the file: {detail}. The file was cut off mid-write (crash or full disk); run `fedsoc audit repair <dir>` (fedsoc_audit::repair) to keep the {index} intact records before it — the torn bytes are saved next to the file",
        .path.display()
    )]
    TornTail {
        path: PathBuf,
        index: u64,
        offset: u64,
        tail_len: u64,
        detail: String,
    },
    #[error(
        "{} is corrupt at record {index} (byte {offset}): {detail}; intact records follow, so this is damage or tampering, not an interrupted write — do not repair, restore the file from a backup or another replica and keep this copy as evidence",
        .path.display()
    )]
    CorruptRecord {
        path: PathBuf,
        index: u64,
        offset: u64,
        detail: String,
    },
    #[error(
        "entry {index} in {} (byte {offset}) cannot be decoded: {source}",
        .path.display()
    )]
    EntryUndecodable {
        path: PathBuf,
        index: u64,
        offset: u64,
        #[source]
        source: EntryError,
    },
    #[error(
        "entry {index} carries sequence number {found}: entries must be numbered 0, 1, 2, … without gaps — an entry was removed, inserted or moved"
    )]
    SeqGap { index: u64, found: u64 },
    #[error(
        "entry {index} is timestamped {found} ms, earlier than the entry before it ({previous} ms): log timestamps never decrease — entries were reordered or edited, or a writer's clock went back"
    )]
    TimestampBackwards {
        index: u64,
        previous: u64,
        found: u64,
    },
    #[error("entry {index} does not exist: the log holds {size} entries")]
    NoSuchEntry { index: u64, size: u64 },

    // Checkpoints.
    #[error(
        "checkpoint {index} in {} cannot be read: {source}",
        .path.display()
    )]
    CheckpointUnreadable {
        path: PathBuf,
        index: u64,
        #[source]
        source: CheckpointError,
    },
    #[error("stored checkpoint {index} (tree size {tree_size}) is not valid: {source}")]
    CheckpointInvalid {
        index: u64,
        tree_size: u64,
        #[source]
        source: CheckpointError,
    },
    #[error(
        "stored checkpoint {index} covers {tree_size} entries but the log holds only {log_size}: entries were removed after they were checkpointed — restore them from a backup"
    )]
    CheckpointBeyondLog {
        index: u64,
        tree_size: u64,
        log_size: u64,
    },
    #[error(
        "stored checkpoint {index} (tree size {tree_size}) was signed over root {} but the entries give root {}: entries before {tree_size} were changed after the checkpoint",
        hex::encode(.signed_root),
        hex::encode(.computed_root)
    )]
    CheckpointInconsistent {
        index: u64,
        tree_size: u64,
        signed_root: Hash,
        computed_root: Hash,
    },
    #[error(
        "stored checkpoint {index} has tree size {tree_size}, smaller than the one before it ({previous_size}): checkpoints were reordered or edited"
    )]
    CheckpointsOutOfOrder {
        index: u64,
        tree_size: u64,
        previous_size: u64,
    },
    #[error("a trusted checkpoint (tree size {tree_size}) is not valid: {source}")]
    TrustedCheckpointInvalid {
        tree_size: u64,
        #[source]
        source: CheckpointError,
    },
    #[error(
        "a trusted checkpoint covers {trusted_size} entries but the log holds only {log_size}: the log was rolled back — keep the checkpoint as evidence"
    )]
    LogRolledBack { trusted_size: u64, log_size: u64 },
    #[error(
        "history was rewritten: a trusted checkpoint says the first {tree_size} entries have root {}, the log gives {} — keep the checkpoint as evidence",
        hex::encode(.trusted_root),
        hex::encode(.computed_root)
    )]
    HistoryRewritten {
        tree_size: u64,
        trusted_root: Hash,
        computed_root: Hash,
    },

    // Blobs.
    #[error(
        "blob {id} is missing (expected at {}): copy the blob store along with the log",
        .path.display()
    )]
    BlobMissing { id: BlobId, path: PathBuf },
    #[error(
        "blob {id} at {} is damaged or swapped: its content hashes to {actual} — restore it from a replica",
        .path.display()
    )]
    BlobCorrupt {
        id: BlobId,
        path: PathBuf,
        actual: BlobId,
    },
    #[error("entry {index} ({kind}): cannot list its blobs: {reason}")]
    BlobRefs {
        index: u64,
        kind: String,
        reason: String,
    },
    #[error("entry {index} ({kind}) refers to a bad blob: {source}")]
    EntryBlob {
        index: u64,
        kind: String,
        #[source]
        source: Box<AuditError>,
    },

    #[error(transparent)]
    Entry(#[from] EntryError),
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// `map_err` helper: an I/O error with what was being done, and where.
pub(crate) fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> AuditError {
    let path = path.to_path_buf();
    move |source| AuditError::Io {
        action,
        path,
        source,
    }
}
