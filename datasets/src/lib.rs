//! fedsoc-datasets: where a participant's training rows come from.
//!
//! Every data source (NSL-KDD, any CSV with a schema, Zeek, Suricata, the
//! built-in synthetic generator) produces [`Records`], and every participant
//! turns them into model input with the *same* federation-wide
//! [`EncoderSpec`], so the columns of all participants mean the same thing.
//!
//! # Layout
//!
//! - [`table`]: [`Records`], the one record type every reader produces:
//!   named numeric and categorical columns, label and attack family.
//! - [`record`]: [`FlowRecord`], one flow as a sensor sees it, and the
//!   benign/attack label convention; flows become [`Records`] with derived
//!   flow columns.
//! - [`read`]: the readers (CSV + schema, NSL-KDD, Zeek, Suricata), gzip,
//!   BOM and CRLF handling, and the malformed-row policy; and Zeek or
//!   Suricata sources of many rotated files streamed through a time window
//!   into a bounded uniform sample.
//! - [`moments`]: federated preprocessing: the per-participant sums behind
//!   the global feature statistics and the score histogram, as integer
//!   vectors for secure aggregation, and what the sums decode to.
//! - [`statistics`]: the queries of `statistics` and `calibrate` rounds:
//!   what a member sums over its rows, and the encoder or threshold the
//!   secure sum decodes to.
//! - [`synthetic`]: the default data source: country profiles of eight
//!   European SOCs, attack campaigns with their campaign→countries table, and
//!   the deterministic generator ([`site_telemetry`], [`test_set`]).
//! - [`encoder`]: [`EncoderSpec`] (numeric z-score columns and one-hot
//!   categorical columns), its federation-wide default, fitting, validation
//!   and encoding to an `Array2<f32>`.
//! - [`partition`]: splitting one record set among participants (IID,
//!   by attack family, Dirichlet label skew, quantity skew), deterministic
//!   by seed.
//! - [`error`]: [`DatasetError`]: what was wrong and what to do about it.
//! - `seed` (private): derivation of independent per-purpose random streams
//!   from a user seed, so no two uses of randomness ever share a stream.
#![forbid(unsafe_code)]

pub mod encoder;
pub mod error;
pub mod moments;
pub mod partition;
pub mod read;
pub mod record;
mod seed;
pub mod statistics;
pub mod synthetic;
pub mod table;

pub use encoder::{CategoricalColumn, EncoderSpec, NumericColumn};
pub use error::DatasetError;
pub use read::{Loaded, ReadOptions, ReadReport};
pub use record::{FlowRecord, NORMAL};
pub use synthetic::{SyntheticConfig, site_telemetry, test_set};
pub use table::Records;
