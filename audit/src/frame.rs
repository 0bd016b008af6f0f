//! Framed record files: `entries.log` and `checkpoints.log`.
//!
//! ```text
//! header: magic (8 bytes: "FSAUDLOG" or "FSAUDCKP")
//!         format version (u32 LE, = 1)
//!         origin length (u16 LE, 1..=255) ‖ origin (UTF-8)
//! record: marker "FSR1" (4 bytes)
//!         payload length (u32 LE, ≤ 32 MiB)
//!         SHA-256(0x00 ‖ payload) (32 bytes; in entries.log, the leaf hash)
//!         payload
//! ```
//!
//! A record that cannot be read (short, wrong marker, length out of range,
//! hash mismatch) is a *torn tail* when no intact record follows it — the
//! signature of a write cut off by a crash — and *corruption* otherwise.
//! Neither is ever skipped: readers report them. A torn tail is removed
//! only by the writer when it reopens the log after a crash, or by
//! [`crate::repair`]; both keep a copy of the bytes, and the writer's
//! caller records the cut in a signed entry.
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

use fedsoc_durable::Disk;

use crate::error::{AuditError, io_err};
use crate::merkle::{Hash, leaf_hash};

pub(crate) const FORMAT_VERSION: u32 = 1;
pub(crate) const MARKER: [u8; 4] = *b"FSR1";
pub(crate) const FRAME_HEADER: usize = 40;
pub(crate) const MAX_PAYLOAD: usize = 32 << 20;

#[derive(Clone, Copy, Debug)]
pub(crate) struct FileKind {
    pub magic: [u8; 8],
    pub name: &'static str,
}

pub(crate) const ENTRIES: FileKind = FileKind {
    magic: *b"FSAUDLOG",
    name: "entries",
};
pub(crate) const CHECKPOINTS: FileKind = FileKind {
    magic: *b"FSAUDCKP",
    name: "checkpoints",
};

pub(crate) fn header(kind: FileKind, origin: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(14 + origin.len());
    out.extend_from_slice(&kind.magic);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    // Origins are at most 255 bytes (checked by `check_origin`).
    out.extend_from_slice(&(origin.len() as u16).to_le_bytes());
    out.extend_from_slice(origin.as_bytes());
    out
}

pub(crate) fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER + payload.len());
    out.extend_from_slice(&MARKER);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&leaf_hash(payload));
    out.extend_from_slice(payload);
    out
}

/// One intact record.
pub(crate) struct Record {
    pub offset: u64,
    pub hash: Hash,
    pub payload: Vec<u8>,
}

/// A whole file, read and checked.
pub(crate) struct Scan {
    pub origin: String,
    pub header_len: u64,
    pub records: Vec<Record>,
    pub len: u64,
}

