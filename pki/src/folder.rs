//! A PKI folder as the `fedsoc pki` commands keep it:
//!
//! - `ca.pem`, `ca.key`: the federation CA;
//! - `ID.pem`, `ID.key`: certificates issued to ids (keys owner-only);
//! - `issued.json`: every certificate issued ([`crate::index`]);
//! - `crl.pem`: every certificate revoked ([`crate::crl`]).
//!
//! Issuing and revoking hold a lock on the folder, so two commands run at
//! once cannot lose each other's index entries or revocations.

use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::crl::{RevocationList, RevocationReason, serial_hex};
use crate::files::{self, FolderLock};
use crate::index::{IssuanceIndex, IssuedRecord};
use crate::{CertificateAuthority, Identity, PkiError, Role, identity_from_der, tls};

/// File name of the CRL inside a PKI folder.
pub const CRL_FILE: &str = "crl.pem";

/// Ids whose `ID.pem` would overwrite the folder's own files.
const RESERVED_IDS: [&str; 2] = ["ca", "crl"];

/// A PKI folder; see the module documentation for its files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PkiDir {
    dir: PathBuf,
}

/// What `issue` wrote.
#[derive(Clone, Debug)]
pub struct IssuedFiles {
    pub record: IssuedRecord,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What `revoke` did.
#[derive(Clone, Debug)]
pub struct RevokeOutcome {
    pub id: String,
    /// Serials this call added to the CRL.
    pub revoked: Vec<String>,
    /// Serials of `id` that the CRL already listed.
    pub already_revoked: Vec<String>,
    /// Number of the CRL now in force.
    pub crl_number: u64,
    pub crl: PathBuf,
}

impl PkiDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        PkiDir { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn crl_path(&self) -> PathBuf {
        self.dir.join(CRL_FILE)
    }

    pub fn load_ca(&self) -> Result<CertificateAuthority, PkiError> {
        CertificateAuthority::load(&self.ca_cert_path(), &self.dir.join("ca.key"))
    }

    /// Issues `ID.pem`/`ID.key` valid for `days` from now, and records it
    /// in `issued.json`. Refuses to replace an existing ID.pem or ID.key
    /// unless `force`.
    pub fn issue(
        &self,
        identity: &Identity,
        hostnames: &[String],
        days: i64,
        force: bool,
    ) -> Result<IssuedFiles, PkiError> {
        let (not_before, not_after) = crate::authority::validity_from_now(days)?;
        self.issue_with_validity(identity, hostnames, not_before, not_after, force)
    }

    /// [`PkiDir::issue`] with an explicit validity window.
    pub fn issue_with_validity(
        &self,
        identity: &Identity,
        hostnames: &[String],
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
        force: bool,
    ) -> Result<IssuedFiles, PkiError> {
        let id = identity.id.as_str();
        if RESERVED_IDS.contains(&id.to_ascii_lowercase().as_str()) {
            return Err(PkiError::ReservedId(id.to_string()));
        }
        let _lock = FolderLock::acquire(&self.dir)?;
        let ca = self.load_ca()?;
        let ca_expiry = ca.not_after()?;
        if not_after > ca_expiry {
            return Err(PkiError::BadValidity(format!(
                "the certificate would outlive the CA, which expires at {}; choose fewer --days",
                rfc3339(ca_expiry)
            )));
        }
        let cert = self.dir.join(format!("{id}.pem"));
        let key = self.dir.join(format!("{id}.key"));
        if !force {
            for path in [&cert, &key] {
                if path.exists() {
                    return Err(PkiError::AlreadyIssued { path: path.clone() });
                }
            }
        }
        let issued = ca.issue_with_validity(identity, hostnames, not_before, not_after)?;
        let der = tls::first_certificate_der(&issued.cert_pem)
            .ok_or_else(|| PkiError::BadCertificate("issued PEM holds no certificate".into()))?;
        let (_, parsed) =
            X509Certificate::from_der(&der).map_err(|e| PkiError::BadCertificate(e.to_string()))?;
        let record = IssuedRecord {
            id: id.to_string(),
            role: identity.role.to_string(),
            serial: serial_hex(parsed.raw_serial()),
            fingerprint: issued.fingerprint()?,
            not_after: rfc3339(parsed.validity().not_after.to_datetime()),
            issued_at: rfc3339(OffsetDateTime::now_utc()),
        };
        issued.save(&self.dir, id)?;
        let mut index = IssuanceIndex::load(&self.dir)?;
        index.certificates.push(record.clone());
        index.save(&self.dir)?;
        Ok(IssuedFiles { record, cert, key })
    }

