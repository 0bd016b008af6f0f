//! The federation's certificate revocation list (CRL): a standard X.509 CRL
//! signed by the federation CA, read back only after its signature and
//! issuer check out against that CA.
//!
//! The CRL is the one record of what was revoked: revoking again reads the
//! current list, adds to it and signs the whole list anew with the next CRL
//! number, so earlier revocations are never dropped.
//!
//! Every list fedsoc signs says until when it is current (`nextUpdate`);
//! readers refuse a list past that time ([`RevocationList::check_current`]),
//! so a coordinator cannot keep serving an old list forever: the CA must
//! re-sign (`fedsoc pki crl`) before it runs out.

use std::fmt;
use std::str::FromStr;

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use crate::{CertificateAuthority, PkiError, tls};

/// How long a freshly signed CRL claims to be current (its `nextUpdate`),
/// unless the signing command is given other `--crl-days`. Long enough
/// for a monthly renewal routine, short enough that a withheld list
/// stops working within weeks.
pub const CRL_VALIDITY_DAYS: i64 = 30;

/// The command that re-signs a PKI folder's CRL with a fresh `nextUpdate`.
pub const RENEW_COMMAND: &str = "fedsoc pki crl --dir <PKI folder>";

/// Why a certificate was revoked (the RFC 5280 reason codes fedsoc offers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RevocationReason {
    Unspecified,
    KeyCompromise,
    Superseded,
    CessationOfOperation,
}

impl RevocationReason {
    pub const NAMES: [&'static str; 4] = [
        "unspecified",
        "key-compromise",
        "superseded",
        "cessation-of-operation",
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "key-compromise",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessation-of-operation",
        }
    }

    fn to_rcgen(self) -> rcgen::RevocationReason {
        match self {
            RevocationReason::Unspecified => rcgen::RevocationReason::Unspecified,
            RevocationReason::KeyCompromise => rcgen::RevocationReason::KeyCompromise,
            RevocationReason::Superseded => rcgen::RevocationReason::Superseded,
            RevocationReason::CessationOfOperation => rcgen::RevocationReason::CessationOfOperation,
        }
    }

    /// A reason code read from a CRL; codes fedsoc does not issue read as
    /// unspecified (the certificate is revoked all the same).
    fn from_code(code: u8) -> Self {
        match code {
            1 => RevocationReason::KeyCompromise,
            4 => RevocationReason::Superseded,
            5 => RevocationReason::CessationOfOperation,
            _ => RevocationReason::Unspecified,
        }
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RevocationReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "unspecified" => Ok(RevocationReason::Unspecified),
            "key-compromise" => Ok(RevocationReason::KeyCompromise),
            "superseded" => Ok(RevocationReason::Superseded),
            "cessation-of-operation" => Ok(RevocationReason::CessationOfOperation),
            other => Err(format!(
                "unknown revocation reason {other:?}; expected one of {}",
                Self::NAMES.join(", ")
            )),
        }
    }
}

/// One revoked certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Serial as lowercase hex without leading zeros (see [`serial_hex`]).
    pub serial: String,
    pub revoked_at: OffsetDateTime,
    pub reason: RevocationReason,
}

/// A CRL whose signature and issuer were checked against the federation CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationList {
    pub number: u64,
    pub this_update: OffsetDateTime,
    pub next_update: Option<OffsetDateTime>,
    pub entries: Vec<RevokedEntry>,
}

impl RevocationList {
    /// The list before anything was revoked.
    pub fn empty() -> Self {
        RevocationList {
            number: 0,
            this_update: OffsetDateTime::UNIX_EPOCH,
            next_update: None,
            entries: Vec::new(),
        }
    }

    pub fn find(&self, serial: &str) -> Option<&RevokedEntry> {
        self.entries.iter().find(|e| e.serial == serial)
    }

