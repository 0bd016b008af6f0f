//! Following a log as the sensor writes it, across rotation.
//!
//! [`Follower`] reads what has been appended since its last look, hands
//! each complete line to the caller, and holds a partial last line until
//! its newline arrives. It notices the two ways logs rotate:
//!
//! - rename and new file (Zeek, Suricata with `logrotate` and a HUP): the
//!   path names a new inode. The old file is read to its end (two more
//!   looks, for the writer's last flush), then the new one from its start.
//! - copy-truncate: the path's file shrank, or its first bytes changed.
//!   What was appended between the last look and the copy is in the copy,
//!   found by its first bytes ([`FileId`]) and read before the new start.
//!
//! Started from a saved [`Position`], it catches up: if the file the
//! position names is no longer at the path, it is found among the rotated
//! files (renamed, or compressed as Zeek's `conn.…log.gz`), read from the
//! position, followed by every file rotated after it, then the live file.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::error::WatchError;
use crate::files::{FileId, is_gzip, open_log_at, rotated_candidates};
use crate::lines::Splitter;

/// Bytes read per system call.
const CHUNK: usize = 256 * 1024;

/// Looks at the live file's end after its path was given to a new file,
/// before the old file counts as finished.
const ROTATION_LOOKS: u32 = 2;

/// Where a log has been read to: every line before `offset` was handed on.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    pub file: FileId,
    /// Bytes (decompressed, for gzip) of complete lines handed on.
    pub offset: u64,
    /// Lines handed on (for `file:line` in reports).
    pub line: u64,
}

/// Where to start without a saved position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The start of the file now at the path.
    Beginning,
    /// Its current end: only what is written from now on.
    End,
}

/// What the follower hands on.
#[derive(Debug)]
pub enum Input<'a> {
    /// A new file begins (its lines follow); where it starts, and whether
    /// it continues the saved position the follower started from.
    NewFile {
        path: &'a str,
        at: Position,
        resumed: bool,
    },
    /// One complete line, without its newline.
    Line(Line<'a>),
    /// A header line at the start of a file opened past its start (Zeek's
    /// TSV `#fields`, …): what the lines that follow mean. Not a record.
    Header(&'a [u8]),
}

/// One line and where it is.
#[derive(Debug)]
pub struct Line<'a> {
    pub bytes: &'a [u8],
    pub path: &'a str,
    /// Byte offset of the line's start in its (decompressed) file.
    pub offset: u64,
    /// 1-based line number.
    pub line: u64,
    /// The line was longer than [`MAX_LINE`](crate::lines::MAX_LINE) and
    /// was cut.
    pub cut: bool,
}

/// What one [`Follower::read`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub bytes: usize,
    /// Everything written so far has been read.
    pub caught_up: bool,
    /// The input has ended for good (only a pipe ends).
    pub ended: bool,
}

/// A file to read before the live one.
struct Queued {
    path: PathBuf,
    offset: u64,
    line: u64,
    /// It continues the saved position the follower was started from.
    resumed: bool,
}

impl Queued {
    fn at(path: PathBuf, offset: u64, line: u64) -> Queued {
        Queued {
            path,
            offset,
            line,
            resumed: false,
        }
    }
}

/// An open file being read.
struct OpenLog {
    path: PathBuf,
    shown: String,
    reader: Box<dyn Read + Send>,
    /// Whether this is the file at the live path (else a rotated one, read
    /// to its end and closed).
    live: bool,
    id: FileId,
    /// Compressed: complete as it is (a rotated file), never looked at for
    /// growth or truncation.
    gz: bool,
    /// The lines read so far; its offset is just past the last one handed
    /// on.
    lines: Splitter,
    /// Offset just past the last byte read.
    read_to: u64,
}

/// A log followed across rotation.
pub struct Follower {
    live: PathBuf,
    extra: Vec<PathBuf>,
    open: Option<OpenLog>,
    /// Rotated files to read before the live one: path and where to start.
    queue: VecDeque<Queued>,
    /// Looks at the old file's end since the path changed files.
    rotation_looks: u32,
    /// The position of the last file finished, for when none is open.
    finished: Option<Position>,
    /// Size of the live file at the last look.
    live_size: u64,
    /// Things the operator should know (data possibly lost, files skipped).
    notes: Vec<String>,
}

