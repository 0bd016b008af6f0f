//! The fedsoc coordinator: admits participants over mutual TLS, runs
//! training rounds, combines their updates and keeps the global model.
//!
//! # Layout
//!
//! - [`config`]: `coordinator.toml`, loaded and checked.
//! - [`federation`]: what all participants share (model, features,
//!   training settings) and the per-task training seed.
//! - [`registry`]: the participants connected now and their stream halves.
//! - [`session`]: the `Federation` gRPC service: admission and streams.
//! - [`admin`]: the `Admin` gRPC service for data scientists and auditors.
//! - [`control`]: its client side: `control.toml`, the connection, and
//!   the status table.
//! - [`live`]: the running round as status shows it, and its stop switch.
//! - [`kind`]: round kinds (train, the two statistics passes, calibrate):
//!   each sum round's public query and what its sum concludes.
//! - [`round`]: one round: tasks out, updates in, dropouts recorded.
//! - [`secure_round`]: one round through SecAgg+: the fedsoc-secagg server
//!   state machine driven stage by stage, dropouts recorded per stage.
//! - [`stats`]: a round's wall and compute time per stage, and its bytes.
//! - [`metrics`]: the Prometheus metrics (rounds, stages, dropouts,
//!   traffic, refusals; members online, audit log and CRL at scrape time)
//!   served at `[metrics] listen`.
//! - [`aggregate`]: the "sum of updates" seam: [`aggregate::WeightedSum`]
//!   and the plaintext reference that secure rounds must equal.
//! - [`strategy`]: FedAvg on the aggregate, and the mean training loss.
//! - [`optimizer`]: server optimisers (FedAvg, FedAvgM, FedAdam): their
//!   hyperparameters, their state between rounds and the pure step that
//!   the round and the audit replay both run.
//! - [`store`]: durable models and round history.
//! - [`crl`]: the CRL enforced at start and per round (fresh, never older
//!   than the highest number recorded) and sent with every task.
//! - [`trail`]: the audit trail: entry kinds and bodies, written to the
//!   auditors' log (fedsoc-audit) as rounds happen.
//! - [`replay`]: the auditor's side: verify a log and replay every round.
//! - [`audit_view`]: a log's round timeline, entry proofs, and their text.
//! - [`witness`]: participants' cosignatures over checkpoints, checked
//!   and handed to the trail.
//! - [`server`]: the running [`Coordinator`] and its round loop.
//! - [`error`](mod@error): [`CoordinatorError`].
#![forbid(unsafe_code)]

pub mod admin;
pub mod aggregate;
pub mod audit_view;
pub mod config;
pub mod control;
pub mod crl;
pub mod error;
pub mod federation;
pub mod kind;
pub mod live;
pub mod metrics;
pub mod optimizer;
pub mod registry;
pub mod replay;
pub mod round;
pub mod secure_round;
pub mod server;
pub mod session;
pub mod stats;
pub mod store;
pub mod strategy;
pub mod trail;
pub mod witness;

pub use config::CoordinatorConfig;
pub use error::CoordinatorError;
pub use federation::{FederationSpec, training_seed};
pub use round::{RoundReport, model_sha256};
pub use server::Coordinator;
pub use stats::{RoundStats, StageStats};
