//! The durable log directory and the [`AuditLog`] facade.
//!
//! ```text
//! <dir>/entries.log       header + one record per entry (payload = encoded Entry)
//! <dir>/checkpoints.log   header + one record per signed checkpoint (payload = signed note)
//! <dir>/blobs/ab/cdef…    content-addressed blobs
//! ```
//!
//! The record format is described in the `frame` module docs: magic, format
//! version and origin in a header, then records `"FSR1" ‖ len u32 LE ‖
//! SHA-256(0x00 ‖ payload) ‖ payload`. For `entries.log` the per-record hash
//! is exactly the RFC 9162 leaf hash.
//!
//! Opening reads every record back and checks it (frame hashes, entry
//! encoding, `seq` = index, non-decreasing timestamps, every stored
//! checkpoint's root against the entries). A torn tail is reported as
//! [`AuditError::TornTail`] to readers, never dropped. The writer, reopening
//! after a crash, cuts a torn tail (the record being appended when the
//! process died, never acknowledged, as an append returns only once it is
//! flushed), keeps a copy beside the file and reports the cut in
//! [`AuditLog::recovered`] for its caller to record in a signed entry;
//! [`repair`] does the same on an operator's request. One process writes
//! at a time (an exclusive lock on `entries.log`). Every write goes through
//! the storage layer ([`fedsoc_durable::Disk`]).
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::Serialize;

use fedsoc_durable::Disk;

use crate::blob::BlobStore;
use crate::checkpoint::{Checkpoint, SignedCheckpoint, check_origin};
use crate::entry::Entry;
use crate::error::{AuditError, io_err};
use crate::frame::{self, CHECKPOINTS, ENTRIES, FRAME_HEADER, MAX_PAYLOAD};
use crate::merkle::{Hash, MerkleTree, leaf_hash};

/// File names inside a log directory.
pub const ENTRIES_FILE: &str = "entries.log";
pub const CHECKPOINTS_FILE: &str = "checkpoints.log";
pub const BLOBS_DIR: &str = "blobs";

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What [`AuditLog::append`] returns: where the entry landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendReceipt {
    pub index: u64,
    pub leaf_hash: Hash,
    pub timestamp_ms: u64,
}

/// A log directory, read and checked (no signatures checked yet).
pub(crate) struct Loaded {
    pub origin: String,
    pub header_len: u64,
    pub entries: Vec<(u64, Entry)>,
    pub tree: MerkleTree,
    pub checkpoints: Vec<SignedCheckpoint>,
    pub entries_len: u64,
    pub checkpoints_len: u64,
}

