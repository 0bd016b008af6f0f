//! `fedsoc console`: flags to [`ConsoleOptions`], then serve until
//! SIGINT/SIGTERM. The work is in `fedsoc_console`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use fedsoc_console::{Console, ConsoleOptions, TlsPaths};

#[derive(Args)]
pub struct ConsoleArgs {
    /// control.toml: the coordinator's URL and your data-scientist or
    /// auditor certificate (live status through the admin service).
    #[arg(long)]
    config: Option<PathBuf>,
    /// An exported audit log (or a coordinator storage folder): rounds,
    /// entries with their proofs, and verification.
    #[arg(long)]
    audit_log: Option<PathBuf>,
    /// Where to serve; plain HTTP only on loopback.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Serve HTTPS with this certificate chain (PEM); needed off loopback.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

pub async fn run(
    args: ConsoleArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let options = ConsoleOptions {
        config: args.config,
        audit_log: args.audit_log,
        listen: args.listen,
        tls: TlsPaths::pair(args.tls_cert, args.tls_key)?,
    };
    let console = Console::bind(&options).await?;
    outln!("console: {} (read-only; Ctrl-C stops it)", console.url());
    console.serve(shutdown).await?;
    Ok(())
}
