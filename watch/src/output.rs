//! Where alert lines go: standard output, or an NDJSON file that rotates by
//! size (`alerts.ndjson` → `alerts.ndjson.1` → …, as logrotate names them,
//! which Filebeat and Vector follow).
//!
//! Lines are written whole: each batch's lines go out in one `write` of
//! whole lines, so a reader never sees half a line but for a crash in the
//! middle of that write, and that torn end is cut off when the watch
//! starts again.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::WatchError;
use crate::state::OutputMark;

/// Default size at which the alert file rotates.
pub const DEFAULT_MAX_BYTES: u64 = 100 << 20;
/// Default number of rotated files kept.
pub const DEFAULT_KEEP: usize = 5;

/// What a restart found past the saved length of the alert file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The largest `log.offset` among the lines written after the last
    /// save: flows at or before it were already written.
    pub written_through: Option<u64>,
    /// Lines found past the saved length.
    pub lines: usize,
    /// Bytes of a torn last line cut off.
    pub torn_bytes: u64,
    /// The file does not end in a newline (and is not the watch's torn
    /// line): the first write starts with one.
    pub needs_newline: bool,
}

enum Target {
    Stdout(std::io::Stdout),
    File {
        path: PathBuf,
        file: File,
        len: u64,
        max_bytes: u64,
        keep: usize,
    },
}

/// The alert output.
pub struct Output {
    target: Target,
    pending: Vec<u8>,
}

impl Output {
    /// Alerts to standard output.
    pub fn stdout() -> Output {
        Output {
            target: Target::Stdout(std::io::stdout()),
            pending: Vec::with_capacity(1 << 16),
        }
    }

    /// Alerts appended to `path`, rotated at `max_bytes` keeping `keep`
    /// old files; `saved` is the file as the last state save knew it.
    pub fn file(
        path: &Path,
        max_bytes: u64,
        keep: usize,
        saved: Option<&OutputMark>,
    ) -> Result<(Output, Recovered), WatchError> {
        if max_bytes == 0 || keep == 0 {
            return Err(WatchError::Setup(
                "--out-max-bytes and --out-keep must be at least 1".into(),
            ));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| WatchError::io("creating", dir, e))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(|e| WatchError::io("opening the alert file", path, e))?;
        let meta = file
            .metadata()
            .map_err(|e| WatchError::io("reading", path, e))?;
        let from = match saved {
            Some(mark) if mark.dev == meta.dev() && mark.ino == meta.ino() => {
                mark.len.min(meta.len())
            }
            _ => meta.len(),
        };
        let recovered = recover(&mut file, path, from, meta.len())?;
        let mut pending = Vec::with_capacity(1 << 16);
        if recovered.needs_newline {
            pending.push(b'\n');
        }
        let len = file
            .metadata()
            .map_err(|e| WatchError::io("reading", path, e))?
            .len();
        Ok((
            Output {
                target: Target::File {
                    path: path.to_path_buf(),
                    file,
                    len,
                    max_bytes,
                    keep,
                },
                pending,
            },
            recovered,
        ))
    }

    /// The buffer the next lines are written into.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.pending
    }

    /// Writes the buffered lines in one write; rotates first if the file
    /// is full.
    pub fn write(&mut self) -> Result<(), WatchError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        match &mut self.target {
            Target::Stdout(out) => {
                let mut out = out.lock();
                out.write_all(&self.pending)
                    .and_then(|()| out.flush())
                    .map_err(|e| WatchError::io("writing alerts to", Path::new("stdout"), e))?;
            }
            Target::File {
                path, file, len, ..
            } => {
                file.write_all(&self.pending)
                    .map_err(|e| WatchError::io("writing alerts to", path, e))?;
                *len += self.pending.len() as u64;
            }
        }
        self.pending.clear();
        Ok(())
    }

    /// Whether the file has reached its size and should rotate (after the
    /// state covering it is saved).
    pub fn full(&self) -> bool {
        matches!(&self.target, Target::File { len, max_bytes, .. } if *len >= *max_bytes)
    }

    /// Makes what was written durable.
    pub fn sync(&mut self) -> Result<(), WatchError> {
        if let Target::File { path, file, .. } = &mut self.target {
            file.sync_data()
                .map_err(|e| WatchError::io("syncing", path, e))?;
        }
        Ok(())
    }

    /// Renames the file to `.1` (older ones up by one, the oldest beyond
    /// `keep` removed) and starts a new one.
    pub fn rotate(&mut self) -> Result<(), WatchError> {
        self.write()?;
        let Target::File {
            path,
            file,
            len,
            keep,
            ..
        } = &mut self.target
        else {
            return Ok(());
        };
        let numbered = |i: usize| PathBuf::from(format!("{}.{i}", path.display()));
        let _ = std::fs::remove_file(numbered(*keep));
        for i in (1..*keep).rev() {
            let from = numbered(i);
            if from.exists() {
                std::fs::rename(&from, numbered(i + 1))
                    .map_err(|e| WatchError::io("rotating", &from, e))?;
            }
        }
        std::fs::rename(&*path, numbered(1)).map_err(|e| WatchError::io("rotating", path, e))?;
        *file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&*path)
            .map_err(|e| WatchError::io("opening the alert file", path, e))?;
        *len = 0;
        Ok(())
    }

    /// The file as a state save records it; `None` for standard output.
    pub fn mark(&self) -> Result<Option<OutputMark>, WatchError> {
        match &self.target {
            Target::Stdout(_) => Ok(None),
            Target::File {
                path, file, len, ..
            } => {
                let meta = file
                    .metadata()
                    .map_err(|e| WatchError::io("reading", path, e))?;
                Ok(Some(OutputMark {
                    path: path.display().to_string(),
                    dev: meta.dev(),
                    ino: meta.ino(),
                    len: *len,
                }))
            }
        }
    }
}

