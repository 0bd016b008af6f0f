//! Proving, without trusting the coordinator, who another member is.
//!
//! In secure aggregation each participant must check the key
//! advertisements of its neighbours. The coordinator forwards each
//! neighbour's certificate; [`verify_member`] checks it was signed by the
//! federation CA and is valid now, and yields its identity and Ed25519
//! public key. A coordinator cannot invent members: it holds no CA key.

use std::collections::HashMap;
use std::sync::Mutex;

use ed25519_dalek::pkcs8::DecodePrivateKey;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{ASN1Time, FromDer, X509Certificate};

use crate::{Identity, PkiError, Role, files, identity_from_der, tls};

/// OID of Ed25519 (RFC 8410).
const ED25519_OID: &str = "1.3.101.112";

/// A member whose certificate checked out against the federation CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedMember {
    pub identity: Identity,
    pub ed25519_public: [u8; 32],
}

/// Checks `cert_der` against the CA certificate in `ca_pem`.
pub fn verify_member(ca_pem: &str, cert_der: &[u8]) -> Result<VerifiedMember, PkiError> {
    MemberVerifier::new(ca_pem)?
        .check(cert_der, ASN1Time::now())
        .map(|(member, _)| member)
}

/// Most certificates a [`MemberVerifier`] remembers; past it, it forgets
/// them all and starts over.
const CACHE_LIMIT: usize = 4096;

/// [`verify_member`] for every round: the same members come back round
/// after round, so a certificate that checked out is remembered by its
/// SHA-256 until it expires, and a round with N members costs N hashes
/// instead of N signature checks.
pub struct MemberVerifier {
    ca_der: Vec<u8>,
    /// SHA-256 of a verified certificate → the member and its expiry (Unix s).
    verified: Mutex<HashMap<[u8; 32], (VerifiedMember, i64)>>,
}

impl std::fmt::Debug for MemberVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberVerifier")
            .field("remembered", &self.lock().len())
            .finish()
    }
}

