//! A bundle as a folder: [`Bundle::write`] and [`Bundle::read`].
//!
//! Writing builds the whole folder under a temporary name beside the target, syncs every file,
//! then renames it into place, so a reader never sees half a bundle. An existing folder is
//! replaced only when it holds nothing but bundle files: `--out` pointed at the wrong folder
//! must not delete it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Bundle;
use crate::error::BundleError;
use crate::format::{ENCODER_FILE, FILES, MODEL_FILE, PROVENANCE_FILE, THRESHOLD_FILE};

impl Bundle {
    /// The files and their bytes, in a fixed order.
    pub(crate) fn files(&self) -> Vec<(&'static str, &[u8])> {
        let mut files = vec![
            (PROVENANCE_FILE, self.provenance_json.as_slice()),
            (MODEL_FILE, self.model_safetensors.as_slice()),
            (ENCODER_FILE, self.encoder_json.as_slice()),
        ];
        if let Some(t) = &self.threshold_json {
            files.push((THRESHOLD_FILE, t.as_slice()));
        }
        files
    }

    /// Writes the bundle folder `dir` atomically (see the module documentation).
    pub fn write(&self, dir: &Path) -> Result<(), BundleError> {
        if dir.exists() {
            check_is_bundle_folder(dir)?;
        }
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dir
            .file_name()
            .ok_or_else(|| BundleError::NotABundleFolder {
                dir: dir.to_path_buf(),
                reason: "the path names no folder".into(),
            })?
            .to_string_lossy()
            .into_owned();
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let tmp = parent.join(format!(".{name}.tmp-{}-{stamp}", std::process::id()));
        let result = self
            .write_files(&tmp)
            .and_then(|()| replace(&tmp, dir, &parent));
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result
    }

    fn write_files(&self, tmp: &Path) -> Result<(), BundleError> {
        fs::create_dir(tmp).map_err(BundleError::io("create", tmp))?;
        for (file, bytes) in self.files() {
            let path = tmp.join(file);
            let mut f = fs::File::create(&path).map_err(BundleError::io("create", &path))?;
            f.write_all(bytes)
                .and_then(|()| f.sync_all())
                .map_err(BundleError::io("write", &path))?;
        }
        sync_dir(tmp)
    }

    /// Reads the bundle folder `dir`; nothing is verified.
    pub fn read(dir: &Path) -> Result<Bundle, BundleError> {
        let read = |file: &'static str| -> Result<Option<Vec<u8>>, BundleError> {
            let path = dir.join(file);
            match fs::read(&path) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(BundleError::io("read", path)(e)),
            }
        };
        if !dir.is_dir() {
            return Err(BundleError::Io {
                action: "open the bundle folder",
                path: dir.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a folder"),
            });
        }
        let required = |file: &'static str| {
            read(file)?.ok_or_else(|| BundleError::MissingFile {
                dir: dir.to_path_buf(),
                file,
            })
        };
        Ok(Bundle {
            provenance_json: required(PROVENANCE_FILE)?,
            model_safetensors: required(MODEL_FILE)?,
            encoder_json: required(ENCODER_FILE)?,
            threshold_json: read(THRESHOLD_FILE)?,
        })
    }
}

/// An existing `dir` may be replaced only if it is a bundle folder.
fn check_is_bundle_folder(dir: &Path) -> Result<(), BundleError> {
    let refuse = |reason: String| BundleError::NotABundleFolder {
        dir: dir.to_path_buf(),
        reason,
    };
    if !dir.is_dir() {
        return Err(refuse("it is a file".into()));
    }
    let mut has_provenance = false;
    for item in fs::read_dir(dir).map_err(BundleError::io("list", dir))? {
        let item = item.map_err(BundleError::io("list", dir))?;
        let name = item.file_name().to_string_lossy().into_owned();
        if !FILES.contains(&name.as_str()) {
            return Err(refuse(format!("it holds {name:?}")));
        }
        has_provenance |= name == PROVENANCE_FILE;
    }
    if !has_provenance {
        return Err(refuse(format!("it has no {PROVENANCE_FILE}")));
    }
    Ok(())
}

/// Moves the finished `tmp` folder to `dir`, replacing an old bundle there.
fn replace(tmp: &Path, dir: &Path, parent: &Path) -> Result<(), BundleError> {
    if dir.exists() {
        let old = PathBuf::from(format!("{}.old", tmp.display()));
        fs::rename(dir, &old).map_err(BundleError::io("move aside", dir))?;
        fs::rename(tmp, dir).map_err(BundleError::io("rename into place", dir))?;
        fs::remove_dir_all(&old).map_err(BundleError::io("remove", &old))?;
    } else {
        fs::rename(tmp, dir).map_err(BundleError::io("rename into place", dir))?;
    }
    sync_dir(parent)
}

fn sync_dir(dir: &Path) -> Result<(), BundleError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(BundleError::io("sync", dir))
}
