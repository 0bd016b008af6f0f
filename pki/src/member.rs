//! Proving, without trusting the coordinator, who another member is.
//!
//! In secure aggregation each participant must check the key
//! advertisements of its neighbours. The coordinator forwards each
//! neighbour's certificate; [`verify_member`] checks it was signed by the
//! federation CA and is valid now, and yields its identity and Ed25519
//! public key. A coordinator cannot invent members: it holds no CA key.

use ed25519_dalek::pkcs8::DecodePrivateKey;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{Identity, PkiError, identity_from_der, tls};

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
    let ca_der = tls::first_certificate_der(ca_pem)
        .ok_or_else(|| PkiError::BadCertificate("the CA PEM holds no certificate".into()))?;
    let (_, ca) = X509Certificate::from_der(&ca_der)
        .map_err(|e| PkiError::BadCertificate(format!("CA certificate: {e}")))?;
    let (_, cert) =
        X509Certificate::from_der(cert_der).map_err(|e| PkiError::BadCertificate(e.to_string()))?;
    cert.verify_signature(Some(ca.public_key()))
        .map_err(|_| PkiError::BadCertificate("not signed by the federation CA".into()))?;
    if cert.tbs_certificate.issuer != ca.tbs_certificate.subject {
        return Err(PkiError::BadCertificate(
            "issuer is not the federation CA".into(),
        ));
    }
    if !cert.validity().is_valid() {
        return Err(PkiError::BadCertificate(
            "expired or not yet valid; issue a new certificate".into(),
        ));
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
    Ok(VerifiedMember {
        identity: identity_from_der(cert_der)?,
        ed25519_public,
    })
}

/// The Ed25519 signing key in a PKCS#8 PEM file (our certificate's key).
pub fn load_signing_key(path: &std::path::Path) -> Result<ed25519_dalek::SigningKey, PkiError> {
    let pem = tls::read_text(path)?;
    ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).map_err(|e| PkiError::BadPem {
        path: path.to_path_buf(),
        reason: format!("not an Ed25519 PKCS#8 key ({e}); issue keys with `fedsoc pki issue`"),
    })
}

/// DER of the first certificate in a PEM file.
pub fn load_certificate_der(path: &std::path::Path) -> Result<Vec<u8>, PkiError> {
    tls::first_certificate_der(&tls::read_text(path)?).ok_or_else(|| PkiError::BadPem {
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
}