impl Follower {
    /// Follows `live` from `position` (caught up through its rotated files
    /// and `extra` archive locations), or from `start` without one.
    pub fn new(
        live: &Path,
        extra: &[PathBuf],
        position: Option<Position>,
        start: Start,
    ) -> Result<Follower, WatchError> {
        let mut follower = Follower {
            live: live.to_path_buf(),
            extra: extra.to_vec(),
            open: None,
            queue: VecDeque::new(),
            rotation_looks: 0,
            finished: None,
            live_size: 0,
            notes: Vec::new(),
        };
        match position {
            Some(position) => follower.resume(position)?,
            None if start == Start::End => {
                if let Ok(meta) = std::fs::metadata(live) {
                    follower.queue_live_at(meta.len())?;
                }
            }
            None => {}
        }
        Ok(follower)
    }

    /// Warnings gathered since the last call.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// Where every line handed on so far ends.
    pub fn position(&self) -> Option<Position> {
        match &self.open {
            Some(open) => Some(Position {
                file: open.id.clone(),
                offset: open.lines.offset,
                line: open.lines.line,
            }),
            None => self.finished.clone(),
        }
    }

    /// Bytes written to the live file and not yet read (rotated files still
    /// queued are not counted).
    pub fn lag_bytes(&self) -> u64 {
        match &self.open {
            Some(open) if open.live => self.live_size.saturating_sub(open.lines.offset),
            _ => self.live_size,
        }
    }

    /// Reads up to about `budget` bytes, handing each complete line to
    /// `sink`.
    pub fn read(
        &mut self,
        budget: usize,
        sink: &mut dyn FnMut(Input<'_>),
    ) -> Result<Progress, WatchError> {
        let mut progress = Progress::default();
        loop {
            if self.open.is_none() && !self.open_next(sink)? {
                progress.caught_up = true;
                return Ok(progress);
            }
            let n = self.read_chunk()?;
            if n > 0 {
                self.hand_on(sink);
                progress.bytes += n;
                if progress.bytes >= budget {
                    return Ok(progress);
                }
                continue;
            }
            // At the end of the open file.
            let Some(open) = self.open.as_ref() else {
                continue;
            };
            if !open.live {
                self.close(sink);
                continue;
            }
            if open.gz {
                // A compressed file at the live path does not grow.
                progress.caught_up = true;
                return Ok(progress);
            }
            match self.look_at_live()? {
                Live::Same => {
                    progress.caught_up = true;
                    return Ok(progress);
                }
                Live::Replaced if self.rotation_looks < ROTATION_LOOKS => {
                    self.rotation_looks += 1;
                    progress.caught_up = true;
                    return Ok(progress);
                }
                Live::Replaced => {
                    self.rotation_looks = 0;
                    self.close(sink);
                }
                Live::Truncated => self.after_truncation(),
            }
        }
    }

    /// Reads one chunk of the open file.
    fn read_chunk(&mut self) -> Result<usize, WatchError> {
        let Some(open) = self.open.as_mut() else {
            return Ok(0);
        };
        let reader = &mut open.reader;
        let n = open
            .lines
            .fill(CHUNK, |free| {
                loop {
                    match reader.read(free) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        other => return other,
                    }
                }
            })
            .map_err(|e| WatchError::io("reading", &open.path, e))?;
        open.read_to += n as u64;
        Ok(n)
    }

