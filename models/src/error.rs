//! Errors returned at the crate boundary.
//!
//! Every variant says what was wrong *and* what the caller should do about it, because these
//! messages surface in coordinator/participant logs where nobody can attach a debugger.

use thiserror::Error;

/// Everything that can go wrong when building, training or scoring a model.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ModelError {
    /// The model architecture is unusable.
    #[error("invalid {model} config: {reason}; fix `input_dim`/`hidden` in the model config")]
    InvalidConfig {
        /// Which model kind (`"autoencoder"` or `"classifier"`).
        model: &'static str,
        /// What exactly is wrong.
        reason: String,
    },

    /// The training hyper-parameters are unusable.
    #[error("invalid training config: {reason}; fix the training section of the config")]
    InvalidTrainConfig {
        /// What exactly is wrong.
        reason: String,
    },

    /// A flat weight vector does not match the architecture.
    #[error(
        "weight vector has {actual} values but the model config needs {expected}; \
         make sure every party uses the same model kind, `input_dim` and `hidden` widths"
    )]
    WeightLength {
        /// `ModelConfig::num_params()`.
        expected: usize,
        /// Length of the vector that was passed in.
        actual: usize,
    },

    /// The data matrix has the wrong number of feature columns.
    #[error(
        "data has {actual} columns but the model expects input_dim = {expected}; \
         check the feature pipeline or the model config"
    )]
    ColumnMismatch {
        /// `ModelConfig::input_dim()`.
        expected: usize,
        /// Columns of the data that was passed in.
        actual: usize,
    },

    /// A supervised model was asked to train without labels.
    #[error(
        "the {model} is supervised and needs one label per row (true = attack); \
         pass the labels, or train an autoencoder on unlabelled data"
    )]
    MissingLabels {
        /// Which model kind needed them.
        model: &'static str,
    },

    /// The labels do not line up with the data rows.
    #[error(
        "got {actual} labels for {expected} data rows; pass exactly one label per row, \
         in row order"
    )]
    LabelLength {
        /// Rows of the data.
        expected: usize,
        /// Length of the label slice.
        actual: usize,
    },

    /// There are no rows to train on / evaluate.
    #[error("data has no rows; supply at least one sample")]
    EmptyData,

    /// The data contains NaN or ±inf.
    #[error(
        "data contains a non-finite value (NaN or inf) at row {row}, column {col}; \
         clean or impute the features before training/scoring"
    )]
    NonFiniteData {
        /// Row index of the first offending value.
        row: usize,
        /// Column index of the first offending value.
        col: usize,
    },

    /// The weight vector contains NaN or ±inf.
    #[error(
        "weight vector contains a non-finite value (NaN or inf) at index {index}; \
         discard this model update and restart from the last good global model"
    )]
    NonFiniteWeights {
        /// Index of the first offending value.
        index: usize,
    },

    /// Training blew up (loss or weights became NaN/inf).
    #[error(
        "training diverged in epoch {epoch} (loss or weights became non-finite); \
         lower the learning rate or standardise the features"
    )]
    Diverged {
        /// Zero-based epoch in which divergence was detected.
        epoch: usize,
    },

    /// An exported model file (safetensors or burn record) cannot be written or read back.
    #[error("model file: {reason}")]
    ModelFile {
        /// What exactly is wrong, and what to do about it.
        reason: String,
    },

    /// The tensor backend failed (should not happen on the CPU backend).
    #[error("tensor backend error: {0}; this is a bug or resource problem, please report it")]
    Backend(String),
}
