//! A whole log folder whose files are fuzzed: `entries.log`, then the
//! separator `@@ckp@@`, then `checkpoints.log`, written into a scratch
//! folder laid out like a log, then verified offline and opened read-only.
//! A torn tail is repaired, after which no torn tail may remain.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use fedsoc_audit::log::{CHECKPOINTS_FILE, ENTRIES_FILE};
use fedsoc_audit::{AuditError, AuditLog, repair, verify_dir};
use fedsoc_fuzz::{scratch, split_once};
use libfuzzer_sys::fuzz_target;

/// Between the two files in one input.
const SEPARATOR: &[u8] = b"@@ckp@@";

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| scratch::dir("audit_log"))
}

fuzz_target!(|data: &[u8]| {
    let (entries, checkpoints) = split_once(data, SEPARATOR);
    let dir = dir();
    scratch::file(dir, ENTRIES_FILE, entries);
    scratch::file(dir, CHECKPOINTS_FILE, checkpoints);
    // The key the seeds were signed with.
    let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]).verifying_key();
    let verified = verify_dir(dir, &key);
    if let Ok(log) = AuditLog::open_read_only(dir) {
        for e in log.entries() {
            let _ = e;
        }
        let n = log.len();
        if n > 0 {
            let _ = log.inclusion_proof(n - 1, n);
            let _ = log.consistency_proof(1, n);
        }
        if let Ok(report) = &verified {
            assert_eq!(report.root, log.root());
        }
    }
    if let Err(AuditError::TornTail { .. }) = verified {
        if repair(dir).is_ok() {
            let after = AuditLog::open_read_only(dir);
            assert!(
                !matches!(after, Err(AuditError::TornTail { .. })),
                "a torn tail survived repair: {:?}",
                after.err()
            );
        }
        for f in std::fs::read_dir(dir).expect("scratch folder").flatten() {
            if f.file_name().to_string_lossy().contains(".torn-") {
                let _ = std::fs::remove_file(f.path());
            }
        }
    }
});
