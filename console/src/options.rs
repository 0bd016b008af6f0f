//! What `fedsoc console` takes, checked before anything listens.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::error::ConsoleError;

/// The console's command line, as a library value (the CLI is a shell).
#[derive(Clone, Debug)]
pub struct ConsoleOptions {
    /// `control.toml`: the coordinator and the user's certificate.
    pub config: Option<PathBuf>,
    /// An exported audit log (or a coordinator storage folder).
    pub audit_log: Option<PathBuf>,
    pub listen: SocketAddr,
    /// Serve HTTPS with this certificate and key.
    pub tls: Option<TlsPaths>,
}

#[derive(Clone, Debug)]
pub struct TlsPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsPaths {
    /// Pairs `--tls-cert` and `--tls-key`: both or neither.
    pub fn pair(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<Option<TlsPaths>, ConsoleError> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(TlsPaths { cert, key })),
            (None, None) => Ok(None),
            _ => Err(ConsoleError::TlsHalf),
        }
    }
}

impl ConsoleOptions {
    /// The console shows a federation's state to whoever can reach it, so
    /// plain HTTP stays on this machine; anything wider needs TLS.
    pub fn check(&self) -> Result<(), ConsoleError> {
        if self.config.is_none() && self.audit_log.is_none() {
            return Err(ConsoleError::NoSource);
        }
        if !self.listen.ip().is_loopback() && self.tls.is_none() {
            return Err(ConsoleError::NotLoopback { addr: self.listen });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(listen: &str, tls: bool) -> ConsoleOptions {
        ConsoleOptions {
            config: Some("control.toml".into()),
            audit_log: None,
            listen: listen.parse().unwrap(),
            tls: tls.then(|| TlsPaths {
                cert: "c.pem".into(),
                key: "k.pem".into(),
            }),
        }
    }

    #[test]
    fn plain_http_only_on_loopback() {
        options("127.0.0.1:8080", false).check().unwrap();
        options("[::1]:8080", false).check().unwrap();
        let err = options("0.0.0.0:8080", false).check().unwrap_err();
        assert!(matches!(err, ConsoleError::NotLoopback { .. }), "{err}");
        assert!(err.to_string().contains("--tls-cert"), "{err}");
        options("0.0.0.0:8443", true).check().unwrap();
    }

    #[test]
    fn needs_a_source_and_both_tls_files() {
        let mut o = options("127.0.0.1:0", false);
        o.config = None;
        assert!(matches!(o.check(), Err(ConsoleError::NoSource)));
        assert!(matches!(
            TlsPaths::pair(Some("c".into()), None),
            Err(ConsoleError::TlsHalf)
        ));
        assert!(TlsPaths::pair(None, None).unwrap().is_none());
    }
}
