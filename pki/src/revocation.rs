//! Refusing revoked certificates in a running process, following the CRL
//! on disk without a restart.
//!
//! # When the CRL is re-read
//!
//! Every [`Revocations::check`] costs one `stat` of the CRL file. Its
//! length, modification time and (on Unix) inode and change time are
//! compared with the last read; any difference re-reads the file. A write
//! within the file system's timestamp granularity of our last read could
//! leave all of those unchanged, so while the file's timestamps are within
//! [`RACY_WINDOW`] of that read, each check also re-reads it and compares
//! a SHA-256 of the content (as git does for "racily clean" files). Once
//! the file has been quiet that long, checks are back to a single `stat`.
//!
//! # Failing closed
//!
//! A CRL that cannot be read, parsed or verified against the CA — or is
//! not newer than the one in force (a CRL number not higher, e.g. an old
//! copy restored over the current one) — is logged with
//! `tracing::error!` and the last good list stays in force. A CRL that
//! disappears after one was loaded is treated the same way: deleting the
//! file cannot un-revoke anyone. Only at start-up does a missing file mean
//! "nothing revoked yet"; a process that requires a list asks
//! [`Revocations::current`] and refuses `None` (the coordinator does).
//!
//! The list in force is kept with its signed bytes, so it can be handed
//! on (the coordinator sends it with every task) and checked by others
//! against the CA themselves.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::PkiError;
use crate::crl::{RevocationList, crl_der};

/// How long after a CRL was last modified its metadata is not trusted to
/// reveal a further change (coarse timestamps on some file systems).
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// Revoked serials of the federation CA, kept current with a CRL file.
/// Cheap to share: `check` takes `&self`; wrap it in an `Arc`.
pub struct Revocations {
    ca_pem: String,
    path: PathBuf,
    state: Mutex<State>,
}

struct State {
    /// What the file looked like at the last read (`None`: absent).
    seen: Option<Stamp>,
    /// When it was last read.
    read_at: SystemTime,
    /// SHA-256 of the content last read (zeros when absent).
    digest: [u8; 32],
    /// The last list that verified, in force until a newer one does.
    good: Arc<RevocationList>,
    /// Its DER as the CA signed it (empty before any file was loaded).
    good_der: Arc<Vec<u8>>,
    /// Whether `good` came from a file (then a missing file is an error).
    loaded: bool,
    /// Whether the last `stat` failed (other than "not found"), so the
    /// error is logged once rather than on every check.
    stat_failed: bool,
}

/// The metadata compared on every check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: u64,
    #[cfg(unix)]
    changed: (i64, i64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            #[cfg(unix)]
            inode: meta.ino(),
            #[cfg(unix)]
            changed: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// Whether a write after `read_at` could have left this stamp as is.
    fn racy(&self, read_at: SystemTime) -> bool {
        let latest = self.modified;
        #[cfg(unix)]
        let latest = {
            let (secs, nanos) = self.changed;
            let changed = u64::try_from(secs).ok().map(|s| {
                SystemTime::UNIX_EPOCH
                    + Duration::from_secs(s)
                    + Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
            });
            latest.max(changed)
        };
        match latest {
            Some(t) => t + RACY_WINDOW >= read_at,
            None => true,
        }
    }
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("Revocations")
            .field("crl", &self.path)
            .field("crl_number", &state.good.number)
            .field("revoked", &state.good.entries.len())
            .finish()
    }
}

impl Revocations {
    /// Starts following `crl_path`, whose CRL must be signed by the CA in
    /// `ca_pem`. A missing file means nothing is revoked yet; a present
    /// file that does not verify is an error.
    pub fn watch(ca_pem: &str, crl_path: &Path) -> Result<Self, PkiError> {
        crate::tls::first_certificate_der(ca_pem)
            .ok_or_else(|| PkiError::BadCertificate("the CA PEM holds no certificate".into()))?;
        let read_at = SystemTime::now();
        let (seen, digest, good, good_der, loaded) = match read(crl_path)? {
            None => (None, [0; 32], RevocationList::empty(), Vec::new(), false),
            Some((stamp, bytes)) => {
                let bad = |reason| PkiError::BadCrl {
                    path: crl_path.to_path_buf(),
                    reason,
                };
                let list = RevocationList::parse_verified(&bytes, ca_pem).map_err(bad)?;
                let der = crl_der(&bytes).map_err(bad)?;
                (Some(stamp), Sha256::digest(&bytes).into(), list, der, true)
            }
        };
        Ok(Revocations {
            ca_pem: ca_pem.to_string(),
            path: crl_path.to_path_buf(),
            state: Mutex::new(State {
                seen,
                read_at,
                digest,
                good: Arc::new(good),
                good_der: Arc::new(good_der),
                loaded,
                stat_failed: false,
            }),
        })
    }

    /// `Err(PkiError::Revoked)` if the CRL in force lists this
    /// certificate's serial. Re-reads the CRL first if it changed.
    /// Certificates that do not parse are refused too.
    pub fn check(&self, cert_der: &[u8]) -> Result<(), PkiError> {
        X509Certificate::from_der(cert_der).map_err(|e| PkiError::BadCertificate(e.to_string()))?;
        self.refresh().check_certificate(cert_der)
    }

