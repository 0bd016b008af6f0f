//! [`Disk`]: the durable-write primitives, each made of counted points.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::fault::{Faults, Op, Verdict};

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The storage layer: the real file system, or the real file system
/// behind a crash plan. Cheap to clone; clones share the plan.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    faults: Option<Arc<Faults>>,
}

impl Disk {
    /// The real disk, no faults.
    pub fn real() -> Self {
        Self::default()
    }

    /// The real disk behind `faults`.
    pub fn with_faults(faults: Arc<Faults>) -> Self {
        Self {
            faults: Some(faults),
        }
    }

    /// The crash plan, if any.
    pub fn faults(&self) -> Option<&Arc<Faults>> {
        self.faults.as_ref()
    }

    fn point(&self, op: Op, path: &Path, len: usize) -> io::Result<Verdict> {
        match &self.faults {
            None => Ok(Verdict::Proceed),
            Some(f) => f.at(op, path, len),
        }
    }

    fn crashed(&self) -> io::Error {
        self.faults
            .as_ref()
            .map_or_else(|| io::Error::other("simulated crash"), |f| f.crash_error())
    }

    fn alive(&self) -> io::Result<()> {
        self.faults.as_ref().map_or(Ok(()), |f| f.alive())
    }

    /// Hands `bytes` to `file` (one point), tearing them at a crash.
    fn write_to(&self, file: &mut File, path: &Path, bytes: &[u8]) -> io::Result<()> {
        match self.point(Op::Write, path, bytes.len())? {
            Verdict::Proceed => file.write_all(bytes),
            Verdict::Crash { keep } => {
                if let Some(keep) = keep {
                    file.write_all(&bytes[..keep])?;
                }
                Err(self.crashed())
            }
        }
    }

    fn fsync(&self, file: &File, path: &Path, data_only: bool) -> io::Result<()> {
        match self.point(Op::Fsync, path, 0)? {
            Verdict::Proceed if data_only => file.sync_data(),
            Verdict::Proceed => file.sync_all(),
            Verdict::Crash { .. } => Err(self.crashed()),
        }
    }

    /// Creates (or truncates) `path`, writes `bytes` and fsyncs it.
    /// Points: write, fsync. Not atomic: for files nobody reads until a
    /// later rename or record makes them count.
    pub fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.alive()?;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        self.write_to(&mut file, path, bytes)?;
        self.fsync(&file, path, false)
    }

    /// Replaces `path` with `bytes` atomically: a temporary file beside it
    /// is written and fsynced, renamed over `path`, and the folder synced.
    /// A crash leaves the old content or the new, never a mix. Points:
    /// write, fsync, rename, sync-dir.
    pub fn replace(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let temp = temp_beside(path);
        let written = self
            .write_synced(&temp, bytes)
            .and_then(|()| self.rename(&temp, path));
        if let Err(e) = written {
            // A dead process cleans nothing up; a live one does.
            if self.alive().is_ok() {
                let _ = std::fs::remove_file(&temp);
            }
            return Err(e);
        }
        self.sync_dir(path.parent().unwrap_or(Path::new(".")))
    }

    /// Appends `bytes` to `file` (opened for appending at `path`) and
    /// flushes its data. Points: write, fsync.
    pub fn append(&self, file: &mut File, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.write_to(file, path, bytes)?;
        self.fsync(file, path, true)
    }

    /// Cuts `file` to `len` bytes and flushes it. Points: truncate, fsync.
    pub fn truncate(&self, file: &File, path: &Path, len: u64) -> io::Result<()> {
        match self.point(Op::Truncate, path, 0)? {
            Verdict::Proceed => file.set_len(len)?,
            Verdict::Crash { .. } => return Err(self.crashed()),
        }
        self.fsync(file, path, false)
    }

    /// Renames `from` over `to`. Point: rename (sync the folder after).
    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        match self.point(Op::Rename, to, 0)? {
            Verdict::Proceed => std::fs::rename(from, to),
            Verdict::Crash { .. } => Err(self.crashed()),
        }
    }

    /// Makes a rename or a new file in `dir` durable. Point: sync-dir.
    pub fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        match self.point(Op::SyncDir, dir, 0)? {
            Verdict::Proceed => sync_dir(dir),
            Verdict::Crash { .. } => Err(self.crashed()),
        }
    }

    /// Creates a folder and its parents (not a point: an empty folder
    /// carries no state; the files put in it are synced with it).
    pub fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.alive()?;
        std::fs::create_dir_all(dir)
    }
}

/// A fresh temporary name beside `path`, unique within this process.
fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(faults: &Faults) -> Vec<(Op, String)> {
        faults
            .trace()
            .iter()
            .map(|p| (p.op, p.file_kind()))
            .collect()
    }

    #[test]
    fn replace_is_four_points_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let faults = Arc::new(Faults::counting());
        let disk = Disk::with_faults(faults.clone());
        let path = dir.path().join("state.json");
        disk.replace(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let ops: Vec<Op> = points(&faults).into_iter().map(|(op, _)| op).collect();
        assert_eq!(ops, [Op::Write, Op::Fsync, Op::Rename, Op::SyncDir]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_crash_at_any_point_of_replace_leaves_old_or_new() {
        for at in 0..4 {
            for tear in [None, Some(0.5)] {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("queue.json");
                Disk::real().replace(&path, b"old content").unwrap();
                let faults = Arc::new(match tear {
                    None => Faults::crash_at(at),
                    Some(share) => Faults::tear_at(at, share),
                });
                let disk = Disk::with_faults(faults.clone());
                assert!(disk.replace(&path, b"new content").is_err());
                assert!(faults.crashed());
                let now = std::fs::read(&path).unwrap();
                // Points: write, fsync, rename, sync-dir; the rename switches.
                let want: &[u8] = if at >= 3 {
                    b"new content"
                } else {
                    b"old content"
                };
                assert_eq!(now, want, "crash at {at}, tear {tear:?}");
                // Dead: nothing more happens.
                assert!(disk.replace(&path, b"later").is_err());
                assert_eq!(std::fs::read(&path).unwrap(), want);
            }
        }
    }

    #[test]
    fn a_torn_append_keeps_a_strict_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("entries.log");
        std::fs::write(&path, b"head").unwrap();
        for share in [0.0, 0.3, 1.0] {
            std::fs::write(&path, b"head").unwrap();
            let mut file = OpenOptions::new().append(true).open(&path).unwrap();
            let disk = Disk::with_faults(Arc::new(Faults::tear_at(0, share)));
            assert!(disk.append(&mut file, &path, b"0123456789").is_err());
            let now = std::fs::read(&path).unwrap();
            assert!(now.len() < 14, "share {share}: {} bytes", now.len());
            assert!(b"head0123456789".starts_with(&now));
        }
    }
}
