//! The federation certificate authority.
//!
//! One CA per federation signs every certificate: the coordinator's server
//! certificate and each participant's, data scientist's and auditor's client
//! certificate. The role and id go into the certificate (see [`crate::identity`]),
//! so the roster can be checked against what the CA signed, not against what a
//! peer claims.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::{Identity, PkiError, Role, tls};

/// How long an issued certificate is valid; the CA lives ten times as long.
pub const DEFAULT_VALIDITY_DAYS: i64 = 365;

/// A CA certificate and its signing key.
pub struct CertificateAuthority {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A freshly issued certificate and its private key, both PEM.
#[derive(Clone, Debug)]
pub struct IssuedCertificate {
    pub cert_pem: String,
    pub key_pem: String,
}

impl IssuedCertificate {
    /// Writes `<stem>.pem` and `<stem>.key` (the key readable by its owner only).
    pub fn save(&self, dir: &Path, stem: &str) -> Result<(), PkiError> {
        tls::write_public(&dir.join(format!("{stem}.pem")), &self.cert_pem)?;
        tls::write_private(&dir.join(format!("{stem}.key")), &self.key_pem)
    }

    /// SHA-256 of the certificate's DER, hex: what rosters and logs pin.
    pub fn fingerprint(&self) -> Result<String, PkiError> {
        fingerprint_pem(&self.cert_pem)
    }
}

impl CertificateAuthority {
    /// Creates a new CA for `federation`.
    pub fn generate(federation: &str) -> Result<Self, PkiError> {
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "fedsoc");
        name.push(DnType::CommonName, format!("fedsoc CA {federation}"));
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params, DEFAULT_VALIDITY_DAYS * 10);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(CertificateAuthority {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA saved by [`CertificateAuthority::save`].
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, PkiError> {
        let cert_pem = tls::read_text(cert_path)?;
        let key_pem = tls::read_text(key_path)?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| PkiError::BadPem {
            path: key_path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| PkiError::BadPem {
            path: cert_path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(CertificateAuthority { cert_pem, issuer })
    }

    /// Writes `ca.pem` and `ca.key` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), PkiError> {
        tls::write_public(&dir.join("ca.pem"), &self.cert_pem)?;
        tls::write_private(&dir.join("ca.key"), &self.issuer.key().serialize_pem())
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a certificate for `identity`. `hostnames` (DNS names or IP
    /// addresses) are only needed by a coordinator, which serves TLS.
    pub fn issue(
        &self,
        identity: &Identity,
        hostnames: &[String],
    ) -> Result<IssuedCertificate, PkiError> {
        let mut params = CertificateParams::new(hostnames.to_vec())?;
        params
            .subject_alt_names
            .push(SanType::URI(identity.to_uri().try_into()?));
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "fedsoc");
        name.push(
            DnType::CommonName,
            format!("{} {}", identity.role, identity.id),
        );
        params.distinguished_name = name;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match identity.role {
            Role::Coordinator => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            _ => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, DEFAULT_VALIDITY_DAYS);
        // Ed25519: the same key that authenticates the TLS connection signs
        // the participant's secure-aggregation messages, so those signatures
        // are bound to the certificate the CA issued.
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn set_validity(params: &mut CertificateParams, days: i64) {
    // An hour of slack for clocks that disagree across borders.
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
}

/// SHA-256 over the DER of the first certificate in a PEM text, hex.
pub fn fingerprint_pem(pem: &str) -> Result<String, PkiError> {
    let der = tls::first_certificate_der(pem).ok_or_else(|| PkiError::BadPem {
        path: "<certificate>".into(),
        reason: "no CERTIFICATE block".into(),
    })?;
    Ok(hex::encode(Sha256::digest(der)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity_from_der;

    #[test]
    fn issued_certificate_carries_identity() {
        let ca = CertificateAuthority::generate("test").unwrap();
        let who = Identity::participant("soc-ee").unwrap();
        let issued = ca.issue(&who, &[]).unwrap();
        let der = tls::first_certificate_der(&issued.cert_pem).unwrap();
        assert_eq!(identity_from_der(&der).unwrap(), who);
        assert_eq!(issued.fingerprint().unwrap().len(), 64);
    }

    #[test]
    fn saved_ca_loads_and_keeps_issuing() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::generate("test").unwrap();
        ca.save(dir.path()).unwrap();
        let loaded =
            CertificateAuthority::load(&dir.path().join("ca.pem"), &dir.path().join("ca.key"))
                .unwrap();
        assert_eq!(loaded.cert_pem(), ca.cert_pem());
        let who = Identity::new(Role::Auditor, "eu-1").unwrap();
        loaded.issue(&who, &[]).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("ca.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn loading_a_garbage_key_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::generate("test").unwrap();
        ca.save(dir.path()).unwrap();
        std::fs::write(dir.path().join("ca.key"), "not a key").unwrap();
        let err =
            CertificateAuthority::load(&dir.path().join("ca.pem"), &dir.path().join("ca.key"))
                .err()
                .unwrap();
        assert!(err.to_string().contains("ca.key"), "{err}");
    }
}
