//! The PEM files a process presents, as tonic TLS settings.
//!
//! There is deliberately no way to build a server that does not demand a
//! client certificate, nor a client that does not present one.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity as TlsIdentity, ServerTlsConfig};

use crate::PkiError;
use crate::files::read_text;

/// Paths of the federation CA certificate and of this process's own
/// certificate and key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Conventional names in a PKI folder: `ca.pem`, `<stem>.pem`, `<stem>.key`.
    pub fn in_dir(dir: &Path, stem: &str) -> Self {
        TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}.key")),
        }
    }

    fn load(&self) -> Result<(Certificate, TlsIdentity), PkiError> {
        let ca = read_pem(&self.ca, "CERTIFICATE")?;
        let cert = read_pem(&self.cert, "CERTIFICATE")?;
        let key = read_pem(&self.key, "PRIVATE KEY")?;
        Ok((Certificate::from_pem(ca), TlsIdentity::from_pem(cert, key)))
    }

    /// Server side: present our certificate, require one signed by the CA.
    pub fn server_config(&self) -> Result<ServerTlsConfig, PkiError> {
        let (ca, identity) = self.load()?;
        Ok(ServerTlsConfig::new()
            .identity(identity)
            .client_ca_root(ca)
            .client_auth_optional(false))
    }

    /// Client side: trust only the federation CA, present our certificate.
    /// `server_name` must be one of the names in the coordinator's certificate.
    pub fn client_config(&self, server_name: &str) -> Result<ClientTlsConfig, PkiError> {
        let (ca, identity) = self.load()?;
        Ok(ClientTlsConfig::new()
            .ca_certificate(ca)
            .identity(identity)
            .domain_name(server_name))
    }
}

/// Reads a PEM file and checks it holds the expected block, so a swapped
/// certificate and key are reported by name rather than as a TLS failure.
fn read_pem(path: &Path, kind: &str) -> Result<String, PkiError> {
    let text = read_text(path)?;
    if !text.contains(&format!("-----BEGIN {kind}")) && !text.contains(&format!(" {kind}-----")) {
        return Err(PkiError::BadPem {
            path: path.to_path_buf(),
            reason: format!("expected a PEM block of type {kind}"),
        });
    }
    Ok(text)
}

/// DER bytes of the first CERTIFICATE block of a PEM text.
pub fn first_certificate_der(pem: &str) -> Option<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .filter_map(Result::ok)
        .find(|p| p.label == "CERTIFICATE")
        .map(|p| p.contents)
}

/// A DER certificate as PEM text.
pub fn certificate_pem(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}
