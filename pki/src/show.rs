//! What `fedsoc pki show` prints: a certificate's identity, validity and
//! revocation status, or a CRL's revoked serials, as text or JSON.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::crl::{RevocationList, serial_hex};
use crate::index::IssuanceIndex;
use crate::{PkiError, files, identity_from_der, tls};

/// Where `show` looks for the CA and the CRL when not told.
const CA_FILE: &str = "ca.pem";
const CRL_FILE: &str = "crl.pem";

/// A certificate as `fedsoc pki show` describes it.
#[derive(Clone, Debug, Serialize)]
pub struct CertificateSummary {
    pub path: PathBuf,
    pub subject: String,
    pub role: Option<String>,
    pub id: Option<String>,
    pub serial: String,
    pub issuer: String,
    pub not_before: String,
    pub not_after: String,
    /// "valid", "expired" or "not yet valid".
    pub validity: String,
    /// Whole days until `not_after` (negative once expired).
    pub days_left: i64,
    pub fingerprint_sha256: String,
    pub key_algorithm: String,
    /// DNS names and IP addresses (a coordinator's).
    pub hostnames: Vec<String>,
    /// Whether the CA's signature verifies; absent when no CA was found.
    pub signed_by_ca: Option<bool>,
    /// Absent when no CRL was found.
    pub revocation: Option<RevocationStatus>,
}

/// A certificate checked against a CRL.
#[derive(Clone, Debug, Serialize)]
pub struct RevocationStatus {
    pub crl: PathBuf,
    pub crl_number: u64,
    pub revoked: bool,
    pub revoked_at: Option<String>,
    pub reason: Option<String>,
}

/// A CRL as `fedsoc pki show` describes it.
#[derive(Clone, Debug, Serialize)]
pub struct CrlSummary {
    pub path: PathBuf,
    pub crl_number: u64,
    pub this_update: String,
    pub next_update: Option<String>,
    /// Past its nextUpdate: coordinators and participants refuse it.
    pub stale: bool,
    pub revoked: Vec<RevokedSummary>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RevokedSummary {
    pub serial: String,
    /// From `issued.json` beside the CRL, when it knows the serial.
    pub id: Option<String>,
    pub role: Option<String>,
    pub revoked_at: String,
    pub reason: String,
}

/// What a shown file turned out to be.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Shown {
    Certificate(Box<CertificateSummary>),
    Crl(CrlSummary),
}

