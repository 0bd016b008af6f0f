//! The participant's local telemetry, loaded once and encoded with the
//! federation's feature encoding. It never leaves this process.

use fedsoc_datasets::synthetic::{SyntheticConfig, site_telemetry};
use fedsoc_datasets::{EncoderSpec, FlowRecord};
use ndarray::Array2;

use crate::config::DataSource;
use crate::error::ParticipantError;

/// Reads the records a data source describes.
pub fn load(source: &DataSource) -> Result<Vec<FlowRecord>, ParticipantError> {
    match source {
        DataSource::Synthetic {
            site,
            seed,
            rows,
            contamination,
        } => Ok(site_telemetry(
            *site,
            &SyntheticConfig {
                seed: *seed,
                rows: *rows,
                attack_fraction: *contamination,
            },
        )?),
    }
}

/// Encodes records with the encoder the coordinator announced.
pub fn encode(records: &[FlowRecord], encoder_json: &str) -> Result<Array2<f32>, ParticipantError> {
    let encoder: EncoderSpec = serde_json::from_str(encoder_json).map_err(|e| {
        ParticipantError::Protocol(format!(
            "the coordinator's feature encoding is unreadable: {e}"
        ))
    })?;
    encoder.validate().map_err(|e| {
        ParticipantError::Protocol(format!("the coordinator's feature encoding: {e}"))
    })?;
    Ok(encoder.encode(records)?)
}
