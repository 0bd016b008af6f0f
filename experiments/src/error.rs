use std::path::{Path, PathBuf};

/// Why an experiment or the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Pki(#[from] fedsoc_pki::PkiError),
    #[error(transparent)]
    Config(#[from] fedsoc_conf::ConfError),
    #[error(transparent)]
    Coordinator(#[from] fedsoc_coordinator::CoordinatorError),
    #[error(transparent)]
    Participant(#[from] fedsoc_participant::ParticipantError),
    #[error("data: {0}")]
    Data(#[from] fedsoc_datasets::DatasetError),
    #[error("model: {0}")]
    Model(#[from] fedsoc_models::ModelError),
    #[error("{0}")]
    Setup(String),
}

impl ExperimentError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        ExperimentError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