/// Checks entries.log and checkpoints.log bytes: frames, entry encoding,
/// sequence numbers, timestamps, and each stored checkpoint's origin, order
/// and root against the recomputed tree.
pub(crate) fn load(
    entries_path: &Path,
    entries_bytes: &[u8],
    checkpoints_path: &Path,
    checkpoints_bytes: &[u8],
) -> Result<Loaded, AuditError> {
    let scan = frame::scan(entries_path, ENTRIES, entries_bytes)?;
    let mut tree = MerkleTree::new();
    let mut entries = Vec::with_capacity(scan.records.len());
    let mut previous_ts = 0;
    for (index, record) in scan.records.iter().enumerate() {
        let index = index as u64;
        let entry =
            Entry::decode(&record.payload).map_err(|source| AuditError::EntryUndecodable {
                path: entries_path.to_path_buf(),
                index,
                offset: record.offset,
                source,
            })?;
        if entry.seq != index {
            return Err(AuditError::SeqGap {
                index,
                found: entry.seq,
            });
        }
        if entry.timestamp_ms < previous_ts {
            return Err(AuditError::TimestampBackwards {
                index,
                previous: previous_ts,
                found: entry.timestamp_ms,
            });
        }
        previous_ts = entry.timestamp_ms;
        // The frame hash was checked against the payload: it is the leaf.
        tree.push(record.hash);
        entries.push((record.offset, entry));
    }

    let cp_scan = frame::scan(checkpoints_path, CHECKPOINTS, checkpoints_bytes)?;
    if cp_scan.origin != scan.origin {
        return Err(AuditError::OriginMismatch {
            path: checkpoints_path.to_path_buf(),
            stored: cp_scan.origin,
            requested: scan.origin,
        });
    }
    let mut checkpoints: Vec<SignedCheckpoint> = Vec::with_capacity(cp_scan.records.len());
    for (index, record) in cp_scan.records.iter().enumerate() {
        let index = index as u64;
        let signed = SignedCheckpoint::from_bytes(&record.payload).map_err(|source| {
            AuditError::CheckpointUnreadable {
                path: checkpoints_path.to_path_buf(),
                index,
                source,
            }
        })?;
        let c = &signed.checkpoint;
        if c.origin != scan.origin {
            return Err(AuditError::CheckpointInvalid {
                index,
                tree_size: c.tree_size,
                source: crate::checkpoint::CheckpointError::OriginMismatch {
                    old: scan.origin.clone(),
                    new: c.origin.clone(),
                },
            });
        }
        if let Some(previous) = checkpoints.last()
            && c.tree_size < previous.checkpoint.tree_size
        {
            return Err(AuditError::CheckpointsOutOfOrder {
                index,
                tree_size: c.tree_size,
                previous_size: previous.checkpoint.tree_size,
            });
        }
        let computed_root =
            tree.root_at(c.tree_size)
                .map_err(|_| AuditError::CheckpointBeyondLog {
                    index,
                    tree_size: c.tree_size,
                    log_size: tree.len(),
                })?;
        if computed_root != c.root {
            return Err(AuditError::CheckpointInconsistent {
                index,
                tree_size: c.tree_size,
                signed_root: c.root,
                computed_root,
            });
        }
        checkpoints.push(signed);
    }

    Ok(Loaded {
        origin: scan.origin,
        header_len: scan.header_len,
        entries,
        tree,
        checkpoints,
        entries_len: scan.len,
        checkpoints_len: cp_scan.len,
    })
}

/// Reads a whole file that must exist.
fn read_existing(path: &Path, what: &'static str) -> Result<Vec<u8>, AuditError> {
    match fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(AuditError::MissingFile {
            path: path.to_path_buf(),
            detail: what,
        }),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

const NO_LOG: &str =
    "this directory holds no audit log: check the path, or create the log with its signing key";
const NO_CHECKPOINTS: &str = "entries.log is present but its checkpoints file is gone: restore checkpoints.log from a backup (an empty one cannot be recreated silently, as that would hide signed history)";

struct WriteSide {
    entries: frame::Writer,
    checkpoints: frame::Writer,
    key: SigningKey,
}

/// An open audit log: the entries, their Merkle tree, the signed
/// checkpoints and the blob store of one directory.
pub struct AuditLog {
    dir: PathBuf,
    origin: String,
    header_len: u64,
    tree: MerkleTree,
    offsets: Vec<u64>,
    last_timestamp_ms: u64,
    checkpoints: Vec<SignedCheckpoint>,
    blobs: BlobStore,
    write: Option<WriteSide>,
    /// Torn tails the writer cut when it opened the log.
    recovered: Vec<RepairedFile>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("dir", &self.dir)
            .field("origin", &self.origin)
            .field("size", &self.tree.len())
            .field("checkpoints", &self.checkpoints.len())
            .field("writable", &self.write.is_some())
            .finish()
    }
}

impl AuditLog {
    /// Opens the log in `dir` for writing, creating it (directory, empty
    /// entries.log and checkpoints.log, blobs/) if there is none. An
    /// existing log is read back and checked in full; it must have the same
    /// `origin`. `signing_key` signs the checkpoints.
    pub fn open_or_create(
        dir: impl AsRef<Path>,
        origin: &str,
        signing_key: SigningKey,
    ) -> Result<Self, AuditError> {
        Self::open_or_create_on(dir, origin, signing_key, Disk::real())
    }

