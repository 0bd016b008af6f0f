use std::path::PathBuf;

/// What went wrong with a certificate, a key or a PKI file.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot read {path}: {source}; check the path in your configuration")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path} is not a PEM key or certificate the federation can use: {reason}")]
    BadPem { path: PathBuf, reason: String },
    #[error("the peer certificate cannot be parsed: {0}")]
    BadCertificate(String),
    #[error(
        "the certificate carries no fedsoc identity (a SAN URI urn:fedsoc:<role>:<id>); \
         issue it with `fedsoc pki issue`"
    )]
    NoIdentity,
    #[error(
        "invalid identity {0:?}: expected urn:fedsoc:<role>:<id> with role one of coordinator, participant, data-scientist, auditor"
    )]
    BadIdentity(String),
    #[error("unknown role {0:?}: expected coordinator, participant, data-scientist or auditor")]
    BadRole(String),
    #[error("invalid id {0:?}: ids are 1-64 characters of a-z, A-Z, 0-9, '-', '_' and '.'")]
    BadId(String),
    #[error(
        "the certificate of {id:?} is a {found} certificate where a {expected} certificate is \
         required; use the {expected}'s certificate issued by the federation CA"
    )]
    WrongRole {
        expected: crate::Role,
        found: crate::Role,
        id: String,
    },
    #[error("invalid validity: {0}")]
    BadValidity(String),
    #[error(
        "certificate {serial} ({identity}) was revoked at {revoked_at} ({reason}); \
         its holder needs a new certificate: `fedsoc pki issue --force`"
    )]
    Revoked {
        serial: String,
        identity: String,
        revoked_at: String,
        reason: String,
    },
    #[error("{path} is not a usable revocation list: {reason}")]
    BadCrl { path: PathBuf, reason: String },
    #[error(
        "{origin} (CRL #{number}) was current until {next_update} and is stale now: it may lack \
         later revocations. On the CA machine run `{renew}` (re-signs the same revocations with \
         a fresh nextUpdate) and copy the new crl.pem to the coordinator; it is re-read without \
         a restart",
        renew = crate::crl::RENEW_COMMAND
    )]
    StaleCrl {
        origin: String,
        number: u64,
        next_update: String,
    },
    #[error(
        "{path} does not exist: the federation's revocation list is required. Copy crl.pem from \
         the PKI folder (`fedsoc pki init` writes one; for a folder made before that, run `{renew}`)",
        renew = crate::crl::RENEW_COMMAND
    )]
    MissingCrl { path: PathBuf },
    #[error(
        "{origin} is CRL #{number}, older than CRL #{floor} which {holder} has already \
         enforced (recorded in {record}): an older copy was restored, or the newest list \
         withheld, which would un-revoke certificates. Put back the newest crl.pem from the PKI \
         folder (`fedsoc pki show crl.pem` prints its number); if it is lost, revoke the ids \
         again with `fedsoc pki revoke` and re-sign with `fedsoc pki crl --dir <PKI folder> \
         --at-least {next}`",
        next = .floor + 1
    )]
    CrlRollback {
        origin: String,
        number: u64,
        floor: u64,
        holder: String,
        record: String,
    },
    #[error("{path} is not a readable CRL-number record: {reason}; restore it from a backup")]
    BadCrlFloor { path: PathBuf, reason: String },
    #[error("{path} is not a readable issuance index: {reason}; restore it from a backup")]
    BadIndex { path: PathBuf, reason: String },
    #[error("no certificate was issued to {id:?} in this PKI folder; known ids: {}", known_ids(.known))]
    UnknownId { id: String, known: Vec<String> },
    #[error(
        "{path} already exists; pass --force to replace it \
         (if the old certificate must stop working, `fedsoc pki revoke` it first)"
    )]
    AlreadyIssued { path: PathBuf },
    #[error("the id {0:?} is reserved for the PKI folder's own files; choose another id")]
    ReservedId(String),
}

fn known_ids(known: &[String]) -> String {
    if known.is_empty() {
        "none".into()
    } else {
        known.join(", ")
    }
}