    /// Hands on every complete line read.
    fn hand_on(&mut self, sink: &mut dyn FnMut(Input<'_>)) {
        if let Some(open) = self.open.as_mut() {
            open.lines.hand_on(&open.shown, sink);
        }
    }

    /// Finishes the open file: it will not grow any more, so a last line
    /// without its newline is complete.
    fn close(&mut self, sink: &mut dyn FnMut(Input<'_>)) {
        if let Some(mut open) = self.open.take() {
            open.lines.finish(&open.shown, sink);
            self.finished = Some(Position {
                file: open.id,
                offset: open.lines.offset,
                line: open.lines.line,
            });
        }
    }

    /// Opens the next queued rotated file, else the live file. `false`:
    /// nothing to open yet (the live path does not exist).
    fn open_next(&mut self, sink: &mut dyn FnMut(Input<'_>)) -> Result<bool, WatchError> {
        let next = self
            .queue
            .pop_front()
            .unwrap_or_else(|| Queued::at(self.live.clone(), 0, 0));
        let live = next.path == self.live;
        let Queued {
            path,
            offset,
            line,
            resumed,
        } = next;
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound && live => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.notes.push(format!(
                    "{} went away before it was read; the flows it held after byte {offset} are lost",
                    path.display()
                ));
                return Ok(true);
            }
            Err(e) => return Err(WatchError::io("opening", &path, e)),
        };
        let reader = open_log_at(&path, offset).map_err(|e| WatchError::io("opening", &path, e))?;
        let id = FileId::of(&path, &meta).map_err(|e| WatchError::io("reading", &path, e))?;
        if live {
            self.live_size = meta.len();
        }
        let shown = path.display().to_string();
        let at = Position {
            file: id.clone(),
            offset,
            line,
        };
        sink(Input::NewFile {
            path: &shown,
            at,
            resumed,
        });
        if offset > 0 {
            header(&path, offset, sink).map_err(|e| WatchError::io("reading", &path, e))?;
        }
        let gz = is_gzip(&path);
        self.open = Some(OpenLog {
            path,
            shown,
            reader,
            live,
            id,
            gz,
            lines: Splitter::at(offset, line),
            read_to: offset,
        });
        Ok(true)
    }

    /// What the live path holds now, compared with the open file.
    fn look_at_live(&mut self) -> Result<Live, WatchError> {
        let Some(open) = self.open.as_mut() else {
            return Ok(Live::Same);
        };
        let meta = match std::fs::metadata(&self.live) {
            Ok(meta) => meta,
            // Between a rename and the new file: wait for it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Live::Same),
            Err(e) => return Err(WatchError::io("looking at", &self.live, e)),
        };
        if !open.id.same_inode(&meta) {
            return Ok(Live::Replaced);
        }
        self.live_size = meta.len();
        if meta.len() < open.read_to || !open.id.matches(&self.live, &meta) {
            return Ok(Live::Truncated);
        }
        open.id = open.id.refreshed(&self.live, &meta);
        Ok(Live::Same)
    }

    /// The live file was truncated (copy-truncate): read the copy from where
    /// reading stopped, then the live file from its start.
    fn after_truncation(&mut self) {
        let Some(open) = self.open.take() else {
            return;
        };
        let (consumed, line) = (open.lines.offset, open.lines.line);
        let copy = rotated_candidates(&self.live, &self.extra)
            .into_iter()
            .rev()
            .find(|path| {
                std::fs::metadata(path)
                    .is_ok_and(|meta| !open.id.same_inode(&meta) && open.id.matches(path, &meta))
            });
        match copy {
            Some(copy) => self.queue.push_back(Queued::at(copy, consumed, line)),
            None => self.notes.push(format!(
                "{} was truncated and no copy of it (a rotated file with the same first bytes) \
                 was found beside it; flows written after byte {} before the truncation are lost",
                self.live.display(),
                consumed
            )),
        }
        self.queue.push_back(Queued::at(self.live.clone(), 0, 0));
        self.finished = Some(Position {
            file: open.id,
            offset: consumed,
            line,
        });
    }

    /// Queues what to read to continue from a saved position.
    ///
    /// The live file continues the position when it is the same inode, as
    /// long as before, with the same first bytes. Otherwise the log moved on
    /// while nobody watched (renamed, compressed, copied and truncated, or
    /// deleted with its inode reused by a new file): the saved file is
    /// searched for among the rotated files by its first bytes, and read
    /// from the position, then every later rotated file, then the live one.
    fn resume(&mut self, at: Position) -> Result<(), WatchError> {
        if let Ok(meta) = std::fs::metadata(&self.live)
            && at.file.same_inode(&meta)
            && meta.len() >= at.offset
            && at.file.matches(&self.live, &meta)
        {
            self.queue.push_back(Queued {
                resumed: true,
                ..Queued::at(self.live.clone(), at.offset, at.line)
            });
            return Ok(());
        }
        let candidates = rotated_candidates(&self.live, &self.extra);
        let found = candidates
            .iter()
            .position(|p| std::fs::metadata(p).is_ok_and(|m| at.file.matches(p, &m)));
        match found {
            Some(i) => {
                self.queue.push_back(Queued {
                    resumed: true,
                    ..Queued::at(candidates[i].clone(), at.offset, at.line)
                });
                for later in &candidates[i + 1..] {
                    self.queue.push_back(Queued::at(later.clone(), 0, 0));
                }
            }
            None => self.notes.push(format!(
                "the file the saved position names (read to byte {}) is no longer at {} \
                 (rotated, truncated or replaced) and is not among the rotated files beside \
                 it{}; starting at the beginning of the current file, so flows written between \
                 the position and the current file's start are lost (pass --rotated DIR where \
                 your rotated logs are archived)",
                at.offset,
                self.live.display(),
                if self.extra.is_empty() {
                    ""
                } else {
                    " or in --rotated"
                }
            )),
        }
        self.queue.push_back(Queued::at(self.live.clone(), 0, 0));
        Ok(())
    }

    /// Starts the live file at `offset` (`--from-end`), at a line boundary.
    fn queue_live_at(&mut self, offset: u64) -> Result<(), WatchError> {
        let text =
            std::fs::read(&self.live).map_err(|e| WatchError::io("reading", &self.live, e))?;
        let upto = (offset as usize).min(text.len());
        let start = text[..upto]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |at| at + 1);
        let lines = text[..start].iter().filter(|&&b| b == b'\n').count() as u64;
        self.queue
            .push_back(Queued::at(self.live.clone(), start as u64, lines));
        Ok(())
    }
}