impl MemberVerifier {
    pub fn new(ca_pem: &str) -> Result<Self, PkiError> {
        let ca_der = tls::first_certificate_der(ca_pem)
            .ok_or_else(|| PkiError::BadCertificate("the CA PEM holds no certificate".into()))?;
        X509Certificate::from_der(&ca_der)
            .map_err(|e| PkiError::BadCertificate(format!("CA certificate: {e}")))?;
        Ok(MemberVerifier {
            ca_der,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// Checks `cert_der` against the CA, or recalls that it did and that
    /// the certificate has not expired since.
    pub fn verify(&self, cert_der: &[u8]) -> Result<VerifiedMember, PkiError> {
        let digest: [u8; 32] = Sha256::digest(cert_der).into();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let recalled = self
            .lock()
            .get(&digest)
            .filter(|(_, not_after)| now < *not_after)
            .map(|(member, _)| member.clone());
        if let Some(member) = recalled {
            return Ok(member);
        }
        let (member, not_after) = self.check(cert_der, ASN1Time::now())?;
        let mut verified = self.lock();
        if verified.len() >= CACHE_LIMIT {
            verified.clear();
        }
        verified.insert(digest, (member.clone(), not_after));
        Ok(member)
    }

    /// [`verify`](Self::verify) as of `at_unix_s` (seconds since the Unix epoch) rather than
    /// now, uncached: a record signed while a certificate was valid (an audit checkpoint in a
    /// model bundle) stays checkable after the certificate expires.
    pub fn verify_at(&self, cert_der: &[u8], at_unix_s: i64) -> Result<VerifiedMember, PkiError> {
        let at = ASN1Time::from_timestamp(at_unix_s).map_err(|_| {
            PkiError::BadValidity(format!(
                "{at_unix_s} is not a time a certificate can be checked at"
            ))
        })?;
        self.check(cert_der, at).map(|(member, _)| member)
    }

    /// The Ed25519 key that signs the coordinator's audit checkpoints: `cert_der` must chain to
    /// the CA, be valid now and name the coordinator role. One check for every reader of
    /// checkpoints (participants, model bundles).
    pub fn coordinator_key(
        &self,
        cert_der: &[u8],
    ) -> Result<ed25519_dalek::VerifyingKey, PkiError> {
        coordinator_key_of(self.verify(cert_der)?)
    }

    /// [`coordinator_key`](Self::coordinator_key) as of `at_unix_s` (see
    /// [`verify_at`](Self::verify_at)).
    pub fn coordinator_key_at(
        &self,
        cert_der: &[u8],
        at_unix_s: i64,
    ) -> Result<ed25519_dalek::VerifyingKey, PkiError> {
        coordinator_key_of(self.verify_at(cert_der, at_unix_s)?)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (VerifiedMember, i64)>> {
        // Every update is a single insert or clear: poison is moot.
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The full check; also returns the certificate's expiry.
    fn check(&self, cert_der: &[u8], at: ASN1Time) -> Result<(VerifiedMember, i64), PkiError> {
        let (_, ca) = X509Certificate::from_der(&self.ca_der)
            .map_err(|e| PkiError::BadCertificate(format!("CA certificate: {e}")))?;
        let (_, cert) = X509Certificate::from_der(cert_der)
            .map_err(|e| PkiError::BadCertificate(e.to_string()))?;
        cert.verify_signature(Some(ca.public_key()))
            .map_err(|_| PkiError::BadCertificate("not signed by the federation CA".into()))?;
        if cert.tbs_certificate.issuer != ca.tbs_certificate.subject {
            return Err(PkiError::BadCertificate(
                "issuer is not the federation CA".into(),
            ));
        }
        if !cert.validity().is_valid_at(at) {
            return Err(PkiError::BadCertificate(format!(
                "expired or not yet valid at {at} (valid {} to {}); issue a new certificate",
                cert.validity().not_before,
                cert.validity().not_after
            )));
        }
        let spki = cert.public_key();
        if spki.algorithm.algorithm.to_id_string() != ED25519_OID {
            return Err(PkiError::BadCertificate(
                "its key is not Ed25519; issue it with `fedsoc pki issue`".into(),
            ));
        }
        let ed25519_public: [u8; 32] = spki
            .subject_public_key
            .data
            .as_ref()
            .try_into()
            .map_err(|_| PkiError::BadCertificate("malformed Ed25519 public key".into()))?;
        let member = VerifiedMember {
            identity: identity_from_der(cert_der)?,
            ed25519_public,
        };
        Ok((member, cert.validity().not_after.timestamp()))
    }
}

/// The checkpoint key of a verified member that must be the coordinator.
fn coordinator_key_of(member: VerifiedMember) -> Result<ed25519_dalek::VerifyingKey, PkiError> {
    if member.identity.role != Role::Coordinator {
        return Err(PkiError::WrongRole {
            expected: Role::Coordinator,
            found: member.identity.role,
            id: member.identity.id,
        });
    }
    ed25519_dalek::VerifyingKey::from_bytes(&member.ed25519_public)
        .map_err(|e| PkiError::BadCertificate(format!("invalid Ed25519 public key: {e}")))
}

/// The Ed25519 signing key in a PKCS#8 PEM file (our certificate's key).
pub fn load_signing_key(path: &std::path::Path) -> Result<ed25519_dalek::SigningKey, PkiError> {
    let pem = files::read_text(path)?;
    ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).map_err(|e| PkiError::BadPem {
        path: path.to_path_buf(),
        reason: format!("not an Ed25519 PKCS#8 key ({e}); issue keys with `fedsoc pki issue`"),
    })
}

/// DER of the first certificate in a PEM file.
pub fn load_certificate_der(path: &std::path::Path) -> Result<Vec<u8>, PkiError> {
    tls::first_certificate_der(&files::read_text(path)?).ok_or_else(|| PkiError::BadPem {
        path: path.to_path_buf(),
        reason: "no CERTIFICATE block".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CertificateAuthority, Role};
    use ed25519_dalek::Signer;

    #[test]
    fn member_verifies_against_its_ca_only_and_key_matches() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::generate("a").unwrap();
        let who = Identity::new(Role::Participant, "soc-ee").unwrap();
        let issued = ca.issue(&who, &[]).unwrap();
        issued.save(dir.path(), "soc-ee").unwrap();
        let der = load_certificate_der(&dir.path().join("soc-ee.pem")).unwrap();
        let member = verify_member(ca.cert_pem(), &der).unwrap();
        assert_eq!(member.identity, who);

        let signing = load_signing_key(&dir.path().join("soc-ee.key")).unwrap();
        assert_eq!(signing.verifying_key().to_bytes(), member.ed25519_public);
        let sig = signing.sign(b"hello");
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&member.ed25519_public).unwrap();
        vk.verify_strict(b"hello", &sig).unwrap();

        let other = CertificateAuthority::generate("b").unwrap();
        let err = verify_member(other.cert_pem(), &der).unwrap_err();
        assert!(err.to_string().contains("federation CA"), "{err}");
        assert!(verify_member(ca.cert_pem(), b"garbage").is_err());
    }

    #[test]
    fn the_coordinator_key_needs_the_coordinator_role_and_a_time_it_was_valid() {
        let ca = CertificateAuthority::generate("a").unwrap();
        let coordinator = ca
            .issue(&Identity::new(Role::Coordinator, "coord").unwrap(), &[])
            .unwrap();
        let participant = ca
            .issue(&Identity::new(Role::Participant, "soc-ee").unwrap(), &[])
            .unwrap();
        let der = |pem: &str| tls::first_certificate_der(pem).unwrap();
        let verifier = MemberVerifier::new(ca.cert_pem()).unwrap();
        let key = verifier
            .coordinator_key(&der(&coordinator.cert_pem))
            .unwrap();
        let signing = ed25519_dalek::SigningKey::from_pkcs8_pem(&coordinator.key_pem).unwrap();
        assert_eq!(key, signing.verifying_key());
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        assert_eq!(
            verifier
                .coordinator_key_at(&der(&coordinator.cert_pem), now)
                .unwrap(),
            key
        );
        assert!(matches!(
            verifier.coordinator_key(&der(&participant.cert_pem)),
            Err(PkiError::WrongRole { .. })
        ));
        // Long before it was issued, the certificate proves nothing.
        let err = verifier
            .coordinator_key_at(&der(&coordinator.cert_pem), now - 10 * 365 * 86_400)
            .unwrap_err();
        assert!(err.to_string().contains("not yet valid"), "{err}");
    }

    #[test]
    fn the_verifier_remembers_only_certificates_that_checked_out() {
        let ca = CertificateAuthority::generate("a").unwrap();
        let other = CertificateAuthority::generate("b").unwrap();
        let who = Identity::new(Role::Participant, "soc-fr").unwrap();
        let dir = tempfile::tempdir().unwrap();
        ca.issue(&who, &[])
            .unwrap()
            .save(dir.path(), "ours")
            .unwrap();
        other
            .issue(&who, &[])
            .unwrap()
            .save(dir.path(), "theirs")
            .unwrap();
        let ours = load_certificate_der(&dir.path().join("ours.pem")).unwrap();
        let theirs = load_certificate_der(&dir.path().join("theirs.pem")).unwrap();

        let verifier = MemberVerifier::new(ca.cert_pem()).unwrap();
        let first = verifier.verify(&ours).unwrap();
        assert_eq!(verifier.verify(&ours).unwrap(), first);
        assert_eq!(verifier.lock().len(), 1);
        for _ in 0..2 {
            let err = verifier.verify(&theirs).unwrap_err();
            assert!(err.to_string().contains("federation CA"), "{err}");
        }
        assert_eq!(verifier.lock().len(), 1);
        assert!(MemberVerifier::new("no pem here").is_err());
    }
}
