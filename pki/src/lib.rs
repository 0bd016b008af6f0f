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
//! - [`error`]: [`PkiError`].
#![forbid(unsafe_code)]

pub mod authority;
pub mod error;
pub mod identity;
pub mod member;
pub mod tls;

pub use authority::{CertificateAuthority, IssuedCertificate};
pub use error::PkiError;
pub use identity::{Identity, Role, identity_from_der};
pub use member::{
    MemberVerifier, VerifiedMember, load_certificate_der, load_signing_key, verify_member,
};
pub use tls::TlsFiles;
pub use tls::{certificate_pem, first_certificate_der};
