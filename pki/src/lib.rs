//! The federation's public-key infrastructure.
//!
//! Every connection in a federation is mutual TLS, and a peer *is* its
//! certificate: the role and id it acts under travel in the certificate as a
//! subject-alternative-name URI `urn:fedsoc:<role>:<id>`, signed by the
//! federation CA. Nothing a peer says about itself afterwards can change that.
//!
//! # Layout
//!
//! - [`identity`]: [`Role`] and [`Identity`], their URI form, and reading them
//!   back out of a DER certificate.
//! - [`authority`]: the federation CA: create, save, load, issue certificates.
//! - [`member`]: checking another member's certificate against the CA
//!   (for secure aggregation) and loading our own Ed25519 signing key.
//! - [`tls`]: the PEM files a process presents, turned into tonic's server and
//!   client TLS settings (client certificates always required).
//! - [`folder`]: a PKI folder as `fedsoc pki` keeps it: issue into it,
//!   revoke from it.
//! - [`index`]: `issued.json`, which maps ids to the serials issued to them.
//! - [`crl`]: the CA-signed certificate revocation list, written and read.
//! - [`revocation`]: [`Revocations`], refusing revoked certificates in a
//!   running process and following the CRL file without a restart.
//! - [`floor`]: [`CrlFloor`], the highest CRL number enforced, kept on disk
//!   so an older list is refused after a restart too.
//! - [`show`]: what `fedsoc pki show` prints about a certificate or CRL.
//! - [`error`]: [`PkiError`], naming the problem and the fix.
#![forbid(unsafe_code)]

pub mod authority;
pub mod crl;
pub mod error;
mod files;
pub mod floor;
pub mod folder;
pub mod identity;
pub mod index;
pub mod member;
pub mod revocation;
pub mod show;
pub mod tls;

pub use authority::{CertificateAuthority, IssuedCertificate};
pub use crl::{RevocationList, RevocationReason};
pub use error::PkiError;
pub use floor::CrlFloor;
pub use folder::{IssuedFiles, PkiDir, RevokeOutcome};
pub use identity::{Identity, Role, identity_from_der};
pub use index::{IssuanceIndex, IssuedRecord};
pub use member::{
    MemberVerifier, VerifiedMember, load_certificate_der, load_signing_key, verify_member,
};
pub use revocation::Revocations;
pub use tls::TlsFiles;
pub use tls::{certificate_pem, first_certificate_der};
