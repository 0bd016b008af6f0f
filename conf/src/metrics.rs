//! `[metrics]`: where a coordinator or a participant serves its Prometheus
//! metrics. Off unless the section is present.
//!
//! Metrics reveal federation activity (when rounds run, who is online,
//! how much traffic flows, when members drop out), so they stay on a
//! loopback address unless the operator says `public = true`.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{ConfError, invalid};

/// `[metrics] listen = "127.0.0.1:9464"` (and `public = true` for an
/// address other hosts can reach).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Address of the `/metrics` endpoint (port 0: the system picks one).
    pub listen: SocketAddr,
    /// Allows an address that is not loopback.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public: bool,
}

impl MetricsSection {
    /// Refuses an address other hosts can reach unless `public = true`.
    pub fn check(&self, path: &Path) -> Result<(), ConfError> {
        if !self.listen.ip().is_loopback() && !self.public {
            return Err(invalid(
                path,
                "metrics.listen",
                format!(
                    "{} is reachable from other hosts, and metrics reveal federation activity \
                     (when rounds run, who is online, traffic, dropouts); listen on a loopback \
                     address such as 127.0.0.1:{} and let the local Prometheus agent scrape it, \
                     or set `public = true` in [metrics] if a firewall restricts who can reach it",
                    self.listen,
                    self.listen.port()
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        metrics: Option<MetricsSection>,
    }

    fn load(text: &str) -> Result<Option<MetricsSection>, ConfError> {
        let path = Path::new("c.toml");
        let file: File = crate::parse(path, text)?;
        if let Some(m) = &file.metrics {
            m.check(path)?;
        }
        Ok(file.metrics)
    }

    #[test]
    fn off_without_the_section_and_loopback_is_accepted() {
        assert_eq!(load("").unwrap(), None);
        let m = load("[metrics]\nlisten = \"127.0.0.1:9464\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(m.listen.port(), 9464);
        assert!(!m.public);
        assert!(load("[metrics]\nlisten = \"[::1]:0\"\n").unwrap().is_some());
    }

    #[test]
    fn a_public_address_needs_public_true_and_the_error_says_why() {
        let err = load("[metrics]\nlisten = \"0.0.0.0:9464\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("field `metrics.listen`"), "{err}");
        assert!(err.contains("reveal federation activity"), "{err}");
        assert!(err.contains("public = true"), "{err}");
        let m = load("[metrics]\nlisten = \"0.0.0.0:9464\"\npublic = true\n")
            .unwrap()
            .unwrap();
        assert!(m.public);
    }

    #[test]
    fn bad_addresses_and_unknown_fields_are_named() {
        let err = load("[metrics]\nlisten = \"localhost\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("metrics.listen"), "{err}");
        let err = load("[metrics]\nlisten = \"127.0.0.1:9464\"\nport = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `port`"), "{err}");
    }
}