    /// The list in force and its signed DER, after re-reading the file if
    /// it changed; `None` while no CRL file was ever loaded.
    pub fn current(&self) -> Option<(Arc<RevocationList>, Arc<Vec<u8>>)> {
        self.refresh();
        let state = self.lock();
        state
            .loaded
            .then(|| (state.good.clone(), state.good_der.clone()))
    }

    /// The file followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of the CRL in force (0: none loaded yet).
    pub fn crl_number(&self) -> u64 {
        self.lock().good.number
    }

    /// How many serials the CRL in force lists.
    pub fn revoked_count(&self) -> usize {
        self.lock().good.entries.len()
    }

    /// The list in force after re-reading the file if it may have changed.
    fn refresh(&self) -> Arc<RevocationList> {
        let mut state = self.lock();
        let stamp = match std::fs::metadata(&self.path) {
            Ok(meta) => Some(Stamp::of(&meta)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                if !state.stat_failed {
                    tracing::error!(crl = %self.path.display(), error = %e,
                        "cannot stat the CRL; the last good revocation list stays in force");
                }
                state.stat_failed = true;
                return state.good.clone();
            }
        };
        state.stat_failed = false;
        let unchanged =
            stamp == state.seen && state.seen.as_ref().is_none_or(|s| !s.racy(state.read_at));
        if !unchanged {
            self.reload(&mut state);
        }
        state.good.clone()
    }

    fn reload(&self, state: &mut State) {
        let read_at = SystemTime::now();
        let read = match read(&self.path) {
            Ok(read) => read,
            Err(e) => {
                tracing::error!(crl = %self.path.display(), error = %e,
                    "cannot read the CRL; the last good revocation list stays in force");
                return;
            }
        };
        let Some((stamp, bytes)) = read else {
            if state.seen.is_some() && state.loaded {
                tracing::error!(crl = %self.path.display(),
                    crl_number = state.good.number,
                    "the CRL file disappeared; the last good revocation list stays in force");
            }
            state.seen = None;
            state.read_at = read_at;
            state.digest = [0; 32];
            return;
        };
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        let same_content = digest == state.digest;
        state.seen = Some(stamp);
        state.read_at = read_at;
        state.digest = digest;
        if same_content {
            return;
        }
        match RevocationList::parse_verified(&bytes, &self.ca_pem) {
            Ok(list) if state.loaded && list.number <= state.good.number => {
                tracing::error!(crl = %self.path.display(), crl_number = list.number,
                    in_force = state.good.number,
                    "the CRL is not newer than the one in force (an old copy restored?); \
                     keeping the one in force; restart to accept it anyway");
            }
            Ok(list) => match crl_der(&bytes) {
                Ok(der) => {
                    tracing::info!(crl = %self.path.display(), crl_number = list.number,
                        revoked = list.entries.len(), "revocation list loaded");
                    state.good = Arc::new(list);
                    state.good_der = Arc::new(der);
                    state.loaded = true;
                }
                Err(reason) => {
                    tracing::error!(crl = %self.path.display(), %reason,
                        "the CRL cannot be re-encoded; the last good revocation list stays in force");
                }
            },
            Err(reason) => {
                tracing::error!(crl = %self.path.display(), %reason,
                    crl_number = state.good.number,
                    "the CRL does not verify; the last good revocation list stays in force");
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state consistent: poison is moot.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The file's stamp and content, or `None` when it does not exist. The
/// stamp is taken before reading, so a write during the read shows up as a
/// changed stamp at the next check.
fn read(path: &Path) -> Result<Option<(Stamp, Vec<u8>)>, PkiError> {
    let err = |source| PkiError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e)),
    };
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some((Stamp::of(&meta), bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CertificateAuthority, RevocationReason};

    #[test]
    fn a_recent_stamp_is_racy_and_an_old_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "x").unwrap();
        let stamp = Stamp::of(&std::fs::metadata(&path).unwrap());
        assert!(stamp.racy(SystemTime::now()));
        assert!(!stamp.racy(SystemTime::now() + RACY_WINDOW * 2));
    }

    /// A file system with coarse timestamps can rewrite a file without any
    /// metadata change; while the stamp is racy the content is compared.
    #[test]
    fn a_change_hidden_from_the_metadata_is_found_by_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::generate("racy").unwrap();
        let path = dir.path().join("crl.pem");
        let (first, pem) = RevocationList::empty()
            .extend_and_sign(&ca, &["4001".into()], RevocationReason::Unspecified)
            .unwrap();
        std::fs::write(&path, &pem).unwrap();
        let revocations = Revocations::watch(ca.cert_pem(), &path).unwrap();
        let (_, pem) = first
            .extend_and_sign(&ca, &["4002".into()], RevocationReason::Unspecified)
            .unwrap();
        std::fs::write(&path, &pem).unwrap();
        // Pretend the rewrite left the metadata exactly as it was.
        revocations.lock().seen = Some(Stamp::of(&std::fs::metadata(&path).unwrap()));
        assert_eq!(revocations.refresh().entries.len(), 2);
        assert_eq!(revocations.crl_number(), 2);
    }
}