    /// [`AuditLog::open_or_create`], writing through `disk`. A torn tail
    /// left by a crash is cut (see [`AuditLog::recovered`]).
    pub fn open_or_create_on(
        dir: impl AsRef<Path>,
        origin: &str,
        signing_key: SigningKey,
        disk: Disk,
    ) -> Result<Self, AuditError> {
        let dir = dir.as_ref().to_path_buf();
        check_origin(origin)?;
        disk.create_dir_all(&dir)
            .map_err(io_err("create the log directory", &dir))?;
        let (entries_path, checkpoints_path) = (dir.join(ENTRIES_FILE), dir.join(CHECKPOINTS_FILE));

        if !entries_path.exists() {
            // checkpoints.log is created first: a crash between the two
            // leaves an empty checkpoints.log, which is safe to replace.
            if checkpoints_path.exists() {
                let bytes = read_existing(&checkpoints_path, NO_CHECKPOINTS)?;
                let scan = frame::scan(&checkpoints_path, CHECKPOINTS, &bytes)?;
                if !scan.records.is_empty() {
                    return Err(AuditError::MissingFile {
                        path: entries_path,
                        detail: "checkpoints.log holds signed checkpoints but the entries are gone: restore entries.log from a backup",
                    });
                }
            }
            frame::create(&disk, &checkpoints_path, CHECKPOINTS, origin)?;
            frame::create(&disk, &entries_path, ENTRIES, origin)?;
        }

        let mut entries_file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&entries_path)
            .map_err(io_err("open", &entries_path))?;
        match entries_file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(AuditError::Locked { dir }),
            Err(fs::TryLockError::Error(e)) => {
                return Err(io_err("lock", &entries_path)(e));
            }
        }
        let mut recovered = Vec::new();
        let loaded = loop {
            let entries_bytes = frame::read_file(&mut entries_file, &entries_path)?;
            let checkpoints_bytes = read_existing(&checkpoints_path, NO_CHECKPOINTS)?;
            match load(
                &entries_path,
                &entries_bytes,
                &checkpoints_path,
                &checkpoints_bytes,
            ) {
                Ok(loaded) => break loaded,
                // Each file is cut at most once: a second tear is not a crash.
                Err(AuditError::TornTail {
                    path,
                    index,
                    offset,
                    ..
                }) if !recovered.iter().any(|r: &RepairedFile| r.path == path) => {
                    let bytes = if path == entries_path {
                        entries_bytes
                    } else {
                        checkpoints_bytes
                    };
                    let cut = cut_tail(&disk, &dir, &path, &bytes, index, offset)?;
                    tracing::warn!(
                        file = %path.display(),
                        kept_records = cut.kept_records,
                        discarded_bytes = cut.discarded_bytes,
                        saved_to = %cut.saved_to.display(),
                        "cut the torn tail a crash left in the audit log"
                    );
                    recovered.push(cut);
                    entries_file
                        .seek(SeekFrom::Start(0))
                        .map_err(io_err("seek in", &entries_path))?;
                }
                Err(e) => return Err(e),
            }
        };
        if loaded.origin != origin {
            return Err(AuditError::OriginMismatch {
                path: entries_path,
                stored: loaded.origin,
                requested: origin.to_owned(),
            });
        }
        let blobs = BlobStore::open_on(dir.join(BLOBS_DIR), disk.clone())?;
        let write = WriteSide {
            entries: frame::Writer::new(
                entries_file,
                entries_path,
                loaded.entries_len,
                disk.clone(),
            ),
            checkpoints: frame::Writer::open(&checkpoints_path, loaded.checkpoints_len, disk)?,
            key: signing_key,
        };
        let mut log = Self::from_loaded(dir, loaded, blobs, Some(write));
        log.recovered = recovered;
        Ok(log)
    }

    /// Opens the log in `dir` for reading, checking it in full. Takes no
    /// lock: read a copy, or stop the writer, to avoid seeing an append in
    /// flight as a torn tail.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Self, AuditError> {
        let dir = dir.as_ref().to_path_buf();
        let (entries_path, checkpoints_path) = (dir.join(ENTRIES_FILE), dir.join(CHECKPOINTS_FILE));
        let entries_bytes = read_existing(&entries_path, NO_LOG)?;
        let checkpoints_bytes = read_existing(&checkpoints_path, NO_CHECKPOINTS)?;
        let loaded = load(
            &entries_path,
            &entries_bytes,
            &checkpoints_path,
            &checkpoints_bytes,
        )?;
        let blobs = BlobStore::open_read_only(dir.join(BLOBS_DIR));
        Ok(Self::from_loaded(dir, loaded, blobs, None))
    }

    fn from_loaded(
        dir: PathBuf,
        loaded: Loaded,
        blobs: BlobStore,
        write: Option<WriteSide>,
    ) -> Self {
        let last_timestamp_ms = loaded.entries.last().map_or(0, |(_, e)| e.timestamp_ms);
        Self {
            dir,
            origin: loaded.origin,
            header_len: loaded.header_len,
            tree: loaded.tree,
            offsets: loaded.entries.iter().map(|(offset, _)| *offset).collect(),
            last_timestamp_ms,
            checkpoints: loaded.checkpoints,
            blobs,
            write,
            recovered: Vec::new(),
        }
    }

    /// The torn tails this writer cut when it opened the log after a
    /// crash (empty after a clean stop). The caller records them in its
    /// next entry, so the cut is itself signed.
    pub fn recovered(&self) -> &[RepairedFile] {
        &self.recovered
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// The head of the whole tree.
    pub fn root(&self) -> Hash {
        self.tree.root()
    }

    /// The head of the tree of the first `tree_size` entries.
    pub fn root_at(&self, tree_size: u64) -> Result<Hash, AuditError> {
        Ok(self.tree.root_at(tree_size)?)
    }

    /// The Merkle tree over the entries' leaf hashes.
    pub fn tree(&self) -> &MerkleTree {
        &self.tree
    }

    /// The public half of the signing key (None when read-only).
    pub fn verifying_key(&self) -> Option<VerifyingKey> {
        self.write.as_ref().map(|w| w.key.verifying_key())
    }

    /// Timestamp of the last entry (0 for an empty log).
    pub fn last_timestamp_ms(&self) -> u64 {
        self.last_timestamp_ms
    }

    /// Appends an entry of `kind` with `body`, timestamped now (or at the
    /// previous entry's time if the clock went back), and flushes it to
    /// disk before returning.
    pub fn append(&mut self, kind: &str, body: Vec<u8>) -> Result<AppendReceipt, AuditError> {
        let timestamp = now_ms().max(self.last_timestamp_ms);
        self.append_at(kind, body, timestamp)
    }

    /// [`AuditLog::append`] with `value` as the JSON body.
    pub fn append_json<T: Serialize + ?Sized>(
        &mut self,
        kind: &str,
        value: &T,
    ) -> Result<AppendReceipt, AuditError> {
        let entry = Entry::json(kind, value)?;
        self.append(kind, entry.body)
    }

    /// Appends with an explicit timestamp, which must not be earlier than
    /// the previous entry's.
    pub fn append_at(
        &mut self,
        kind: &str,
        body: Vec<u8>,
        timestamp_ms: u64,
    ) -> Result<AppendReceipt, AuditError> {
        let entry = Entry::new(self.len(), timestamp_ms, kind, body)?;
        self.append_entry(entry)
    }

    /// Appends a complete entry, whose `seq` must be [`AuditLog::len`] and
    /// whose timestamp must not be earlier than the previous entry's.
    pub fn append_entry(&mut self, entry: Entry) -> Result<AppendReceipt, AuditError> {
        let index = self.len();
        let Some(write) = self.write.as_mut() else {
            return Err(AuditError::ReadOnly {
                dir: self.dir.clone(),
                action: "append an entry",
            });
        };
        if entry.seq != index {
            return Err(AuditError::SeqGap {
                index,
                found: entry.seq,
            });
        }
        if entry.timestamp_ms < self.last_timestamp_ms {
            return Err(AuditError::TimestampBackwards {
                index,
                previous: self.last_timestamp_ms,
                found: entry.timestamp_ms,
            });
        }
        let payload = entry.encode()?;
        let leaf_hash = leaf_hash(&payload);
        let offset = write.entries.append(&payload)?;
        self.tree.push(leaf_hash);
        self.offsets.push(offset);
        self.last_timestamp_ms = entry.timestamp_ms;
        Ok(AppendReceipt {
            index,
            leaf_hash,
            timestamp_ms: entry.timestamp_ms,
        })
    }

    /// Signs a checkpoint of the whole log as of `now_ms`, stores it
    /// (flushed to disk) and returns it.
    pub fn checkpoint(&mut self, now_ms: u64) -> Result<SignedCheckpoint, AuditError> {
        let Some(write) = self.write.as_mut() else {
            return Err(AuditError::ReadOnly {
                dir: self.dir.clone(),
                action: "sign a checkpoint",
            });
        };
        let signed = Checkpoint {
            origin: self.origin.clone(),
            tree_size: self.tree.len(),
            root: self.tree.root(),
            timestamp_ms: now_ms,
        }
        .sign(&write.key)?;
        write.checkpoints.append(&signed.to_bytes()?)?;
        self.checkpoints.push(signed.clone());
        Ok(signed)
    }

    /// The stored checkpoints, oldest first.
    pub fn checkpoints(&self) -> &[SignedCheckpoint] {
        &self.checkpoints
    }

    /// The newest stored checkpoint.
    pub fn latest_checkpoint(&self) -> Option<&SignedCheckpoint> {
        self.checkpoints.last()
    }

    /// The audit path of entry `index` in the tree of `tree_size` entries.
    pub fn inclusion_proof(&self, index: u64, tree_size: u64) -> Result<Vec<Hash>, AuditError> {
        Ok(self.tree.inclusion_proof(index, tree_size)?)
    }

    /// The proof that the tree of `old_size` entries is a prefix of the
    /// tree of `new_size` entries.
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, AuditError> {
        Ok(self.tree.consistency_proof(old_size, new_size)?)
    }

    /// The blob store next to the log.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Reads entry `index` back from disk, checking it against its leaf.
    pub fn entry(&self, index: u64) -> Result<Entry, AuditError> {
        let (Some(offset), Some(leaf)) = (
            usize::try_from(index)
                .ok()
                .and_then(|i| self.offsets.get(i)),
            self.tree.leaf(index),
        ) else {
            return Err(AuditError::NoSuchEntry {
                index,
                size: self.len(),
            });
        };
        let path = self.dir.join(ENTRIES_FILE);
        let mut file = File::open(&path).map_err(io_err("open", &path))?;
        file.seek(SeekFrom::Start(*offset))
            .map_err(io_err("seek in", &path))?;
        read_entry(&mut file, &path, index, *offset, &leaf).map(|(entry, _)| entry)
    }

    /// Every entry in order, read back from disk and checked against the
    /// tree as it was opened (replay).
    pub fn entries(&self) -> Entries<'_> {
        let path = self.dir.join(ENTRIES_FILE);
        let reader = File::open(&path)
            .map_err(io_err("open", &path))
            .and_then(|mut f| {
                f.seek(SeekFrom::Start(self.header_len))
                    .map_err(io_err("seek in", &path))?;
                Ok(BufReader::new(f))
            });
        Entries {
            reader: Some(reader),
            path,
            leaves: self.tree.leaves(),
            index: 0,
            offset: self.header_len,
        }
    }
}