    /// `Err(PkiError::Revoked)` if this list names the certificate's
    /// serial; certificates that do not parse are refused too.
    pub fn check_certificate(&self, cert_der: &[u8]) -> Result<(), PkiError> {
        let (_, cert) = X509Certificate::from_der(cert_der)
            .map_err(|e| PkiError::BadCertificate(e.to_string()))?;
        let serial = serial_hex(cert.raw_serial());
        match self.find(&serial) {
            None => Ok(()),
            Some(entry) => Err(PkiError::Revoked {
                identity: crate::identity_from_der(cert_der)
                    .map_or_else(|_| cert.subject().to_string(), |i| i.to_string()),
                serial,
                revoked_at: rfc3339(entry.revoked_at),
                reason: entry.reason.to_string(),
            }),
        }
    }

    /// Until when this list is current (RFC 3339), for messages.
    pub fn current_until(&self) -> String {
        self.next_update
            .map_or_else(|| "(no nextUpdate)".to_string(), rfc3339)
    }

    /// `Err(PkiError::StaleCrl)` if `now` is past this list's `nextUpdate`
    /// (or it has none): an old list may lack newer revocations, and only
    /// the CA can vouch that nothing was added since. `source` names where
    /// the list came from, for the message.
    pub fn check_current(&self, now: OffsetDateTime, source: &str) -> Result<(), PkiError> {
        match self.next_update {
            Some(next) if now <= next => Ok(()),
            next => Err(PkiError::StaleCrl {
                origin: source.to_string(),
                number: self.number,
                next_update: next.map_or_else(|| "(no nextUpdate)".to_string(), rfc3339),
            }),
        }
    }

    /// Parses a CRL (PEM `X509 CRL` block, or DER) and checks that the CA
    /// in `ca_pem` signed it. The error says what is wrong, not where:
    /// callers add the path.
    pub fn parse_verified(crl: &[u8], ca_pem: &str) -> Result<Self, String> {
        let ca_der = tls::first_certificate_der(ca_pem)
            .ok_or_else(|| "the CA PEM holds no certificate".to_string())?;
        let (_, ca) =
            X509Certificate::from_der(&ca_der).map_err(|e| format!("CA certificate: {e}"))?;
        let der = crl_der(crl)?;
        let (_, list) = CertificateRevocationList::from_der(&der)
            .map_err(|e| format!("not an X.509 CRL ({e})"))?;
        if list.issuer() != ca.subject() {
            return Err(format!(
                "issued by {} but the federation CA is {}",
                list.issuer(),
                ca.subject()
            ));
        }
        list.verify_signature(ca.public_key())
            .map_err(|_| "its signature does not verify against the federation CA".to_string())?;
        let number = match list.crl_number() {
            None => 0,
            Some(n) => u64::try_from(n).map_err(|_| format!("CRL number {n} is too large"))?,
        };
        let entries = list
            .iter_revoked_certificates()
            .map(|revoked| RevokedEntry {
                serial: serial_hex(revoked.raw_serial()),
                revoked_at: revoked.revocation_date.to_datetime(),
                reason: revoked
                    .reason_code()
                    .map_or(RevocationReason::Unspecified, |(_, code)| {
                        RevocationReason::from_code(code.0)
                    }),
            })
            .collect();
        Ok(RevocationList {
            number,
            this_update: list.last_update().to_datetime(),
            next_update: list.next_update().map(|t| t.to_datetime()),
            entries,
        })
    }

    /// This list plus `serials` revoked now, numbered one higher and signed
    /// by `ca`, as PEM, current for [`CRL_VALIDITY_DAYS`]. Serials already
    /// listed keep their first entry.
    pub fn extend_and_sign(
        &self,
        ca: &CertificateAuthority,
        serials: &[String],
        reason: RevocationReason,
    ) -> Result<(RevocationList, String), PkiError> {
        self.extend_and_sign_with(ca, serials, reason, Duration::days(CRL_VALIDITY_DAYS), 0)
    }

