//! The federation certificate authority.
//!
//! One CA per federation signs every certificate: the coordinator's server
//! certificate and each participant's, data scientist's and auditor's client
//! certificate. The role and id go into the certificate (see [`crate::identity`]),
//! so the roster can be checked against what the CA signed, not against what a
//! peer claims.

use std::path::Path;

use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{Identity, PkiError, Role, files, tls};

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
        files::write_public(&dir.join(format!("{stem}.pem")), &self.cert_pem)?;
        files::write_private(&dir.join(format!("{stem}.key")), &self.key_pem)
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
        let cert_pem = files::read_text(cert_path)?;
        let key_pem = files::read_text(key_path)?;
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
        files::write_public(&dir.join("ca.pem"), &self.cert_pem)?;
        files::write_private(&dir.join("ca.key"), &self.issuer.key().serialize_pem())
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a certificate for `identity`, valid from an hour ago (slack for
    /// clocks that disagree across borders) for [`DEFAULT_VALIDITY_DAYS`].
    /// `hostnames` (DNS names or IP addresses) are only needed by a
    /// coordinator, which serves TLS.
    pub fn issue(
        &self,
        identity: &Identity,
        hostnames: &[String],
    ) -> Result<IssuedCertificate, PkiError> {
        let (not_before, not_after) = validity_from_now(DEFAULT_VALIDITY_DAYS)?;
        self.issue_with_validity(identity, hostnames, not_before, not_after)
    }

    /// [`CertificateAuthority::issue`] with an explicit validity window;
    /// a window in the past makes an expired certificate, which tests need.
    pub fn issue_with_validity(
        &self,
        identity: &Identity,
        hostnames: &[String],
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<IssuedCertificate, PkiError> {
        if not_after <= not_before {
            return Err(PkiError::BadValidity(format!(
                "not_after {not_after} is not after not_before {not_before}"
            )));
        }
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
        params.serial_number = Some(random_serial());
        params.not_before = not_before;
        params.not_after = not_after;
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

    /// Signs a CRL listing `revoked`; see [`crate::crl`].
    pub(crate) fn sign_crl(
        &self,
        params: &CertificateRevocationListParams,
    ) -> Result<String, PkiError> {
        Ok(params.signed_by(&self.issuer)?.pem()?)
    }

    /// When the CA certificate itself expires: nothing it signs is usable after.
    pub fn not_after(&self) -> Result<OffsetDateTime, PkiError> {
        let der = tls::first_certificate_der(&self.cert_pem)
            .ok_or_else(|| PkiError::BadCertificate("the CA PEM holds no certificate".into()))?;
        let (_, ca) = X509Certificate::from_der(&der)
            .map_err(|e| PkiError::BadCertificate(format!("CA certificate: {e}")))?;
        Ok(ca.validity().not_after.to_datetime())
    }
}

/// From an hour ago (clock slack) until `days` from now.
pub fn validity_from_now(days: i64) -> Result<(OffsetDateTime, OffsetDateTime), PkiError> {
    if !(1..=36_500).contains(&days) {
        return Err(PkiError::BadValidity(format!(
            "{days} days; choose between 1 and 36500"
        )));
    }
    let now = OffsetDateTime::now_utc();
    Ok((now - Duration::hours(1), now + Duration::days(days)))
}

/// 128 random bits, top bit clear and next bit set: positive, always 16
/// bytes, and unique without any counter to keep in step between commands.
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
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
