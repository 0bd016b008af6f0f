use std::path::PathBuf;

/// Why the coordinator could not start or could not finish a round.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error(transparent)]
    Config(#[from] fedsoc_conf::ConfError),
    #[error(transparent)]
    Pki(#[from] fedsoc_pki::PkiError),
    #[error("feature encoding: {0}")]
    Encoder(String),
    #[error("data: {0}")]
    Data(#[from] fedsoc_datasets::DatasetError),
    #[error("model: {0}")]
    Model(#[from] fedsoc_models::ModelError),
    #[error("cannot listen on {addr}: {source}; is another coordinator running there?")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// `[metrics] listen` cannot be bound (the error names the address
    /// and the fix).
    #[error("[metrics] listen: {0}")]
    Metrics(std::io::Error),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("round {round}: only {got} participants connected, the round needs {need}")]
    NotEnoughParticipants { round: u64, got: usize, need: usize },
    #[error(
        "round {round}: only {survivors} updates arrived, the round needs {need}; dropped: {dropped}"
    )]
    TooManyDropouts {
        round: u64,
        survivors: usize,
        need: usize,
        dropped: String,
    },
    #[error(
        "round {round}: secure aggregation aborted at stage {stage}: too many dropouts ({detail}); \
         dropped: {dropped}. The round is retried with fresh keys"
    )]
    SecureAbort {
        round: u64,
        stage: String,
        detail: String,
        dropped: String,
    },
    #[error("round {round}: stopped by a data scientist at stage {stage}")]
    Stopped { round: u64, stage: String },
    #[error(
        "round {round} ({kind}): the secure sum concludes nothing: {reason}; the round is \
         recorded as aborted"
    )]
    Conclusion {
        round: u64,
        kind: &'static str,
        reason: String,
    },
    #[error("secure aggregation: {0}")]
    SecAgg(#[from] fedsoc_secagg::SecAggError),
    #[error("storage {path}: {reason}")]
    Storage { path: PathBuf, reason: String },
    #[error("audit log: {0}")]
    Audit(#[from] fedsoc_audit::AuditError),
    /// The CRL cannot be enforced (missing, stale, rolled back): rounds
    /// and start-up refuse rather than run on it.
    #[error("revocation list: {0}")]
    Crl(fedsoc_pki::PkiError),
    #[error(
        "this coordinator's own certificate is on the federation's CRL ({0}); participants \
         refuse it. Issue the coordinator a new certificate (`fedsoc pki issue --role \
         coordinator --force`) and restart with it"
    )]
    OwnCertificateRevoked(String),
    /// The configured server optimiser does not continue the log's.
    #[error("[strategy]: {0}")]
    Strategy(String),
    #[error("internal error: {0}")]
    Internal(String),
}
