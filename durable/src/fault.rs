//! Crash plans: crash at the i-th persistence point, optionally tearing
//! that write, and keep the trace of every point reached.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The kind of a persistence point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// Bytes handed to a file (a new file's content, or an append).
    Write,
    /// A file's data flushed to the device.
    Fsync,
    /// A file renamed over another (atomic replace).
    Rename,
    /// A file cut to a length.
    Truncate,
    /// A directory's entries flushed (makes a rename or new file durable).
    SyncDir,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Write => "write",
            Op::Fsync => "fsync",
            Op::Rename => "rename",
            Op::Truncate => "truncate",
            Op::SyncDir => "sync-dir",
        })
    }
}

/// One persistence point a run reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Point {
    /// 0 for the first point the plan saw.
    pub index: u64,
    pub op: Op,
    pub path: PathBuf,
}

impl Point {
    /// The file's kind for reports: its name with numbers folded, so
    /// `round-000003.f32` and `round-000004.f32` count as one kind; a
    /// temporary file counts as the file it will replace, every blob as
    /// "blob" and every folder sync as "folder".
    pub fn file_kind(&self) -> String {
        if self.op == Op::SyncDir {
            return "folder".into();
        }
        if self.path.components().any(|c| c.as_os_str() == "blobs") {
            return "blob".into();
        }
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = match name.strip_prefix('.').and_then(|n| n.split_once(".tmp-")) {
            Some((target, _)) => target.to_string(),
            None => name,
        };
        // Words with a digit (round numbers, hashes) fold to '#'.
        let mut kind = String::new();
        let mut word = String::new();
        for c in name.chars().chain(std::iter::once('/')) {
            if c.is_ascii_alphanumeric() {
                word.push(c);
                continue;
            }
            if word.chars().any(|w| w.is_ascii_digit()) {
                kind.push('#');
            } else {
                kind.push_str(&word);
            }
            word.clear();
            if c != '/' {
                kind.push(c);
            }
        }
        kind
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} {} {}", self.index, self.op, self.path.display())
    }
}

/// What happens at a point.
pub(crate) enum Verdict {
    /// Do it.
    Proceed,
    /// The crash is here: do nothing (or, for a write, only the first
    /// `keep` bytes), then fail.
    Crash { keep: Option<usize> },
}

/// What to run when the crash happens (in-process tests stop the task
/// that "died" there).
type CrashHook = Box<dyn Fn() + Send + Sync>;

/// A crash plan, shared by every [`crate::Disk`] cloned from one handle.
#[derive(Default)]
pub struct Faults {
    crash_at: Option<u64>,
    /// For a write at the crash point: the share of its bytes that reach
    /// the file, in millionths (`None`: none of them).
    tear_ppm: Option<u32>,
    next: AtomicU64,
    crashed: AtomicBool,
    trace: Mutex<Vec<Point>>,
    on_crash: Mutex<Option<CrashHook>>,
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Faults")
            .field("crash_at", &self.crash_at)
            .field("tear_ppm", &self.tear_ppm)
            .field("reached", &self.reached())
            .field("crashed", &self.crashed())
            .finish_non_exhaustive()
    }
}

impl Faults {
    /// Counts and traces points, never crashes.
    pub fn counting() -> Self {
        Self::default()
    }

    /// Crashes at point `index` (0-based): that operation does not happen,
    /// and neither does any later one.
    pub fn crash_at(index: u64) -> Self {
        Self {
            crash_at: Some(index),
            ..Self::default()
        }
    }

    /// Crashes at point `index`; if that point is a write, the first
    /// `share` (0.0 ..= 1.0) of its bytes reach the file, cut mid-way.
    pub fn tear_at(index: u64, share: f64) -> Self {
        Self {
            crash_at: Some(index),
            tear_ppm: Some((share.clamp(0.0, 1.0) * 1e6) as u32),
            ..Self::default()
        }
    }

    /// Runs `hook` when the crash happens (once), before the failing
    /// operation returns: an in-process test kills the task that died.
    pub fn on_crash(&self, hook: impl Fn() + Send + Sync + 'static) {
        *self.on_crash.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(hook));
    }

    /// Whether the crash happened.
    pub fn crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    /// Points reached so far (the crash point included).
    pub fn reached(&self) -> u64 {
        self.next.load(Ordering::SeqCst)
    }

    /// Every point reached, in order.
    pub fn trace(&self) -> Vec<Point> {
        self.trace.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The error every operation at or after the crash returns.
    pub(crate) fn crash_error(&self) -> std::io::Error {
        std::io::Error::other(format!(
            "simulated crash at persistence point {}",
            self.crash_at.unwrap_or_default()
        ))
    }

    /// Decides point by point; the trace and the count are kept under one
    /// lock so concurrent writers get distinct, ordered indices.
    pub(crate) fn at(&self, op: Op, path: &Path, len: usize) -> Result<Verdict, std::io::Error> {
        let mut trace = self.trace.lock().unwrap_or_else(|p| p.into_inner());
        if self.crashed() {
            return Err(self.crash_error());
        }
        let index = self.next.fetch_add(1, Ordering::SeqCst);
        trace.push(Point {
            index,
            op,
            path: path.to_path_buf(),
        });
        if self.crash_at != Some(index) {
            return Ok(Verdict::Proceed);
        }
        self.crashed.store(true, Ordering::SeqCst);
        drop(trace);
        if let Some(hook) = self
            .on_crash
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            hook();
        }
        let keep = match (op, self.tear_ppm) {
            (Op::Write, Some(ppm)) if len > 0 => {
                // At least one byte short: a torn write, not a whole one.
                Some(((len as u64 * u64::from(ppm)) / 1_000_000).min(len as u64 - 1) as usize)
            }
            _ => None,
        };
        Ok(Verdict::Crash { keep })
    }

    /// For operations that are not points (cleanup, directory creation):
    /// refused once crashed, as a dead process does nothing.
    pub(crate) fn alive(&self) -> Result<(), std::io::Error> {
        if self.crashed() {
            Err(self.crash_error())
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_kinds_fold_numbers_and_blobs() {
        let p = |s: &str| Point {
            index: 0,
            op: Op::Write,
            path: PathBuf::from(s),
        };
        assert_eq!(p("/s/models/round-000012.f32").file_kind(), "round-#.#");
        assert_eq!(p("/c/round-000002-9c1fa0.u64").file_kind(), "round-#-#.#");
        assert_eq!(p("/s/audit/blobs/ab/cdef").file_kind(), "blob");
        assert_eq!(p("/s/audit/entries.log").file_kind(), "entries.log");
        assert_eq!(p("/s/.queue.json.tmp-12-3").file_kind(), "queue.json");
    }
}