/// Parses the header; returns the origin and the header length.
fn read_header(path: &Path, kind: FileKind, bytes: &[u8]) -> Result<(String, usize), AuditError> {
    let not = |detail: String| AuditError::NotAnAuditFile {
        path: path.to_path_buf(),
        expected: kind.name,
        detail,
    };
    if bytes.len() < 14 {
        return Err(not(format!(
            "it is {} bytes long, shorter than the 14-byte header",
            bytes.len()
        )));
    }
    if bytes[..8] != kind.magic {
        return Err(not(format!(
            "it starts with {:?}, expected {:?}",
            String::from_utf8_lossy(&bytes[..8]),
            String::from_utf8_lossy(&kind.magic)
        )));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != FORMAT_VERSION {
        return Err(AuditError::UnsupportedFormat {
            path: path.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let origin_len = usize::from(u16::from_le_bytes([bytes[12], bytes[13]]));
    let origin = bytes.get(14..14 + origin_len).ok_or_else(|| {
        not(format!(
            "the header's {origin_len}-byte origin is cut short"
        ))
    })?;
    let origin = std::str::from_utf8(origin)
        .map_err(|_| not("the header's origin is not UTF-8".into()))?
        .to_owned();
    crate::checkpoint::check_origin(&origin)
        .map_err(|e| not(format!("the header's origin is invalid: {e}")))?;
    Ok((origin, 14 + origin_len))
}

/// Parses the record at `offset`: `(hash, payload range, next offset)`.
fn parse_frame(bytes: &[u8], offset: usize) -> Result<(Hash, usize, usize), String> {
    let rest = bytes.get(offset..).unwrap_or_default();
    if rest.len() < FRAME_HEADER {
        return Err(format!(
            "only {} of the {FRAME_HEADER} bytes of a record header remain",
            rest.len()
        ));
    }
    if rest[..4] != MARKER {
        return Err(format!(
            "the record marker is {}, expected {}",
            hex::encode(&rest[..4]),
            hex::encode(MARKER)
        ));
    }
    let len = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(format!(
            "the record declares {len} bytes, above the {MAX_PAYLOAD}-byte limit"
        ));
    }
    if rest.len() - FRAME_HEADER < len {
        return Err(format!(
            "the record declares {len} bytes but only {} remain",
            rest.len() - FRAME_HEADER
        ));
    }
    let mut stored = [0u8; 32];
    stored.copy_from_slice(&rest[8..40]);
    let start = offset + FRAME_HEADER;
    let computed = leaf_hash(&bytes[start..start + len]);
    if computed != stored {
        return Err(format!(
            "the record's content hashes to {}, its frame says {}",
            hex::encode(computed),
            hex::encode(stored)
        ));
    }
    Ok((stored, start, start + len))
}

/// Whether an intact record may start anywhere after `offset`: then the
/// damage at `offset` is corruption, not a torn tail.
///
/// Hashing every candidate's declared payload would cost up to 32 MiB per
/// byte of a hostile file (a crafted 64 MiB log took about a day). The work
/// is capped at twice the file's size: past that the answer is "yes", the
/// safe one (corruption is refused, while a torn tail is cut by a writer).
/// A real torn tail is the prefix of one record, in which a stray marker is
/// rare, so the cap never decides for it.
fn intact_record_after(bytes: &[u8], offset: usize) -> bool {
    let mut budget = 2 * bytes.len() + FRAME_HEADER;
    let mut pos = offset + 1;
    while pos + FRAME_HEADER <= bytes.len() {
        if bytes[pos..pos + 4] == MARKER {
            let len = u32::from_le_bytes([
                bytes[pos + 4],
                bytes[pos + 5],
                bytes[pos + 6],
                bytes[pos + 7],
            ]) as usize;
            if len <= MAX_PAYLOAD && len <= bytes.len() - pos - FRAME_HEADER {
                if len > budget {
                    return true;
                }
                budget -= len;
                if parse_frame(bytes, pos).is_ok() {
                    return true;
                }
            }
        }
        pos += 1;
    }
    false
}

/// Reads and checks every record of a file's bytes.
pub(crate) fn scan(path: &Path, kind: FileKind, bytes: &[u8]) -> Result<Scan, AuditError> {
    let (origin, header_len) = read_header(path, kind, bytes)?;
    let mut records = Vec::new();
    let mut offset = header_len;
    while offset < bytes.len() {
        match parse_frame(bytes, offset) {
            Ok((hash, start, next)) => {
                records.push(Record {
                    offset: offset as u64,
                    hash,
                    payload: bytes[start..next].to_vec(),
                });
                offset = next;
            }
            Err(detail) => {
                let (path, index, offset_u64) =
                    (path.to_path_buf(), records.len() as u64, offset as u64);
                return Err(if intact_record_after(bytes, offset) {
                    AuditError::CorruptRecord {
                        path,
                        index,
                        offset: offset_u64,
                        detail,
                    }
                } else {
                    AuditError::TornTail {
                        path,
                        index,
                        offset: offset_u64,
                        tail_len: (bytes.len() - offset) as u64,
                        detail,
                    }
                });
            }
        }
    }
    Ok(Scan {
        origin,
        header_len: header_len as u64,
        records,
        len: bytes.len() as u64,
    })
}

/// Reads a whole file, naming it on failure.
pub(crate) fn read_file(file: &mut File, path: &Path) -> Result<Vec<u8>, AuditError> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io_err("read", path))?;
    Ok(bytes)
}

/// Creates a record file holding only its header, atomically.
pub(crate) fn create(
    disk: &Disk,
    path: &Path,
    kind: FileKind,
    origin: &str,
) -> Result<(), AuditError> {
    disk.replace(path, &header(kind, origin))
        .map_err(io_err("create", path))
}

/// Appends records to a file whose contents were just scanned.
pub(crate) struct Writer {
    file: File,
    path: PathBuf,
    len: u64,
    poisoned: bool,
    disk: Disk,
}

impl Writer {
    /// `file` must be open for appending; `len` is its scanned length.
    pub(crate) fn new(file: File, path: PathBuf, len: u64, disk: Disk) -> Self {
        Self {
            file,
            path,
            len,
            poisoned: false,
            disk,
        }
    }

    pub(crate) fn open(path: &Path, len: u64, disk: Disk) -> Result<Self, AuditError> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io_err("open for appending", path))?;
        let actual = file.metadata().map_err(io_err("inspect", path))?.len();
        if actual != len {
            return Err(AuditError::NotAnAuditFile {
                path: path.to_path_buf(),
                expected: "record",
                detail: format!("it changed while being opened ({len} bytes read, {actual} now)"),
            });
        }
        Ok(Self::new(file, path.to_path_buf(), len, disk))
    }

    /// Appends one record and flushes it to disk; returns its offset.
    pub(crate) fn append(&mut self, payload: &[u8]) -> Result<u64, AuditError> {
        if self.poisoned {
            return Err(AuditError::Poisoned {
                path: self.path.clone(),
            });
        }
        let bytes = frame(payload);
        let offset = self.len;
        let written = self.disk.append(&mut self.file, &self.path, &bytes);
        if let Err(e) = written {
            // Undo a partial write so the file stays a sequence of records.
            if self.disk.truncate(&self.file, &self.path, offset).is_err() {
                self.poisoned = true;
            }
            return Err(io_err("append a record to", &self.path)(e));
        }
        self.len += bytes.len() as u64;
        Ok(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(records: &[&[u8]]) -> Vec<u8> {
        let mut bytes = header(ENTRIES, "o");
        for r in records {
            bytes.extend_from_slice(&frame(r));
        }
        bytes
    }

    #[test]
    fn scan_reads_back_what_was_framed() {
        let bytes = file_with(&[b"one", b"", b"three"]);
        let scan = scan(Path::new("f"), ENTRIES, &bytes).unwrap();
        assert_eq!(scan.origin, "o");
        let payloads: Vec<&[u8]> = scan.records.iter().map(|r| &r.payload[..]).collect();
        assert_eq!(payloads, [&b"one"[..], b"", b"three"]);
        assert_eq!(scan.records[2].hash, leaf_hash(b"three"));
        assert!(matches!(
            super::scan(Path::new("f"), CHECKPOINTS, &bytes),
            Err(AuditError::NotAnAuditFile { .. })
        ));
    }

    #[test]
    fn every_cut_of_the_last_record_is_a_torn_tail() {
        let bytes = file_with(&[b"first", b"second record"]);
        let last = bytes.len() - FRAME_HEADER - b"second record".len();
        for cut in last + 1..bytes.len() {
            match scan(Path::new("f"), ENTRIES, &bytes[..cut]) {
                Err(AuditError::TornTail { index, offset, .. }) => {
                    assert_eq!((index, offset), (1, last as u64), "cut {cut}")
                }
                other => panic!("cut {cut}: {:?}", other.map(|s| s.records.len())),
            }
        }
        // Trailing zeros after the last record (a file extended but never
        // written) are a torn tail too.
        let mut zeros = bytes.clone();
        zeros.extend_from_slice(&[0; 100]);
        assert!(matches!(
            scan(Path::new("f"), ENTRIES, &zeros),
            Err(AuditError::TornTail { index: 2, .. })
        ));
    }

    #[test]
    fn a_hostile_file_of_markers_is_refused_in_linear_work() {
        // A bad first record, then 64 MiB of record headers each claiming
        // to run to the end of the file: checking each candidate's hash
        // would hash about 2^51 bytes.
        let mut bytes = file_with(&[b"first"]);
        let bad = bytes.len();
        bytes.extend_from_slice(b"FSR1\xff\xff\xff\xff");
        let total = bad + (64 << 20);
        while bytes.len() + FRAME_HEADER <= total {
            let remaining = (total - bytes.len() - FRAME_HEADER) as u32;
            bytes.extend_from_slice(&MARKER);
            bytes.extend_from_slice(&remaining.min(MAX_PAYLOAD as u32).to_le_bytes());
            bytes.extend_from_slice(&[0u8; 32]);
        }
        bytes.resize(total, 0);
        match scan(Path::new("f"), ENTRIES, &bytes) {
            Err(AuditError::CorruptRecord { index: 1, .. }) => {}
            other => panic!("{:?}", other.map(|s| s.records.len())),
        }
    }

    #[test]
    fn damage_followed_by_intact_records_is_corruption() {
        let bytes = file_with(&[b"first", b"second", b"third"]);
        let second = 15 + FRAME_HEADER + 5;
        for pos in second..second + FRAME_HEADER + 6 {
            let mut bad = bytes.clone();
            bad[pos] ^= 0x40;
            match scan(Path::new("f"), ENTRIES, &bad) {
                Err(AuditError::CorruptRecord { index, .. }) => assert_eq!(index, 1, "byte {pos}"),
                other => panic!("byte {pos}: {:?}", other.map(|s| s.records.len())),
            }
        }
    }
}
