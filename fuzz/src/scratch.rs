//! One scratch folder per fuzzing process, reused across inputs: creating
//! a fresh temporary folder per input would dominate the run time.

use std::path::{Path, PathBuf};

/// `/dev/shm/fedsoc-fuzz-<pid>/<name>` (memory, so fsync is free), or
/// under `$TMPDIR` where there is no `/dev/shm`; created if missing. Call
/// it once per process (keep it in a `OnceLock`).
pub fn dir(name: &str) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = base
        .join(format!("fedsoc-fuzz-{}", std::process::id()))
        .join(name);
    std::fs::create_dir_all(&dir).expect("create scratch folder");
    dir
}

/// Writes `bytes` to `dir/name` and returns the path.
pub fn file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write scratch file");
    path
}