    /// The CRL in force, verified against the CA; the empty list when the
    /// folder has none yet.
    pub fn revocation_list(&self) -> Result<RevocationList, PkiError> {
        let path = self.crl_path();
        if !path.exists() {
            return Ok(RevocationList::empty());
        }
        let bytes = std::fs::read(&path).map_err(|source| PkiError::Read {
            path: path.clone(),
            source,
        })?;
        let ca_pem = files::read_text(&self.ca_cert_path())?;
        RevocationList::parse_verified(&bytes, &ca_pem).map_err(|reason| PkiError::BadCrl {
            path,
            reason: format!("{reason}; refusing to replace it (move it away to start a new list)"),
        })
    }

    /// Signs the CRL in force anew: the same revocations, the next CRL
    /// number (at least `at_least`) and a `nextUpdate` `days` from now.
    /// In a folder without `crl.pem` this writes the first, empty list
    /// (#1): `fedsoc pki init` does, so a federation enforces a list from
    /// its first start. Readers refuse a list past its `nextUpdate`, so
    /// this is the renewal to run before it runs out (`fedsoc pki crl`).
    pub fn sign_crl(&self, days: i64, at_least: u64) -> Result<RevocationList, PkiError> {
        let validity = crl_validity(days)?;
        let _lock = FolderLock::acquire(&self.dir)?;
        let ca = self.load_ca()?;
        let current = self.revocation_list()?;
        let (next, pem) = current.extend_and_sign_with(
            &ca,
            &[],
            RevocationReason::Unspecified,
            validity,
            at_least,
        )?;
        files::write_atomic(&self.crl_path(), pem.as_bytes())?;
        Ok(next)
    }

    /// Revokes every certificate issued to `id` and rewrites `crl.pem`,
    /// keeping everything revoked before.
    pub fn revoke(&self, id: &str, reason: RevocationReason) -> Result<RevokeOutcome, PkiError> {
        self.revoke_with(id, reason, crate::crl::CRL_VALIDITY_DAYS)
    }

    /// [`PkiDir::revoke`], the new list current for `days`.
    pub fn revoke_with(
        &self,
        id: &str,
        reason: RevocationReason,
        days: i64,
    ) -> Result<RevokeOutcome, PkiError> {
        let validity = crl_validity(days)?;
        Identity::new(Role::Participant, id)?; // same id rules as issuing
        let _lock = FolderLock::acquire(&self.dir)?;
        let ca = self.load_ca()?;
        let serials = self.serials_of(id)?;
        let current = self.revocation_list()?;
        let (already_revoked, revoked): (Vec<String>, Vec<String>) = serials
            .into_iter()
            .partition(|serial| current.find(serial).is_some());
        let crl = self.crl_path();
        if revoked.is_empty() {
            return Ok(RevokeOutcome {
                id: id.to_string(),
                revoked,
                already_revoked,
                crl_number: current.number,
                crl,
            });
        }
        let (next, pem) = current.extend_and_sign_with(&ca, &revoked, reason, validity, 0)?;
        files::write_atomic(&crl, pem.as_bytes())?;
        Ok(RevokeOutcome {
            id: id.to_string(),
            revoked,
            already_revoked,
            crl_number: next.number,
            crl,
        })
    }

    /// Serials issued to `id`: from the index, or for a folder that
    /// predates it, from `ID.pem` when this CA signed it.
    fn serials_of(&self, id: &str) -> Result<Vec<String>, PkiError> {
        let index = IssuanceIndex::load(&self.dir)?;
        let mut serials: Vec<String> = index.for_id(id).map(|r| r.serial.clone()).collect();
        if let Some(serial) = self.serial_on_disk(id)
            && !serials.contains(&serial)
        {
            serials.push(serial);
        }
        if serials.is_empty() {
            let mut known = index.ids();
            known.extend(self.ids_on_disk());
            known.sort();
            known.dedup();
            return Err(PkiError::UnknownId {
                id: id.to_string(),
                known,
            });
        }
        Ok(serials)
    }

    /// The serial of `ID.pem` if it is a fedsoc certificate for `id`.
    fn serial_on_disk(&self, id: &str) -> Option<String> {
        let pem = files::read_text(&self.dir.join(format!("{id}.pem"))).ok()?;
        let der = tls::first_certificate_der(&pem)?;
        if identity_from_der(&der).ok()?.id != id {
            return None;
        }
        let (_, cert) = X509Certificate::from_der(&der).ok()?;
        Some(serial_hex(cert.raw_serial()))
    }

    /// Ids with an `ID.pem` in the folder.
    fn ids_on_disk(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let stem = name.strip_suffix(".pem")?.to_string();
                (!RESERVED_IDS.contains(&stem.as_str()) && self.serial_on_disk(&stem).is_some())
                    .then_some(stem)
            })
            .collect()
    }
}

/// How long a CRL signed now stays current; at least a day.
fn crl_validity(days: i64) -> Result<time::Duration, PkiError> {
    if !(1..=3650).contains(&days) {
        return Err(PkiError::BadValidity(format!(
            "a CRL must stay current for 1 to 3650 days, not {days}"
        )));
    }
    Ok(time::Duration::days(days))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}
