//! The highest CRL number a process has enforced, kept on disk.
//!
//! A CRL is only as good as its freshness: an older list signed by the same
//! CA verifies just as well, and may predate a revocation. Whoever enforces
//! CRLs (the coordinator, each participant) therefore remembers the highest
//! CRL number it has accepted and refuses anything lower, across restarts.
//! Deleting `crl.pem` or restoring an older copy cannot un-revoke anyone.
//!
//! The record is a small JSON file replaced atomically through the storage
//! layer ([`fedsoc_durable::Disk`]), and raised before the list it admits is
//! used, so a crash cannot leave a list in force that the record does not
//! cover.

use std::path::{Path, PathBuf};

use fedsoc_durable::Disk;
use serde::{Deserialize, Serialize};

use crate::{PkiError, RevocationList};

/// File name of the record in a state folder.
pub const CRL_FLOOR_FILE: &str = "crl-floor.json";

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    highest_crl_number: u64,
}

/// The highest CRL number accepted so far; see the module documentation.
#[derive(Debug)]
pub struct CrlFloor {
    highest: u64,
    /// Where the record lives; `None`: in memory only.
    store: Option<(PathBuf, Disk)>,
    /// Who holds it, for messages ("this coordinator", "participant x").
    holder: String,
}

impl CrlFloor {
    /// A floor in memory only (tests, processes without a state folder).
    pub fn in_memory(holder: &str) -> Self {
        CrlFloor {
            highest: 0,
            store: None,
            holder: holder.to_string(),
        }
    }

    /// The floor recorded at `path` (0 when the file does not exist yet).
    pub fn open(path: &Path, disk: Disk, holder: &str) -> Result<Self, PkiError> {
        let highest = match std::fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice::<Record>(&bytes)
                    .map_err(|e| PkiError::BadCrlFloor {
                        path: path.to_path_buf(),
                        reason: e.to_string(),
                    })?
                    .highest_crl_number
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(source) => {
                return Err(PkiError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Ok(CrlFloor {
            highest,
            store: Some((path.to_path_buf(), disk)),
            holder: holder.to_string(),
        })
    }

    /// The highest CRL number accepted so far (0: none).
    pub fn highest(&self) -> u64 {
        self.highest
    }

    /// Accepts `list` if its number is not below the floor, raising (and
    /// first recording) the floor when it is higher. `source` names where
    /// the list came from, for the refusal.
    pub fn admit(&mut self, list: &RevocationList, source: &str) -> Result<(), PkiError> {
        if list.number < self.highest {
            return Err(PkiError::CrlRollback {
                origin: source.to_string(),
                number: list.number,
                floor: self.highest,
                holder: self.holder.clone(),
                record: self.store.as_ref().map_or_else(
                    || "this process's memory".to_string(),
                    |(path, _)| path.display().to_string(),
                ),
            });
        }
        if list.number > self.highest {
            if let Some((path, disk)) = &self.store {
                let json = serde_json::to_vec_pretty(&Record {
                    highest_crl_number: list.number,
                })
                .map_err(|e| PkiError::BadCrlFloor {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                disk.replace(path, &json)
                    .map_err(|source| PkiError::Write {
                        path: path.clone(),
                        source,
                    })?;
            }
            self.highest = list.number;
        }
        Ok(())
    }
}
