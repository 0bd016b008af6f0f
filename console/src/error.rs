//! Why the console could not start.

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(
        "nothing to show: pass --config control.toml (the live federation, through the coordinator's admin service) and/or --audit-log DIR (an exported audit log)"
    )]
    NoSource,
    #[error(
        "{addr} is not a loopback address: the console serves plain HTTP only on loopback (127.0.0.1 or ::1); pass --tls-cert PEM and --tls-key PEM to serve HTTPS there, or listen on 127.0.0.1"
    )]
    NotLoopback { addr: SocketAddr },
    #[error(
        "--tls-cert and --tls-key go together: pass both, or neither to serve plain HTTP on loopback"
    )]
    TlsHalf,
    #[error("the TLS {what} {}: {detail}", .path.display())]
    Tls {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error(transparent)]
    Config(#[from] fedsoc_conf::ConfError),
    #[error("{}: {reason}", .path.display())]
    AuditLog { path: PathBuf, reason: String },
    #[error("cannot listen on {addr}: {source}; pick another port with --listen")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the console stopped serving: {0}")]
    Serve(std::io::Error),
}
