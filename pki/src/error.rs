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
    #[error("invalid id {0:?}: ids are 1-64 characters of a-z, A-Z, 0-9, '-', '_' and '.'")]
    BadId(String),
}
