//! The federation's revocation list as the coordinator enforces it and
//! hands it on.
//!
//! The coordinator refuses to start without `crl.pem`, with a list past
//! its `nextUpdate`, or with one numbered below the highest it has ever
//! enforced (kept in its storage folder, [`CRL_FLOOR_FILE`]): otherwise
//! deleting the file or restoring an older copy before a restart would
//! un-revoke everyone. Each round takes the list in force again (the file
//! is followed without a restart, see [`fedsoc_pki::Revocations`]), refuses
//! to run on a stale one, raises the recorded floor when the list is newer,
//! and sends its CA-signed bytes with every task, so that participants can
//! check the roster and this coordinator's own certificate themselves.

use std::sync::{Arc, Mutex, MutexGuard};

use fedsoc_pki::floor::CRL_FLOOR_FILE;
use fedsoc_pki::{CrlFloor, PkiError, RevocationList, Revocations};
use time::OffsetDateTime;

use crate::error::CoordinatorError;
use crate::store::Store;

/// The CRL in force, held to freshness and to the recorded floor.
pub struct CrlGate {
    revocations: Arc<Revocations>,
    floor: Mutex<CrlFloor>,
    /// Our own certificate (DER): a coordinator whose key is revoked stops
    /// running rounds rather than sign checkpoints with it.
    own_certificate: Arc<Vec<u8>>,
}

impl std::fmt::Debug for CrlGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrlGate")
            .field("crl", &self.revocations.path())
            .field("floor", &self.lock().highest())
            .finish()
    }
}

impl CrlGate {
    /// Checks the CRL at start-up (present, current, not below the floor
    /// recorded in `store`, not revoking our own certificate) and records
    /// its number.
    pub fn open(
        revocations: Arc<Revocations>,
        store: &Store,
        own_certificate: Arc<Vec<u8>>,
    ) -> Result<Self, CoordinatorError> {
        let floor = CrlFloor::open(
            &store.dir().join(CRL_FLOOR_FILE),
            store.disk().clone(),
            "this coordinator",
        )
        .map_err(CoordinatorError::Crl)?;
        let gate = CrlGate {
            revocations,
            floor: Mutex::new(floor),
            own_certificate,
        };
        gate.admit_current()?;
        Ok(gate)
    }

    /// The signed CRL (DER) every task of the next round carries, after
    /// the same checks as at start-up; an error fails the round before
    /// anything is sent.
    pub fn for_round(&self) -> Result<Arc<Vec<u8>>, CoordinatorError> {
        self.admit_current().map(|(_, der)| der)
    }

    /// The signed CRL (DER) in force, for a Welcome; participants check it.
    pub fn current_der(&self) -> Vec<u8> {
        self.revocations
            .current()
            .map(|(_, der)| der.to_vec())
            .unwrap_or_default()
    }

    /// Highest CRL number enforced so far.
    pub fn floor(&self) -> u64 {
        self.lock().highest()
    }

    fn admit_current(&self) -> Result<(Arc<RevocationList>, Arc<Vec<u8>>), CoordinatorError> {
        let path = self.revocations.path();
        let (list, der) = self
            .revocations
            .current()
            .ok_or_else(|| PkiError::MissingCrl {
                path: path.to_path_buf(),
            })
            .map_err(CoordinatorError::Crl)?;
        let source = path.display().to_string();
        list.check_current(OffsetDateTime::now_utc(), &source)
            .map_err(CoordinatorError::Crl)?;
        self.lock()
            .admit(&list, &source)
            .map_err(CoordinatorError::Crl)?;
        list.check_certificate(&self.own_certificate)
            .map_err(|e| CoordinatorError::OwnCertificateRevoked(e.to_string()))?;
        Ok((list, der))
    }

    fn lock(&self) -> MutexGuard<'_, CrlFloor> {
        // The floor changes by single assignments: poison is moot.
        self.floor.lock().unwrap_or_else(|p| p.into_inner())
    }
}
