//! Boundary checks shared by training and scoring: turn untrusted weights/data/labels into the
//! invariants the burn code relies on (right shapes, finite values, contiguous row-major rows,
//! one label per row).

use std::borrow::Cow;

use ndarray::ArrayView2;

use crate::error::ModelError;
use crate::model::ModelConfig;

/// Config is valid and `weights` has the right length and only finite values.
pub(crate) fn check_weights(config: &ModelConfig, weights: &[f32]) -> Result<(), ModelError> {
    config.validate()?;
    let expected = config.num_params();
    if weights.len() != expected {
        return Err(ModelError::WeightLength {
            expected,
            actual: weights.len(),
        });
    }
    if let Some(index) = weights.iter().position(|w| !w.is_finite()) {
        return Err(ModelError::NonFiniteWeights { index });
    }
    Ok(())
}

/// Checks the column count and finiteness, and returns the rows as one contiguous row-major
/// slice (borrowed when the view already is one) so batches can be cut without per-row copies.
pub(crate) fn rows<'a>(
    config: &ModelConfig,
    data: &ArrayView2<'a, f32>,
) -> Result<Cow<'a, [f32]>, ModelError> {
    let cols = data.ncols();
    if cols != config.input_dim() {
        return Err(ModelError::ColumnMismatch {
            expected: config.input_dim(),
            actual: cols,
        });
    }
    let flat: Cow<'a, [f32]> = match data.to_slice() {
        Some(slice) => Cow::Borrowed(slice),
        // `iter` walks in logical (row-major) order whatever the memory layout.
        None => Cow::Owned(data.iter().copied().collect()),
    };
    if let Some(i) = flat.iter().position(|v| !v.is_finite()) {
        return Err(ModelError::NonFiniteData {
            row: i / cols,
            col: i % cols,
        });
    }
    Ok(flat)
}

/// The labels a supervised `config` trains on: present and one per row. Models that need no
/// labels get `None` back whatever was passed, so an unused label slice is never a reason to fail.
pub(crate) fn labels<'a>(
    config: &ModelConfig,
    labels: Option<&'a [bool]>,
    rows: usize,
) -> Result<Option<&'a [bool]>, ModelError> {
    if !config.needs_labels() {
        return Ok(None);
    }
    let labels = labels.ok_or(ModelError::MissingLabels {
        model: config.kind(),
    })?;
    if labels.len() != rows {
        return Err(ModelError::LabelLength {
            expected: rows,
            actual: labels.len(),
        });
    }
    Ok(Some(labels))
}
