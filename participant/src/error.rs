/// Why a participant stopped or could not take part.
#[derive(Debug, thiserror::Error)]
pub enum ParticipantError {
    #[error(transparent)]
    Config(#[from] fedsoc_conf::ConfError),
    #[error(transparent)]
    Pki(#[from] fedsoc_pki::PkiError),
    #[error("telemetry: {0}")]
    Data(#[from] fedsoc_datasets::DatasetError),
    /// A `[data]` setting the source cannot honour (a time window on rows
    /// without timestamps, a malformed bound), found when loading a source
    /// that was not checked by [`ParticipantConfig::load`](crate::config::ParticipantConfig::load).
    #[error("participant.toml, [data] {0}")]
    DataConfig(String),
    #[error("model: {0}")]
    Model(#[from] fedsoc_models::ModelError),
    /// The telemetry cannot answer a round's query: which data, and why.
    #[error("telemetry {source_name}: {reason}")]
    Unanswerable { source_name: String, reason: String },
    /// `[metrics] listen` cannot be bound (the error names the address
    /// and the fix).
    #[error("[metrics] listen: {0}")]
    Metrics(std::io::Error),
    #[error("cannot reach the coordinator at {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("the coordinator refused this participant: {0}")]
    Refused(String),
    #[error("the session ended: {0}")]
    Session(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("audit check failed, no longer taking part: {0}")]
    Audit(String),
    /// Another agent with our certificate connected and took our place:
    /// reconnecting would only take it back, and the two would evict each
    /// other in turns.
    #[error("{0}")]
    Replaced(String),
    /// The coordinator's certificate does not verify against the CA file
    /// we were given: no retry changes that.
    #[error("{0}")]
    UntrustedCoordinator(String),
}

impl ParticipantError {
    /// Refusals, protocol errors, a foreign CA and a second agent with our
    /// certificate will not go away by reconnecting.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ParticipantError::Config(_)
                | ParticipantError::Metrics(_)
                | ParticipantError::DataConfig(_)
                | ParticipantError::Pki(_)
                | ParticipantError::Data(_)
                | ParticipantError::Refused(_)
                | ParticipantError::Protocol(_)
                | ParticipantError::Audit(_)
                | ParticipantError::Replaced(_)
                | ParticipantError::UntrustedCoordinator(_)
        )
    }
}

/// An error and every cause under it, on one line: TLS failures hide the
/// useful part ("unknown CA") several sources deep.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
