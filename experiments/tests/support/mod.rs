//! Helpers the integration tests share: forging a coordinator's audit log.

use std::path::Path;

use fedsoc_audit::AuditLog;
use fedsoc_coordinator::trail;

/// Writes `from`'s entries into a new log at `to`, signed with the
/// coordinator's own key (from `federation_dir/pki`), after `edit` changed
/// their bodies: what a coordinator that lies in its log would write. The
/// blobs are copied to `to/blobs`. Cosignatures are left out: they name the
/// original log's checkpoints.
pub fn rewrite_log(
    from: &Path,
    to: &Path,
    federation_dir: &Path,
    mut edit: impl FnMut(&str, &mut serde_json::Value),
) {
    let source = AuditLog::open_read_only(from).unwrap();
    copy_dir(&from.join("blobs"), &to.join("blobs"));
    let key = fedsoc_pki::load_signing_key(&federation_dir.join("pki/coordinator.key")).unwrap();
    let mut log = AuditLog::open_or_create(to, source.origin(), key).unwrap();
    let entries: Vec<_> = source.entries().map(Result::unwrap).collect();
    for entry in entries {
        if entry.kind == trail::kind::CHECKPOINT_COSIGNED {
            continue;
        }
        let mut body: serde_json::Value = entry.body_json().unwrap();
        edit(&entry.kind, &mut body);
        log.append_at(
            &entry.kind,
            serde_json::to_vec(&body).unwrap(),
            entry.timestamp_ms,
        )
        .unwrap();
    }
    log.checkpoint(fedsoc_audit::now_ms()).unwrap();
}

/// Copies the folder `from` into `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
