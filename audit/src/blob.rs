//! Content-addressed blob store: large data (aggregates, models) kept by
//! SHA-256 next to the log, referenced from entries by [`BlobId`].
//!
//! A blob with digest `abcdef…` lives at `<root>/ab/cdef…` (the first two
//! hex digits name a subdirectory, the other 62 the file). Writes go
//! through the storage layer ([`Disk::replace`]): a temporary file in that
//! subdirectory, flushed, renamed into place, the folder synced, so a blob
//! is either absent or complete and durable when `put` returns. Every read re-hashes
//! the file: a swapped or corrupted blob is an error, never returned data.
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use fedsoc_durable::Disk;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{AuditError, io_err};
use crate::hexfmt;

/// The SHA-256 of a blob's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BlobId(#[serde(with = "hexfmt")] pub [u8; 32]);

impl BlobId {
    /// The id of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({self})")
    }
}

impl FromStr for BlobId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        hexfmt::parse(s)
            .map(Self)
            .map_err(|e| format!("{s:?} is not a blob id (64 lowercase hex digits): {e}"))
    }
}

/// A directory of blobs.
#[derive(Clone, Debug)]
pub struct BlobStore {
    root: PathBuf,
    read_only: bool,
    disk: Disk,
}

impl BlobStore {
    /// Opens the store at `root`, creating the directory if needed.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, AuditError> {
        Self::open_on(root, Disk::real())
    }

    /// [`BlobStore::open`], writing through `disk`.
    pub fn open_on(root: impl AsRef<Path>, disk: Disk) -> Result<Self, AuditError> {
        let root = root.as_ref().to_path_buf();
        disk.create_dir_all(&root)
            .map_err(io_err("create the blob directory", &root))?;
        Ok(Self {
            root,
            read_only: false,
            disk,
        })
    }

    /// Opens the store at `root` for reading only; the directory need not
    /// exist (every blob is then missing). [`BlobStore::put`] is refused.
    pub fn open_read_only(root: impl AsRef<Path>) -> Self {
        Self {
            root: root.as_ref().to_path_buf(),
            read_only: true,
            disk: Disk::real(),
        }
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `id` lives (whether or not it exists).
    pub fn path(&self, id: &BlobId) -> PathBuf {
        let hex = id.to_string();
        self.root.join(&hex[..2]).join(&hex[2..])
    }

    /// Whether a file exists for `id` (its content is not checked).
    pub fn contains(&self, id: &BlobId) -> bool {
        self.path(id).is_file()
    }

    /// Stores `bytes` and returns their id. Storing the same bytes again is
    /// a no-op; a file already there with other content (a damaged blob) is
    /// replaced by the correct one, with a warning.
    pub fn put(&self, bytes: &[u8]) -> Result<BlobId, AuditError> {
        if self.read_only {
            return Err(AuditError::ReadOnly {
                dir: self.root.clone(),
                action: "store a blob",
            });
        }
        let id = BlobId::of(bytes);
        let path = self.path(&id);
        match self.get(&id) {
            Ok(_) => return Ok(id),
            Err(AuditError::BlobMissing { .. }) => {}
            Err(e) => tracing::warn!(blob = %id, error = %e, "replacing a damaged blob"),
        }
        let shard = path
            .parent()
            .map_or_else(|| self.root.clone(), Path::to_path_buf);
        self.disk
            .create_dir_all(&shard)
            .map_err(io_err("create the blob directory", &shard))?;
        self.disk
            .replace(&path, bytes)
            .map_err(io_err("store the blob", &path))?;
        Ok(id)
    }

    /// Reads the blob `id`, checking its hash.
    pub fn get(&self, id: &BlobId) -> Result<Vec<u8>, AuditError> {
        let path = self.path(id);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(AuditError::BlobMissing { id: *id, path });
            }
            Err(e) => return Err(io_err("read the blob", &path)(e)),
        };
        let actual = BlobId::of(&bytes);
        if actual != *id {
            return Err(AuditError::BlobCorrupt {
                id: *id,
                path,
                actual,
            });
        }
        Ok(bytes)
    }

    /// Checks that the blob exists and hashes to its id.
    pub fn check(&self, id: &BlobId) -> Result<(), AuditError> {
        self.get(id).map(drop)
    }

    /// Checks every blob in `ids`; returns how many were checked, or the
    /// first missing or damaged one.
    pub fn check_all<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a BlobId>,
    ) -> Result<usize, AuditError> {
        let mut n = 0;
        for id in ids {
            self.check(id)?;
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_and_idempotence() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("blobs")).unwrap();
        let id = store.put(b"aggregate").unwrap();
        assert_eq!(id, BlobId::of(b"aggregate"));
        let hex = id.to_string();
        assert_eq!(
            store.path(&id),
            dir.path().join("blobs").join(&hex[..2]).join(&hex[2..])
        );
        assert_eq!(store.put(b"aggregate").unwrap(), id);
        assert_eq!(store.get(&id).unwrap(), b"aggregate");
        assert_eq!(store.check_all([&id]).unwrap(), 1);
        assert_eq!(hex.parse::<BlobId>().unwrap(), id);
        // No temporary files left behind.
        let shard = store.path(&id).parent().unwrap().to_path_buf();
        assert_eq!(fs::read_dir(shard).unwrap().count(), 1);
    }

    #[test]
    fn missing_swapped_and_corrupted_blobs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let a = store.put(b"model A").unwrap();
        let b = store.put(b"model B").unwrap();
        let missing = BlobId::of(b"never stored");
        match store.get(&missing) {
            Err(e @ AuditError::BlobMissing { .. }) => {
                assert!(e.to_string().contains(&missing.to_string()))
            }
            other => panic!("{other:?}"),
        }
        // Swap the two files.
        let (pa, pb) = (store.path(&a), store.path(&b));
        let tmp = dir.path().join("swap");
        fs::rename(&pa, &tmp).unwrap();
        fs::rename(&pb, &pa).unwrap();
        fs::rename(&tmp, &pb).unwrap();
        match store.get(&a) {
            Err(e @ AuditError::BlobCorrupt { .. }) => {
                let text = e.to_string();
                assert!(text.contains(&a.to_string()) && text.contains(&pa.display().to_string()));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(store.check_all([&b]), Err(AuditError::BlobCorrupt { id, .. }) if id == b)
        );
        // Putting the right bytes again heals the damage.
        store.put(b"model A").unwrap();
        assert_eq!(store.get(&a).unwrap(), b"model A");
        // Read-only stores refuse writes.
        let ro = BlobStore::open_read_only(dir.path());
        assert!(matches!(ro.put(b"x"), Err(AuditError::ReadOnly { .. })));
        assert_eq!(ro.get(&a).unwrap(), b"model A");
    }
}