/// Reads the lines in `file[from..len]` (written after the last save, so
/// by this watch), cutting a torn last line off. Before `from` nothing is
/// touched: a file that does not end in a newline there (not written by a
/// watch) gets one before the first alert, so alert lines stay whole.
fn recover(file: &mut File, path: &Path, from: u64, len: u64) -> Result<Recovered, WatchError> {
    let io = |e| WatchError::io("reading the alert file", path, e);
    let mut recovered = Recovered::default();
    if from == len {
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1)).map_err(io)?;
            file.read_exact(&mut last).map_err(io)?;
            recovered.needs_newline = last[0] != b'\n';
        }
        return Ok(recovered);
    }
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(from)).map_err(io)?;
    Read::by_ref(file)
        .take(len - from)
        .read_to_end(&mut tail)
        .map_err(io)?;
    let whole = tail
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |at| at + 1);
    if whole < tail.len() {
        recovered.torn_bytes = (tail.len() - whole) as u64;
        file.set_len(from + whole as u64)
            .and_then(|()| file.sync_data())
            .map_err(|e| WatchError::io("cutting a torn line off", path, e))?;
        tail.truncate(whole);
    }
    for line in tail.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        recovered.lines += 1;
        let offset = serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.pointer("/log/offset").and_then(|o| o.as_u64()));
        if let Some(offset) = offset {
            recovered.written_through = recovered.written_through.max(Some(offset));
        }
    }
    Ok(recovered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_after_the_saved_length_are_found_and_a_torn_line_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.ndjson");
        std::fs::write(
            &path,
            "{\"log\":{\"offset\":10}}\n{\"log\":{\"offset\":20}}\n{\"log\":{\"offset\":30}}\n{\"log\":{\"off",
        )
        .unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let mark = OutputMark {
            path: path.display().to_string(),
            dev: meta.dev(),
            ino: meta.ino(),
            len: 23,
        };
        let (mut out, recovered) = Output::file(&path, 1 << 20, 2, Some(&mark)).unwrap();
        assert_eq!(recovered.written_through, Some(30));
        assert_eq!(recovered.lines, 2);
        assert_eq!(recovered.torn_bytes, "{\"log\":{\"off".len() as u64);
        out.buffer().extend_from_slice(b"{\"x\":1}\n");
        out.write().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.ends_with("{\"log\":{\"offset\":30}}\n{\"x\":1}\n"),
            "{text}"
        );
    }

    #[test]
    fn the_file_rotates_keeping_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.ndjson");
        let (mut out, _) = Output::file(&path, 10, 2, None).unwrap();
        for i in 0..4 {
            out.buffer()
                .extend_from_slice(format!("{{\"n\":{i:05}}}\n").as_bytes());
            out.write().unwrap();
            assert!(out.full());
            out.rotate().unwrap();
        }
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(dir.path().join("alerts.ndjson.1")), "{\"n\":00003}\n");
        assert_eq!(read(dir.path().join("alerts.ndjson.2")), "{\"n\":00002}\n");
        assert!(!dir.path().join("alerts.ndjson.3").exists());
        assert_eq!(read(path), "");
    }
}