    /// [`RevocationList::extend_and_sign`] current for `validity`, numbered
    /// at least `min_number` (to climb back over a floor readers hold after
    /// the newest list was lost).
    pub fn extend_and_sign_with(
        &self,
        ca: &CertificateAuthority,
        serials: &[String],
        reason: RevocationReason,
        validity: Duration,
        min_number: u64,
    ) -> Result<(RevocationList, String), PkiError> {
        let now = OffsetDateTime::now_utc();
        let mut next = self.clone();
        for serial in serials {
            if next.find(serial).is_none() {
                next.entries.push(RevokedEntry {
                    serial: serial.clone(),
                    revoked_at: now,
                    reason,
                });
            }
        }
        next.number = self
            .number
            .checked_add(1)
            .ok_or_else(|| PkiError::BadValidity("the CRL number cannot grow further".into()))?
            .max(min_number);
        next.this_update = now;
        next.next_update = Some(now + validity);
        let revoked_certs = next
            .entries
            .iter()
            .map(|e| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&hex::decode(&e.serial).map_err(
                        |_| PkiError::BadCertificate(format!("serial {:?} is not hex", e.serial)),
                    )?),
                    revocation_time: e.revoked_at,
                    reason_code: Some(e.reason.to_rcgen()),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, PkiError>>()?;
        let params = CertificateRevocationListParams {
            this_update: now,
            next_update: now + validity,
            crl_number: SerialNumber::from(next.number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let pem = ca.sign_crl(&params)?;
        Ok((next, pem))
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// DER of a CRL given as PEM (`X509 CRL`) or as DER already: what travels
/// to participants, who verify it themselves.
pub fn crl_der(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if !bytes.starts_with(b"-----") && !bytes.trim_ascii_start().starts_with(b"-----") {
        return Ok(bytes.to_vec());
    }
    x509_parser::pem::Pem::iter_from_buffer(bytes)
        .filter_map(Result::ok)
        .find(|p| p.label == "X509 CRL")
        .map(|p| p.contents)
        .ok_or_else(|| "no X509 CRL PEM block".to_string())
}

/// A serial number as fedsoc prints and indexes it: lowercase hex of the
/// integer's bytes without leading zeros, so DER's sign byte never makes
/// one serial look like two.
pub fn serial_hex(raw: &[u8]) -> String {
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    let trimmed = &raw[start..];
    if trimmed.is_empty() {
        "00".into()
    } else {
        hex::encode(trimmed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip_and_unknown_is_named() {
        for name in RevocationReason::NAMES {
            assert_eq!(name.parse::<RevocationReason>().unwrap().as_str(), name);
        }
        let err = "lost".parse::<RevocationReason>().unwrap_err();
        assert!(err.contains("key-compromise"), "{err}");
    }

    #[test]
    fn serial_hex_ignores_the_sign_byte() {
        assert_eq!(serial_hex(&[0, 0x80, 1]), "8001");
        assert_eq!(serial_hex(&[0x40, 1]), "4001");
        assert_eq!(serial_hex(&[0]), "00");
    }

    #[test]
    fn signed_list_reads_back_with_reasons_and_number() {
        let ca = CertificateAuthority::generate("crl").unwrap();
        let (list, pem) = RevocationList::empty()
            .extend_and_sign(&ca, &["4001ab".into()], RevocationReason::KeyCompromise)
            .unwrap();
        let read = RevocationList::parse_verified(pem.as_bytes(), ca.cert_pem()).unwrap();
        assert_eq!(read.number, 1);
        assert_eq!(read.entries.len(), 1);
        assert_eq!(read.entries[0].serial, "4001ab");
        assert_eq!(read.entries[0].reason, RevocationReason::KeyCompromise);
        assert_eq!(list.entries[0].serial, read.entries[0].serial);

        let (_, pem2) = read
            .extend_and_sign(
                &ca,
                &["4001ab".into(), "4002".into()],
                RevocationReason::Unspecified,
            )
            .unwrap();
        let read2 = RevocationList::parse_verified(pem2.as_bytes(), ca.cert_pem()).unwrap();
        assert_eq!(read2.number, 2);
        assert_eq!(read2.entries.len(), 2);
        assert_eq!(
            read2.find("4001ab").unwrap().reason,
            RevocationReason::KeyCompromise
        );

        let other = CertificateAuthority::generate("other").unwrap();
        let err = RevocationList::parse_verified(pem.as_bytes(), other.cert_pem()).unwrap_err();
        assert!(err.contains("federation CA"), "{err}");
        assert!(RevocationList::parse_verified(b"garbage", ca.cert_pem()).is_err());
    }
}
