//! Running fedsoc end to end: local federations on one machine, the demo,
//! and (later) scenarios, reports and benchmarks.
//!
//! # Layout
//!
//! - [`local`]: a whole federation on loopback (CA, coordinator,
//!   participants), over real mutual TLS, from the real config files.
//! - [`demo`]: `fedsoc demo`: rounds on synthetic telemetry, evaluated on a
//!   held-out test set, models and `metrics.json` written out.
//! - [`bench`]: `fedsoc bench secagg`: a secure round against the same
//!   plaintext round over the real stack, per stage, with the PRG floor.
//! - [`error`]: [`ExperimentError`].
#![forbid(unsafe_code)]

pub mod bench;
pub mod demo;
pub mod error;
pub mod local;

pub use error::ExperimentError;
