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
    /// A partitioning request cannot be met.
    #[error("partition: {0}")]
    Partition(String),
    /// A split into zero parts was asked for.
    #[error("cannot split records into 0 parts; ask for at least one part")]
    ZeroParts,
}