/// Describes the certificate or CRL at `path`.
///
/// For a certificate, `crl` (else `crl.pem` beside `ca`, else beside the
/// certificate when a `ca.pem` sits there too) says whether it is revoked;
/// a CA folder without a `crl.pem` has revoked nothing. The CRL is only
/// believed once `ca` (else `ca.pem` beside the CRL) has verified it.
pub fn show(path: &Path, crl: Option<&Path>, ca: Option<&Path>) -> Result<Shown, PkiError> {
    let text = std::fs::read(path).map_err(|source| PkiError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let folder = path.parent().unwrap_or(Path::new("."));
    if contains(&text, b"-----BEGIN X509 CRL") {
        let ca_path = ca.map_or_else(|| folder.join(CA_FILE), Path::to_path_buf);
        let ca_pem = read_ca(&ca_path, path)?;
        let list =
            RevocationList::parse_verified(&text, &ca_pem).map_err(|reason| PkiError::BadCrl {
                path: path.to_path_buf(),
                reason,
            })?;
        let index = IssuanceIndex::load(folder).unwrap_or_default();
        return Ok(Shown::Crl(CrlSummary {
            path: path.to_path_buf(),
            crl_number: list.number,
            this_update: rfc3339(list.this_update),
            next_update: list.next_update.map(rfc3339),
            stale: list
                .check_current(time::OffsetDateTime::now_utc(), "")
                .is_err(),
            revoked: list
                .entries
                .iter()
                .map(|e| {
                    let record = index.by_serial(&e.serial);
                    RevokedSummary {
                        serial: e.serial.clone(),
                        id: record.map(|r| r.id.clone()),
                        role: record.map(|r| r.role.clone()),
                        revoked_at: rfc3339(e.revoked_at),
                        reason: e.reason.to_string(),
                    }
                })
                .collect(),
        }));
    }

    let pem = String::from_utf8_lossy(&text);
    let der = tls::first_certificate_der(&pem).ok_or_else(|| PkiError::BadPem {
        path: path.to_path_buf(),
        reason: "no CERTIFICATE or X509 CRL block".into(),
    })?;
    let mut summary = summarize(&der, path)?;

    let (ca_path, crl_path) = match (ca, crl) {
        (ca, Some(crl)) => (
            Some(ca.map_or_else(
                || crl.parent().unwrap_or(Path::new(".")).join(CA_FILE),
                Path::to_path_buf,
            )),
            Some(crl.to_path_buf()),
        ),
        (Some(ca), None) => {
            let beside = ca.parent().unwrap_or(Path::new(".")).join(CRL_FILE);
            (Some(ca.to_path_buf()), Some(beside))
        }
        (None, None) => {
            let ca = folder.join(CA_FILE);
            let found = ca.exists();
            (found.then_some(ca), found.then(|| folder.join(CRL_FILE)))
        }
    };
    if let Some(ca_path) = ca_path {
        let ca_pem = match &crl_path {
            Some(crl) => read_ca(&ca_path, crl)?,
            None => files::read_text(&ca_path)?,
        };
        summary.signed_by_ca = Some(signature_verifies(&ca_pem, &der));
        if let Some(crl_path) = crl_path {
            let bytes = match std::fs::read(&crl_path) {
                Ok(bytes) => bytes,
                // Beside a CA that never revoked anything there is no CRL yet.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && crl.is_none() => {
                    summary.revocation = Some(RevocationStatus {
                        crl: crl_path,
                        crl_number: 0,
                        revoked: false,
                        revoked_at: None,
                        reason: None,
                    });
                    return Ok(Shown::Certificate(Box::new(summary)));
                }
                Err(source) => {
                    return Err(PkiError::Read {
                        path: crl_path,
                        source,
                    });
                }
            };
            let list = RevocationList::parse_verified(&bytes, &ca_pem).map_err(|reason| {
                PkiError::BadCrl {
                    path: crl_path.clone(),
                    reason,
                }
            })?;
            let entry = list.find(&summary.serial);
            summary.revocation = Some(RevocationStatus {
                crl: crl_path,
                crl_number: list.number,
                revoked: entry.is_some(),
                revoked_at: entry.map(|e| rfc3339(e.revoked_at)),
                reason: entry.map(|e| e.reason.to_string()),
            });
        }
    }
    Ok(Shown::Certificate(Box::new(summary)))
}

fn read_ca(ca_path: &Path, crl_path: &Path) -> Result<String, PkiError> {
    files::read_text(ca_path).map_err(|_| PkiError::BadCrl {
        path: crl_path.to_path_buf(),
        reason: format!(
            "no CA certificate at {} to verify it against; pass --ca",
            ca_path.display()
        ),
    })
}

fn signature_verifies(ca_pem: &str, der: &[u8]) -> bool {
    let Some(ca_der) = tls::first_certificate_der(ca_pem) else {
        return false;
    };
    let (Ok((_, ca)), Ok((_, cert))) = (
        X509Certificate::from_der(&ca_der),
        X509Certificate::from_der(der),
    ) else {
        return false;
    };
    cert.issuer() == ca.subject() && cert.verify_signature(Some(ca.public_key())).is_ok()
}

/// The fields of one DER certificate, without CA or CRL.
pub fn summarize(der: &[u8], path: &Path) -> Result<CertificateSummary, PkiError> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| PkiError::BadCertificate(format!("{}: {e}", path.display())))?;
    let identity = identity_from_der(der).ok();
    let now = OffsetDateTime::now_utc();
    let not_before = cert.validity().not_before.to_datetime();
    let not_after = cert.validity().not_after.to_datetime();
    let validity = if now > not_after {
        "expired"
    } else if now < not_before {
        "not yet valid"
    } else {
        "valid"
    };
    let hostnames = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some(dns.to_string()),
                    GeneralName::IPAddress(ip) => ip_text(ip),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(CertificateSummary {
        path: path.to_path_buf(),
        subject: cert.subject().to_string(),
        role: identity.as_ref().map(|i| i.role.to_string()),
        id: identity.map(|i| i.id),
        serial: serial_hex(cert.raw_serial()),
        issuer: cert.issuer().to_string(),
        not_before: rfc3339(not_before),
        not_after: rfc3339(not_after),
        validity: validity.into(),
        days_left: (not_after - now).whole_days(),
        fingerprint_sha256: hex::encode(Sha256::digest(der)),
        key_algorithm: key_algorithm(&cert),
        hostnames,
        signed_by_ca: None,
        revocation: None,
    })
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?).to_string()),
        _ => None,
    }
}