/// Hands on the `#` lines a file starts with (its header), for a file
/// opened at `offset`, past its start.
fn header(path: &Path, offset: u64, sink: &mut dyn FnMut(Input<'_>)) -> io::Result<()> {
    let mut head = Vec::new();
    open_log_at(path, 0)?
        .take(offset.min(1 << 16))
        .read_to_end(&mut head)?;
    for line in head.split(|&b| b == b'\n') {
        if !line.starts_with(b"#") {
            break;
        }
        sink(Input::Header(line));
    }
    Ok(())
}

enum Live {
    Same,
    Replaced,
    Truncated,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Reads until caught up, returning the lines (and marking new files).
    fn drain(f: &mut Follower) -> Vec<String> {
        let mut got = Vec::new();
        loop {
            let p = f
                .read(1 << 20, &mut |input| match input {
                    Input::NewFile { .. } => got.push("<new file>".to_string()),
                    Input::Header(_) => {}
                    Input::Line(l) => got.push(String::from_utf8_lossy(l.bytes).into_owned()),
                })
                .unwrap();
            if p.caught_up && p.bytes == 0 {
                return got;
            }
        }
    }

    fn append(path: &Path, text: &str) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    /// A log named `name` holding `text`, followed and read to its end.
    fn following(name: &str, text: &str) -> (tempfile::TempDir, PathBuf, Follower) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join(name);
        append(&log, text);
        let mut f = Follower::new(&log, &[], None, Start::Beginning).unwrap();
        drain(&mut f);
        (dir, log, f)
    }

    #[test]
    fn appended_lines_come_out_and_a_partial_line_waits() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("conn.log");
        append(&log, "#open 1\na\nb");
        let mut f = Follower::new(&log, &[], None, Start::Beginning).unwrap();
        assert_eq!(drain(&mut f), ["<new file>", "#open 1", "a"]);
        append(&log, "\nc\n");
        assert_eq!(drain(&mut f), ["b", "c"]);
        let at = f.position().unwrap();
        assert_eq!((at.offset, at.line), (14, 4));
    }

    #[test]
    fn rename_rotation_reads_the_old_file_to_its_end_then_the_new_one() {
        let (dir, log, mut f) = following("conn.log", "#open 1\na\n");
        append(&log, "b\n");
        std::fs::rename(&log, dir.path().join("conn.1.log")).unwrap();
        append(&log, "#open 2\nc\n");
        // The old file's last lines come first, then the new file's.
        let got: Vec<String> = (0..5).flat_map(|_| drain(&mut f)).collect();
        assert_eq!(got, ["b", "<new file>", "#open 2", "c"]);
    }

    #[test]
    fn copy_truncate_reads_what_the_copy_holds_beyond_the_last_look() {
        let (dir, log, mut f) = following("eve.json", "{\"timestamp\":\"t1\"}\nx\n");
        append(&log, "y\n");
        std::fs::copy(&log, dir.path().join("eve.json.1")).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&log)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&log, "{\"timestamp\":\"t2\"}\n");
        let got = drain(&mut f);
        assert_eq!(
            got,
            ["<new file>", "y", "<new file>", "{\"timestamp\":\"t2\"}"]
        );
        assert!(f.take_notes().is_empty());
    }

    #[test]
    fn a_restart_catches_up_through_rotated_and_compressed_files() {
        let (dir, log, f) = following("conn.log", "#open 1\na\n");
        let saved = f.position().unwrap();
        drop(f);
        // While stopped: two more lines, then rotation to gzip, then a
        // second file rotated plainly, then the live one.
        append(&log, "b\nc\n");
        let first = std::fs::read(&log).unwrap();
        let gz = dir.path().join("conn.2026-12-07-10-00-00.log.gz");
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::fast(),
        );
        enc.write_all(&first).unwrap();
        enc.finish().unwrap();
        std::fs::remove_file(&log).unwrap();
        let second = dir.path().join("conn.2026-12-07-11-00-00.log");
        append(&second, "#open 2\nd\n");
        append(&log, "#open 3\ne\n");
        // Rotated files are ordered by modification time: set it, rather
        // than wait for the clock to tick between writes.
        let hour = |h: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(3600 * h);
        for (path, at) in [(&gz, 10), (&second, 11), (&log, 12)] {
            std::fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(hour(at))
                .unwrap();
        }
        let mut f = Follower::new(&log, &[], Some(saved), Start::Beginning).unwrap();
        let got = drain(&mut f);
        assert_eq!(
            got,
            [
                "<new file>",
                "b",
                "c",
                "<new file>",
                "#open 2",
                "d",
                "<new file>",
                "#open 3",
                "e"
            ]
        );
        assert!(f.take_notes().is_empty());
    }

    #[test]
    fn a_restart_reads_every_copy_when_the_log_was_copied_and_truncated_twice() {
        let (dir, log, f) = following("eve.json", "{\"timestamp\":\"t1\"}\na\n");
        let saved = f.position().unwrap();
        drop(f);
        // While stopped: the live file (same inode throughout) is copied and
        // truncated twice, each copy holding lines the watch never read.
        let truncate = || {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&log)
                .unwrap()
                .set_len(0)
                .unwrap()
        };
        append(&log, "b\n");
        let first = dir.path().join("eve.json.2");
        std::fs::copy(&log, &first).unwrap();
        truncate();
        append(&log, "{\"timestamp\":\"t2\"}\nc\n");
        let second = dir.path().join("eve.json.1");
        std::fs::copy(&log, &second).unwrap();
        truncate();
        append(&log, "{\"timestamp\":\"t3\"}\n");
        let hour = |h: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(3600 * h);
        for (path, at) in [(&first, 10), (&second, 11), (&log, 12)] {
            std::fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(hour(at))
                .unwrap();
        }
        let mut f = Follower::new(&log, &[], Some(saved), Start::Beginning).unwrap();
        assert_eq!(
            drain(&mut f),
            [
                "<new file>",
                "b",
                "<new file>",
                "{\"timestamp\":\"t2\"}",
                "c",
                "<new file>",
                "{\"timestamp\":\"t3\"}"
            ]
        );
        assert!(f.take_notes().is_empty());
    }

    #[test]
    fn a_lost_position_is_reported_not_hidden() {
        let (_dir, log, f) = following("conn.log", "#open 1\na\n");
        let saved = f.position().unwrap();
        std::fs::remove_file(&log).unwrap();
        append(&log, "#open 2\nb\n");
        let mut f = Follower::new(&log, &[], Some(saved), Start::Beginning).unwrap();
        assert_eq!(drain(&mut f), ["<new file>", "#open 2", "b"]);
        let notes = f.take_notes();
        assert!(notes[0].contains("are lost"), "{notes:?}");
    }

    #[test]
    fn from_end_skips_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("conn.log");
        append(&log, "#open 1\na\nhal");
        let mut f = Follower::new(&log, &[], None, Start::End).unwrap();
        append(&log, "f\nb\n");
        assert_eq!(drain(&mut f), ["<new file>", "half", "b"]);
    }
}
