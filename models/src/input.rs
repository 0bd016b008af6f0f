//! Boundary checks shared by training and scoring: turn untrusted weights/data into the
//! invariants the burn code relies on (right shapes, finite values, contiguous row-major rows).

use std::borrow::Cow;

use ndarray::ArrayView2;

use crate::autoencoder::AutoencoderConfig;
use crate::error::ModelError;

/// Config is valid and `weights` has the right length and only finite values.
pub(crate) fn check_weights(config: &AutoencoderConfig, weights: &[f32]) -> Result<(), ModelError> {
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
    config: &AutoencoderConfig,
    data: &ArrayView2<'a, f32>,
) -> Result<Cow<'a, [f32]>, ModelError> {
    let cols = data.ncols();
    if cols != config.input_dim {
        return Err(ModelError::ColumnMismatch {
            expected: config.input_dim,
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