fn key_algorithm(cert: &X509Certificate<'_>) -> String {
    let algorithm = &cert.public_key().algorithm;
    match algorithm.algorithm.to_id_string().as_str() {
        "1.3.101.112" => "Ed25519".into(),
        "1.3.101.113" => "Ed448".into(),
        "1.2.840.113549.1.1.1" => "RSA".into(),
        "1.2.840.10045.2.1" => {
            let curve = algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string());
            match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => "ECDSA P-256".into(),
                Some("1.3.132.0.34") => "ECDSA P-384".into(),
                Some("1.3.132.0.35") => "ECDSA P-521".into(),
                Some(other) => format!("ECDSA (curve {other})"),
                None => "ECDSA".into(),
            }
        }
        other => format!("unknown ({other})"),
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl Shown {
    /// One JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Aligned `field: value` lines for a terminal.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        match self {
            Shown::Certificate(c) => {
                let line = |out: &mut String, k: &str, v: &str| {
                    let _ = writeln!(out, "{k:<14}{v}");
                };
                line(&mut out, "certificate:", &c.path.display().to_string());
                line(&mut out, "subject:", &c.subject);
                line(&mut out, "role:", c.role.as_deref().unwrap_or("(none)"));
                line(
                    &mut out,
                    "id:",
                    c.id.as_deref()
                        .unwrap_or("(none: no urn:fedsoc SAN, not a fedsoc certificate)"),
                );
                if !c.hostnames.is_empty() {
                    line(&mut out, "hostnames:", &c.hostnames.join(", "));
                }
                line(&mut out, "serial:", &c.serial);
                line(&mut out, "issuer:", &c.issuer);
                if let Some(ok) = c.signed_by_ca {
                    line(
                        &mut out,
                        "signed by CA:",
                        if ok {
                            "yes"
                        } else {
                            "NO (not signed by this CA)"
                        },
                    );
                }
                line(&mut out, "not before:", &c.not_before);
                line(&mut out, "not after:", &c.not_after);
                let status = match c.validity.as_str() {
                    "expired" => format!("EXPIRED {} days ago", -c.days_left),
                    "not yet valid" => "NOT YET VALID".to_string(),
                    _ => format!("valid for {} more days", c.days_left),
                };
                line(&mut out, "validity:", &status);
                line(&mut out, "sha256:", &c.fingerprint_sha256);
                line(&mut out, "key:", &c.key_algorithm);
                let revocation = match &c.revocation {
                    None => "not checked (no ca.pem beside it; pass --crl or --ca)".into(),
                    Some(r) if r.revoked => format!(
                        "REVOKED at {} ({}), per {} #{}",
                        r.revoked_at.as_deref().unwrap_or("?"),
                        r.reason.as_deref().unwrap_or("unspecified"),
                        r.crl.display(),
                        r.crl_number
                    ),
                    Some(r) if r.crl_number == 0 => {
                        format!("not revoked (no {} yet: nothing revoked)", r.crl.display())
                    }
                    Some(r) => format!("not revoked, per {} #{}", r.crl.display(), r.crl_number),
                };
                line(&mut out, "revocation:", &revocation);
            }
            Shown::Crl(c) => {
                let _ = writeln!(out, "crl:         {}", c.path.display());
                let _ = writeln!(out, "number:      {}", c.crl_number);
                let _ = writeln!(out, "this update: {}", c.this_update);
                let _ = writeln!(
                    out,
                    "next update: {}{}",
                    c.next_update.as_deref().unwrap_or("(none)"),
                    if c.stale {
                        format!(
                            "  STALE: coordinators and participants refuse it; renew: {}",
                            crate::crl::RENEW_COMMAND
                        )
                    } else {
                        String::new()
                    }
                );
                let _ = writeln!(out, "revoked:     {}", c.revoked.len());
                for r in &c.revoked {
                    let who = match (&r.role, &r.id) {
                        (Some(role), Some(id)) => format!("{role} {id}"),
                        _ => "(not in issued.json)".into(),
                    };
                    let _ = writeln!(
                        out,
                        "  {}  {}  {}  {}",
                        r.serial, who, r.revoked_at, r.reason
                    );
                }
            }
        }
        out
    }
}
