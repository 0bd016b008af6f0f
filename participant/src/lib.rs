//! The fedsoc participant: the node agent that runs beside a SOC's
//! telemetry. It dials out (it never accepts connections), trains the
//! federation's model locally, and sends back only model updates.
//!
//! # Layout
//!
//! - [`config`]: `participant.toml`, loaded and checked; reconnect backoff.
//! - [`telemetry`]: loading the local data source and encoding it with the
//!   federation's feature encoding.
//! - [`prepared`]: our rows split (training, benign validation) and
//!   encoded with the encoder in force; answers to statistics and
//!   calibrate queries.
//! - [`task`]: receiving a training task and its global model (sans-IO).
//! - [`secure`]: our side of secure aggregation (sans-IO): member
//!   certificates checked, update encoded, client stages driven.
//! - [`workload`]: what each update comes from: local training, or random
//!   updates for benchmarks of the aggregation path.
//! - [`releases`]: the base models whose secure sums we unmasked, kept
//!   durably: our update from one model never enters a second sum.
//! - [`audit`]: holding the coordinator to its audit log (sans-IO):
//!   checkpoint signatures, consistency proofs, receipts for our updates.
//! - [`revocation`]: the CRL the coordinator sends, checked against the CA,
//!   its nextUpdate and the highest CRL number we accepted (kept on disk).
//! - [`bundles`]: the model bundle of each completed round, verified
//!   against the CA and kept in `bundles = "DIR"`.
//! - [`metrics`]: the Prometheus metrics (rounds joined, training time
//!   and rows, last verified checkpoint, reconnects, refusals) served at
//!   `[metrics] listen`.
//! - [`agent`]: the async shell: connection, stream, training, replies.
//! - [`error`](mod@error): [`ParticipantError`].
#![forbid(unsafe_code)]

pub mod agent;
pub mod audit;
pub mod bundles;
pub mod config;
pub mod error;
pub mod metrics;
pub mod prepared;
pub mod releases;
pub mod revocation;
pub mod secure;
pub mod task;
pub mod telemetry;
pub mod workload;

pub use agent::Agent;
pub use config::{DataSource, ParticipantConfig};
pub use error::ParticipantError;
pub use workload::RandomUpdates;
