//! Which files a flow source names: one file, a directory of rotated logs,
//! or a glob pattern.
//!
//! Sensors rotate their logs (Zeek hourly into date folders:
//! `2026-12-01/conn.00:00:00-01:00:00.log.gz`; Suricata `eve.json` into
//! `eve-<date>.json.gz`), so a participant names the folder or a pattern
//! rather than one file. The files are read in sorted path order, so the
//! same folder always yields the same rows in the same order (and the same
//! sample for a seed): Zeek's date folders and `HH:MM:SS` names sort
//! chronologically.

use std::path::{Path, PathBuf};

use crate::error::DatasetError;

/// The log family a flow source reads, which decides the file names a
/// directory is searched for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowFormat {
    Zeek,
    Suricata,
}

/// Endings of the files a directory search keeps.
const ENDINGS: [&str; 4] = [".log", ".log.gz", ".json", ".json.gz"];

impl FlowFormat {
    /// How the names of this format's logs start.
    fn prefix(self) -> &'static str {
        match self {
            FlowFormat::Zeek => "conn.",
            FlowFormat::Suricata => "eve",
        }
    }

    /// Whether a directory search keeps a file of this name.
    pub fn wants(self, name: &str) -> bool {
        name.starts_with(self.prefix()) && ENDINGS.iter().any(|e| name.ends_with(e))
    }

    /// The names a directory search keeps, for messages.
    pub fn described(self) -> String {
        let endings: Vec<String> = ENDINGS.iter().map(|e| format!("`{e}`")).collect();
        format!(
            "files whose name starts with `{}` and ends in {}",
            self.prefix(),
            endings.join(", ")
        )
    }
}

/// Whether `path` is a glob pattern rather than a plain path.
fn is_pattern(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

/// The files `path` names, in sorted order: the file itself; every
/// matching file under a directory (recursively, see
/// [`FlowFormat::wants`]); or every file a glob pattern matches (`*`, `?`,
/// `[…]`, `**` for any depth). Naming nothing is an error that says what
/// would have matched.
pub fn resolve(format: FlowFormat, path: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let shown = path.display().to_string();
    let mut files = if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    } else if path.is_dir() {
        let mut found = Vec::new();
        walk(format, path, &mut found)?;
        found
    } else if is_pattern(&shown) {
        let matches = glob::glob(&shown).map_err(|e| DatasetError::NoFiles {
            source_path: shown.clone(),
            reason: format!("is not a valid glob pattern ({e})"),
            fix: "write it like /var/log/zeek/*/conn.*.log.gz (`*`, `?`, `[…]`, `**`)".into(),
        })?;
        let mut found = Vec::new();
        for entry in matches {
            let entry = entry.map_err(|e| read_error(e.path(), e.error()))?;
            if entry.is_file() {
                found.push(entry);
            }
        }
        found
    } else {
        return Err(DatasetError::NoFiles {
            source_path: shown,
            reason: "does not exist".into(),
            fix: "name a log file, a directory of rotated logs, or a glob pattern such as \
                  /var/log/zeek/*/conn.*.log.gz"
                .into(),
        });
    };
    if files.is_empty() {
        return Err(DatasetError::NoFiles {
            source_path: shown,
            reason: "matches no file".into(),
            fix: if path.is_dir() {
                format!(
                    "a directory is searched (with its subfolders) for {}; \
                     name the files with a glob pattern if yours are named otherwise",
                    format.described()
                )
            } else {
                "check the pattern: a pattern matches files (not folders), e.g. \
                 /var/log/zeek/*/conn.*.log.gz"
                    .into()
            },
        });
    }
    files.sort();
    Ok(files)
}

/// Collects the wanted files under `dir`. Symbolic links to folders are
/// not followed, so a link loop cannot make the search endless.
fn walk(format: FlowFormat, dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), DatasetError> {
    let entries = std::fs::read_dir(dir).map_err(|e| read_error(dir, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| read_error(dir, &e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| read_error(&path, &e))?;
        if kind.is_dir() {
            walk(format, &path, found)?;
        } else if path.is_file() && format.wants(&entry.file_name().to_string_lossy()) {
            found.push(path);
        }
    }
    Ok(())
}

fn read_error(path: &Path, e: &std::io::Error) -> DatasetError {
    DatasetError::Read {
        file: path.display().to_string(),
        line: None,
        reason: format!("cannot list: {e} (check the folder's permissions)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_search_keeps_the_format_names() {
        for name in [
            "conn.log",
            "conn.00:00:00-01:00:00.log.gz",
            "conn.json",
            "conn.1.json.gz",
        ] {
            assert!(FlowFormat::Zeek.wants(name), "{name}");
        }
        for name in ["dns.log", "conn.log.bak", "conn-summary.log", "xconn.log"] {
            assert!(!FlowFormat::Zeek.wants(name), "{name}");
        }
        assert!(FlowFormat::Suricata.wants("eve.json"));
        assert!(FlowFormat::Suricata.wants("eve-2026-12-01.json.gz"));
        assert!(!FlowFormat::Suricata.wants("fast.log"));
    }

    #[test]
    fn nothing_named_says_what_would_match() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dns.log"), "x").unwrap();
        let e = resolve(FlowFormat::Zeek, dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("matches no file") && e.contains("`conn.`") && e.contains("`.log.gz`"),
            "{e}"
        );
        let pattern = dir.path().join("*/conn.*.log.gz");
        let e = resolve(FlowFormat::Zeek, &pattern).unwrap_err().to_string();
        assert!(
            e.contains(&pattern.display().to_string()) && e.contains("matches no file"),
            "{e}"
        );
        let e = resolve(FlowFormat::Suricata, &dir.path().join("nope.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
    }
}