/// Reads one record at the reader's position and checks it is `leaf`.
fn read_entry(
    reader: &mut impl Read,
    path: &Path,
    index: u64,
    offset: u64,
    leaf: &Hash,
) -> Result<(Entry, u64), AuditError> {
    let changed = |detail: String| AuditError::CorruptRecord {
        path: path.to_path_buf(),
        index,
        offset,
        detail: format!("{detail} (the file changed after the log was opened)"),
    };
    let mut head = [0u8; FRAME_HEADER];
    reader
        .read_exact(&mut head)
        .map_err(|e| changed(format!("cannot read the record header: {e}")))?;
    let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
    if head[..4] != frame::MARKER || len > MAX_PAYLOAD {
        return Err(changed("the record header is not valid".into()));
    }
    let mut payload = vec![0u8; len];
    reader
        .read_exact(&mut payload)
        .map_err(|e| changed(format!("cannot read the record: {e}")))?;
    if leaf_hash(&payload) != *leaf {
        return Err(changed("the record no longer matches its leaf hash".into()));
    }
    let entry = Entry::decode(&payload).map_err(|source| AuditError::EntryUndecodable {
        path: path.to_path_buf(),
        index,
        offset,
        source,
    })?;
    Ok((entry, (FRAME_HEADER + len) as u64))
}

