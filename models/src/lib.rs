//! Detection models for fedsoc: an MLP autoencoder (unsupervised, scores by reconstruction
//! error) and an MLP classifier (supervised, scores by the logit of P(attack)), both in burn,
//! exchanged between parties as a flat `Vec<f32>`, trained locally (optionally with FedProx),
//! and evaluated with ranking and threshold metrics.
//!
//! Burn types never cross this crate's boundary: callers see plain Rust, `ndarray` views and
//! flat weight vectors, so the federation code does not depend on burn's API or backend.
//!
//! # Layout
//!
//! - [`model`]: [`ModelConfig`], the kind-tagged choice of architecture every entry point takes.
//! - [`autoencoder`]: [`AutoencoderConfig`] (architecture, validation, parameter count).
//! - [`classifier`]: [`ClassifierConfig`] (architecture, validation, parameter count).
//! - `mlp` (private): the one burn module both kinds are built from (linear layers, ReLU
//!   between) and the width checks they share.
//! - [`export`]: the global model for use outside the federation: a safetensors file
//!   (PyTorch-shaped tensors, metadata with kind, widths, round, hash and encoder) and burn's
//!   record format with a JSON sidecar; [`export_safetensors`] / [`read_safetensors`].
//! - [`flat`]: the model ⇄ flat-vector codec (visitor order, documented there), [`flat::layout`]
//!   and seeded [`initial_weights`].
//! - [`train`]: [`train_local`] — Adam, seeded shuffling, deterministic per seed;
//!   [`TrainConfig`] (including FedProx's `proximal_mu` and the classifier loss),
//!   [`TrainOutcome`].
//! - [`loss`]: [`ClassifierLoss`] (cross-entropy, class-balanced, focal) and the objectives as
//!   burn tensors.
//! - `proximal` (private): FedProx's `(μ/2)·‖w − w_global‖²` term.
//! - [`score`]: [`anomaly_scores`] and [`reconstruction_loss`], batched inference; [`Scorer`],
//!   a model loaded once for scoring batch after batch; [`flags`], the one flag rule (above
//!   the threshold, or NaN) that reports, `fedsoc score` and `fedsoc watch` share.
//! - [`metrics`]: [`roc_auc`] and [`pr_auc`] with tie handling; [`Confusion`] at a threshold,
//!   [`threshold_at_fpr`], [`recall_by_family`] and [`roc_curve`].
//! - [`error`]: [`ModelError`], one variant per thing a caller can get wrong.
//! - `input` (private): boundary checks of weights, data and labels shared by training and
//!   scoring.
//!
//! # Backend
//!
//! Everything runs on burn's pure-Rust Flex CPU backend (`Device::flex()`, with `.autodiff()`
//! for training), single-threaded, which is what makes training bit-for-bit reproducible.

#![forbid(unsafe_code)]

pub mod autoencoder;
pub mod classifier;
pub mod error;
pub mod export;
pub mod flat;
mod input;
pub mod loss;
pub mod metrics;
mod mlp;
pub mod model;
mod proximal;
pub mod score;
pub mod train;

#[cfg(test)]
mod testutil;

pub use autoencoder::AutoencoderConfig;
pub use classifier::ClassifierConfig;
pub use error::ModelError;
pub use export::{ExportMeta, export_safetensors, read_safetensors};
pub use flat::initial_weights;
pub use loss::ClassifierLoss;
pub use metrics::{
    Confusion, confusion_at, pr_auc, recall_by_family, roc_auc, roc_curve, threshold_at_fpr,
};
pub use model::ModelConfig;
pub use score::{Scorer, anomaly_scores, flags, probability, reconstruction_loss};
pub use train::{TrainConfig, TrainOutcome, train_local};
