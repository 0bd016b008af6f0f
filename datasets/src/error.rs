//! [`DatasetError`]: every failure of this crate, each saying what was wrong
//! and what to do about it.

/// What went wrong while generating, encoding or splitting records.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DatasetError {
    /// A [`SyntheticConfig`](crate::SyntheticConfig) field is out of range.
    #[error("synthetic config: {field} = {value} is invalid; {expected}")]
    InvalidConfig {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    /// A numeric value (raw field or derived feature) is NaN or infinite.
    #[error(
        "row {row}, column `{column}`: value {value} is not finite; \
         repair or drop that record before encoding"
    )]
    NonFinite {
        row: usize,
        column: String,
        value: f64,
    },
    /// A duration, byte or packet count is negative.
    #[error(
        "row {row}, column `{column}`: value {value} is negative; \
         durations, byte and packet counts must be >= 0 (check the reader's field mapping)"
    )]
    Negative {
        row: usize,
        column: String,
        value: f64,
    },
    /// An [`EncoderSpec`](crate::EncoderSpec) cannot be used as it stands.
    #[error("encoder spec: {0}")]
    InvalidSpec(String),
    /// Statistics were asked of zero records.
    #[error("cannot fit encoder statistics on zero records; pass at least one record")]
    EmptyInput,
    /// A telemetry or schema file could not be read as its format says.
    #[error("{file}{}: {reason}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Read {
        file: String,
        line: Option<u64>,
        reason: String,
    },
    /// A malformed row, when malformed rows are not being skipped. How to
    /// have them skipped depends on the command that read the file (a
    /// flag, a config field), so the caller names it with
    /// [`DatasetError::with_skip_hint`]; until then the hint names the
    /// [`ReadOptions`](crate::ReadOptions) setting.
    #[error(
        "{file}:{line}: {reason} (fix the row, or {} to count and skip such rows)",
        skip_hint.as_deref().unwrap_or("enable skip_bad_rows")
    )]
    BadRow {
        file: String,
        line: u64,
        reason: String,
        skip_hint: Option<String>,
    },
    /// A flow source's path, directory or glob pattern names no file to read.
    #[error("{source_path} {reason}; {fix}")]
    NoFiles {
        source_path: String,
        reason: String,
        fix: String,
    },
    /// A time window left no row of a source.
    #[error(
        "no rows of {source_path} fall in {window} ({read} rows read in {files} files, all outside); \
         widen since/until"
    )]
    NoRowsInWindow {
        source_path: String,
        window: String,
        read: u64,
        files: usize,
    },
    /// A partitioning request cannot be met.
    #[error("partition: {0}")]
    Partition(String),
    /// A split into zero parts was asked for.
    #[error("cannot split records into 0 parts; ask for at least one part")]
    ZeroParts,
}

impl DatasetError {
    /// Names how the command that read the file skips malformed rows, e.g.
    /// "pass --skip-bad-rows" or "set skip_bad_rows = true in [data] of
    /// participant.toml", in a [`DatasetError::BadRow`]; any other error
    /// is returned unchanged.
    pub fn with_skip_hint(self, how: impl Into<String>) -> Self {
        match self {
            DatasetError::BadRow {
                file, line, reason, ..
            } => DatasetError::BadRow {
                file,
                line,
                reason,
                skip_hint: Some(how.into()),
            },
            other => other,
        }
    }
}