/// Iterator over a log's entries; see [`AuditLog::entries`].
pub struct Entries<'a> {
    reader: Option<Result<BufReader<File>, AuditError>>,
    path: PathBuf,
    leaves: &'a [Hash],
    index: usize,
    offset: u64,
}

impl Iterator for Entries<'_> {
    type Item = Result<Entry, AuditError>;

    fn next(&mut self) -> Option<Self::Item> {
        let leaf = *self.leaves.get(self.index)?;
        let reader = match self.reader.take()? {
            Ok(reader) => reader,
            Err(e) => return Some(Err(e)),
        };
        let mut reader = reader;
        let index = self.index as u64;
        match read_entry(&mut reader, &self.path, index, self.offset, &leaf) {
            Ok((entry, record_len)) => {
                // Stop after an error; carry on after a success.
                self.offset += record_len;
                self.index += 1;
                self.reader = Some(Ok(reader));
                Some(Ok(entry))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

/// What [`repair`] did to one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairedFile {
    pub path: PathBuf,
    /// Intact records kept.
    pub kept_records: u64,
    /// Bytes removed from the end of the file.
    pub discarded_bytes: u64,
    /// Where the removed bytes were saved.
    pub saved_to: PathBuf,
    /// SHA-256 of the removed bytes.
    pub discarded_sha256: Hash,
}

/// Removes a torn tail from `entries.log` and `checkpoints.log` in `dir`,
/// keeping every intact record before it. The removed bytes are first
/// saved (and flushed) to `<file>.torn-<offset>` next to the file. Files
/// without a torn tail are left alone; corruption in the middle of a file is
/// refused with [`AuditError::CorruptRecord`]. Takes the writer's lock.
/// Returns the files that were cut (empty: nothing to repair).
pub fn repair(dir: impl AsRef<Path>) -> Result<Vec<RepairedFile>, AuditError> {
    let dir = dir.as_ref();
    let entries_path = dir.join(ENTRIES_FILE);
    let lock = OpenOptions::new()
        .read(true)
        .open(&entries_path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => AuditError::MissingFile {
                path: entries_path.clone(),
                detail: NO_LOG,
            },
            _ => io_err("open", &entries_path)(e),
        })?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            return Err(AuditError::Locked {
                dir: dir.to_path_buf(),
            });
        }
        Err(fs::TryLockError::Error(e)) => return Err(io_err("lock", &entries_path)(e)),
    }
    let mut repaired = Vec::new();
    for (name, kind) in [(ENTRIES_FILE, ENTRIES), (CHECKPOINTS_FILE, CHECKPOINTS)] {
        let path = dir.join(name);
        let bytes = read_existing(&path, NO_LOG)?;
        match frame::scan(&path, kind, &bytes) {
            Ok(_) => {}
            Err(AuditError::TornTail { index, offset, .. }) => {
                repaired.push(cut_tail(&Disk::real(), dir, &path, &bytes, index, offset)?);
            }
            Err(e) => return Err(e),
        }
    }
    drop(lock);
    Ok(repaired)
}

fn cut_tail(
    disk: &Disk,
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    kept_records: u64,
    offset: u64,
) -> Result<RepairedFile, AuditError> {
    let tail = bytes.get(offset as usize..).unwrap_or_default();
    let mut saved_to = PathBuf::from(format!("{}.torn-{offset}", path.display()));
    let mut n = 1;
    while saved_to.exists() {
        saved_to = PathBuf::from(format!("{}.torn-{offset}.{n}", path.display()));
        n += 1;
    }
    disk.write_synced(&saved_to, tail)
        .and_then(|()| disk.sync_dir(dir))
        .map_err(io_err("save the torn tail to", &saved_to))?;
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err("open for repair", path))?;
    disk.truncate(&file, path, offset)
        .map_err(io_err("truncate", path))?;
    Ok(RepairedFile {
        path: path.to_path_buf(),
        kept_records,
        discarded_bytes: tail.len() as u64,
        saved_to,
        discarded_sha256: <sha2::Sha256 as sha2::Digest>::digest(tail).into(),
    })
}
