//! Which file is which, across rotation: a [`FileId`] is the file's device
//! and inode and a hash of its first bytes (up to [`FINGERPRINT_BYTES`]).
//!
//! The inode tells a renamed file from its replacement while both exist; the
//! prefix hash finds a file again after it was copied (copy-truncate) or
//! compressed (Zeek's `conn.…log.gz`), which gives it a new inode. Sensor
//! logs start with a timestamp (Zeek's `#open` header, EVE's `timestamp`),
//! so two files with the same first kilobyte are the same log.

use std::fs::{File, Metadata};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

/// Bytes of a file's start that identify it.
pub const FINGERPRINT_BYTES: u64 = 1024;

/// A log file, recognisable after a rename, a copy or compression.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    /// How many leading bytes `prefix_sha256` covers (the file may have
    /// been shorter than [`FINGERPRINT_BYTES`] when it was first seen).
    pub prefix_len: u64,
    pub prefix_sha256: String,
}

impl FileId {
    /// The id of the file at `path`, with metadata `meta`: its first bytes
    /// (decompressed if it is gzip).
    pub fn of(path: &Path, meta: &Metadata) -> io::Result<FileId> {
        let prefix = read_prefix(path, FINGERPRINT_BYTES)?;
        Ok(FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            prefix_len: prefix.len() as u64,
            prefix_sha256: hex::encode(Sha256::digest(&prefix)),
        })
    }

    /// Whether `path` holds this log (possibly renamed, copied or
    /// compressed): its first `prefix_len` bytes hash the same. A file seen
    /// empty has no prefix; then only the same inode will do.
    pub fn matches(&self, path: &Path, meta: &Metadata) -> bool {
        if self.prefix_len == 0 {
            return meta.dev() == self.dev && meta.ino() == self.ino && !is_gzip(path);
        }
        match read_prefix(path, self.prefix_len) {
            Ok(prefix) => {
                prefix.len() as u64 == self.prefix_len
                    && hex::encode(Sha256::digest(&prefix)) == self.prefix_sha256
            }
            Err(_) => false,
        }
    }

    /// Whether this is the same inode as `meta`.
    pub fn same_inode(&self, meta: &Metadata) -> bool {
        meta.dev() == self.dev && meta.ino() == self.ino
    }

    /// A longer fingerprint once the file has grown past the old one.
    pub fn refreshed(&self, path: &Path, meta: &Metadata) -> FileId {
        if self.prefix_len >= FINGERPRINT_BYTES || meta.len() <= self.prefix_len {
            return self.clone();
        }
        match FileId::of(path, meta) {
            Ok(id) if id.same_inode(meta) => id,
            _ => self.clone(),
        }
    }
}

/// Whether `path` starts with gzip's magic bytes.
pub fn is_gzip(path: &Path) -> bool {
    let mut magic = [0u8; 2];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == [0x1f, 0x8b])
}

/// `path` opened for reading, decompressed if it is gzip.
pub fn open_log(path: &Path) -> io::Result<(Box<dyn Read + Send>, bool)> {
    let gz = is_gzip(path);
    let file = File::open(path)?;
    Ok(if gz {
        (Box::new(MultiGzDecoder::new(BufReader::new(file))), true)
    } else {
        (Box::new(file), false)
    })
}

/// `path` opened for reading from byte `offset` of its (decompressed)
/// content: a plain file seeks, a gzip file is decompressed up to there.
pub fn open_log_at(path: &Path, offset: u64) -> io::Result<Box<dyn Read + Send>> {
    let (mut reader, gz) = if is_gzip(path) {
        open_log(path)?
    } else {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        if len < offset {
            return Err(short(len, offset));
        }
        file.seek(SeekFrom::Start(offset))?;
        return Ok(Box::new(file));
    };
    debug_assert!(gz);
    let skipped = io::copy(&mut (&mut reader).take(offset), &mut io::sink())?;
    if skipped < offset {
        return Err(short(skipped, offset));
    }
    Ok(reader)
}

fn short(len: u64, offset: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the file holds {len} bytes, fewer than the saved position {offset}"),
    )
}

/// Up to `len` leading bytes of the (decompressed) log at `path`.
fn read_prefix(path: &Path, len: u64) -> io::Result<Vec<u8>> {
    let (reader, _) = open_log(path)?;
    let mut prefix = Vec::with_capacity(len as usize);
    reader.take(len).read_to_end(&mut prefix)?;
    Ok(prefix)
}

/// The files a log at `live` may have been rotated to, oldest first by
/// modification time: the files beside it whose name starts with the live
/// name's stem and a dot (`conn.log` → `conn.2026-12-07-10-00-00.log.gz`,
/// `conn.log.1`; `eve.json` → `eve.json.1`, `eve.json-20261207.gz`), and
/// every file in `extra` (archive folders such as zeekctl's dated ones).
pub fn rotated_candidates(live: &Path, extra: &[PathBuf]) -> Vec<PathBuf> {
    let dir = match live.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = live
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.split('.').next().unwrap_or_default().to_string();
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    let mut consider = |path: PathBuf| {
        if path == live {
            return;
        }
        if let Ok(meta) = std::fs::metadata(&path)
            && meta.is_file()
        {
            found.push((meta.modified().unwrap_or(std::time::UNIX_EPOCH), path));
        }
    };
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.filter_map(Result::ok) {
            let file = entry.file_name().to_string_lossy().into_owned();
            let rest = file.strip_prefix(&stem).unwrap_or("");
            if file.len() > stem.len() + 1 && rest.starts_with('.') {
                consider(entry.path());
            }
        }
    }
    for path in extra {
        if path.is_dir() {
            if let Ok(entries) = std::fs::read_dir(path) {
                for entry in entries.filter_map(Result::ok) {
                    consider(entry.path());
                }
            }
        } else {
            consider(path.clone());
        }
    }
    found.sort();
    found.dedup_by(|a, b| a.1 == b.1);
    found.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_log_is_found_again_after_rename_copy_and_compression() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("conn.log");
        let text = "#separator \\x09\n#open\t2026-12-07-10-00-00\nline one\n";
        std::fs::write(&live, text).unwrap();
        let id = FileId::of(&live, &std::fs::metadata(&live).unwrap()).unwrap();
        assert_eq!(id.prefix_len, text.len() as u64);

        let renamed = dir.path().join("conn.2026-12-07-10-00-00.log");
        std::fs::rename(&live, &renamed).unwrap();
        let meta = std::fs::metadata(&renamed).unwrap();
        assert!(id.same_inode(&meta) && id.matches(&renamed, &meta));

        let gz = dir.path().join("conn.2026-12-07-10-00-00.log.gz");
        let mut enc =
            flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        enc.write_all(format!("{text}more\n").as_bytes()).unwrap();
        enc.finish().unwrap();
        let meta = std::fs::metadata(&gz).unwrap();
        assert!(!id.same_inode(&meta) && id.matches(&gz, &meta));

        std::fs::write(&live, "#separator \\x09\n#open\t2026-12-07-11-00-00\n").unwrap();
        let meta = std::fs::metadata(&live).unwrap();
        assert!(
            !id.matches(&live, &meta),
            "a new file with another #open is another log"
        );

        let candidates = rotated_candidates(&live, &[]);
        assert_eq!(candidates.len(), 2, "{candidates:?}");
        assert!(!candidates.contains(&live));
    }
}
