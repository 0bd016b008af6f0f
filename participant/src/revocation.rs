//! Holding the coordinator to the federation's CRL, sans-IO.
//!
//! The coordinator sends the CA-signed CRL with its Welcome and with every
//! task. The participant does not take its word for it: it checks the CA's
//! signature itself, refuses a list past its `nextUpdate`, and refuses one
//! numbered below the highest it has accepted before, which it keeps in its
//! state folder ([`fedsoc_pki::floor::CRL_FLOOR_FILE`], replaced atomically
//! through the storage layer). A coordinator therefore cannot withhold a
//! revocation by sending an older list, nor by sending none. The agent then
//! refuses a coordinator whose own certificate the list names, and a secure
//! round whose roster holds a revoked member ([`crate::secure`]).

use std::path::Path;

use fedsoc_durable::Disk;
use fedsoc_pki::floor::CRL_FLOOR_FILE;
use fedsoc_pki::{CrlFloor, PkiError, RevocationList};
use time::OffsetDateTime;

/// Where the list being checked came from, in messages.
const FROM_COORDINATOR: &str = "the CRL the coordinator sent";

/// Why a CRL from the coordinator was refused.
#[derive(Debug, thiserror::Error)]
pub enum CrlRefusal {
    #[error(
        "the coordinator sent no revocation list: this participant requires the federation's \
         CA-signed CRL with the Welcome and every task. The coordinator needs a fedsoc version \
         that sends it and a crl.pem (`fedsoc pki init` writes one; `fedsoc pki crl --dir <PKI \
         folder>` signs one for an older folder)"
    )]
    Missing,
    #[error(
        "the revocation list the coordinator sent does not verify against the federation CA \
         ({0}): the coordinator may be compromised"
    )]
    Unverified(String),
    /// Past its nextUpdate: the coordinator's operator must renew it.
    #[error(transparent)]
    Stale(PkiError),
    /// Older than one accepted before.
    #[error(transparent)]
    RolledBack(PkiError),
    /// The floor could not be recorded.
    #[error("cannot record the CRL number: {0}")]
    Storage(PkiError),
}

/// The federation CA and the highest CRL number accepted so far.
#[derive(Debug)]
pub struct CrlKeeper {
    ca_pem: String,
    floor: CrlFloor,
}

impl CrlKeeper {
    /// A keeper whose floor lives in `state_dir` (in memory without one).
    pub fn open(
        ca_pem: &str,
        state_dir: Option<&Path>,
        disk: Disk,
        participant: &str,
    ) -> Result<Self, PkiError> {
        let holder = format!("participant {participant}");
        let floor = match state_dir {
            Some(dir) => {
                disk.create_dir_all(dir).map_err(|source| PkiError::Write {
                    path: dir.to_path_buf(),
                    source,
                })?;
                CrlFloor::open(&dir.join(CRL_FLOOR_FILE), disk, &holder)?
            }
            None => CrlFloor::in_memory(&holder),
        };
        Ok(CrlKeeper {
            ca_pem: ca_pem.to_string(),
            floor,
        })
    }

    /// Highest CRL number accepted so far (0: none).
    pub fn floor(&self) -> u64 {
        self.floor.highest()
    }

    /// Checks `der` (signature, freshness at `now`, floor) and accepts it,
    /// recording its number when it is the highest yet.
    pub fn admit(&mut self, der: &[u8], now: OffsetDateTime) -> Result<RevocationList, CrlRefusal> {
        if der.is_empty() {
            return Err(CrlRefusal::Missing);
        }
        let list =
            RevocationList::parse_verified(der, &self.ca_pem).map_err(CrlRefusal::Unverified)?;
        list.check_current(now, FROM_COORDINATOR)
            .map_err(CrlRefusal::Stale)?;
        self.floor
            .admit(&list, FROM_COORDINATOR)
            .map_err(|e| match e {
                e @ PkiError::CrlRollback { .. } => CrlRefusal::RolledBack(e),
                e => CrlRefusal::Storage(e),
            })?;
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedsoc_pki::{CertificateAuthority, RevocationReason, crl::crl_der};

    fn signed(ca: &CertificateAuthority, number: u64) -> Vec<u8> {
        let (_, pem) = RevocationList {
            number: number - 1,
            ..RevocationList::empty()
        }
        .extend_and_sign(ca, &[], RevocationReason::Unspecified)
        .unwrap();
        crl_der(pem.as_bytes()).unwrap()
    }

    #[test]
    fn the_floor_is_kept_across_a_restart_and_foreign_or_missing_lists_are_refused() {
        let ca = CertificateAuthority::generate("keeper").unwrap();
        let state = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let open = || CrlKeeper::open(ca.cert_pem(), Some(state.path()), Disk::real(), "soc-ee");
        let mut keeper = open().unwrap();
        assert!(matches!(keeper.admit(&[], now), Err(CrlRefusal::Missing)));
        let other = CertificateAuthority::generate("keeper").unwrap();
        let err = keeper.admit(&signed(&other, 9), now).unwrap_err();
        assert!(matches!(err, CrlRefusal::Unverified(_)), "{err}");
        assert_eq!(keeper.floor(), 0, "a foreign list raises nothing");
        keeper.admit(&signed(&ca, 3), now).unwrap();
        keeper.admit(&signed(&ca, 3), now).unwrap();

        let mut reopened = open().unwrap();
        assert_eq!(reopened.floor(), 3);
        let err = reopened.admit(&signed(&ca, 2), now).unwrap_err();
        assert!(matches!(err, CrlRefusal::RolledBack(_)), "{err}");
        assert!(err.to_string().contains("participant soc-ee"), "{err}");
        let err = reopened
            .admit(&signed(&ca, 4), now + time::Duration::days(31))
            .unwrap_err();
        assert!(matches!(err, CrlRefusal::Stale(_)), "{err}");
        assert_eq!(reopened.floor(), 3, "a stale list raises nothing");
    }
}
