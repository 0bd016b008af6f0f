//! Anomaly models for fedsoc: an MLP autoencoder in burn, exchanged between parties as a flat
//! `Vec<f32>`, trained locally, and scored by reconstruction error.
//!
//! Burn types never cross this crate's boundary: callers see plain Rust, `ndarray` views and
//! flat weight vectors, so the federation code does not depend on burn's API or backend.
//!
//! # Layout
//!
//! - [`autoencoder`]: [`AutoencoderConfig`] (architecture, validation, parameter count) and the
//!   crate-private burn module with its forward pass.
//! - [`flat`]: the model ⇄ flat-vector codec (visitor order, documented there), [`flat::layout`]
//!   and seeded [`initial_weights`].
//! - [`train`]: [`train_local`] — Adam on MSE, seeded shuffling, deterministic per seed;
//!   [`TrainConfig`], [`TrainOutcome`].
//! - [`score`]: [`anomaly_scores`] and [`reconstruction_loss`], batched inference.
//! - [`metrics`]: [`roc_auc`] and [`pr_auc`] with tie handling.
//! - [`error`]: [`ModelError`], one variant per thing a caller can get wrong.
//! - `input` (private): boundary checks of weights and data shared by training and scoring.
//!
//! # Backend
//!
//! Everything runs on burn's pure-Rust Flex CPU backend (`Device::flex()`, with `.autodiff()`
//! for training), single-threaded, which is what makes training bit-for-bit reproducible.

#![forbid(unsafe_code)]

pub mod autoencoder;
pub mod error;
pub mod flat;
mod input;
pub mod metrics;
pub mod score;
pub mod train;

#[cfg(test)]
mod testutil;

pub use autoencoder::AutoencoderConfig;
pub use error::ModelError;
pub use flat::initial_weights;
pub use metrics::{pr_auc, roc_auc};
pub use score::{anomaly_scores, reconstruction_loss};
pub use train::{TrainConfig, TrainOutcome, train_local};
