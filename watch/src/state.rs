//! The watch's durable state in `--state DIR`: where the input has been
//! read to and how long the alert file was then, replaced atomically
//! (written beside, fsynced, renamed) after the alerts it covers are
//! fsynced. A lock file keeps a second watch off the same state.
//!
//! Exactly-once output follows from the two together: on a restart the
//! input is read again from the saved position, and the alert lines written
//! after the save (found past the saved length, each with its `log.offset`)
//! are not written twice.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use fedsoc_durable::Disk;

use crate::error::WatchError;
use crate::follow::Position;

/// The state file's format name and version.
pub const STATE_FORMAT: &str = "fedsoc-watch-state";
pub const STATE_VERSION: u32 = 1;

const STATE_FILE: &str = "position.json";
const LOCK_FILE: &str = "lock";

/// What a restart continues from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Saved {
    pub format: String,
    pub version: u32,
    /// The followed path, as given.
    pub input: String,
    /// "zeek" or "suricata".
    pub input_format: String,
    pub position: Option<Position>,
    pub output: Option<OutputMark>,
}

/// The alert file when the state was saved.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutputMark {
    pub path: String,
    pub dev: u64,
    pub ino: u64,
    /// Its length: every line before it is covered by `position`.
    pub len: u64,
}

/// The state folder, locked for this watch.
#[derive(Debug)]
pub struct StateDir {
    file: PathBuf,
    disk: Disk,
    _lock: File,
}

impl StateDir {
    /// Opens (creating) `dir`, takes its lock, and reads the saved state of
    /// `input` in `input_format`, if any.
    pub fn open(
        dir: &Path,
        input: &str,
        input_format: &str,
    ) -> Result<(StateDir, Option<Saved>), WatchError> {
        std::fs::create_dir_all(dir).map_err(|e| WatchError::io("creating", dir, e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| WatchError::io("opening", &lock_path, e))?;
        if lock.try_lock().is_err() {
            return Err(WatchError::Setup(format!(
                "another fedsoc watch is using the state in {}; give each watch its own --state",
                dir.display()
            )));
        }
        let file = dir.join(STATE_FILE);
        let saved = match std::fs::read(&file) {
            Ok(bytes) => Some(parse(&file, &bytes)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(WatchError::io("reading", &file, e)),
        };
        if let Some(saved) = &saved
            && (saved.input != input || saved.input_format != input_format)
        {
            return Err(WatchError::Setup(format!(
                "the state in {} belongs to the {} log {}, not to the {input_format} log {input}; \
                 give each followed log its own --state",
                dir.display(),
                saved.input_format,
                saved.input
            )));
        }
        Ok((
            StateDir {
                file,
                disk: Disk::real(),
                _lock: lock,
            },
            saved,
        ))
    }

    /// Replaces the saved state atomically.
    pub fn save(&self, saved: &Saved) -> Result<(), WatchError> {
        let bytes = serde_json::to_vec_pretty(saved)
            .map_err(|e| WatchError::Setup(format!("cannot encode the watch state: {e}")))?;
        self.disk
            .replace(&self.file, &bytes)
            .map_err(|e| WatchError::io("saving the watch state to", &self.file, e))
    }
}

fn parse(file: &Path, bytes: &[u8]) -> Result<Saved, WatchError> {
    let unreadable = |why: String| {
        WatchError::Setup(format!(
            "the watch state {} is unreadable ({why}); it was not written by this version of \
             fedsoc or was damaged. Move it away to start again from the beginning of the \
             current file (flows may then be scored twice or missed)",
            file.display()
        ))
    };
    let saved: Saved = serde_json::from_slice(bytes).map_err(|e| unreadable(e.to_string()))?;
    if saved.format != STATE_FORMAT || saved.version != STATE_VERSION {
        return Err(unreadable(format!(
            "format {:?} version {}, expected {STATE_FORMAT:?} version {STATE_VERSION}",
            saved.format, saved.version
        )));
    }
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_a_second_watch_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (state, saved) = StateDir::open(dir.path(), "conn.log", "zeek").unwrap();
        assert!(saved.is_none());
        let s = Saved {
            format: STATE_FORMAT.into(),
            version: STATE_VERSION,
            input: "conn.log".into(),
            input_format: "zeek".into(),
            position: None,
            output: Some(OutputMark {
                path: "alerts.ndjson".into(),
                dev: 1,
                ino: 2,
                len: 3,
            }),
        };
        state.save(&s).unwrap();
        let err = StateDir::open(dir.path(), "conn.log", "zeek").unwrap_err();
        assert!(err.to_string().contains("another fedsoc watch"), "{err}");
        drop(state);
        let (_, again) = StateDir::open(dir.path(), "conn.log", "zeek").unwrap();
        assert_eq!(again, Some(s));
    }

    #[test]
    fn a_state_of_another_log_or_a_damaged_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (state, _) = StateDir::open(dir.path(), "conn.log", "zeek").unwrap();
        state
            .save(&Saved {
                format: STATE_FORMAT.into(),
                version: STATE_VERSION,
                input: "conn.log".into(),
                input_format: "zeek".into(),
                position: None,
                output: None,
            })
            .unwrap();
        drop(state);
        let err = StateDir::open(dir.path(), "eve.json", "suricata").unwrap_err();
        assert!(err.to_string().contains("its own --state"), "{err}");
        std::fs::write(dir.path().join(STATE_FILE), b"{not json").unwrap();
        let err = StateDir::open(dir.path(), "conn.log", "zeek").unwrap_err();
        assert!(err.to_string().contains("unreadable"), "{err}");
    }
}
