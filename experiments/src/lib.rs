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
//! - [`scenario`]: `fedsoc experiment run SCENARIO.toml`: scenario files,
//!   real-data splits, federated preprocessing, local-only / federated /
//!   centralized training, evaluation and the report.
//! - [`train_bench`]: `fedsoc bench train`: local training throughput,
//!   comparable with the PyTorch script in `experiments/pytorch/`.
//! - [`read_bench`]: `fedsoc bench read`: a week of rotated gzip Zeek logs
//!   read through the participant's loading path with `max_rows`: rows/s
//!   and the reading process's peak memory.
//! - [`watch_bench`]: `fedsoc bench watch`: live detection on one core,
//!   flows/s per input format against the bare parse rate, and alert
//!   latency at a steady rate through the real watch.
//! - [`score`]: `fedsoc score`: an exported model scores a SOC's own telemetry, with a
//!   given threshold or one calibrated on reference traffic at a false-positive budget.
//! - [`plot`]: the report's figures as SVG: ROC curves, lines, heat maps.
//! - [`error`](mod@error): [`ExperimentError`].
#![forbid(unsafe_code)]

pub mod bench;
pub mod demo;
pub mod error;
pub mod local;
pub mod plot;
pub mod read_bench;
pub mod scenario;
pub mod score;
pub mod train_bench;
pub mod watch_bench;

pub use error::ExperimentError;
