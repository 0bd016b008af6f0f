//! fedsoc-datasets: where a participant's training rows come from.
//!
//! Every data source (the built-in synthetic generator now; NSL-KDD, Zeek,
//! Suricata and CSV readers later) produces [`FlowRecord`]s, and every
//! participant turns them into model input with the *same* federation-wide
//! [`EncoderSpec`], so the columns of all participants mean the same thing.
//!
//! # Layout
//!
//! - [`record`]: [`FlowRecord`], the one record type every reader produces,
//!   and the benign/attack label convention.
//! - [`synthetic`]: the default data source: country profiles of eight
//!   European SOCs, attack campaigns with their campaign→countries table, and
//!   the deterministic generator ([`site_telemetry`], [`test_set`]).
//! - [`encoder`]: [`EncoderSpec`] (numeric z-score columns and one-hot
//!   categorical columns), its federation-wide default, fitting, validation
//!   and encoding to an `Array2<f32>`.
//! - [`partition`]: splitting one record set among participants (IID for
//!   now), deterministic by seed.
//! - [`error`]: [`DatasetError`]: what was wrong and what to do about it.
//! - `seed` (private): derivation of independent per-purpose random streams
//!   from a user seed, so no two uses of randomness ever share a stream.
#![forbid(unsafe_code)]

pub mod encoder;
pub mod error;
pub mod partition;
pub mod record;
mod seed;
pub mod synthetic;

pub use encoder::{CategoricalColumn, EncoderSpec, NumericColumn};
pub use error::DatasetError;
pub use record::FlowRecord;
pub use synthetic::{SyntheticConfig, site_telemetry, test_set};
