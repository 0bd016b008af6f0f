//! `issued.json`: every certificate a PKI folder's CA issued.
//!
//! A CRL names serials, an operator names ids; the index maps one to the
//! other so `fedsoc pki revoke ID` finds every serial ever issued to ID,
//! including ones whose files were since replaced.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{PkiError, files};

/// File name of the index inside a PKI folder.
pub const INDEX_FILE: &str = "issued.json";

/// One issued certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedRecord {
    pub id: String,
    pub role: String,
    /// Lowercase hex, see [`crate::crl::serial_hex`].
    pub serial: String,
    /// SHA-256 of the certificate DER, hex.
    pub fingerprint: String,
    /// RFC 3339.
    pub not_after: String,
    /// RFC 3339.
    pub issued_at: String,
}

/// The index file's content.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuanceIndex {
    pub certificates: Vec<IssuedRecord>,
}

impl IssuanceIndex {
    /// Reads `dir/issued.json`; a folder without one has issued nothing yet
    /// (or predates the index).
    pub fn load(dir: &Path) -> Result<Self, PkiError> {
        let path = dir.join(INDEX_FILE);
        if !path.exists() {
            return Ok(IssuanceIndex::default());
        }
        let text = files::read_text(&path)?;
        serde_json::from_str(&text).map_err(|e| PkiError::BadIndex {
            path,
            reason: e.to_string(),
        })
    }

    /// Replaces `dir/issued.json` atomically.
    pub fn save(&self, dir: &Path) -> Result<(), PkiError> {
        let path: PathBuf = dir.join(INDEX_FILE);
        let mut text = serde_json::to_string_pretty(self).map_err(|e| PkiError::BadIndex {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        text.push('\n');
        files::write_atomic(&path, text.as_bytes())
    }

    /// Every certificate issued to `id`, oldest first.
    pub fn for_id<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a IssuedRecord> + 'a {
        self.certificates.iter().filter(move |r| r.id == id)
    }

    pub fn by_serial(&self, serial: &str) -> Option<&IssuedRecord> {
        self.certificates.iter().find(|r| r.serial == serial)
    }

    /// Distinct ids, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.certificates.iter().map(|r| r.id.clone()).collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_index_is_empty_and_saved_index_reloads() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            IssuanceIndex::load(dir.path()).unwrap(),
            IssuanceIndex::default()
        );
        let record = IssuedRecord {
            id: "soc-ee".into(),
            role: "participant".into(),
            serial: "4001".into(),
            fingerprint: "ab".into(),
            not_after: "2030-01-01T00:00:00Z".into(),
            issued_at: "2029-01-01T00:00:00Z".into(),
        };
        let index = IssuanceIndex {
            certificates: vec![record.clone()],
        };
        index.save(dir.path()).unwrap();
        let read = IssuanceIndex::load(dir.path()).unwrap();
        assert_eq!(read, index);
        assert_eq!(read.ids(), vec!["soc-ee".to_string()]);
        assert_eq!(read.by_serial("4001"), Some(&record));

        std::fs::write(dir.path().join(INDEX_FILE), "{").unwrap();
        let err = IssuanceIndex::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains(INDEX_FILE), "{err}");
    }
}
