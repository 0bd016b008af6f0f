//! Who a certificate speaks for.

use std::fmt;
use std::str::FromStr;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::PkiError;

/// What a certificate holder may do in a federation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Coordinator,
    Participant,
    DataScientist,
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Coordinator => "coordinator",
            Role::Participant => "participant",
            Role::DataScientist => "data-scientist",
            Role::Auditor => "auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = PkiError;
    fn from_str(s: &str) -> Result<Self, PkiError> {
        match s {
            "coordinator" => Ok(Role::Coordinator),
            "participant" => Ok(Role::Participant),
            "data-scientist" => Ok(Role::DataScientist),
            "auditor" => Ok(Role::Auditor),
            other => Err(PkiError::BadRole(other.to_string())),
        }
    }
}

/// A role and an id, as certified by the federation CA.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    pub role: Role,
    pub id: String,
}

const URI_PREFIX: &str = "urn:fedsoc:";

impl Identity {
    /// Checks the id so that it is safe in file names, logs and URIs.
    pub fn new(role: Role, id: impl Into<String>) -> Result<Self, PkiError> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            return Err(PkiError::BadId(id));
        }
        Ok(Identity { role, id })
    }

    pub fn participant(id: impl Into<String>) -> Result<Self, PkiError> {
        Identity::new(Role::Participant, id)
    }

    /// The SAN URI form, `urn:fedsoc:<role>:<id>`.
    pub fn to_uri(&self) -> String {
        format!("{URI_PREFIX}{}:{}", self.role, self.id)
    }

    pub fn from_uri(uri: &str) -> Result<Self, PkiError> {
        let rest = uri
            .strip_prefix(URI_PREFIX)
            .ok_or_else(|| PkiError::BadIdentity(uri.to_string()))?;
        let (role, id) = rest
            .split_once(':')
            .ok_or_else(|| PkiError::BadIdentity(uri.to_string()))?;
        let role = role
            .parse()
            .map_err(|_| PkiError::BadIdentity(uri.to_string()))?;
        Identity::new(role, id)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.role, self.id)
    }
}

/// Reads the fedsoc identity out of a DER certificate that TLS has already
/// verified against the federation CA.
pub fn identity_from_der(der: &[u8]) -> Result<Identity, PkiError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| PkiError::BadCertificate(e.to_string()))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| PkiError::BadCertificate(e.to_string()))?
        .ok_or(PkiError::NoIdentity)?;
    let uri = san
        .value
        .general_names
        .iter()
        .find_map(|name| match name {
            GeneralName::URI(uri) if uri.starts_with(URI_PREFIX) => Some(*uri),
            _ => None,
        })
        .ok_or(PkiError::NoIdentity)?;
    Identity::from_uri(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_round_trip() {
        for role in [
            Role::Coordinator,
            Role::Participant,
            Role::DataScientist,
            Role::Auditor,
        ] {
            let identity = Identity::new(role, "soc-de.1").unwrap();
            assert_eq!(Identity::from_uri(&identity.to_uri()).unwrap(), identity);
        }
    }

    #[test]
    fn rejects_unsafe_ids_and_unknown_roles() {
        assert!(matches!(
            Identity::participant("../etc"),
            Err(PkiError::BadId(_))
        ));
        assert!(matches!(Identity::participant(""), Err(PkiError::BadId(_))));
        assert!(matches!(
            Identity::from_uri("urn:fedsoc:root:x"),
            Err(PkiError::BadIdentity(_))
        ));
        assert!(matches!(
            Identity::from_uri("https://x"),
            Err(PkiError::BadIdentity(_))
        ));
    }
}
