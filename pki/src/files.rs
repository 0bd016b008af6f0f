//! Reading and writing the files of a PKI folder.
//!
//! Keys are created owner-only before a byte is written; files other
//! processes read while we write them (the CRL, the issuance index) are
//! replaced atomically, so a reader sees the old or the new file, never half.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::PkiError;

pub(crate) fn read_text(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Read {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn write_public(path: &Path, text: &str) -> Result<(), PkiError> {
    std::fs::write(path, text).map_err(|source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Creates the file readable by its owner only before any key byte is written.
pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), PkiError> {
    let err = |source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(err)?;
    #[cfg(unix)]
    {
        // `mode` only applies to a new file; an existing one is narrowed here.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(err)?;
    }
    file.write_all(text.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)
}

/// Replaces `path` with `bytes` atomically, through the storage layer
/// (temporary file, fsync, rename, folder sync).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    fedsoc_durable::Disk::real()
        .replace(path, bytes)
        .map_err(|source| PkiError::Write {
            path: path.to_path_buf(),
            source,
        })
}

/// An exclusive lock on a PKI folder, held while issuing or revoking so two
/// commands cannot lose each other's index entries or CRL revocations.
/// Released when dropped, or by the OS if the process dies.
pub(crate) struct FolderLock {
    _file: File,
}

impl FolderLock {
    pub(crate) fn acquire(dir: &Path) -> Result<Self, PkiError> {
        let path: PathBuf = dir.join(".lock");
        let err = |source| PkiError::Write {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(err)?;
        file.lock().map_err(err)?;
        Ok(FolderLock { _file: file })
    }
}
